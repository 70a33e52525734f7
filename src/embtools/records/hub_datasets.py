"""Data sets on the Hugging Face Hub as inputs: an `hf://datasets/...` argument becomes files of the Hugging Face cache.

The forms (HfFileSystem's path, with the config and split that `load_dataset(NAME, CONFIG, split=SPLIT)` takes):
- `hf://datasets/ORG/NAME[@REVISION]/PATH`: a file of the repo, or a glob (`data/train-*.parquet`);
- `hf://datasets/ORG/NAME[@REVISION]:CONFIG[/SPLIT]`: the files of a config's split, as the dataset card's `configs`
  list them (without one: split names in file and folder names, as `datasets` infers them);
- `hf://datasets/ORG/NAME[@REVISION]`: the default config's only split.
A revision with a slash is written URL-encoded, as HfFileSystem wants it (`@refs%2Fconvert%2Fparquet`).

The files are downloaded into the Hugging Face cache through models.hub (which honours HF_HOME, HF_TOKEN,
HF_ENDPOINT, HF_HUB_OFFLINE and `--offline`, and says in one line what failed); offline, the cached file list
answers. Reading them is the format readers' job: a data set is never loaded whole.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from embtools.errors import EmbtoolsError
from embtools.models.hub import HubRepo, download_snapshot, log_download
from embtools.records.formats import RECORD_SUFFIXES

HUB_DATASET_PREFIX = "hf://datasets/"
README = "README.md"
DEFAULT_CONFIG = "default"
# The split names `datasets` recognizes in file and folder names (its data_files.py keywords), by split.
_SPLIT_KEYWORDS = {"train": ("train", "training"), "validation": ("validation", "valid", "dev", "val"),
                   "test": ("test", "testing", "eval", "evaluation")}
# A path in the Hugging Face cache: .../datasets--ORG--NAME/snapshots/COMMIT/PATH
_CACHED_FILE = re.compile(r"/datasets--([^/]+?)--([^/]+)/snapshots/([0-9a-f]{40})/(.+)$")


def is_hub_dataset(source: object) -> bool:
    """Whether an input argument names a data set on the hub (`hf://datasets/...`)."""
    return isinstance(source, str) and source.startswith(HUB_DATASET_PREFIX)


@dataclass(frozen=True)
class HubDataset:
    """One `hf://datasets/...` argument, parsed: the repo, and a path in it or a config and split (or neither)."""

    repo_id: str
    revision: str | None = None
    path: str | None = None
    config: str | None = None
    split: str | None = None

    @property
    def url(self) -> str:
        """`hf://datasets/ORG/NAME[@REVISION]`: the repo as the user names it, in messages."""
        revision = f"@{quote(self.revision, safe='')}" if self.revision else ""
        return f"{HUB_DATASET_PREFIX}{self.repo_id}{revision}"

    @property
    def name(self) -> str:
        return self.repo_id.split("/")[-1]

    @property
    def repo(self) -> HubRepo:
        return HubRepo("dataset", self.repo_id, revision=self.revision)


def parse_hub_dataset(argument: str) -> HubDataset:
    """The parts of `hf://datasets/ORG/NAME[@REVISION][/PATH | :CONFIG[/SPLIT]]`; EmbtoolsError when it is none."""
    rest, _, selection = argument[len(HUB_DATASET_PREFIX):].partition(":")
    org, _, rest = rest.partition("/")
    name, _, path = rest.partition("/")
    name, _, revision = name.partition("@")
    config, _, split = selection.partition("/")
    if not (org and name) or (selection and not config) or (path and selection):
        raise EmbtoolsError(f"{argument}: expected hf://datasets/ORG/NAME[@REVISION][/PATH] or "
                            "hf://datasets/ORG/NAME[@REVISION]:CONFIG[/SPLIT]")
    return HubDataset(f"{org}/{name}", unquote(revision) or None, path or None, config or None, split or None)


@dataclass(frozen=True)
class HubListing:
    """A repo at one commit: its snapshot folder in the cache, every file's path, and its card's `configs`."""

    dataset: HubDataset
    snapshot: Path
    files: list[str]
    configs: dict[str, dict[str, list[str]]]  # config -> split -> path patterns
    default: str | None  # the config the card marks default
    from_card: bool  # the configs are the card's (not inferred from file names)

    def download(self, paths: list[str]) -> list[Path]:
        """The cached copies of `paths` (downloaded now when missing)."""
        missing = [path for path in paths if not (self.snapshot / path).is_file()]
        snapshot = download_snapshot(self.dataset.repo, sorted(set(paths)), announce=False)
        if missing:
            log_download(f"{len(missing)} file{'s' if len(missing) > 1 else ''} of {self.dataset.repo_id}")
        return [snapshot / path for path in paths]

    def file_url(self, path: str) -> str:
        return f"{self.dataset.url}/{path}"


def list_repo(dataset: HubDataset) -> HubListing:
    """The files and configs of the data set's repo: asks the hub (downloading the card), or offline the cache."""
    snapshot = download_snapshot(dataset.repo, [README], announce=False)
    files = _repo_files(dataset, snapshot)
    card = snapshot / README
    configs, default = card_configs(card) if card.is_file() else ({}, None)
    return HubListing(dataset, snapshot, files, configs or inferred_configs(files), default, bool(configs))


def _repo_files(dataset: HubDataset, snapshot: Path) -> list[str]:
    """Every file of the repo, from the listing huggingface_hub cached when it last asked the hub; for a cache filled
    by an older huggingface_hub (no cached listing), the files the cache holds."""
    from huggingface_hub import get_cached_repo_tree
    from huggingface_hub.errors import CachedRepoTreeNotFoundError

    try:
        tree = get_cached_repo_tree(dataset.repo_id, repo_type="dataset", revision=dataset.revision)
    except CachedRepoTreeNotFoundError:
        return sorted(path.relative_to(snapshot).as_posix() for path in snapshot.rglob("*") if path.is_file())
    return sorted(entry.path for entry in tree)


def card_configs(card: Path) -> tuple[dict[str, dict[str, list[str]]], str | None]:
    """The `configs` of a dataset card's YAML header (config -> split -> patterns), and the one marked default."""
    from huggingface_hub.repocard import metadata_load

    try:
        entries = (metadata_load(card) or {}).get("configs") or []
    except ValueError as exc:  # YAML that does not parse
        raise EmbtoolsError(f"{card}: its YAML header does not parse ({exc})") from None
    configs = {str(entry["config_name"]): _splits(entry.get("data_files") or []) for entry in entries
               if isinstance(entry, dict) and "config_name" in entry}
    default = next((str(e["config_name"]) for e in entries if isinstance(e, dict) and e.get("default")), None)
    return configs, default


def _splits(data_files: str | list) -> dict[str, list[str]]:
    """A config's `data_files`: a pattern, a list of them (the train split), or `{split, path}` entries."""
    if isinstance(data_files, str):
        return {"train": [data_files]}
    splits: dict[str, list[str]] = {}
    for entry in data_files:
        split, paths = ("train", entry) if isinstance(entry, str) else (str(entry.get("split", "train")),
                                                                        entry.get("path") or [])
        splits.setdefault(split, []).extend([paths] if isinstance(paths, str) else paths)
    return splits


def inferred_configs(files: list[str]) -> dict[str, dict[str, list[str]]]:
    """The `default` config of a repo whose card lists none, as `datasets` infers it: its record files by the split
    keyword in their folder or file name (`data/test-0000.parquet`, `dev.jsonl.gz`); when none has one, all of them
    in `train`."""
    records = [path for path in files if path.endswith(RECORD_SUFFIXES) and not _hidden(path)]
    named = {path: split for path in records if (split := _split_in_name(path))}
    splits: dict[str, list[str]] = {}
    for path in named or records:
        splits.setdefault(named.get(path, "train"), []).append(path)
    return {DEFAULT_CONFIG: splits} if splits else {}


def _hidden(path: str) -> bool:
    return any(part.startswith((".", "_")) for part in path.split("/"))


def _split_in_name(path: str) -> str | None:
    words = [word for part in path.lower().split("/") for word in re.split(r"[-._ ]", part)[:1]]
    return next((split for split, keywords in _SPLIT_KEYWORDS.items() if set(keywords) & set(words)), None)


def matching(files: list[str], pattern: str) -> list[str]:
    """The repo files a `data_files` pattern names: `*` within a folder, `**` across folders, a folder all in it."""
    pattern = pattern.strip("/")
    regex = re.compile("".join(".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
                               for part in re.split(r"(\*\*|\*)", pattern)) + "(/.*)?")
    return [path for path in files if regex.fullmatch(path)]


def split_files(listing: HubListing, config: str | None, split: str | None,
                preferred_split: str | None = None) -> tuple[str, list[str]]:
    """(split, repo paths) of a config's split. Left out, the config is the default one (the card's, `default`, or
    the only one), the split `preferred_split` or the only one; an error lists the choices when that is not one."""
    url = listing.dataset.url
    config = _pick(url, "config", config, sorted(listing.configs), listing.default or DEFAULT_CONFIG,
                   f"{url}:{{}}")
    splits = listing.configs[config]
    split = _pick(f"{url}:{config}", "split", split, sorted(splits), preferred_split, f"{url}:{config}/{{}}")
    paths = sorted({path for pattern in splits[split] for path in matching(listing.files, pattern)})
    if not paths:
        raise EmbtoolsError(f"{url}:{config}/{split}: no file of the repo matches {', '.join(splits[split])}")
    return split, paths


def _pick(where: str, what: str, given: str | None, names: list[str], preferred: str | None, example: str) -> str:
    """`given` when `names` has it; without one, `preferred` or the only name; otherwise an error that lists them."""
    if given is not None:
        if given not in names:
            raise EmbtoolsError(f"{where} has no {what} {given!r} (it has: {', '.join(names) or 'none'})")
        return given
    if preferred in names:
        return preferred
    if len(names) == 1:
        return names[0]
    if not names:
        raise EmbtoolsError(f"{where} has no {what} embtools can read (no record files)")
    raise EmbtoolsError(f"{where} has several {what}s ({', '.join(names)}): name one, e.g. {example.format(names[0])}")


def record_paths(listing: HubListing) -> list[str]:
    """The repo paths an argument reads records from: its PATH (a file or a glob), or its config's split."""
    dataset = listing.dataset
    if dataset.path is None:
        return split_files(listing, dataset.config, dataset.split)[1]
    paths = matching(listing.files, dataset.path)
    if not paths:
        shown = ", ".join(listing.files[:12]) + (", ..." if len(listing.files) > 12 else "")
        raise EmbtoolsError(f"{listing.file_url(dataset.path)}: no such file in the repo (it has: {shown})")
    return paths


def hub_record_files(argument: str) -> list[tuple[Path, str]]:
    """(cached copy, `hf://` name) of each file an `hf://datasets/...` argument reads records from, in order:
    downloaded now, so that a missing repo or file fails before anything else is done."""
    listing = list_repo(parse_hub_dataset(argument))
    paths = record_paths(listing)
    unreadable = [path for path in paths if not path.endswith(RECORD_SUFFIXES)]
    if unreadable:
        raise EmbtoolsError(f"{listing.file_url(unreadable[0])}: not a record file (embtools reads "
                            f"{', '.join(RECORD_SUFFIXES)})")
    return list(zip(listing.download(paths), map(listing.file_url, paths)))


def hub_name(path: Path) -> str | None:
    """`hf://datasets/ORG/NAME/PATH` for a file of the Hugging Face cache (or a link to one), None for any other:
    errors name the file in the repo, not its cached copy."""
    target = os.readlink(path) if os.path.islink(path) else str(path)
    found = _CACHED_FILE.search(Path(target).as_posix())
    return f"{HUB_DATASET_PREFIX}{found[1]}/{found[2]}/{found[4]}" if found else None
