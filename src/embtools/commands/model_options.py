"""The click options shared by the commands that load a model (emb-encode, emb-eval, emb-train, emb-filter's mining),
defined once."""

from __future__ import annotations

import os

import click

from embtools.cli import ParsedBy
from embtools.encode.batching import CPU_BATCH_TOKENS, GPU_BATCH_TOKENS
from embtools.models.hub import OFFLINE_ENV
from embtools.models.loading import DTYPES
from embtools.models.rope import parse_rope_scaling, parse_rope_theta

dtype_option = click.option(
    "--dtype", type=click.Choice(DTYPES), default="auto", envvar="EMBTOOLS_DTYPE", show_default=True,
    help="auto: bfloat16 for decoders on GPUs and on CPUs with native bf16 (AVX512-BF16, AMX), float32 otherwise. "
         "Env: EMBTOOLS_DTYPE.")

batch_tokens_option = click.option(
    "--batch-tokens", type=click.IntRange(min=1), default=None, envvar="EMBTOOLS_BATCH_TOKENS",
    help="Token budget of one batch (count x longest text, over length-sorted texts). Default: "
         f"{GPU_BATCH_TOKENS} on a GPU, {CPU_BATCH_TOKENS} on a CPU (larger CPU batches measured slower). "
         "Env: EMBTOOLS_BATCH_TOKENS.")


def _export_offline(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Offline for the whole run: EMBTOOLS_OFFLINE for the model layer, HF_HUB_OFFLINE and HF_DATASETS_OFFLINE for
    the Hugging Face libraries (mteb's data), which read them when first imported, after the options are parsed;
    processes the command launches inherit them. Restored after the run, so an in-process caller keeps its own."""
    if value:
        switches = (OFFLINE_ENV, "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
        previous = {name: os.environ.get(name) for name in switches}
        os.environ.update(dict.fromkeys(switches, "1"))
        ctx.call_on_close(lambda: _restore(previous))
    return value


def _restore(previous: dict[str, str | None]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


offline_option = click.option(
    "--offline", is_flag=True, envvar=OFFLINE_ENV, expose_value=False, callback=_export_offline,
    help="Never use the network: a hub id (or hf://datasets/ input) must already be in the Hugging Face cache "
         "(HF_HOME). Default: it downloads on first use. Built-in models never need the network. "
         "Env: EMBTOOLS_OFFLINE.")


def rope_options(command):
    """--rope-theta and --rope-scaling (models/rope.py): the command receives `rope_theta` and `rope_scaling`."""
    command = click.option(
        "--rope-scaling", type=ParsedBy(parse_rope_scaling, "rope scaling"), default=None, metavar="TYPE:FACTOR",
        envvar="EMBTOOLS_ROPE_SCALING",
        help="Stretch a RoPE model's context by FACTOR: linear, dynamic or yarn, e.g. yarn:4. Default: the model's "
             "own (or what emb-train trained it with). Env: EMBTOOLS_ROPE_SCALING.")(command)
    return click.option(
        "--rope-theta", type=ParsedBy(parse_rope_theta, "rope theta"), default=None, metavar="BASE",
        envvar="EMBTOOLS_ROPE_THETA",
        help="The RoPE base (theta) of a rotary-position model, e.g. 1e6 for longer inputs, as the paper raises "
             "it for long context. Default: the model's own (or what emb-train trained it with). "
             "Env: EMBTOOLS_ROPE_THETA.")(command)
