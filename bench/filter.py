"""emb-filter throughput and memory for exact + near-duplicate + guideline checks, against a plain datasketch path.

    .venv/bin/python bench/filter.py [--n 100000] [--baseline-n 10000] [--memory-sizes 25000,100000]

Input: generated-like example records streamed from a seeded generator (never held in memory): task types in the
paper's shares (Fig. 2), documents of {num_words} in {50..500} words (Table 8) drawn from a 30k-word Zipf vocabulary,
short queries, labels from a set of 12, 2% exact duplicates (case and spacing changed) and 2% near-duplicates
(one word changed).
Ours: `filter_examples` with the schema, guideline, exact-duplicate and near-duplicate checks (batched numpy MinHash,
64 permutations, datasketch's band layout for threshold 0.8, a compact band table).
Baseline: the same schema, guideline and exact checks, then datasketch used as its README shows: a MinHash per record
(`update_batch` of the encoded word 3-shingles, default SHA-1 hashing, 64 permutations) and `MinHashLSH(0.8, 64)`
`query` + `insert`. It is run on --baseline-n records (it is slow) and compared per record. The time spent making
the records is measured around each `next()` and left out of both rates.
Memory: tracemalloc's peak while filtering --memory-sizes records (in a fresh child process per size), which is the
state the checks keep plus one batch, since the input is streamed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import tracemalloc

import numpy as np

from embtools.filter.duplicates import ExactDuplicateCheck, NearDuplicateCheck
from embtools.filter.guidelines import GuidelineCheck
from embtools.filter.pipeline import SchemaCheck, filter_examples
from embtools.filter.report import FilterStats
from embtools.records.jsonl import RejectSink

SHARES = {"short-long": 167, "long-short": 122, "sts": 99, "bitext": 89, "long-long": 17, "short-short": 13}
NUM_WORDS = (50, 100, 200, 300, 400, 500)


def generated_records(n: int, seed: int = 0):
    """n example records like emb-generate's, made on the fly (independent Zipf draws per text)."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}{'abcdefgh'[i % 8]}" for i in range(30000)], dtype=object)
    zipf = np.cumsum(1 / np.arange(1, 30001) ** 1.1)
    zipf /= zipf[-1]
    types = list(SHARES)
    share = np.array(list(SHARES.values()), dtype=float) / sum(SHARES.values())
    recent: list[dict] = []

    labels = [f"label {name}" for name in ("sports", "politics", "health", "science", "finance", "travel", "food",
                                           "music", "law", "education", "weather", "technology")]

    def words(count: int) -> str:
        if count == 2:  # a classification label: a small set per task, as real tasks have
            return labels[int(rng.integers(len(labels)))]
        return " ".join(vocabulary[np.searchsorted(zipf, rng.random(count))])

    for i in range(n):
        roll = rng.random()
        if recent and roll < 0.04:
            record = dict(recent[int(rng.integers(len(recent)))], id=i)
            if roll < 0.02:  # an exact duplicate up to case and spacing
                record["query"] = "  " + record["query"].upper()
            else:  # a near-duplicate: one word of the document changed
                parts = record["positive"].split()
                parts[len(parts) // 2] = "changed"
                record["positive"] = " ".join(parts)
        else:
            record = _example(i, types[rng.choice(len(types), p=share)], rng, words)
        recent = (recent + [record])[-200:]
        yield record


def _example(i: int, task_type: str, rng, words) -> dict:
    """Lengths as the prompts ask: documents of {num_words}, long-short inputs of {num_words} and short labels,
    long-long texts of 300+ words, short STS / bitext / short-short texts."""
    num_words = int(rng.choice(NUM_WORDS))
    query = {"short-long": int(rng.integers(5, 15)), "long-short": num_words, "long-long": 300}.get(
        task_type, int(rng.integers(5, 25)))
    positive = {"short-long": num_words, "long-long": 320, "long-short": 2}.get(task_type, int(rng.integers(5, 25)))
    negative = {"short-long": num_words, "long-short": 2, "sts": positive, "bitext": positive}.get(task_type)
    return {"id": i, "task_type": task_type, "instruction": "Retrieve documents for the task",
            "query": words(query), "positive": words(positive), "negative": words(negative) if negative else None,
            "language": "English",
            "meta": {"placeholders": {"num_words": num_words, "query_length": "5 to 15 words", "language": "English"}}}


def our_checks() -> list:
    return [SchemaCheck(), GuidelineCheck(), ExactDuplicateCheck(), NearDuplicateCheck(0.8, 64)]


class DatasketchNearDuplicates:
    """The baseline: datasketch's MinHash and MinHashLSH, one record at a time, as documented."""

    name = "datasketch"

    def __init__(self):
        from datasketch import MinHashLSH

        self.lsh = MinHashLSH(threshold=0.8, num_perm=64)
        self.pending = {}

    def __call__(self, record):
        from datasketch import MinHash

        tokens = f"{record['query']}\n{record['positive']}".lower().split()
        shingles = {" ".join(tokens[i:i + 3]).encode() for i in range(max(1, len(tokens) - 2))}
        minhash = MinHash(num_perm=64)
        minhash.update_batch(shingles)
        self.pending[id(record)] = minhash
        found = self.lsh.query(minhash)
        return f"near-duplicate: of {found[0]}" if found else None

    def remember(self, record):
        self.lsh.insert(record["id"], self.pending.pop(id(record)))


def baseline_checks() -> list:
    return [SchemaCheck(), GuidelineCheck(), ExactDuplicateCheck(), DatasketchNearDuplicates()]


class TimedSource:
    """Iterates generated records and adds up the time spent making them, so it can be left out of the rate."""

    def __init__(self, n: int):
        self.records, self.seconds = generated_records(n), 0.0

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        started = time.perf_counter()
        try:
            return next(self.records)
        finally:
            self.seconds += time.perf_counter() - started


def run(n: int, make_checks) -> tuple[float, int, dict]:
    """(seconds spent filtering, not generating; kept; reject counts) for n generated records."""
    sink, stats = RejectSink(), FilterStats()
    checks = make_checks()
    source = TimedSource(n)
    started = time.perf_counter()
    kept = sum(1 for _ in filter_examples(source, checks, sink, stats))
    return time.perf_counter() - started - source.seconds, kept, dict(sink.counts)


def _peak_memory(n: int, queue) -> None:
    tracemalloc.start()
    sink, stats = RejectSink(), FilterStats()
    for _ in filter_examples(generated_records(n), our_checks(), sink, stats):
        pass
    queue.put(tracemalloc.get_traced_memory()[1])


def peak_memory(n: int) -> int:
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_peak_memory, args=(n, queue))
    child.start()
    peak = queue.get()
    child.join()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, default=10_000)
    parser.add_argument("--memory-sizes", default="25000,100000")
    args = parser.parse_args()
    ours, kept, counts = run(args.n, our_checks)
    theirs, base_kept, base_counts = run(args.baseline_n, baseline_checks)
    print(f"ours:      {args.n} records in {ours:.1f} s = {args.n / ours:,.0f} records/s; kept {kept}; {counts}")
    print(f"datasketch per record: {args.baseline_n} records in {theirs:.1f} s = {args.baseline_n / theirs:,.0f} "
          f"records/s; kept {base_kept}; {base_counts}")
    print(f"ratio ours / datasketch per record: {(args.n / ours) / (args.baseline_n / theirs):.1f}x")
    sizes = [int(x) for x in args.memory_sizes.split(",") if x]
    peaks = [peak_memory(size) for size in sizes]
    for size, peak in zip(sizes, peaks):
        print(f"peak traced memory filtering {size} records: {peak / 2**20:.1f} MiB ({peak / size:.0f} B/record)")
    if len(sizes) > 1:  # --memory-sizes "" skips the memory runs
        print(f"memory growth: x{peaks[-1] / peaks[0]:.2f} for x{sizes[-1] / sizes[0]:.1f} the input")


if __name__ == "__main__":
    main()
