"""The click options emb-encode and emb-eval share for the embedding model they load, defined once."""

from __future__ import annotations

import click

from embtools.models.loading import DTYPES

dtype_option = click.option(
    "--dtype", type=click.Choice(DTYPES), default="auto", envvar="EMBTOOLS_DTYPE", show_default=True,
    help="auto: bfloat16 for decoders on GPUs and on CPUs with native bf16 (AVX512-BF16, AMX), float32 otherwise. "
         "Env: EMBTOOLS_DTYPE.")
