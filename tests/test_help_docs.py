"""docs/commands.md is what the commands' --help says today (regenerate with `make docs`)."""

from conftest import REPO
from embtools.help_docs import console_scripts, render


def test_every_command_is_documented_as_its_help_says():
    assert "emb-encode" in console_scripts()
    committed = (REPO / "docs" / "commands.md").read_text()
    assert committed == render(), "docs/commands.md is stale: run `make docs`"


def test_every_console_script_has_a_bin_wrapper():
    for name in console_scripts():
        assert (REPO / "bin" / name).exists(), name
