"""Wall time of `emb-eval` on SciFact against mteb's own run of the same model on the same local data.

    .venv/bin/python bench/eval.py [--data ../shared/data/scifact] [--model minilm-l6] [--max-corpus N]

Each side runs as its own process, as a user would run it, timed from start to exit:
- ours: `emb-eval --model M DATA`, first with an empty EMBTOOLS_HOME (cold: every text encoded), then again (warm:
  every embedding from the cache);
- mteb: `mteb.evaluate(SentenceTransformer(M's folder), LocalRetrieval task over DATA, cache=None)`. mteb keeps no
  embeddings between runs, so a second run of it repeats the same work: both of our runs are compared with it
  (`--mteb-runs 2` measures it twice and compares warm with the second).
Prints one line per run, nDCG@10 of each, and the ratios ours/mteb (target <= 1.0x).
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

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"

# The mteb side: the model as mteb loads a sentence-transformers model, the data as an mteb custom task.
MTEB_RUN = """
import json, sys
from pathlib import Path
import mteb
from sentence_transformers import SentenceTransformer
from embtools.records.datasets import load_retrieval
from embtools.models.loading import resolve_model_path
from embtools.evaluate.mteb_tasks import local_metadata, retrieval_task
from embtools.evaluate.slices import limit_corpus

data_dir, model_name, max_corpus = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) or None
data = limit_corpus(load_retrieval(data_dir, "test"), max_corpus, 42)
task = retrieval_task(data, local_metadata("SciFact", "Retrieval", "ndcg_at_10", "test", "local"), "test")
model = SentenceTransformer(str(resolve_model_path(model_name)), device="cpu")
result = mteb.evaluate(model, task, cache=None, show_progress_bar=False)
print(json.dumps({"ndcg_at_10": result.task_results[0].scores["test"][0]["ndcg_at_10"]}))
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(seconds, stdout) of one process; stops the bench if it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"bench/eval.py: {command[0]} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def ours(data: Path, model: str, max_corpus: int, env: dict[str, str]) -> tuple[float, float]:
    command = [str(REPO / ".venv" / "bin" / "emb-eval"), "--model", model, str(data), "-q"]
    if max_corpus:
        command += ["--max-corpus", str(max_corpus)]
    seconds, out = timed(command, env)
    main = next(r for r in map(json.loads, out.splitlines()) if r["main"])
    return seconds, main["value"]


def theirs(data: Path, model: str, max_corpus: int, env: dict[str, str]) -> tuple[float, float]:
    seconds, out = timed([str(PYTHON), "-c", MTEB_RUN, str(data), model, str(max_corpus)], env)
    return seconds, json.loads(out.strip().splitlines()[-1])["ndcg_at_10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--max-corpus", type=int, default=0, help="0: the whole corpus")
    parser.add_argument("--mteb-runs", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as home:
        env = {**os.environ, "EMBTOOLS_HOME": home, "MTEB_CACHE": str(Path(home) / "mteb"),
               "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        runs = {}
        plan = [("emb-eval cold", ours), ("emb-eval warm", ours), ("mteb run 1", theirs)]
        for label, side in plan + [("mteb run 2", theirs)] * (args.mteb_runs - 1):
            runs[label] = side(args.data, args.model, args.max_corpus, env)
            print(f"{label:14s} {runs[label][0]:7.1f} s   nDCG@10 {runs[label][1]:.5f}", flush=True)
    warm_reference = runs.get("mteb run 2", runs["mteb run 1"])[0]
    print(f"ratio cold: {runs['emb-eval cold'][0] / runs['mteb run 1'][0]:.2f}x   "
          f"ratio warm: {runs['emb-eval warm'][0] / warm_reference:.2f}x   (emb-eval / mteb; target <= 1.0x)")


if __name__ == "__main__":
    main()
