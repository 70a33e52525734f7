"""Several processes, decided from the environment (`WORLD_SIZE`, `RANK`, `LOCAL_RANK`) as torchrun and
accelerate set it. A command asked for `--num-processes N` relaunches itself under `accelerate launch`; a process
that was already launched runs in place, so it cannot recurse. Only rank 0 writes stdout and artifacts."""

from __future__ import annotations

import atexit
import ctypes
import io
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("embtools")

_left_group = False  # set once this process has destroyed its process group (leave_process_group)
_LAUNCHED_ENV = "EMBTOOLS_LAUNCHED"  # set for children, so a relaunched command can never relaunch again


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_launched() -> bool:
    """True inside a process started by torchrun / accelerate launch / deepspeed."""
    return "LOCAL_RANK" in os.environ or _LAUNCHED_ENV in os.environ


def is_main_process() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def device():
    """This rank's device: its own GPU where CUDA is available, else the CPU. The GPU is LOCAL_RANK modulo the
    GPUs this process sees, as accelerate picks it (a scheduler may show each process only its own GPU)."""
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank() % torch.cuda.device_count())


def collective_device():
    """The device whose tensors the process group's collectives carry: this rank's GPU under NCCL (which cannot
    carry CPU tensors), the CPU under gloo or with no group."""
    import torch
    import torch.distributed as dist

    nccl = dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl"
    return device() if nccl else torch.device("cpu")


def init_process_group() -> None:
    """Join the process group the launcher set up: NCCL on GPUs, gloo on CPUs. A GPU rank first selects its own
    GPU: NCCL's object collectives (`gather_object`) run on the current device, cuda:0 unless selected."""
    import torch
    import torch.distributed as dist

    if world_size() > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(device())
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        if not torch.cuda.is_available():
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def leave_process_group() -> None:
    """End of a run that succeeded, on every rank: wait for the others, then destroy the group while the
    interpreter is whole. A group left to interpreter exit is torn down mid-finalization: NCCL warns that it was
    not destroyed and may leave a peer waiting; torch asks for destroy_process_group before a normal exit."""
    import torch.distributed as dist

    global _left_group
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        _left_group = True


def finish_process(code: int = 0) -> None:
    """Exit now if this process left a process group, else return (and exit normally). The exit handlers run and
    the streams are flushed as in a normal exit, but interpreter finalization is skipped: gloo's worker threads
    outlive destroy_process_group (the group object stays referenced), and one still releasing the last
    collective's tensors needs the GIL, which during finalization aborts the process ("terminate called without an
    active exception", SIGABRT; torch PR 179291). Seen in CI: emb-encode --num-processes 2 failing after its output
    was complete."""
    if not _left_group:
        return
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's `obj`, in rank order, on rank 0 (None elsewhere)."""
    import torch.distributed as dist

    if world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size() if is_main_process() else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def gather_everywhere(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    import torch.distributed as dist

    if world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def launch_command(num_processes: int, module: str, args: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Run `python -m module args` in `num_processes` processes under accelerate launch; the child's exit code."""
    # `--multi_gpu` is accelerate's torchrun launcher; on a CPU machine it starts gloo processes (`--cpu` would
    # start one plain process, which then believes it is alone).
    # A free port of its own, so two runs on one machine never meet on accelerate's default 29500.
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--multi_gpu",
                "--main_process_port", str(free_port()), "-m", module, *args]
    log.debug("launching: %s", " ".join(launcher))
    child_env = {**os.environ, **(env or {}), _LAUNCHED_ENV: "1"}
    verbose = log.isEnabledFor(logging.DEBUG)
    process = subprocess.Popen(launcher, env=child_env, stderr=None if verbose else subprocess.PIPE,
                               preexec_fn=_end_with_parent())
    try:
        if not verbose:
            forward_worker_stderr(process.stderr)
        return process.wait()
    finally:
        _stop(process)


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _end_with_parent():
    """What the launcher runs before exec: SIGTERM it when this process dies, even by SIGKILL (Linux
    PR_SET_PDEATHSIG), so the launcher stops its workers and none is left holding the port. The C function is looked
    up here, before the fork, so the child only calls it. None (nothing to run) off Linux."""
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGTERM)


def _stop(process: subprocess.Popen) -> None:
    """The launcher (and through it the workers) ends with this call, after an interrupt or an error here too."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


_TORCHRUN_LOG = re.compile(r"^[WEIF]\d{4} \d\d:\d\d:\d\d|torch\.distributed\.elastic")


def forward_worker_stderr(stream) -> None:
    """Pass the workers' stderr on, without torchrun's failure report (its log lines and the launcher's own
    traceback, which only repeat that a worker failed) and without the same error line once per rank."""
    errors_seen: set[str] = set()
    in_report = False
    # "\r" ends a line too, so the main worker's progress bar is passed on as it redraws, not at its end
    for line in io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""):
        in_report = in_report or line.startswith("Traceback (most recent call last)")
        if in_report or _TORCHRUN_LOG.search(line) or line in errors_seen:
            continue
        if ": error: " in line:
            errors_seen.add(line)
        sys.stderr.write(line)
        sys.stderr.flush()
