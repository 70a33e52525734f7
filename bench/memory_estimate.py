"""emb-train's memory estimate against measured peaks on the CPU: smollm2-135m in float32, three batch/length settings.

Measured = max RSS of a fresh `emb-train` process running 2 steps, minus the max RSS of an idle process that imported
what emb-train imports (torch, transformers' llama, peft, accelerate) and created its Accelerator: what is left is
the run's tensors, which is what the estimate (`emb-train --estimate-memory`, device cpu: no CUDA context) counts.
Every query, positive and negative is a SciFact abstract longer than the longest max length, so every text is
truncated to its maximum, the width the estimator assumes (its worst case).

Both processes run with glibc's mmap threshold fixed at 128 KiB (MALLOC_MMAP_THRESHOLD_). By default glibc raises
the threshold to the size of each large block freed, after which blocks of that size come from the heap and stay
resident once freed: one smollm2 forward of 512 tokens then grew RSS by 1,966 MiB instead of 1,472 MiB, the extra
being the freed intermediates of the forward. With the threshold fixed, RSS follows the live tensors, which is what
the estimate counts (a GPU's caching allocator has its own slack, an assumed term of the estimate).

Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/memory_estimate.py [--settings 0,1,2,3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = Path(os.environ.get("EMBTOOLS_TEST_DATA", REPO.parent / "shared" / "data")) / "scifact"
MODEL = "smollm2-135m"
TOLERANCE = 0.25  # the bound on |estimate - measured| / measured

_BASELINE = """
from accelerate import Accelerator
import peft, transformers.models.llama.modeling_llama
import embtools.train.loop
Accelerator(cpu=True)
"""


@dataclass(frozen=True)
class Setting:
    batch_size: int
    mini_batch_size: int
    max_length: int
    gradient_checkpointing: bool = False

    def flags(self) -> list[str]:
        return ["--batch-size", str(self.batch_size), "--mini-batch-size", str(self.mini_batch_size),
                "--max-length", str(self.max_length), "--query-max-length", str(self.max_length)] + (
            ["--gradient-checkpointing"] if self.gradient_checkpointing else [])

    def label(self) -> str:
        return (f"batch {self.batch_size} / mini {self.mini_batch_size} / {self.max_length} tokens"
                + (" / checkpointing" if self.gradient_checkpointing else ""))


SETTINGS = [Setting(8, 8, 64), Setting(16, 4, 128), Setting(32, 8, 32), Setting(8, 8, 64, True)]


def write_examples(path: Path, count: int) -> None:
    """Triples of distinct SciFact abstracts (each far longer than 128 tokens) with a retrieval instruction."""
    texts = [json.loads(line)["text"] for line in open(DATA / "corpus.jsonl")]
    texts = [t for t in texts if len(t.split()) > 200][:3 * count]
    records = [{"id": i, "instruction": "Given a scientific abstract, retrieve a related abstract",
                "query": texts[3 * i], "positive": texts[3 * i + 1], "negative": texts[3 * i + 2]}
               for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def max_rss_bytes(command: list[str]) -> int:
    """The peak resident memory of a fresh process running `command` (it must succeed)."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, cwd=REPO,
                                   env={**os.environ, "PYTHONPATH": str(REPO / "src"),
                                        "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)})
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            errors.seek(0)
            raise SystemExit(f"{command[:4]} failed:\n{errors.read().decode()[-2000:]}")
    return usage.ru_maxrss * 1024  # kilobytes on Linux


def estimate(setting: Setting):
    from embtools.models.loading import resolve_model_path
    from embtools.train.memory_estimate import ModelShape, RunShape, estimate_memory

    run = RunShape(batch_size=setting.batch_size, mini_batch_size=setting.mini_batch_size,
                   query_max_length=setting.max_length, document_max_length=setting.max_length,
                   gradient_checkpointing=setting.gradient_checkpointing, device="cpu")
    return estimate_memory(ModelShape.from_model_dir(resolve_model_path(MODEL)), run)


def measure(setting: Setting, data: Path, work: Path) -> int:
    command = [sys.executable, "-m", "embtools.commands.train", str(data), "-o", str(work / "model"), "--overwrite",
               "--model", MODEL, "--max-steps", "2", "--warmup-steps", "0", "--lr", "1e-3", *setting.flags()]
    return max_rss_bytes(command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="0,1,2",
                        help="indexes into SETTINGS (default: 0,1,2; 3 is 0 with checkpointing)")
    args = parser.parse_args()
    chosen = [SETTINGS[int(i)] for i in args.settings.split(",")]
    mib = 2**20
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_examples(work / "train.jsonl", max(s.batch_size for s in chosen) * 2)
        baseline = max_rss_bytes([sys.executable, "-c", _BASELINE])
        print(f"baseline (imports, no model): {baseline / mib:.0f} MiB", file=sys.stderr)
        print("| setting | estimate (MiB) | measured (MiB) | estimate / measured |\n|---|---:|---:|---:|")
        worst = 0.0
        for setting in chosen:
            predicted = estimate(setting).total
            measured = measure(setting, work / "train.jsonl", work) - baseline
            worst = max(worst, abs(predicted - measured) / measured)
            print(f"| {setting.label()} | {predicted / mib:.0f} | {measured / mib:.0f} | {predicted / measured:.2f} |",
                  flush=True)
    print(f"largest deviation {worst:.1%} (bound {TOLERANCE:.0%})", file=sys.stderr)
    sys.exit(0 if worst <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
