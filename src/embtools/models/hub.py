"""Models from the Hugging Face Hub: a hub id downloads on first use into the Hugging Face cache, as every Hugging Face
library does, unless the network is refused; every way that can fail becomes one line.

huggingface_hub does the work and reads HF_HOME / HF_HUB_CACHE, HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE itself (the
paths, endpoint and offline switch when it is first imported); this module only adds embtools' own switch,
EMBTOOLS_OFFLINE (what `--offline` sets), and says in one line what went wrong.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

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
    from huggingface_hub import constants, snapshot_download

    offline = offline_requested() or constants.is_offline_mode()
    cached = offline or _in_cache(repo_id)
    if not offline and not sys.stderr.isatty():  # progress bars only for a person watching
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    try:
        path = Path(snapshot_download(repo_id, local_files_only=offline))
    except Exception as exc:  # noqa: BLE001 - hub failures become one line; anything else propagates
        message = hub_failure(repo_id, exc, offline, accepted)
        if message is None:
            raise
        raise EmbtoolsError(message) from None
    if not cached:  # said afterwards: an error stays the only line of a failed run
        log.info(f"downloaded {repo_id} from {constants.ENDPOINT} into {constants.HF_HUB_CACHE}")
    return path


def _in_cache(repo_id: str) -> bool:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")
    return (folder / "refs" / constants.DEFAULT_REVISION).exists()


def hub_failure(repo_id: str, exc: Exception, offline: bool, accepted: str) -> str | None:
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
    )

    hub = constants.ENDPOINT
    if isinstance(exc, HFValidationError):
        return f"model {repo_id!r} is not {accepted} or a hub id (ORG/NAME)"
    if isinstance(exc, GatedRepoError):
        return (f"model {repo_id!r} is gated on {hub}: accept its conditions on {hub}/{repo_id} and set HF_TOKEN "
                "(or run `hf auth login`) to a token of an account with access")
    if isinstance(exc, RepositoryNotFoundError):
        return (f"model {repo_id!r} is not {accepted} or a repository on {hub} "
                "(if it is private, set HF_TOKEN to a token with access)")
    if isinstance(exc, IncompleteSnapshotError):
        return f"model {repo_id!r}: the cached copy in {constants.HF_HUB_CACHE} is incomplete; download it again online"
    if isinstance(exc, LocalEntryNotFoundError) and offline:
        return (f"model {repo_id!r} is not {accepted} or a hub model in the Hugging Face cache "
                f"({constants.HF_HUB_CACHE}), and {_switch()} forbids downloading it: run once online, "
                "or copy a cache that holds it and set HF_HOME")
    if isinstance(exc, LocalEntryNotFoundError):
        return (f"model {repo_id!r} is not {accepted} or a hub model in the Hugging Face cache "
                f"({constants.HF_HUB_CACHE}), and the hub at {hub} cannot be reached ({_cause(exc)}): "
                "check the network, HF_ENDPOINT, or a proxy")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "an error"
        return f"the hub at {hub} answered {status} for model {repo_id!r}: {_first_line(exc)}"
    if isinstance(exc, OSError) or _is_transport_error(exc):  # a connection lost mid-download, a full disk
        return f"downloading model {repo_id!r} from {hub} failed: {_first_line(exc)}"
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
