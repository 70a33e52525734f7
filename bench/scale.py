"""Corpus scale: N synthetic texts through `emb-encode | emb-index build` in each output format, against faiss.

Issue 17.5. Every step runs as its own subprocess, so each gets its own wall time and peak resident memory (from
`os.wait4`), and disk is the size of what it wrote. The sides (jsonl, npy, parquet, faiss directly) alternate: in run
r the order is rotated by r, so load and the page cache fall on every side alike.

- encode: `emb-encode --model DIR --format F` on N seeded synthetic texts (8-24 words drawn from the STS Benchmark dev
  vocabulary). The model is a seeded random decoder of the Mistral architecture at a toy size
  (models/random_decoder.py: one layer, `--hidden` wide, a 4,096-token BPE vocabulary), so that the model costs as
  little as it can next to what is measured here: reading, tokenising, batching and writing a million records. (At 2
  layers, 64 wide and 512 tokens, the forward pass was about 80 % of the time under cProfile.) jsonl is the pipe
  path (`--encoding base64`, on stdout).
- index: `emb-index build --factory Flat` on each encode output; "faiss directly" is a script that loads the npy
  matrix and does `IndexFlatIP.add` + `write_index`, nothing else: the floor for the same job.
- index-only (`--vectors M --dim D`): M seeded random vectors of D floats written in each format by embtools' own
  writers, then `emb-index build` on each against faiss directly: the index side at a realistic width.

    .venv/bin/python bench/scale.py [--texts 1000000] [--vectors 1000000 --dim 384] [--repeats 3] [--work DIR]

On a machine shared with other jobs, run it under OMP_NUM_THREADS=1 (every step inherits it): a 2-thread torch
waits at every barrier for a thread the other load has descheduled (measured: 20,000 texts took 21.8 s with 2 threads,
12.8 s with 1, beside three other jobs on 2 cores).

Prints Markdown tables: per format the median and range of seconds, records/s, peak MiB and disk MiB per million
vectors, and each median as a ratio against the jsonl path and against faiss directly.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from side_by_side import median_range, rotated

BIN = Path(sys.executable).parent
DATA = Path(os.environ.get("EMBTOOLS_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FORMATS = ("jsonl", "npy", "parquet")
SUFFIX = {"jsonl": ".jsonl", "npy": ".npy", "parquet": ".parquet"}
FAISS_DIRECTLY = """
import sys, time, faiss, numpy as np
from embtools.records.embedding_files import sidecar
matrix = np.load(sys.argv[1], mmap_mode="r")
ids = sidecar(__import__("pathlib").Path(sys.argv[1]), "ids").read_bytes().splitlines()
index = faiss.IndexFlatIP(matrix.shape[1])
for start in range(0, len(matrix), 65536):
    block = np.array(matrix[start:start + 65536], dtype=np.float32)  # a copy: the map is read-only
    faiss.normalize_L2(block)
    index.add(block)
faiss.write_index(index, sys.argv[2])
"""


# A child forked from this process would report this process's own peak (the bench holds torch) as its peak: Linux
# carries the resident high-water mark across fork and exec. So each step is forked from a bare Python instead.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(argv: list[str], stdin=None, stdout=None) -> tuple[float, float]:
    """Run `argv` to completion; (wall seconds, peak resident MiB) of that process alone. Fails loudly."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, rss.name, *argv], stdin=stdin,
                              stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
        return seconds, int(rss.read()) / 1024


def disk_mib(folder: Path) -> float:
    """Everything under `folder`: each output lives in a folder of its own, sidecars (ids, metadata) included."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def synthetic_texts(path: Path, count: int, seed: int = 0) -> None:
    """`count` text records, ids t0000000..., 8-24 words each from the STS Benchmark dev vocabulary."""
    pairs = [orjson.loads(line) for line in (DATA / "stsbenchmark" / "dev.jsonl").read_bytes().splitlines()]
    words = sorted({w for p in pairs for s in (p["sentence1"], p["sentence2"]) for w in s.split()})
    rng = random.Random(seed)
    with path.open("wb") as out:
        for i in range(count):
            text = " ".join(rng.choices(words, k=rng.randint(8, 24)))
            out.write(orjson.dumps({"id": f"t{i:07d}", "text": text}) + b"\n")


def random_model(folder: Path, texts: Path, hidden: int) -> Path:
    from embtools.models.random_decoder import DecoderShape, build_random_decoder

    sample = [orjson.loads(line)["text"] for line in texts.read_bytes().splitlines()[:5000]]
    shape = DecoderShape(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=4096)
    return build_random_decoder(folder, sample, shape=shape)


def encode(model: Path, texts: Path, fmt: str, out: Path) -> tuple[float, float]:
    argv = [str(BIN / "emb-encode"), "--model", str(model)]
    if fmt == "jsonl":  # the pipe path: records on stdout
        with texts.open("rb") as stdin, out.open("wb") as stdout:
            return measured(argv + ["--encoding", "base64"], stdin=stdin, stdout=stdout)
    with texts.open("rb") as stdin:
        return measured(argv + ["--format", fmt, "-o", str(out)], stdin=stdin)


def build(embeddings: Path, out: Path) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    return measured([str(BIN / "emb-index"), "build", "--factory", "Flat", "-o", str(out), str(embeddings)])


def faiss_directly(npy: Path, out: Path) -> tuple[float, float]:
    out.unlink(missing_ok=True)
    return measured([sys.executable, "-c", FAISS_DIRECTLY, str(npy), str(out)])


def random_vectors(folder: Path, count: int, dim: int, seed: int = 0) -> dict[str, Path]:
    """`count` seeded random unit vectors written in each format by embtools' own writers (jsonl as base64)."""
    from contextlib import ExitStack

    from embtools.records.embedding_files import EmbeddingFileInfo, open_writer

    paths = {}
    for fmt in FORMATS:
        (folder / fmt).mkdir(parents=True, exist_ok=True)
        paths[fmt] = folder / fmt / f"vectors{SUFFIX[fmt]}"
        rng = np.random.default_rng(seed)
        with ExitStack() as stack:
            writer = open_writer(stack, fmt, paths[fmt], EmbeddingFileInfo(dim=dim), encoding="base64")
            for start in range(0, count, 65536):
                block = rng.standard_normal((min(65536, count - start), dim), dtype=np.float32)
                block /= np.linalg.norm(block, axis=1, keepdims=True)
                writer.write([{"id": f"v{i:07d}"} for i in range(start, start + len(block))], block)
            writer.finish()
    return paths


def summary(rows: dict[str, list[tuple[float, float, float]]], count: int, baselines: list[str]) -> list[str]:
    """Markdown rows: per side median seconds [range], records/s, peak MiB, disk MiB per million, ratios."""
    medians = {side: statistics.median(r[0] for r in runs) for side, runs in rows.items()}
    lines = []
    for side, runs in rows.items():
        seconds = [r[0] for r in runs]
        ratios = " | ".join(f"{medians[side] / medians[b]:.2f}x" for b in baselines)
        lines.append(f"| {side} | {median_range(seconds, '{:.1f}'.format)} | "
                     f"{count / medians[side]:,.0f} | {max(r[1] for r in runs):,.0f} | "
                     f"{statistics.median(r[2] for r in runs) * 1e6 / count:,.0f} | {ratios} |")
    return lines


def faiss_side(npy: Path, folder: Path) -> tuple[float, float, float]:
    """(seconds, peak MiB, disk MiB) of faiss called directly on `npy`, its index written into `folder`."""
    folder.mkdir(exist_ok=True)
    return (*faiss_directly(npy, folder / "index.faiss"), disk_mib(folder))


def pipeline(work: Path, texts: int, hidden: int, repeats: int) -> None:
    corpus = work / "texts.jsonl"
    synthetic_texts(corpus, texts)
    model = random_model(work / "model", corpus, hidden)
    enc: dict[str, list] = {f: [] for f in FORMATS}
    idx: dict[str, list] = {f: [] for f in (*FORMATS, "faiss directly")}
    for run in range(repeats):
        for side in rotated([*FORMATS, "faiss directly"], run):
            if side == "faiss directly":
                idx[side].append(faiss_side(work / "npy" / "emb.npy", work / "faiss"))
                continue
            folder = work / side
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            output = folder / f"emb{SUFFIX[side]}"
            enc[side].append((*encode(model, corpus, side, output), disk_mib(folder)))
            idx[side].append((*build(output, work / f"index-{side}"), disk_mib(work / f"index-{side}")))
    header = "| side | seconds, median [range] | records/s | peak MiB | disk MiB per 1M | ratio to {} |"
    print(f"\n### encode: {texts:,} texts, random decoder hidden {hidden}, {repeats} runs\n")
    print(header.format("jsonl"), "|---|---|---|---|---|---|", *summary(enc, texts, ["jsonl"]), sep="\n")
    print(f"\n### emb-index build (Flat) on the encode outputs, {repeats} runs\n")
    print(header.format("jsonl | ratio to faiss directly"), "|---|---|---|---|---|---|---|",
          *summary(idx, texts, ["jsonl", "faiss directly"]), sep="\n")


def index_only(work: Path, count: int, dim: int, repeats: int) -> None:
    paths = random_vectors(work / "vectors", count, dim)
    rows: dict[str, list] = {f: [] for f in (*FORMATS, "faiss directly")}
    for run in range(repeats):
        for side in rotated([*FORMATS, "faiss directly"], run):
            if side == "faiss directly":
                rows[side].append(faiss_side(paths["npy"], work / "faiss-only"))
            else:
                out = work / f"index-only-{side}"
                rows[side].append((*build(paths[side], out), disk_mib(out)))
    inputs = ", ".join(f"{f} {disk_mib(paths[f].parent) * 1e6 / count:,.0f} MiB" for f in FORMATS)
    print(f"\n### emb-index build (Flat): {count:,} random {dim}-d vectors, {repeats} runs; "
          f"input per 1M vectors: {inputs}\n")
    print("| side | seconds, median [range] | vectors/s | peak MiB | index MiB per 1M | ratio to jsonl | "
          "ratio to faiss directly |", "|---|---|---|---|---|---|---|",
          *summary(rows, count, ["jsonl", "faiss directly"]), sep="\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1_000_000, help="texts through the pipe (0: skip)")
    parser.add_argument("--hidden", type=int, default=32, help="width of the random decoder (its vector size)")
    parser.add_argument("--vectors", type=int, default=1_000_000, help="vectors for the index-only part (0: skip)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="embtools-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"cpus: {os.cpu_count()}, scratch: {work}")
    if args.texts:
        pipeline(work, args.texts, args.hidden, args.repeats)
    if args.vectors:
        index_only(work, args.vectors, args.dim, args.repeats)
    if args.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
