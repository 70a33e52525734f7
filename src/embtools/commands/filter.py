"""emb-filter: example records in, trustworthy example records out."""

from __future__ import annotations

import click

from embtools.cli import EmbtoolsCommand, common_options


@click.command(cls=EmbtoolsCommand, name="emb-filter")
@common_options
def main():
    """Filter example records (work in progress)."""


if __name__ == "__main__":
    main()
