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
_PEAK = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:], stdin=sys.stdin); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); sys.exit(code)")


def _peak_mib_of_build(tmp_path: Path, count: int) -> int:
    vectors = np.random.default_rng(count).standard_normal((count, DIM)).astype(np.float32)
    data = b"".join(orjson.dumps({"id": f"v{i}", "embedding": v, "meta": {"source": "load test", "n": i}},
                                 option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for i, v in enumerate(vectors))
    done = subprocess.run([sys.executable, "-c", _PEAK, str(Path(sys.executable).parent / "emb-index"), "build", "-q",
                           "-o", str(tmp_path / f"ix{count}")], input=data, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    return int(done.stdout.split()[-1])


def test_emb_index_build_memory_grows_with_the_index_not_the_input(tmp_path):
    small, large = 5_000, 40_000
    growth = _peak_mib_of_build(tmp_path, large) - _peak_mib_of_build(tmp_path, small)
    index_growth = (large - small) * DIM * 4 / 2**20  # 4.3 MiB of vectors
    records_growth = (large - small) * 700 / 2**20  # about 23 MiB if the parsed records (dict, array, meta) were held
    # FAISS grows its vector storage by doubling (and copies when it does): up to about 3x the vectors at a peak;
    # the ids seen (for the duplicate check) are a set of 35,000 short strings, about 3 MiB.
    assert growth < 3 * index_growth + 6, f"peak RSS grew {growth} MiB for {index_growth:.1f} MiB more vectors"
    assert growth < records_growth
