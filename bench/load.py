"""Load: `emb-encode | emb-index build` streams, so memory does not grow with the input beyond the index itself.

Runs the pipeline on N short texts (STS Benchmark sentences, numbered to make each unique) with minilm-l6 for each
size in --sizes, and records each stage's peak RSS (getrusage of a wrapper around it), the index file's size and the
wall time. The baseline is the smallest size: for a 5x input, emb-encode's peak RSS should stay flat and emb-index's
should grow by about the index's own growth (N x 384 x 4 bytes for Flat), nothing more.

    .venv/bin/python bench/load.py                      # 20k and 100k texts (minutes on a 2-core CPU)
    .venv/bin/python bench/load.py --sizes 2000,10000   # quicker; the growth per text is what matters
    .venv/bin/python bench/load.py --generate 1000,10000  # emb-generate -c 256 against a local server
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATA = Path(os.environ.get("EMBTOOLS_TEST_DATA", REPO.parent / "shared" / "data"))
# Runs a command and prints its peak RSS in KiB (the largest of its process tree's members) to the file argv[1].
PEAK = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
        "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(code)")


def short_texts(count: int, path: Path) -> Path:
    """`count` text records cycling through STS Benchmark's sentences, each made unique by its number."""
    sentences = []
    for split in ("train", "dev"):
        for line in (DATA / "stsbenchmark" / f"{split}.jsonl").read_bytes().splitlines():
            pair = orjson.loads(line)
            sentences += [pair["sentence1"], pair["sentence2"]]
    with open(path, "wb") as out:
        for i in range(count):
            out.write(orjson.dumps({"id": i, "text": f"{sentences[i % len(sentences)]} ({i})"}) + b"\n")
    return path


def run_pipeline(texts: Path, work: Path, max_length: int) -> dict:
    """emb-encode FILE | emb-index build -o DIR, each stage under the peak-RSS wrapper; their numbers."""
    encode_peak, index_peak, index_dir = work / "encode.peak", work / "index.peak", work / "ix"
    encode = [sys.executable, "-c", PEAK, str(encode_peak), str(BIN / "emb-encode"), "-m", "minilm-l6",
              "--dtype", "float32", "--max-length", str(max_length), "-q", str(texts)]
    index = [sys.executable, "-c", PEAK, str(index_peak), str(BIN / "emb-index"), "build", "-q", "-o",
             str(index_dir), "--overwrite"]
    started = time.perf_counter()
    producer = subprocess.Popen(encode, stdout=subprocess.PIPE)
    consumer = subprocess.Popen(index, stdin=producer.stdout)
    producer.stdout.close()
    samples = []  # (seconds, encode RSS MiB, index RSS MiB) every half second: does RSS climb as input flows?
    while consumer.poll() is None:
        samples.append((time.perf_counter() - started, _tree_rss_mib(producer.pid), _tree_rss_mib(consumer.pid)))
        time.sleep(0.5)
    if consumer.wait() or producer.wait():
        raise SystemExit(f"pipeline failed: encode {producer.returncode}, index {consumer.returncode}")
    count = json.loads((index_dir / "index.json").read_text())["count"]
    return {"texts": count, "seconds": round(time.perf_counter() - started, 1),
            "encode_peak_mib": round(int(encode_peak.read_text()) / 1024),
            "index_peak_mib": round(int(index_peak.read_text()) / 1024),
            "index_mib": round((index_dir / "index.faiss").stat().st_size / 2**20, 1),
            "rss_by_quarter_mib": _quarters(samples)}


def _tree_rss_mib(pid: int) -> int:
    """Current RSS of the wrapper's child (the command itself), from /proc; 0 when it is gone."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        child = int(children[0]) if children else pid
        status = Path(f"/proc/{child}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) // 1024
    except (OSError, StopIteration, ValueError, IndexError):
        return 0


def _quarters(samples: list[tuple[float, int, int]]) -> dict:
    """Each stage's RSS at 25/50/75/100% of its own lifetime (the samples where it was running)."""
    found = {}
    for stage, column in (("encode", 1), ("index", 2)):
        alive = [(s[0], s[column]) for s in samples if s[column]]
        if alive:
            end = alive[-1][0]
            found[stage] = [min(alive, key=lambda s: abs(s[0] - end * q / 4))[1] for q in (1, 2, 3, 4)]
    return found


def growth(small: dict, large: dict) -> dict:
    """How each stage's peak RSS grew from the smallest run to this one, next to the index's own growth."""
    return {"input_ratio": round(large["texts"] / small["texts"], 1),
            "encode_rss_growth_mib": large["encode_peak_mib"] - small["encode_peak_mib"],
            "index_rss_growth_mib": large["index_peak_mib"] - small["index_peak_mib"],
            "index_file_growth_mib": round(large["index_mib"] - small["index_mib"], 1)}


def run_generate(requests: int, concurrency: int, work: Path) -> dict:
    """emb-generate over `requests` task records against the test chat server (tests/chat_server.py) with
    `concurrency` requests in flight: its peak RSS and the most file descriptors (sockets included) it held open."""
    sys.path.insert(0, str(REPO / "tests"))
    from chat_server import ChatServer

    tasks = work / "tasks.jsonl"
    tasks.write_bytes(b"".join(orjson.dumps({"id": i, "task_type": "short-long", "task": f"Find papers on topic {i}"})
                               + b"\n" for i in range(requests)))
    with ChatServer() as server:
        started = time.perf_counter()
        process = subprocess.Popen([str(BIN / "emb-generate"), "--base-url", server.url, "-c", str(concurrency),
                                    "--no-cache", "-q", str(tasks), "-o", str(work / "examples.jsonl")],
                                   env={**os.environ, "OPENAI_API_KEY": "sk-load"})
        peak_rss = peak_fds = 0
        while process.poll() is None:
            peak_rss = max(peak_rss, _tree_rss_mib(process.pid))
            peak_fds = max(peak_fds, _open_fds(process.pid))
            time.sleep(0.1)
        if process.returncode:
            raise SystemExit(f"emb-generate failed: {process.returncode}")
    written = len((work / "examples.jsonl").read_bytes().splitlines())
    return {"requests": requests, "concurrency": concurrency, "written": written,
            "seconds": round(time.perf_counter() - started, 1), "peak_rss_mib": peak_rss, "peak_open_fds": peak_fds}


def _open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000", help="Comma-separated text counts. Default: 20000,100000.")
    parser.add_argument("--max-length", type=int, default=32, help="Tokens per text. Default: 32.")
    parser.add_argument("--generate", default=None, metavar="N,M",
                        help="Instead: emb-generate -c 256 over N and M requests to a local server. Default: off.")
    args = parser.parse_args()
    if args.generate:
        with tempfile.TemporaryDirectory(prefix="emb-load-") as tmp:
            for count in sorted(int(n) for n in args.generate.split(",")):
                (Path(tmp) / str(count)).mkdir()
                print(json.dumps(run_generate(count, 256, Path(tmp) / str(count))), flush=True)
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results = []
    with tempfile.TemporaryDirectory(prefix="emb-load-") as tmp:
        for size in sizes:
            work = Path(tmp) / str(size)
            work.mkdir()
            result = run_pipeline(short_texts(size, work / "texts.jsonl"), work, args.max_length)
            results.append(result)
            print(json.dumps(result), flush=True)
    for result in results[1:]:
        print(json.dumps({"from": results[0]["texts"], "to": result["texts"], **growth(results[0], result)}))


if __name__ == "__main__":
    main()
