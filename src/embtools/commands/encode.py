"""emb-encode: text records in, embedding records out."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

import click

from embtools.cli import EmbtoolsCommand, ParsedBy, common_options, warning
from embtools.command_runner import RecordRun, record_command
from embtools.commands.model_options import batch_tokens_option, dtype_option, offline_option, rope_options
from embtools.distributed import (
    init_process_group,
    is_launched,
    is_main_process,
    launch_command,
    leave_process_group,
    world_size,
)
from embtools.errors import EmbtoolsError
from embtools.generate.generation_run import parse_shard, shard_share
from embtools.models.builtin import DEFAULT_MODEL
from embtools.models.loading import POOLINGS
from embtools.progress import Bar, attached
from embtools.records.embedding_files import FORMATS
from embtools.records.embeddings import ENCODINGS
from embtools.records.jsonl import count_lines, open_input
from embtools.records.vector_precision import PRECISIONS

_SPOOL_ENV = "EMBTOOLS_SPOOLED_INPUT"


@click.command(cls=EmbtoolsCommand, name="emb-encode")
@record_command(reads="file")
@click.option("-m", "--model", envvar="EMBTOOLS_MODEL", default=DEFAULT_MODEL, show_default=True,
              help="Built-in name, model folder (emb-train output, HF or sentence-transformers), or hub id "
                   "(downloaded on first use). "
                   "Env: EMBTOOLS_MODEL.")
@click.option("--instruction", default=None,
              help="Treat every text as a query: 'Instruct: TEXT\\nQuery: {text}'. A record's own `instruction` "
                   "field wins. Default: none (documents).")
@click.option("--pooling", type=click.Choice(POOLINGS), default=None,
              help="Default: the model's (last for decoders, the saved config for sentence-transformers folders).")
@click.option("--max-length", type=click.IntRange(min=2), default=512, show_default=True,
              help="Tokens per text, special tokens included; longer texts are truncated and counted.")
@click.option("--encoding", type=click.Choice(ENCODINGS), default="float", show_default=True,
              help="float: a JSON list; base64: little-endian float32 as OpenAI's API.")
@click.option("--normalize/--no-normalize", default=None,
              help="L2-normalize the vectors. Default: on (a sentence-transformers folder without Normalize: off).")
@dtype_option
@rope_options
@offline_option
@batch_tokens_option
@click.option("--chunk-size", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Records read, sorted and encoded together (the unit of work of each process).")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, envvar="EMBTOOLS_NUM_PROCESSES",
              show_default=True, help="Encode with N processes under accelerate (one per GPU; CPU processes "
                                      "with gloo otherwise). Output stays in input order.")
@click.option("--id-field", default="id", show_default=True,
              help="The field holding each record's id; `_id` reads BEIR corpus and query files as they are. "
                   "The output record calls it `id`.")
@click.option("--trust-remote-code", is_flag=True, help="Allow a model folder's own Python code. Default: never.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True,
              help="jsonl: embedding records; npy: OUT.npy matrix + OUT.ids.jsonl + OUT.meta.json; parquet: `id`, "
                   "`embedding` (fixed-size list), `fields` columns. npy and parquet need -o.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="float32", show_default=True,
              help="Stored precision. int8 (ranges from the first chunk) and ubinary (1 bit a dimension) need "
                   "--format npy or parquet.")
@click.option("--truncate-dim", type=click.IntRange(min=1), default=None,
              help="Keep the first D dimensions (Matryoshka), renormalized when normalizing. Default: all.")
@click.option("--shard", default=None, metavar="I/N", type=ParsedBy(parse_shard, "shard"),
              help="Encode shard I of N (0 <= I < N): the records at positions I, I+N, I+2N, ... Default: all.")
@click.option("--resume", is_flag=True,
              help="Keep progress in OUT.progress/ and continue a killed run from its last finished chunk; needs "
                   "-o and a FILE, and refuses another input or other options. Default: start over.")
@common_options
def main(run: RecordRun, model, instruction, pooling, max_length, encoding, normalize, dtype, batch_tokens,
         chunk_size, num_processes, id_field, trust_remote_code, fmt, precision, truncate_dim, shard, resume,
         rope_theta, rope_scaling):
    """Embed text records (`id`, `text`, optional `title`, `instruction`) read from FILE or stdin.

    Writes one embedding record (`id`, `embedding`, plus fields it does not know) per text, in input order; with
    --format npy or parquet, embedding files instead (docs/records.md).
    """
    _check_usage(run, fmt, precision, resume)
    from embtools.encode.encoder import Encoder, EncodeSettings
    from embtools.encode.output import OutputSettings, encode_to_output
    from embtools.encode.resume import fingerprint, progress_folder, read_ledger
    from embtools.encode.stream import shard as take_shard
    from embtools.encode.stream import text_record_validator
    from embtools.models.rope import RopeOverride

    if num_processes > 1 and not is_launched():
        sys.exit(_relaunch(num_processes, run.source))
    source = os.environ.get(_SPOOL_ENV) if run.source in (None, "-") and is_launched() else run.source
    if world_size() > 1 and source in (None, "-"):
        raise EmbtoolsError("under several processes give the input as a FILE (each process reads it)")
    init_process_group()
    settings = EncodeSettings(pooling=pooling, normalize=normalize, max_length=max_length, dtype=dtype,
                              max_tokens=batch_tokens, trust_remote_code=trust_remote_code,
                              rope=RopeOverride(rope_theta, rope_scaling))
    started = time.perf_counter()
    records = take_shard(run.read(text_record_validator(id_field), source=source), *(shard or (0, 1)))
    output = OutputSettings(fmt, run.output, encoding, precision, truncate_dim, chunk_size)
    options = {"model": model, "instruction": instruction, "pooling": pooling, "max_length": max_length,
               "encoding": encoding, "normalize": normalize, "dtype": dtype, "batch_tokens": batch_tokens,
               "chunk_size": chunk_size, "id_field": id_field, "format": fmt, "precision": precision,
               "truncate_dim": truncate_dim, "shard": shard, "rope_theta": rope_theta,
               "rope_scaling": rope_scaling}
    resume_print = fingerprint(source, options) if resume else None
    if resume_print:
        read_ledger(progress_folder(run.output), resume_print)  # refuse a changed run before the model loads
    encoder = Encoder(model, settings)
    total = (lambda: shard_share(count_lines(source), shard)) if world_size() == 1 else None  # else rank 0's share
    with attached(encoder, Bar("encode", total, unit="text", rates=("tokens",))):
        written = encode_to_output(records, encoder, instruction, output,
                                   stdout=run.stream if fmt == "jsonl" and is_main_process() else None,
                                   resume_print=resume_print)
    count = written.count
    leave_process_group()
    if not is_main_process():  # rank 0 gathers, writes and reports; the others only encode their share
        return
    if count == 0 and not run.rejects.total:
        warning("no input records")
    truncated = f"; {encoder.truncated} texts truncated to {encoder.max_length} tokens" if encoder.truncated else ""
    stored = "" if precision == "float32" else f" {precision}"
    run.summarize(f"{count} embeddings ({written.dim}-d{stored}, {encoder.pooling} pooling, {encoder.dtype}) "
                  f"in {time.perf_counter() - started:.1f} s{truncated}")


def _check_usage(run: RecordRun, fmt: str, precision: str, resume: bool) -> None:
    """Usage errors (exit 2) before anything loads."""
    if fmt != "jsonl" and run.streams_to_stdout:
        raise click.UsageError(f"--format {fmt} writes files: give -o OUT")
    if precision in ("int8", "ubinary") and fmt == "jsonl":
        raise click.UsageError(f"--precision {precision} needs --format npy or parquet (the file records its "
                               "precision)")
    if resume and (run.streams_to_stdout or run.source in (None, "-")):
        raise click.UsageError("--resume needs -o OUT and the input as a FILE")


def _relaunch(num_processes: int, input_file: str | None) -> int:
    """Run this command again under accelerate launch; stdin is spooled to a file all workers can read."""
    if input_file not in (None, "-"):
        return launch_command(num_processes, "embtools.commands.encode", sys.argv[1:])
    spool_dir = tempfile.mkdtemp(prefix="emb-encode-")
    try:
        spool = os.path.join(spool_dir, "input.jsonl")
        with open_input(None) as stdin, open(spool, "wb") as out:
            shutil.copyfileobj(stdin, out)
        return launch_command(num_processes, "embtools.commands.encode", sys.argv[1:], env={_SPOOL_ENV: spool})
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
