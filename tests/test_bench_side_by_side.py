"""How the benchmarks time and report their sides (bench/side_by_side.py): the sides take turns in rotated order,
setup is not timed, runs are reported as median [range]; and bench/encode.py reports a real model that way."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from side_by_side import alternate, median_range, ratios, rotated  # noqa: E402  (a script beside the benchmarks)

SETUP_S = 0.3


def sleeper(name: str, seconds: float, order: list) -> tuple:
    """A (job, setup) pair: the setup sleeps SETUP_S and hands the job its name; the job records it and sleeps."""
    def job(prepared):
        order.append((name, prepared))
        time.sleep(seconds)
    return job, lambda: (time.sleep(SETUP_S), name)[1]


def test_sides_take_turns_in_rotated_order_and_only_the_job_is_timed():
    order: list = []
    times = alternate(3, {"a": sleeper("a", 0.01, order), "b": sleeper("b", 0.05, order)})
    assert [name for name, _ in order] == ["a", "b", "b", "a", "a", "b"]
    assert all(name == prepared for name, prepared in order)  # each job got its own setup's result
    assert [len(times["a"]), len(times["b"])] == [3, 3]
    assert all(0.01 <= t < SETUP_S for t in times["a"]) and all(0.05 <= t < SETUP_S for t in times["b"])


def test_rotated_shifts_the_order_by_one_each_run():
    assert [rotated("abc", run) for run in range(4)] == [list("abc"), list("bca"), list("cab"), list("abc")]


def test_median_range_and_run_by_run_ratios():
    assert median_range([3.0, 1.0, 2.0, 10.0]) == "2.50 [1.00-10.00]"
    assert median_range([0.5, 0.25, 0.75], "{:.1f}".format) == "0.5 [0.2-0.8]"
    assert ratios([2.0, 6.0, 1.0], [1.0, 3.0, 4.0]) == [2.0, 2.0, 0.25]
    with pytest.raises(ValueError):
        ratios([1.0, 2.0], [1.0])  # runs of two sides pair one to one


def test_encode_bench_reports_each_side_as_median_and_range_of_alternating_runs():
    done = subprocess.run([sys.executable, "bench/encode.py", "--models", "minilm-l6", "--limit", "16"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 runs a side taking turns, median [range]; load average" in done.stdout
    cells = [c.strip() for c in done.stdout.strip().splitlines()[-1].strip("|").split("|")]
    assert cells[:3] == ["minilm-l6", "float32", "16"] and int(cells[3]) > 16  # tokens: at least one a text
    for seconds in (cells[4], cells[7]):
        median, low, high = map(float, seconds.replace("[", "").replace("]", "").replace("-", " ").split())
        assert 0 < low <= median <= high
    ratio, low, high = map(float, cells[10].rstrip("x").replace("[", "").replace("]", "").replace("-", " ").split())
    assert 0 < low <= ratio <= high
    runs = [line.removeprefix("minilm-l6 ").split(":")[0] for line in done.stderr.splitlines()
            if line.startswith("minilm-l6 ") and line.endswith(" s")]
    assert runs == ["embtools", "sentence-transformers", "sentence-transformers", "embtools", "embtools",
                    "sentence-transformers"]
