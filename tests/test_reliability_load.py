"""Streaming under load, cheaply: emb-index build's memory grows with the index it builds, not with its input.

(The full `emb-encode | emb-index build` check with a model is bench/load.py; numbers in docs/reliability.md.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson

DIM = 32
BATCH = 512  # records held at once: 1 MiB of them with the 2 KiB notes below
_PEAK = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:], stdin=sys.stdin); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); sys.exit(code)")


def _peak_mib_of_build(tmp_path: Path, count: int, note_bytes: int = 0) -> int:
    """Peak RSS of `emb-index build` over `count` records, each with a `meta.note` of `note_bytes` characters."""
    vectors = np.random.default_rng(count).standard_normal((count, DIM)).astype(np.float32)
    meta = {"source": "load test", "note": "x" * note_bytes}
    data = b"".join(orjson.dumps({"id": f"v{i}", "embedding": v, "meta": {**meta, "n": i}},
                                 option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for i, v in enumerate(vectors))
    command = [str(Path(sys.executable).parent / "emb-index"), "build", "-q", "--batch-size", str(BATCH),
               "-o", str(tmp_path / f"ix{count}-{note_bytes}")]
    done = subprocess.run([sys.executable, "-c", _PEAK, *command], input=data, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    return int(done.stdout.split()[-1])


def test_emb_index_build_memory_grows_with_the_index_not_the_input(tmp_path):
    small, large = 5_000, 40_000
    plain = _peak_mib_of_build(tmp_path, large)
    growth = plain - _peak_mib_of_build(tmp_path, small)
    index_growth = (large - small) * DIM * 4 / 2**20  # 4.3 MiB of vectors
    # FAISS grows its vector storage by doubling (and copies when it does): up to about 3x the vectors at a peak;
    # the ids seen (for the duplicate check) are a set of 35,000 short strings, about 3 MiB.
    assert growth < 3 * index_growth + 6, f"peak RSS grew {growth} MiB for {index_growth:.1f} MiB more vectors"
    # The same vectors with 78 MiB more input (a 2 KiB note in each record's meta): a build that streams its input
    # holds one batch of records at a time, so its peak barely moves; one that held them all would grow by it.
    input_growth = large * 2048 / 2**20
    noted = _peak_mib_of_build(tmp_path, large, note_bytes=2048)
    assert noted - plain < 8, f"peak RSS grew {noted - plain} MiB for {input_growth:.0f} MiB more input"
