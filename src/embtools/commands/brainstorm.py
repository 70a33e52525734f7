"""emb-brainstorm (being built)."""

import click

from embtools.cli import EmbtoolsCommand, common_options


@click.command(cls=EmbtoolsCommand, name="emb-brainstorm")
@common_options
def main():
    """Being built (issue 4)."""


if __name__ == "__main__":
    main()
