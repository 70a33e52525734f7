"""Upload a model folder to the Hugging Face Hub (`emb-train --push-to-hub ORG/NAME`): huggingface_hub's
create_repo (kept if it exists) and upload_folder, which read HF_ENDPOINT and HF_TOKEN (or the token `hf auth login`
saved) themselves. Every way that can fail becomes one line."""

from __future__ import annotations

import logging
from pathlib import Path

from embtools.errors import EmbtoolsError
from embtools.models.hub import _first_line, _is_transport_error

log = logging.getLogger("embtools")

# Written beside the model by emb-train but not part of it: checkpoints live elsewhere; temporaries of atomic writes.
_NOT_UPLOADED = [".*", "*.tmp*"]


def push_folder(folder: Path, repo_id: str, private: bool = False, message: str | None = None) -> str:
    """Create `repo_id` on the hub (private if asked; an existing repo is kept as it is) and upload `folder` to it
    in one commit. Returns the repo's URL."""
    from huggingface_hub import HfApi, constants

    api = HfApi()
    try:
        url = api.create_repo(repo_id, private=private or None, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, ignore_patterns=_NOT_UPLOADED,
                          commit_message=message or f"Upload {Path(folder).name} (emb-train)")
    except Exception as exc:  # noqa: BLE001 - hub failures become one line; anything else propagates
        reason = upload_failure(exc)
        if reason is None:
            raise
        raise EmbtoolsError(f"cannot push {folder} to {repo_id} on {constants.ENDPOINT}: {reason}") from None
    log.info(f"pushed {folder} to {url}")
    return str(url)


def upload_failure(exc: Exception) -> str | None:
    """What went wrong in a few words, or None when `exc` is no hub failure."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    if isinstance(exc, HFValidationError):
        return "not a hub id (ORG/NAME)"
    if isinstance(exc, ValueError) and str(exc).startswith("Invalid metadata in README.md"):
        return f"the hub refused the model card's metadata: {' '.join(str(exc).split())}"
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return (f"the hub answered {status} (set HF_TOKEN, or run `hf auth login`, with a token that may "
                    "write to this namespace)")
        return f"the hub answered {status or 'an error'}: {_first_line(exc)}"
    if isinstance(exc, OSError) or _is_transport_error(exc):
        return f"the hub cannot be reached ({type(exc).__name__}: {_first_line(exc)}); check the network and " \
               "HF_ENDPOINT"
    return None


def parse_repo_id(value: str) -> str:
    """A model repo id to push to, ORG/NAME (checked before training, not after it)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        value = ""
    if value.count("/") != 1:
        raise EmbtoolsError("--push-to-hub: expected a hub id ORG/NAME")
    return value
