"""emb-filter: example records in, the trustworthy ones out; rejects with a reason code; labeled data and mining."""

from __future__ import annotations

import re
import time
from pathlib import Path

import click

from embtools.cli import EmbtoolsCommand, common_options, info
from embtools.command_runner import RecordRun, record_command
from embtools.commands.model_options import offline_option
from embtools.filter import defaults
from embtools.models.builtin import DEFAULT_MINING_MODEL
from embtools.models.loading import DTYPES
from embtools.progress import track
from embtools.records.examples import DUPLICATE_FIELDS, TEXT_FIELDS
from embtools.records.hub_datasets import is_hub_dataset

_PATH = click.Path(exists=True)


def _fields(ctx, param, value: str) -> tuple[str, ...]:
    fields = tuple(f.strip() for f in value.split(",") if f.strip())
    if not fields or set(fields) - {*TEXT_FIELDS, "negative"}:
        raise click.BadParameter("a comma-separated list of query, positive, negative, instruction")
    return fields


def _beir_sources(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not is_hub_dataset(value) and not Path(value).is_dir():
            raise click.BadParameter(f"{value}: no such folder (nor an hf://datasets/ORG/NAME data set)")
    return values


def _ranks(ctx, param, value: str) -> tuple[int, int]:
    found = re.fullmatch(r"(\d+)-(\d+)", value.strip())
    if not found or not 1 <= int(found.group(1)) <= int(found.group(2)):
        raise click.BadParameter("FIRST-LAST with 1 <= FIRST <= LAST, e.g. 10-100")
    return int(found.group(1)), int(found.group(2))


@click.command(cls=EmbtoolsCommand, name="emb-filter")
@record_command(reads="files", rejects_help="Write each reject (a check's verdict or a bad input record) with its "
                "reason to FILE (JSONL). Implies --skip-invalid. Default: rejects are only counted.")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="Write a Markdown report to FILE and a PNG length histogram beside it. Default: none.")
@click.option("--schema/--no-schema", default=True, show_default=True, help="Reject records that are not example "
              "records (docs/records.md; reason schema).")
@click.option("--content-check/--no-content-check", default=True, show_default=True, envvar="EMBTOOLS_CONTENT_CHECK",
              help="Reject texts that stand in for the text asked for: a URL or file name, a template slot ({query}, "
                   "[insert ...]), a slot code (S1), the field's own name (user_query), no letters, N/A (reason "
                   "placeholder). Env: EMBTOOLS_CONTENT_CHECK.")
@click.option("--guidelines/--no-guidelines", default=True, show_default=True,
              help="Reject examples that break their prompt's guidelines (reasons guideline-*).")
@click.option("--dedup/--no-dedup", default=True, show_default=True,
              help="Reject exact duplicates after normalizing case and whitespace (reason duplicate).")
@click.option("--near-dup/--no-near-dup", default=True, show_default=True,
              help="Reject near-duplicates, MinHash LSH over word shingles (reason near-duplicate).")
@click.option("--language-check/--no-language-check", default=True, show_default=True,
              help="Reject texts confidently identified as another language than asked (reason language).")
@click.option("--decontaminate", "decontaminate", multiple=True, type=_PATH, metavar="PATH",
              help="Evaluation data to keep out: STS or bitext file, BEIR folder, classification folder; repeatable "
                   "(reasons contaminated-exact, contaminated-ngram). Default: none.")
@click.option("--decontaminate-split", default=defaults.DECONTAMINATE_SPLIT, show_default=True,
              help="The qrels split of --decontaminate BEIR folders whose queries and judged documents count.")
@click.option("--ngram", type=click.IntRange(2, 255), default=defaults.NGRAM, show_default=True,
              help="Words in a shared run that counts as contamination.")
@click.option("--min-contamination-words", type=click.IntRange(min=1), default=defaults.MIN_CONTAMINATION_WORDS,
              show_default=True,
              help="Short-text allowance: evaluation texts with fewer words never count.")
@click.option("--dedup-fields", default=",".join(DUPLICATE_FIELDS), show_default=True, callback=_fields,
              help="Fields compared by the duplicate checks.")
@click.option("--near-dup-threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=defaults.NEAR_DUP_THRESHOLD, show_default=True,
              help="Estimated Jaccard similarity of word 3-shingles from which texts are near-duplicates.")
@click.option("--num-perm", type=click.IntRange(8, 256), default=defaults.NUM_PERM, show_default=True,
              help="MinHash permutations (signature length).")
@click.option("--length-tolerance", type=click.FloatRange(0, 1), default=defaults.LENGTH_TOLERANCE, show_default=True,
              help="Slack on every asked length: 0.3 passes a 300-word ask from 210 words.")
@click.option("--short-max-words", type=click.IntRange(min=1), default=defaults.SHORT_MAX_WORDS, show_default=True,
              help="Longest short-short text (before the tolerance).")
@click.option("--language-confidence", type=click.FloatRange(0, 1), default=defaults.LANGUAGE_CONFIDENCE,
              show_default=True,
              help="Identifier confidence from which another language is a reject.")
@click.option("--from-beir", "from_beir", multiple=True, callback=_beir_sources, metavar="DIR|hf://datasets/ORG/NAME",
              help="Also read a BEIR folder's qrels as short-long examples (no negatives); a BEIR data set on the hub "
                   "(BeIR's or mteb's layout) is downloaded and read alike; repeatable.")
@click.option("--split", default=defaults.LABELED_SPLIT, show_default=True, help="The qrels split --from-beir reads.")
@click.option("--instruction", default=None, help="Instruction of --from-beir examples. Default: the E5 instruction "
              "known for the dataset (SciFact), else required.")
@click.option("--from-sts", "from_sts", multiple=True, type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Also read an STS file's pairs scoring at least --min-score as sts examples; repeatable.")
@click.option("--min-score", type=float, default=defaults.MIN_STS_SCORE,
              show_default=True, help="Lowest STS score --from-sts keeps.")
@click.option("--mine-negatives", is_flag=True, help="Fill missing negatives by mining with --model. Default: off.")
@click.option("-m", "--model", envvar="EMBTOOLS_MINING_MODEL", default=DEFAULT_MINING_MODEL, show_default=True,
              help="Embedding model for mining: built-in name, folder or hub id. Env: EMBTOOLS_MINING_MODEL.")
@click.option("--negative-ranks", default="{}-{}".format(*defaults.NEGATIVE_RANKS), show_default=True, callback=_ranks,
              help="Rank window FIRST-LAST negatives are picked from.")
@click.option("--negative-margin", type=click.FloatRange(0, 1), default=defaults.NEGATIVE_MARGIN, show_default=True,
              help="A mined negative scores below MARGIN x the positive's score (NV-Retriever TopK-PercPos).")
@click.option("--num-negatives", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="Negatives mined per example: 1 writes `negative` as a string (the paper's recipe), K > 1 a list "
                   "of up to K, best first.")
@click.option("--negative-sampling", type=click.Choice(["top", "random"]), default="top", show_default=True,
              help="Which allowed candidates of the window --num-negatives takes: the best, or a random draw "
                   "(seeded by --seed and the example).")
@click.option("--max-negative-score", type=click.FloatRange(-1, 1), default=None, metavar="S",
              help="Also keep a mined negative's cosine below S, an absolute bound beside --negative-margin. "
                   "Default: no bound.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --negative-sampling random.")
@click.option("--no-cache", is_flag=True, help="Mine without the embedding cache (EMBTOOLS_HOME/cache/"
              "embeddings.sqlite, shared with emb-eval); by default a text is encoded once per model and settings.")
@click.option("--negatives-from", multiple=True, type=_PATH, metavar="PATH", help="More candidates: a BEIR folder's "
              "corpus or a JSONL text file; repeatable. Default: the examples' texts plus --from-beir corpora.")
@click.option("--consistency-check", is_flag=True,
              help="With --mine-negatives: reject examples whose positive does not outscore the negative.")
@click.option("--max-length", type=click.IntRange(min=2), default=defaults.MINING_MAX_LENGTH, show_default=True,
              help="Tokens per text when mining.")
@click.option("--dtype", type=click.Choice(DTYPES), default="auto", show_default=True, help="Mining model dtype.")
@offline_option
@common_options
def main(run: RecordRun, report, schema, content_check, guidelines, dedup, near_dup, language_check, decontaminate,
         decontaminate_split, ngram, min_contamination_words, dedup_fields, near_dup_threshold, num_perm,
         length_tolerance, short_max_words, language_confidence, from_beir, split, instruction, from_sts, min_score,
         mine_negatives, model, negative_ranks, negative_margin, num_negatives, negative_sampling, max_negative_score,
         seed, no_cache, negatives_from, consistency_check, max_length, dtype):
    """Filter example records read from FILEs (or stdin) and from --from-beir / --from-sts labeled data.

    Writes the examples that pass every enabled check, in input order; each reject goes to --rejects with its
    reason code, and the count per reason to stderr; --rejects also skips bad input records (reason schema or
    the parse error) rather than stopping. See docs/filter.md.
    """
    from embtools.filter.decontamination import DecontaminationSettings
    from embtools.filter.guidelines import GuidelineSettings
    from embtools.filter.language import LanguageSettings
    from embtools.filter.negative_mining import MiningSettings, NegativeMiner
    from embtools.filter.pipeline import (
        FilterSettings,
        build_checks,
        filter_examples,
        input_examples,
        input_total,
        unchecked_notes,
    )
    from embtools.filter.report import FilterStats, summary_lines, write_report
    from embtools.records.datasets import beir_folder

    started = time.perf_counter()
    settings = FilterSettings(
        schema=schema, content=content_check, guidelines=guidelines, exact_duplicates=dedup, language=language_check,
        near_duplicates=near_dup, decontaminate=tuple(decontaminate), dedup_fields=dedup_fields,
        near_dup_threshold=near_dup_threshold, num_perm=num_perm,
        guideline=GuidelineSettings(tolerance=length_tolerance, short_max_words=short_max_words),
        language_settings=LanguageSettings(min_confidence=language_confidence),
        decontamination=DecontaminationSettings(ngram=ngram, min_words=min_contamination_words,
                                                split=decontaminate_split))
    checks = build_checks(settings)
    stats = FilterStats()
    miner = None
    from_beir = tuple(beir_folder(source) for source in from_beir)  # a hub data set is downloaded now
    examples = input_examples(run.source or (), from_beir, from_sts, run.input_rejects, split, instruction, min_score)
    records = track(examples, "filter", lambda: input_total(run.source or (), from_beir, from_sts), "record")
    kept = filter_examples(records, checks, run.rejects, stats, settings.batch_size)
    if mine_negatives:
        from embtools.encode.embedding_cache import EmbeddingCache

        miner = NegativeMiner(MiningSettings(model=model, first_rank=negative_ranks[0], last_rank=negative_ranks[1],
                                             margin=negative_margin, max_score=max_negative_score,
                                             num_negatives=num_negatives, sampling=negative_sampling, seed=seed,
                                             consistency=consistency_check, max_length=max_length, dtype=dtype,
                                             candidate_sources=tuple(negatives_from) + tuple(from_beir)),
                              cache=None if no_cache else EmbeddingCache())
        kept = miner.mine(kept, run.rejects)
    run.write(stats.counted(kept))
    stats.notes = unchecked_notes(checks)
    if miner:
        info(miner.report())
    for line in summary_lines(stats, run.rejects.counts, time.perf_counter() - started):
        info(line)
    if report:
        write_report(stats, run.rejects.counts, report)

if __name__ == "__main__":
    main()
