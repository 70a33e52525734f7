"""Models (and data sets) from the Hugging Face Hub: a hub id downloads on first use into the Hugging Face cache, as
every Hugging Face library does, unless the network is refused; every way that can fail becomes one line.

huggingface_hub does the work and reads HF_HOME / HF_HUB_CACHE, HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE itself (the
paths, endpoint and offline switch when it is first imported); this module only adds embtools' own switch,
EMBTOOLS_OFFLINE (what `--offline` sets), and says in one line what went wrong.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from embtools import progress
from embtools.errors import EmbtoolsError

log = logging.getLogger("embtools")

OFFLINE_ENV = "EMBTOOLS_OFFLINE"
_TRUE = {"1", "true", "yes", "on", "y", "t"}  # what click accepts for a flag's env var


def offline_requested() -> bool:
    """Whether `--offline` or EMBTOOLS_OFFLINE forbids the network (HF_HUB_OFFLINE is huggingface_hub's own)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in _TRUE


def download_model(repo_id: str, accepted: str) -> Path:
    """The local snapshot folder of hub model `repo_id`: from the cache, downloaded into it first when missing or
    outdated (or the cached copy when the hub cannot be reached). `accepted` names the other forms of a model name,
    for the line that says `repo_id` is none of them."""
    return download_snapshot(HubRepo("model", repo_id, accepted))


@dataclass(frozen=True)
class HubRepo:
    """What is asked of the hub, as the error lines name it: a `kind` of repo ("model" or "dataset"), its id, the
    revision (None: the default branch), and `accepted`: the other forms the user's argument could have had
    (`a folder, a built-in name (...)`), or None when it can only be a repo."""

    kind: str
    repo_id: str
    accepted: str | None = None
    revision: str | None = None

    @property
    def page(self) -> str:
        from huggingface_hub import constants

        return f"{constants.ENDPOINT}/{'datasets/' if self.kind == 'dataset' else ''}{self.repo_id}"

    def is_not(self, thing: str) -> str:
        """`model 'x' is not a folder, ... or THING`, or `dataset 'x' is not THING`."""
        return f"{self.kind} {self.repo_id!r} is not {self.accepted + ' or ' if self.accepted else ''}{thing}"


def download_snapshot(repo: HubRepo, allow_patterns: list[str] | None = None, announce: bool = True) -> Path:
    """The local snapshot folder of `repo` (its files matching `allow_patterns`, all by default): from the Hugging
    Face cache, downloaded into it first when missing or outdated (or the cached copy when the hub cannot be
    reached). Offline (`--offline`, EMBTOOLS_OFFLINE, HF_HUB_OFFLINE) only the cache is read. Every hub failure is
    an EmbtoolsError of one line. `announce`: say on stderr when the repo was downloaded (a caller that may still
    fail afterwards says it itself)."""
    from huggingface_hub import constants, snapshot_download

    offline = offline_requested() or constants.is_offline_mode()
    cached = offline or _in_cache(repo)
    if not offline:  # the hub's download bars follow embtools' own decision (progress.py)
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        (enable_progress_bars if progress.enabled() else disable_progress_bars)()
    try:
        with _quiet_hub_warnings():
            path = Path(snapshot_download(repo.repo_id, repo_type=repo.kind, revision=repo.revision,
                                          allow_patterns=allow_patterns, local_files_only=offline))
    except Exception as exc:  # noqa: BLE001 - hub failures become one line; anything else propagates
        message = hub_failure(repo, exc, offline)
        if message is None:
            raise
        raise EmbtoolsError(message) from None
    if announce and not cached:  # said afterwards: an error stays the only line of a failed run
        log_download(repo.repo_id)
    return path


def log_download(what: str) -> None:
    from huggingface_hub import constants

    log.info(f"downloaded {what} from {constants.ENDPOINT} into {constants.HF_HUB_CACHE}")


@contextmanager
def _quiet_hub_warnings() -> Iterator[None]:
    """huggingface_hub warns on stderr when no file matches `allow_patterns` (a repo without a README): the caller
    decides what that means, and an error stays the only line of a failed run."""
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)


def _in_cache(repo: HubRepo) -> bool:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo.repo_id, repo_type=repo.kind)
    return (folder / "refs" / (repo.revision or constants.DEFAULT_REVISION)).exists()


def hub_failure(repo: HubRepo, exc: Exception, offline: bool) -> str | None:
    """The one line for a failure of a hub download, or None when `exc` is no hub failure. The order matters:
    GatedRepoError is a RepositoryNotFoundError, IncompleteSnapshotError a LocalEntryNotFoundError."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub, name, cache = constants.ENDPOINT, f"{repo.kind} {repo.repo_id!r}", constants.HF_HUB_CACHE
    if isinstance(exc, HFValidationError):
        return repo.is_not("a hub id (ORG/NAME)")
    if isinstance(exc, GatedRepoError):
        return (f"{name} is gated on {hub}: accept its conditions on {repo.page} and set HF_TOKEN "
                "(or run `hf auth login`) to a token of an account with access")
    if isinstance(exc, RepositoryNotFoundError):
        return repo.is_not(f"a repository on {hub} (if it is private, set HF_TOKEN to a token with access)")
    if isinstance(exc, RevisionNotFoundError):
        return f"{name} has no revision {repo.revision!r} on {hub}"
    if isinstance(exc, IncompleteSnapshotError):
        return f"{name}: the cached copy in {cache} is incomplete; download it again online"
    if isinstance(exc, LocalEntryNotFoundError) and offline:
        return (repo.is_not(f"a hub {repo.kind} in the Hugging Face cache ({cache})") + f", and {_switch()} "
                "forbids downloading it: run once online, or copy a cache that holds it and set HF_HOME")
    if isinstance(exc, LocalEntryNotFoundError):
        return (repo.is_not(f"a hub {repo.kind} in the Hugging Face cache ({cache})") + f", and the hub at {hub} "
                f"cannot be reached ({_cause(exc)}): check the network, HF_ENDPOINT, or a proxy")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "an error"
        return f"the hub at {hub} answered {status} for {name}: {_first_line(exc)}"
    if isinstance(exc, OSError) or _is_transport_error(exc):  # a connection lost mid-download, a full disk
        return f"downloading {name} from {hub} failed: {_first_line(exc)}"
    return None


def _is_transport_error(exc: Exception) -> bool:
    """huggingface_hub's HTTP client (httpx2 in 2.x) raises its own errors, not OSError, for a dropped connection."""
    try:
        import httpx2
    except ImportError:
        return False
    return isinstance(exc, httpx2.TransportError)


def _switch() -> str:
    return "--offline (EMBTOOLS_OFFLINE)" if offline_requested() else "HF_HUB_OFFLINE"


def _cause(exc: BaseException) -> str:
    """The connection error under huggingface_hub's own wording (`ConnectError: [Errno 111] Connection refused`)."""
    cause = exc.__cause__ or exc.__context__ or exc
    return f"{type(cause).__name__}: {_first_line(cause)}"


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
