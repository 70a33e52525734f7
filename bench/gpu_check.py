"""`make gpu-check`: do emb-encode, emb-train, emb-eval and emb-index work on this machine's GPU? One table.

Checks, each on `DEVICE` (the first CUDA GPU, else the CPU, and the table says so):
- encode: the same texts on DEVICE against the CPU in float32; cosine >= 0.999 in float32, >= 0.99 in bf16;
- train: 10 LoRA steps (r16) in bf16 on one process; the loss falls;
- train DDP / ZeRO-3: 3 steps on 2 processes, where 2+ GPUs are present (`--distributed yes` forces it on CPUs);
- eval: emb-eval on a small retrieval slice (bench/gpu_check_slice.py), against a CPU run where DEVICE is a GPU;
- index: emb-index's Flat index built and searched on the CPU, and with --gpu (equal hits) where faiss-gpu is there.
The model: smollm2-135m where its weights are installed, else a small random Mistral-architecture decoder
(embtools.models.random_decoder) built on the spot. Exit 1 when a check fails, 0 otherwise (skips included).

A script beside the benchmarks, not a module of the package: it runs from a checkout (as the Makefile does), and
users of the installed commands never call it.

    python bench/gpu_check.py [--model auto|random|NAME] [--distributed auto|yes|no] [--only encode,train,...]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gpu_check_slice import INSTRUCTION, Slice, build_slice

DEVICE = "cuda:0" if torch.cuda.is_available() else "cpu"  # the one place that names the GPU
CHECKS = ("encode", "train", "ddp", "zero3", "eval", "index")
# what every check imports; mteb (eval) and deepspeed (ZeRO-3) are asked for by their own checks
NEEDED = ("transformers", "tokenizers", "peft", "accelerate", "safetensors", "click", "orjson", "pybase64", "faiss")
MIN_COSINE = {"float32": 0.999, "bfloat16": 0.99}
COMMAND_TIMEOUT = 180  # seconds for one command in a child process (--command-timeout)


@dataclass
class Row:
    check: str
    result: str  # pass, FAIL or skipped
    measured: str
    device: str = DEVICE
    peak_memory: str = "-"


def device_name() -> str:
    return f"{DEVICE} ({torch.cuda.get_device_name(DEVICE)})" if DEVICE != "cpu" else "cpu (no CUDA)"


def measured_peak(run: Callable[[], Row]) -> Row:
    """Run one check; on a GPU, note the peak memory torch allocated on DEVICE during it."""
    if DEVICE != "cpu":
        torch.cuda.reset_peak_memory_stats(DEVICE)
    row = run()
    if DEVICE != "cpu" and row.result != "skipped":
        row.peak_memory = f"{torch.cuda.max_memory_allocated(DEVICE) / 2**20:,.0f} MiB"
    if DEVICE != "cpu":
        torch.cuda.empty_cache()  # what this check's models left cached is free for the next (and its children)
    return row


# --- the model ----------------------------------------------------------------------------------------------------

def pick_model(name: str, work: Path, data: Slice) -> str:
    """`auto`: smollm2-135m where its weights are installed, else the random decoder (built into `work`)."""
    if name == "auto":
        try:
            from embtools.models.loading import inspect_model

            return str(inspect_model("smollm2-135m").path)
        except Exception as exc:  # noqa: BLE001 - any reason it cannot be had means: build the small one
            print(f"gpu-check: smollm2-135m unavailable ({str(exc).splitlines()[0]}); "
                  "using a random Mistral-architecture decoder", file=sys.stderr)
            name = "random"
    if name != "random":
        return name
    from embtools.models.random_decoder import build_random_decoder

    return str(build_random_decoder(work / "random-decoder", data.documents + data.queries))


# --- the checks ---------------------------------------------------------------------------------------------------

def encode_on(model: str, texts: list[str], device: str, dtype: str) -> tuple[np.ndarray, float]:
    """(vectors, tokens/s of a second, timed pass after a warm-up pass)."""
    from embtools.encode.encoder import Encoder, EncodeSettings

    encoder = Encoder(model, EncodeSettings(device=device, dtype=dtype, max_length=128))
    encoder.encode(texts)
    tokens, started = encoder.tokens, time.perf_counter()
    vectors = encoder.encode(texts)
    if device != "cpu":
        torch.cuda.synchronize(device)
    return vectors, (encoder.tokens - tokens) / (time.perf_counter() - started)


def check_encode(model: str, data: Slice, dtype: str, reference: np.ndarray) -> Row:
    vectors, tokens_per_s = encode_on(model, data.documents, DEVICE, dtype)
    cosine = float((vectors * reference).sum(axis=1).min())
    ok = cosine >= MIN_COSINE[dtype]
    return Row(f"encode {dtype}", "pass" if ok else "FAIL",
               f"min cosine vs CPU float32 {cosine:.5f} (>= {MIN_COSINE[dtype]}); {tokens_per_s:,.0f} tokens/s")


def distinct_texts(reference: np.ndarray) -> Row | None:
    """A FAIL row when the model gives nearly one vector for every text: then no cosine comparison means anything."""
    cross = reference @ reference.T
    mean = float(cross[~np.eye(len(cross), dtype=bool)].mean())
    return None if mean < 0.9 else Row("encode", "FAIL", f"texts are not told apart (mean cross cosine {mean:.3f})")


def train_losses(output: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (output / "train_log.jsonl").read_text().splitlines() if line]


def loss_falls(losses: list[float]) -> bool:
    """The mean loss of the last third of the steps is below that of the first third."""
    third = max(1, len(losses) // 3)
    return bool(np.mean(losses[-third:]) < np.mean(losses[:third]))


def check_train(model: str, data: Slice, work: Path, steps: int) -> Row:
    """Every step on the slice's one batch of 16 examples, so a loss that does not fall is the training's fault,
    not a harder batch's."""
    from embtools.train.data import DataSource
    from embtools.train.loop import TrainConfig, train
    from embtools.train.lora import LoraSettings

    output = work / "lora"
    config = TrainConfig(output=output, sources=[DataSource(str(data.examples))], model=model,
                         lora=LoraSettings(16, 32.0, 0.0), batch_size=16, mini_batch_size=8, max_steps=steps,
                         lr=1e-3, warmup_steps=0, query_max_length=32, document_max_length=64,
                         mixed_precision="bf16", overwrite=True)
    summary = train(config)
    losses = train_losses(output)
    return Row(f"train LoRA bf16, {steps} steps", "pass" if loss_falls(losses) else "FAIL",
               f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; {summary['examples_per_s']:,.1f} examples/s")


def run_command(module: str, args: list[str], cpu_only: bool = False) -> subprocess.CompletedProcess:
    """An embtools command in a child process, with this checkout's sources first on its path. A command still
    running after COMMAND_TIMEOUT seconds (a hung collective) is stopped: its process group gets SIGTERM, which the
    command passes on to its launcher and workers; its exit code is then 124."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    if cpu_only:
        env["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, "-m", f"embtools.commands.{module}", *args]
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        out, err = child.communicate(timeout=COMMAND_TIMEOUT)
        return subprocess.CompletedProcess(command, child.returncode, out, err)
    except subprocess.TimeoutExpired:
        stop_group(child.pid, signal.SIGTERM)
        try:
            child.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # a worker outside the group still holds the pipes: stop reading them
            stop_group(child.pid, signal.SIGKILL)
        return subprocess.CompletedProcess(command, 124, "", f"timed out after {COMMAND_TIMEOUT} s")


def stop_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group has ended by itself meanwhile
        os.killpg(group, sig)


def failure(check: str, done: subprocess.CompletedProcess, device: str = DEVICE) -> Row:
    last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    return Row(check, "FAIL", f"exit {done.returncode}: {last[:160]}", device=device)


def check_distributed(model: str, data: Slice, work: Path, deepspeed: str | None, wanted: str) -> Row:
    check = f"train {'ZeRO-3' if deepspeed else 'DDP'}, 2 processes"
    gpus = torch.cuda.device_count()
    if wanted == "no" or (wanted == "auto" and gpus < 2):
        return Row(check, "skipped", f"needs 2+ GPUs (found {gpus})")
    if deepspeed and importlib.util.find_spec("deepspeed") is None:
        return Row(check, "FAIL", "deepspeed is not installed (it is in gpu-wheels/)")
    output = work / f"dist-{deepspeed or 'ddp'}"
    args = [str(data.examples), "-o", str(output), "--model", model, "--num-processes", "2", "--batch-size", "16",
            "--mini-batch-size", "8", "--max-steps", "3", "--warmup-steps", "0", "--lr", "1e-3",
            "--lora-dropout", "0", "--max-length", "64", "--mixed-precision", "bf16" if gpus else "no", "--overwrite"]
    device = f"{gpus} x cuda" if gpus else "2 x cpu (gloo)"
    done = run_command("train", args + (["--deepspeed", deepspeed] if deepspeed else []))
    if done.returncode:
        return failure(check, done, device)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    losses = train_losses(output)
    ok = all(np.isfinite(losses)) and len(losses) == 3
    return Row(check, "pass" if ok else "FAIL",
               f"losses {', '.join(f'{x:.3f}' for x in losses)}; {summary['examples_per_s']:,.1f} examples/s",
               device=device)


def eval_score(model: str, data: Slice, cpu_only: bool) -> tuple[float | None, subprocess.CompletedProcess]:
    done = run_command("eval", [str(data.folder), "--model", model, "--dtype", "float32", "--no-cache",
                                "--instruction", INSTRUCTION], cpu_only=cpu_only)
    metrics = [json.loads(line) for line in done.stdout.splitlines() if line.strip()] if not done.returncode else []
    return next((m["value"] for m in metrics if m.get("main")), None), done


def check_eval(model: str, data: Slice) -> Row:
    check = "eval retrieval slice (nDCG@10)"
    if importlib.util.find_spec("mteb") is None:
        return Row(check, "skipped", "mteb is not installed (make gpu-wheels GPU_EVAL=yes; docs/gpu.md)")
    score, done = eval_score(model, data, cpu_only=False)
    if score is None:
        return failure(check, done)
    if DEVICE == "cpu":
        return Row(check, "pass", f"nDCG@10 {score:.4f} (no GPU run to compare)")
    reference, done = eval_score(model, data, cpu_only=True)
    if reference is None:
        return failure(check, done)
    ok = abs(score - reference) <= 0.01
    return Row(check, "pass" if ok else "FAIL", f"nDCG@10 {score:.4f}, CPU {reference:.4f} (float32; |diff| <= 0.01)")


def faiss_gpu_missing() -> str | None:
    import faiss

    if not hasattr(faiss, "StandardGpuResources"):
        return "faiss-gpu is not installed (the installed faiss is CPU-only)"
    return None if faiss.get_num_gpus() else "faiss-gpu sees no GPU"


def flat_hits(vectors: np.ndarray, queries: np.ndarray, folder: Path, gpu: bool):
    from embtools.index.vector_index import VectorIndex, build_index

    records = ({"id": f"d{i}", "embedding": v} for i, v in enumerate(vectors))
    build_index(records, folder, "Flat", gpu=gpu, overwrite=True)
    return VectorIndex.load(folder, gpu=gpu).search(np.ascontiguousarray(queries), 10)


def same_hits(ours, theirs) -> bool:
    return all([d for d, _ in a] == [d for d, _ in b] and np.allclose([s for _, s in a], [s for _, s in b], atol=1e-4)
               for a, b in zip(ours, theirs))


def check_index(vectors: np.ndarray, queries: np.ndarray, work: Path) -> Row:
    started = time.perf_counter()
    cpu = flat_hits(vectors, queries, work / "index-cpu", gpu=False)
    seconds = time.perf_counter() - started
    missing = faiss_gpu_missing()
    if missing:
        return Row("index Flat --gpu", "skipped", f"{missing}; CPU build+search ran ({seconds:.2f} s)", device="cpu")
    gpu = flat_hits(vectors, queries, work / "index-gpu", gpu=True)
    ok = same_hits(gpu, cpu)
    return Row("index Flat --gpu", "pass" if ok else "FAIL", f"top-10 of {len(queries)} queries "
               f"{'equal to' if ok else 'differ from'} the CPU Flat index")


# --- the run ------------------------------------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    lines = ["| check | device | result | measured | peak GPU memory |", "|---|---|---|---|---|"]
    lines += [f"| {r.check} | {r.device} | {r.result} | {r.measured} | {r.peak_memory} |" for r in rows]
    return "\n".join(lines)


def guarded(check: str, run: Callable[[], Row]) -> Row:
    """A check that raises is a FAIL row with the first line of its error; the other checks still run."""
    try:
        return measured_peak(run)
    except Exception as exc:  # noqa: BLE001 - the table reports it; -v style tracebacks are not this tool's job
        return Row(check, "FAIL", f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}")


def run_checks(args, work: Path) -> list[Row]:
    data = build_slice(work / "slice")
    model = pick_model(args.model, work, data)
    rows: list[Row] = []
    reference = queries = None
    if "encode" in args.only or "index" in args.only:
        reference, _ = encode_on(model, data.documents, "cpu", "float32")
        queries, _ = encode_on(model, data.queries, "cpu", "float32")
        rows += [row for row in [distinct_texts(reference)] if row]
    if "encode" in args.only:
        rows += [guarded(f"encode {d}", lambda d=d: check_encode(model, data, d, reference)) for d in MIN_COSINE]
    if "train" in args.only:
        rows.append(guarded("train", lambda: check_train(model, data, work, args.steps)))
    for name, deepspeed in (("ddp", None), ("zero3", "zero3")):
        if name in args.only:
            rows.append(guarded(name, lambda d=deepspeed: check_distributed(model, data, work, d, args.distributed)))
    if "eval" in args.only:
        rows.append(guarded("eval", lambda: check_eval(model, data)))
    if "index" in args.only:
        rows.append(guarded("index", lambda: check_index(reference, queries, work)))
    return rows


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="auto", help="auto (default), random, or a model name/folder")
    parser.add_argument("--distributed", choices=("auto", "yes", "no"), default="auto",
                        help="DDP and ZeRO-3 checks: auto (default) = when 2+ GPUs are present")
    parser.add_argument("--steps", type=int, default=10, help="LoRA steps of the train check (default 10)")
    parser.add_argument("--command-timeout", type=int, default=COMMAND_TIMEOUT,
                        help=f"seconds before a command in a child process counts as hung (default {COMMAND_TIMEOUT})")
    parser.add_argument("--only", default=",".join(CHECKS), help=f"checks to run (default: {','.join(CHECKS)})")
    args = parser.parse_args(argv)
    args.only = set(args.only.split(","))
    return args


def main(argv: list[str] | None = None) -> int:
    global COMMAND_TIMEOUT
    args = parse_args(argv)
    COMMAND_TIMEOUT = args.command_timeout
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        print(f"gpu-check: error: not installed: {', '.join(missing)} (run `make gpu-wheels` where PyPI is reachable "
              "and carry gpu-wheels/ here; docs/gpu.md)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        rows = run_checks(args, Path(work))
    print(f"gpu-check on {device_name()}, torch {torch.__version__}, {time.perf_counter() - started:.0f} s"
          + ("" if DEVICE != "cpu" else ": no CUDA device, so every check ran on the CPU"))
    print(table(rows))
    return 1 if any(r.result == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
