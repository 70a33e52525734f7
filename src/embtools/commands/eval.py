"""emb-eval: evaluate an embedding model on STS and bitext files, BEIR and classification folders or mteb tasks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from embtools.cli import EmbtoolsCommand, common_options, info
from embtools.command_runner import RecordRun, record_command
from embtools.commands.model_options import batch_tokens_option, dtype_option, offline_option, rope_options
from embtools.models.builtin import DEFAULT_MODEL
from embtools.models.loading import POOLINGS
from embtools.records.datasets import EVALUATION_SPLIT

if TYPE_CHECKING:  # imported when the command runs: --help must not load torch
    from embtools.encode.cached_encoder import CachedEncoder
    from embtools.evaluate.run import EvalOutcome


@click.command(cls=EmbtoolsCommand, name="emb-eval")
@record_command(reads=None)
@click.argument("data", nargs=-1, required=True)
@click.option("-m", "--model", envvar="EMBTOOLS_MODEL", default=DEFAULT_MODEL, show_default=True,
              help="Built-in name, model folder (emb-train output, HF or sentence-transformers), or hub id "
                   "(downloaded on first use).")
@click.option("--instruction", default=None,
              help="E5 instruction for every DATA (queries only for retrieval; every text otherwise). "
                   "Default: the known instruction of the task, for models trained with instructions.")
@click.option("--no-instruction", is_flag=True, help="Plain texts, no instruction (the default for encoders "
                                                     "without prompts, such as minilm-l6).")
@click.option("--split", default=None,
              help=f"qrels/SPLIT.tsv, SPLIT.jsonl, or the mteb split. Default: {EVALUATION_SPLIT} for files and "
                   "folders; each mteb task's own evaluation split (test, else its only one: MSMARCO dev).")
@click.option("--task-type", "task_types", multiple=True, metavar="TYPE",
              help="Only the mteb tasks of this type (mteb's names: Retrieval, STS, Classification, Clustering, "
                   "Reranking, PairClassification, Summarization, BitextMining); repeatable. Default: all.")
@click.option("--language", "languages", multiple=True, metavar="LANG",
              help="Only the mteb subsets in this language (ISO 639-3 `deu`, or `deu-Latn`); repeatable. "
                   "Default: all.")
@click.option("--dry-run", is_flag=True, help="List what would run (a record per task and subset: task, type, "
                                              "split, subset, languages) and stop; no model is loaded.")
@click.option("--max-corpus", type=click.IntRange(min=1), default=None,
              help="Retrieval on N documents: every judged one and a seeded sample of the rest. Default: all.")
@click.option("--max-queries", type=click.IntRange(min=1), default=None,
              help="Retrieval with a seeded sample of N queries. Default: all judged queries.")
@click.option("--max-pairs", type=click.IntRange(min=2), default=None,
              help="STS with a seeded sample of N sentence pairs (the task is named `Name[N pairs]`). Default: all.")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Seed of the --max-corpus/--max-queries/--max-pairs samples.")
@click.option("--ignore-identical-ids", is_flag=True,
              help="Never count a document with the query's own id as a hit (mteb's option; e.g. ArguAna).")
@click.option("--output-folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write mteb result files: DIR/<model>/<revision>/<Task>.json.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a Markdown report of the main scores (a column per model) and a PNG bar chart "
                   "beside it (FILE with .png). Default: none.")
@click.option("--compare", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
              help="Metric records of an earlier run (emb-eval's saved stdout) to put beside this run in --report; "
                   "repeatable.")
@click.option("--no-cache", is_flag=True, help="Encode everything afresh; neither read nor write the embedding "
                                              "cache (EMBTOOLS_HOME/cache/embeddings.sqlite).")
@click.option("--pooling", type=click.Choice(POOLINGS), default=None, help="Default: the model's.")
@click.option("--max-length", type=click.IntRange(min=2), default=512, show_default=True,
              help="Tokens per text (E5 evaluates the first 512).")
@dtype_option
@rope_options
@offline_option
@batch_tokens_option
@common_options
def main(run: RecordRun, data, model, instruction, no_instruction, split, task_types, languages, dry_run, max_corpus,
         max_queries, max_pairs, seed, ignore_identical_ids, output_folder, report, compare, no_cache, pooling,
         max_length, dtype, batch_tokens, rope_theta, rope_scaling):
    """Evaluate MODEL on each DATA; write metric records (task, split, subset, languages, type, metric, value, main,
    model) to stdout or -o.

    DATA is an STS file (JSONL: sentence1, sentence2, score), a bitext file (JSONL: sentence1, sentence2, no score),
    a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv), a classification folder (train.jsonl,
    SPLIT.jsonl: text, label), passkey:256,1024,... (personalized passkey retrieval at those token lengths,
    generated from --seed), mteb:Task, mteb:Task@subset or an mteb benchmark (mteb:"MTEB(eng, v2)"), run task by
    task; with --output-folder an mteb task whose result file exists is read back, not run again.
    """
    from embtools.encode.cached_encoder import CachedEncoder
    from embtools.encode.embedding_cache import EmbeddingCache
    from embtools.encode.encoder import EncodeSettings
    from embtools.evaluate.report import read_metric_records, write_report
    from embtools.evaluate.results import outcome_records
    from embtools.evaluate.run import EvalOptions, sources_of
    from embtools.evaluate.run_plan import evaluate_plan, planned_records, run_plan

    if instruction and no_instruction:
        raise click.UsageError("--instruction and --no-instruction exclude each other")
    if compare and not report:
        raise click.UsageError("--compare needs --report")
    sources = [source for argument in data for source in sources_of(argument)]  # bad input fails before loading
    if (max_corpus or max_queries) and any(source.kind == "mteb" for source in sources):
        raise click.UsageError("--max-corpus and --max-queries apply to local folders only, not mteb: tasks")
    plan = run_plan(sources, task_types, languages)  # mteb names are checked before the model loads
    if dry_run:
        listed = planned_records(plan, split)
        run.write(listed)
        info(f"{len(plan)} tasks, {len(listed)} subsets would run")
        return
    earlier = [record for path in compare for record in read_metric_records(path)]
    from embtools.models.rope import RopeOverride

    settings = EncodeSettings(pooling=pooling, max_length=max_length, dtype=dtype, max_tokens=batch_tokens,
                              rope=RopeOverride(rope_theta, rope_scaling))
    encoder = CachedEncoder(model, settings, cache=None if no_cache else EmbeddingCache())
    options = EvalOptions(instruction, False if no_instruction else None, split, max_corpus, max_queries, seed,
                          ignore_identical_ids, max_pairs)
    produced = []
    for outcomes in evaluate_plan(plan, encoder, options, _results(output_folder, encoder)):
        records = [record for outcome in outcomes for record in outcome_records(outcome, model)]
        run.write(records, flush=True)  # each task's scores as soon as they are known
        produced += records
        _report(outcomes, encoder)
    if report:
        written = write_report(earlier + produced, report)
        info(f"wrote {written['report']}" + (f" and {written['chart']}" if written["chart"] else ""))


def _results(folder: Path | None, encoder: CachedEncoder):
    from embtools.evaluate.mteb_encoder import model_meta
    from embtools.evaluate.results import ResultFolder

    return ResultFolder(folder, model_meta(encoder)) if folder else None


def _report(outcomes: list[EvalOutcome], encoder: CachedEncoder) -> None:
    for outcome in outcomes:
        subset = "" if outcome.subset == "default" else f"@{outcome.subset}"
        info(f"{outcome.task}{subset} {outcome.split}: {outcome.main_metric} {outcome.scores['main_score']:.4f} "
             f"in {outcome.seconds:.1f} s ({encoder.encoded} texts encoded, {encoder.reused} from cache so far)")


if __name__ == "__main__":
    main()
