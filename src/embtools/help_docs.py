"""docs/commands.md from every command's `--help`, so the reference cannot drift from the code.

The commands are the package's console scripts (pyproject.toml is the one list). `python -m embtools.help_docs`
prints the page; a test compares it with the committed file.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click


def console_scripts() -> dict[str, click.Command]:
    """Each `emb-*` console script of this package, by name, in name order."""
    found = {ep.name: ep.load() for ep in entry_points(group="console_scripts")
             if ep.name.startswith("emb-") and ep.value.startswith("embtools.")}
    return dict(sorted(found.items()))


def command_help(command: click.Command, path: str) -> list[str]:
    """The help of a command and, for a group, of each subcommand."""
    with click.Context(command, info_name=path, terminal_width=100, max_content_width=100) as ctx:
        sections = [f"## {path}", "", "```", command.get_help(ctx), "```", ""]
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sections += command_help(command.get_command(ctx, name), f"{path} {name}")
    return sections


def render() -> str:
    lines = ["# Command reference", "", "Generated from each command's `--help` by `make docs`; a test keeps it "
             "in step with the code.", ""]
    for name, command in console_scripts().items():
        lines += command_help(command, name)
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
