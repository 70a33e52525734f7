"""emb-index: embedding records in, a FAISS index folder out (the default subcommand); `add` appends, `search` finds."""

from __future__ import annotations

import time
from pathlib import Path

import click

from embtools.cli import EmbtoolsGroup, common_options
from embtools.command_runner import RecordRun, record_command
from embtools.commands.index_budget_options import budget_from_options, budget_options
from embtools.index.defaults import ADD_BATCH, DEFAULT_EF_SEARCH, DEFAULT_FACTORY, DEFAULT_TRAIN_SIZE, SEARCH_BATCH


class DefaultCommandGroup(EmbtoolsGroup):
    """A group that runs `default_command` when the first argument names none of its subcommands (and is not --help),
    so `emb-index -o DIR` means `emb-index build -o DIR`."""

    default_command = "build"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


_add_batch_option = click.option("--batch-size", type=click.IntRange(min=1), default=ADD_BATCH, show_default=True,
                                 help="Vectors normalized and added to the index at a time.")


@click.group(cls=DefaultCommandGroup, name="emb-index")
def main():
    """Build, extend and search FAISS indexes of embedding records. Without a subcommand: `build`.

    \b
      emb-encode < docs.jsonl | emb-index -o docs.index
      emb-encode --instruction "..." < queries.jsonl | emb-index search --index docs.index -k 10
    """


@main.command("build")
@record_command(reads="files", writes=False)
@_add_batch_option
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(file_okay=False),
              help="The index folder to write (atomically: it appears only when complete).")
@click.option("--factory", envvar="EMBTOOLS_FACTORY", default=DEFAULT_FACTORY, show_default=True,
              help="A FAISS index factory string: Flat (exact), HNSW32, IVF4096,Flat, IVF4096,PQ64, SQ8 ... "
                   "Env: EMBTOOLS_FACTORY.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder. Default: refuse.")
@click.option("--model", default=None,
              help="The model named in index.json. Default: the first record's meta.model, else none.")
@click.option("--train-size", type=click.IntRange(min=1), default=DEFAULT_TRAIN_SIZE, envvar="EMBTOOLS_TRAIN_SIZE",
              show_default=True, help="Vectors (the first N of the input) that train an IVF, PQ or SQ index. "
                                      "Env: EMBTOOLS_TRAIN_SIZE.")
@click.option("--gpu", is_flag=True, envvar="EMBTOOLS_GPU",
              help="Build on the GPU with faiss-gpu (an error if it is not installed). Default: CPU.")
@budget_options
@common_options
@click.pass_context
def build(ctx, run: RecordRun, output_dir, factory, overwrite, model, train_size, gpu, batch_size, max_memory,
          min_recall, max_query_ms, tune_sample, tune_queries):
    """Index embeddings from FILEs (one after another: e.g. the shards of `emb-encode --shard`) or stdin into the
    folder DIR. A FILE is JSONL embedding records (`id`, `embedding`: floats or base64), or an npy or Parquet file
    of `emb-encode --format`, told apart by its first bytes.

    Vectors are L2-normalized and scored by inner product (cosine similarity); ubinary files build a binary
    (Hamming) index. DIR holds index.faiss, ids.jsonl (ids in row order) and index.json (what was built).
    """
    from embtools.index.embedding_checks import EmbeddingChecker
    from embtools.index.inputs import read_inputs
    from embtools.index.vector_index import build_index

    budget = budget_from_options(ctx, max_memory, min_recall, max_query_ms, tune_sample, tune_queries, gpu)
    started = time.perf_counter()
    checker = EmbeddingChecker()
    info, records = read_inputs(run, run.source, checker, bulk=True)
    meta = build_index(records, Path(output_dir), factory, overwrite=overwrite, model=model or info.model,
                       train_size=train_size, gpu=gpu, checker=checker, batch_size=batch_size,
                       precision=info.precision, budget=budget)
    if budget is not None:
        from embtools.index.budgeted_build import choice_line
        run.summarize(choice_line(meta["choice"]))
    run.summarize(f"{meta['count']} vectors ({meta['dim']}-d, {meta['factory']}) indexed into {output_dir} "
                  f"in {time.perf_counter() - started:.1f} s")


@main.command("add")
@record_command(reads="file", writes=False)
@_add_batch_option
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False),
              help="The index folder to extend (replaced atomically by the extended one).")
@common_options
def add(run: RecordRun, index_dir, batch_size):
    """Append embeddings from FILE (JSONL, npy or Parquet) or stdin to an existing index: same dimension, new ids
    only."""
    from embtools.index.inputs import read_inputs
    from embtools.index.vector_index import add_to_index, checker_for_index

    started = time.perf_counter()
    checker = checker_for_index(Path(index_dir))
    _info, records = read_inputs(run, [run.source] if run.source else None, checker, bulk=True)
    meta = add_to_index(records, Path(index_dir), checker=checker, batch_size=batch_size)
    run.summarize(f"{index_dir} now holds {meta['count']} vectors ({time.perf_counter() - started:.1f} s)")


@main.command("search")
@record_command(reads="file")
@click.option("--index", "index_dir", required=True, type=click.Path(file_okay=False), help="The index folder.")
@click.option("-k", "--top-k", "k", type=click.IntRange(min=1), default=10, envvar="EMBTOOLS_TOP_K",
              show_default=True, help="Hits per query. Env: EMBTOOLS_TOP_K.")
@click.option("--nprobe", type=click.IntRange(min=1), default=None, envvar="EMBTOOLS_NPROBE",
              help="IVF lists visited per query. Default: the index's, max(32, nlist/8) (at most nlist). "
                   "Env: EMBTOOLS_NPROBE.")
@click.option("--ef-search", type=click.IntRange(min=1), default=None, envvar="EMBTOOLS_EF_SEARCH",
              help=f"HNSW candidate list size. Default: the index's, {DEFAULT_EF_SEARCH}. Env: EMBTOOLS_EF_SEARCH.")
@click.option("--batch-size", type=click.IntRange(min=1), default=SEARCH_BATCH, show_default=True,
              help="Queries read and searched at a time.")
@click.option("--mmap/--no-mmap", default=True, show_default=True,
              help="Memory-map the index where FAISS allows it, instead of reading it into memory.")
@click.option("--gpu", is_flag=True, envvar="EMBTOOLS_GPU", help="Search on the GPU with faiss-gpu. Default: CPU.")
@common_options
def search(run: RecordRun, index_dir, k, nprobe, ef_search, batch_size, mmap, gpu):
    """Search the index for query embeddings from FILE (JSONL, npy or Parquet) or stdin; write one hits record per
    query: `id` (the query's), `hits`: [{"id", "score"}] best first, and the query's other fields but `embedding`.
    A binary index takes float queries (binarized) or ubinary ones."""
    from embtools.index.embedding_checks import EmbeddingChecker
    from embtools.index.inputs import read_inputs
    from embtools.index.vector_index import VectorIndex, search_records

    started = time.perf_counter()
    index = VectorIndex.load(Path(index_dir), mmap=mmap, nprobe=nprobe, ef_search=ef_search, gpu=gpu)
    checker = EmbeddingChecker(None if index.meta.get("binary") else index.dim, unique=False)
    _info, queries = read_inputs(run, [run.source] if run.source else None, checker)
    count = run.write(search_records(queries, index, k, checker=checker, batch_size=batch_size))
    run.summarize(f"{count} queries searched in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
