"""A BEIR data set on the hub as a BEIR folder: `hf://datasets/ORG/NAME` -> a folder that records.datasets reads.

The two layouts the hub holds BEIR data in:
- BEIR's own (BeIR/scifact): `corpus.jsonl.gz` and `queries.jsonl.gz` at the root (or `corpus` and `queries` configs
  in the card), the qrels in the sibling repo `ORG/NAME-qrels` as `test.tsv`, `train.tsv`...;
- mteb's (mteb/scifact): configs `corpus` and `queries`, and the qrels (`query-id`, `corpus-id`, `score`) as the
  `default` config's splits; each a JSONL or Parquet file.
A repo's own `qrels/<split>.tsv` is read as well. For a `corpus` or `queries` config with several splits (mteb
writes one per evaluated split), the `test` split is read.

The files are downloaded into the Hugging Face cache (records.hub_datasets); the folder handed to the one BEIR reader
(records.datasets) holds links to them, named as a BEIR folder's files are: `corpus.jsonl.gz`, `queries.parquet`,
`qrels/test.tsv`. It lives in a temporary folder named after the data set (`scifact`, for its task name) that is
removed when the process ends; errors name the files in the repo (records.hub_datasets.hub_name).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from embtools.errors import EmbtoolsError
from embtools.records.datasets import CORPUS, EVALUATION_SPLIT, QRELS, QUERIES
from embtools.records.formats import RECORD_SUFFIXES, record_stem
from embtools.records.hub_datasets import (
    DEFAULT_CONFIG,
    HubDataset,
    HubListing,
    list_repo,
    matching,
    parse_hub_dataset,
    split_files,
)

_PARTS = (record_stem(CORPUS), record_stem(QUERIES))
_QRELS_CONFIGS = (DEFAULT_CONFIG, QRELS)
_QRELS_TSV = ".tsv"


# The folders made in this process: the data set (`hf://datasets/ORG/NAME`, how messages and `meta` name the folder)
# and the commit each was made from.
_MADE_FOR: dict[Path, tuple[str, str]] = {}


def hub_beir_folder(argument: str) -> Path:
    """A local BEIR folder of links to the cached files of the hub data set `argument` (downloaded now)."""
    dataset = parse_hub_dataset(argument)
    if dataset.path or dataset.config:
        raise EmbtoolsError(f"{argument}: a BEIR data set on the hub is named by its repo alone "
                            "(hf://datasets/ORG/NAME[@REVISION])")
    listing = list_repo(dataset)
    files = {part: (listing, _part_file(listing, part)) for part in _PARTS}
    files |= {f"{QRELS}/{split}": found for split, found in _qrels(listing).items()}
    folder = _linked_folder(dataset.name, files)
    _MADE_FOR[folder] = (dataset.url, listing.snapshot.name)  # a snapshot folder is named by its commit
    return folder


def made_for(folder: Path) -> tuple[str, str] | None:
    """(`hf://datasets/ORG/NAME`, commit) for a folder hub_beir_folder made, None for any other."""
    return _MADE_FOR.get(Path(folder))


def _part_file(listing: HubListing, part: str) -> str:
    """The repo path of the corpus or the queries: its config's file, or `corpus.jsonl[.gz|.zst]`/`.parquet`."""
    if listing.from_card and part in listing.configs:
        return _single(listing, part, *split_files(listing, part, None, EVALUATION_SPLIT))
    found = [path for path in listing.files if record_stem(path) == part and path.endswith(RECORD_SUFFIXES)]
    if not found:
        raise EmbtoolsError(f"{listing.dataset.url} is not a BEIR data set: it has no {part} config and no "
                            f"{part}.jsonl (or .jsonl.gz, .parquet) at its root")
    return found[0]


def _single(listing: HubListing, config: str, split: str, paths: list[str]) -> str:
    if len(paths) > 1:
        raise EmbtoolsError(f"{listing.dataset.url}:{config}/{split} is in {len(paths)} files; embtools reads each "
                            "part of a BEIR data set from one file")
    return paths[0]


def _qrels(listing: HubListing) -> dict[str, tuple[HubListing, str]]:
    """split -> (repo listing, repo path) of every qrels file: the `default` (or `qrels`) config's splits, the
    repo's qrels/*.tsv, or else the sibling repo ORG/NAME-qrels's *.tsv."""
    config = next((c for c in _QRELS_CONFIGS if listing.from_card and c in listing.configs), None)
    if config:
        return {split: (listing, _single(listing, config, *split_files(listing, config, split)))
                for split in listing.configs[config]}
    found = _tsv_files(listing, "qrels/*.tsv")
    if found:
        return found
    sibling = list_repo(HubDataset(f"{listing.dataset.repo_id}-qrels", listing.dataset.revision))
    found = _tsv_files(sibling, "*.tsv") or _tsv_files(sibling, "qrels/*.tsv")
    if not found:
        raise EmbtoolsError(f"{listing.dataset.url}: no qrels (no default config, no qrels/*.tsv, and "
                            f"{sibling.dataset.url} has no *.tsv)")
    return found


def _tsv_files(listing: HubListing, pattern: str) -> dict[str, tuple[HubListing, str]]:
    return {Path(path).name[:-len(_QRELS_TSV)]: (listing, path) for path in matching(listing.files, pattern)}


def _linked_folder(name: str, files: dict[str, tuple[HubListing, str]]) -> Path:
    """A temporary `name/` folder of links `corpus.jsonl.gz`, `qrels/test.tsv`... to the cached files, each repo's
    files downloaded in one go."""
    folder = Path(tempfile.mkdtemp(prefix="embtools-hub-")) / name
    atexit.register(shutil.rmtree, folder.parent, ignore_errors=True)
    repos = {listing.dataset: listing for listing, _ in files.values()}
    for dataset, listing in repos.items():
        links = [(link, path) for link, (owner, path) in files.items() if owner.dataset == dataset]
        for (link, path), target in zip(links, listing.download([path for _, path in links])):
            destination = folder / (link + _suffix(path))
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.symlink_to(target)
    return folder


def _suffix(path: str) -> str:
    """`.jsonl.gz` of `corpus/corpus.jsonl.gz`, `.tsv` of `qrels/test.tsv`."""
    return _QRELS_TSV if path.endswith(_QRELS_TSV) else path[len(record_stem(path)):]
