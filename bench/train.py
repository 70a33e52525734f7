"""emb-train benchmark: training throughput against sentence-transformers' trainer, and GradCache's memory.

1. examples/s of emb-train vs SentenceTransformerTrainer + MultipleNegativesRankingLoss (scale 50 = 1/0.02), same
   model (smollm2-135m), data (SciFact train queries with the E5 instruction, positives only), batch, lengths and
   LoRA (r16/alpha32/dropout0.1 on all linear layers), fp32 on CPU; the first step of each is a warm-up and not timed.
2. peak memory (max RSS of a fresh process) of one step with batch 64: GradCache mini-batches of 8 vs one pass.

Usage: EMBTOOLS_HOME=/tmp/embhome OMP_NUM_THREADS=1 .venv/bin/python bench/train.py [--steps 4] [--batch 8]
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
sys.path.insert(0, str(REPO / "src"))
DATA = Path(os.environ.get("EMBTOOLS_TEST_DATA", REPO.parent / "shared" / "data")) / "scifact"


def write_examples(path: Path, count: int) -> list[dict]:
    from embtools.instructions import TASK_INSTRUCTIONS, document_text

    docs = {}
    for line in open(DATA / "corpus.jsonl"):
        record = json.loads(line)
        docs[str(record["_id"])] = document_text(record["text"], record.get("title"))
    queries = {str(json.loads(x)["_id"]): json.loads(x)["text"] for x in open(DATA / "queries.jsonl")}
    pairs = [line.split("\t")[:2] for line in (DATA / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    records = [{"id": i, "instruction": TASK_INSTRUCTIONS["SciFact"], "query": queries[q], "positive": docs[d],
                "negative": None} for i, (q, d) in enumerate(pairs[:count])]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def embtools_rate(examples: Path, args) -> float:
    """examples/s of emb-train over steps 2..N (train_log.jsonl's per-step seconds)."""
    out = Path(tempfile.mkdtemp()) / "model"
    command = [sys.executable, "-m", "embtools.commands.train", str(examples), "-o", str(out), "--max-steps",
               str(args.steps), "--batch-size", str(args.batch), "--mini-batch-size", str(args.batch),
               "--max-length", str(args.max_length), "--lr", "5e-4", "--warmup-steps", "0", "-q"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()][1:]
    return sum(args.batch for _ in rows) / sum(r["seconds"] for r in rows)


class _StepTimer:
    """A trainer callback timing steps 2..N (the first is a warm-up, as for emb-train)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_begin(self, *a, **k):
                timer.started = time.perf_counter()

            def on_step_end(self, *a, **k):
                timer.seconds.append(time.perf_counter() - timer.started)

        self.callback, self.seconds, self.started = Callback(), [], 0.0


def sentence_transformers_rate(records: list[dict], args) -> float:
    """examples/s of SentenceTransformerTrainer + MNRL(scale 50) with the same LoRA, lengths and batch."""
    from datasets import Dataset
    from peft import LoraConfig, TaskType, get_peft_model
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )
    from sentence_transformers.models import Normalize, Pooling, Transformer

    from embtools.instructions import with_instruction
    from embtools.models.loading import resolve_model_path

    transformer = Transformer(str(resolve_model_path("smollm2-135m")), max_seq_length=args.max_length)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_word_embedding_dimension(), "lasttoken"),
                                         Normalize()], device="cpu")
    # model.add_adapter needs peft >= 0.22 in sentence-transformers 6.2; wrap the inner model as emb-train does
    transformer.model = get_peft_model(transformer.model, LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.1, target_modules="all-linear", task_type=TaskType.FEATURE_EXTRACTION))
    data = Dataset.from_list([{"anchor": with_instruction(r["query"], r["instruction"]), "positive": r["positive"]}
                              for r in records])
    timer = _StepTimer()
    training = SentenceTransformerTrainingArguments(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.batch, max_steps=args.steps,
        learning_rate=5e-4, warmup_steps=0, weight_decay=0.1, report_to=[], save_strategy="no", logging_steps=10**6,
        use_cpu=True, dataloader_drop_last=True, seed=42)
    trainer = SentenceTransformerTrainer(model=model, args=training, train_dataset=data,
                                         loss=losses.MultipleNegativesRankingLoss(model, scale=50.0),
                                         callbacks=[timer.callback])
    trainer.train()
    steps = timer.seconds[1:]
    return args.batch * len(steps) / sum(steps)


def peak_memory_mib(examples: Path, batch: int, mini_batch: int, max_length: int) -> float:
    """Max RSS (MiB) of a fresh process that loads smollm2-135m and runs one training step."""
    code = ("import resource, sys; from embtools.commands.train import main; "
            "sys.argv=['emb-train', *sys.argv[1:]]\ntry:\n main()\nexcept SystemExit: pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)")
    out = Path(tempfile.mkdtemp()) / "model"
    result = subprocess.run([sys.executable, "-c", code, str(examples), "-o", str(out), "--max-steps", "1",
                             "--batch-size", str(batch), "--mini-batch-size", str(mini_batch), "--max-length",
                             str(max_length), "-q"], capture_output=True, text=True, check=True)
    return float(result.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--memory-batch", type=int, default=64)
    parser.add_argument("--memory-max-length", type=int, help="max length of the memory runs (default: --max-length)")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        examples = Path(folder) / "examples.jsonl"
        records = write_examples(examples, max(args.batch * args.steps, args.memory_batch))
        ours = embtools_rate(examples, args)
        print(f"emb-train: {ours:.2f} examples/s", flush=True)
        theirs = sentence_transformers_rate(records[:args.batch * args.steps], args)
        print(f"throughput (batch {args.batch}, max length {args.max_length}, LoRA r16, fp32, "
              f"{torch_threads()} thread(s)): emb-train {ours:.2f} examples/s, sentence-transformers MNRL "
              f"{theirs:.2f} examples/s, ratio {ours / theirs:.2f}x")
        if not args.skip_memory:
            length = args.memory_max_length or args.max_length
            cached = peak_memory_mib(examples, args.memory_batch, 8, length)
            whole = peak_memory_mib(examples, args.memory_batch, args.memory_batch, length)
            print(f"peak RSS, one step of batch {args.memory_batch} at max length {length}: GradCache mini-batch 8 "
                  f"{cached:.0f} MiB, one pass {whole:.0f} MiB, ratio {cached / whole:.2f}")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
