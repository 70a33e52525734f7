"""emb-train: contrastive fine-tuning of an embedding model on example records (placeholder while being built)."""

from __future__ import annotations

import click

from embtools.cli import EmbtoolsCommand, common_options


@click.command(cls=EmbtoolsCommand, name="emb-train")
@common_options
def main():
    """Fine-tune an embedding model on example records."""


if __name__ == "__main__":
    main()
