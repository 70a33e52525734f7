"""FAISS indexes of embedding records: build, append, load and search an index folder.

The folder's format (index.faiss, ids.jsonl, index.json) and its checks: index/folder.py.

Vectors are L2-normalized on insertion and queries before search, so a score is the cosine similarity.
Input streams (records, or blocks of rows: index/vector_blocks.py) go in blocks of the add batch: a trainable index
(IVF, PQ, SQ) trains on the first `train_size` vectors, which it then adds, and the rest are added block by block;
nothing beyond the training sample and one block is held outside the index itself.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from pathlib import Path
from typing import IO

import numpy as np

from embtools.errors import EmbtoolsError, InputError
from embtools.index import binary_index as binary
from embtools.index.budgeted_build import Budget, build_within_budget
from embtools.index.defaults import ADD_BATCH, DEFAULT_EF_SEARCH, DEFAULT_FACTORY, DEFAULT_TRAIN_SIZE, SEARCH_BATCH
from embtools.index.embedding_checks import EmbeddingChecker, Id, checked_records
from embtools.index.faiss_setup import (
    faiss_reason,
    new_index,
    require_faiss,
    require_gpu,
    set_parameter,
    to_gpu,
    train,
)
from embtools.index.folder import (
    FORMAT,
    FORMAT_VERSION,
    IDS_FILE,
    INDEX_FILE,
    META_FILE,
    read_ids,
    read_meta,
    write_meta,
)
from embtools.index.vector_blocks import VectorBlock, blocks_of
from embtools.records.atomic import atomic_dir, check_output_dir
from embtools.records.jsonl import Record
from embtools.records.vector_precision import stored_width

try:
    import faiss
except ImportError:  # neither extra (`cpu`: faiss-cpu, `gpu`: faiss-gpu) is installed; require_faiss says so
    faiss = None

log = logging.getLogger("embtools")


def _add(index: faiss.Index, block: VectorBlock, ids_out: IO[bytes]) -> int:
    """Add the block's vectors to the index and its ids to ids_out, in the same order; return how many."""
    index.add(block.normalized())
    block.write_ids(ids_out)
    return len(block)


def _training_blocks(blocks: Iterator[VectorBlock], size: int) -> tuple[list[VectorBlock], Iterator[VectorBlock]]:
    """(the first `size` rows as blocks, the blocks after them): a block across the boundary is cut in two."""
    sample: list[VectorBlock] = []
    count = 0
    for block in blocks:
        if count + len(block) >= size:
            cut = size - count
            sample.append(block[:cut])
            return sample, chain([block[cut:]] if cut < len(block) else [], blocks)
        sample.append(block)
        count += len(block)
    return sample, iter(())


def _fill(index: faiss.Index, blocks: Iterator[VectorBlock], ids_out: IO[bytes], train_size: int
          ) -> tuple[int, int]:
    """Train the index if it needs it (on the first train_size rows), then add every row.
    Returns (added, trained on)."""
    added = trained_on = 0
    if not index.is_trained:
        sample, blocks = _training_blocks(blocks, train_size)
        train(index, np.concatenate([block.normalized() for block in sample]))
        trained_on = sum(len(block) for block in sample)
        added = sum(_add(index, block, ids_out) for block in sample)
        del sample
    added += sum(_add(index, block, ids_out) for block in blocks)
    return added, trained_on


def _build(blocks: Iterator[VectorBlock], folder: Path, dim: int, factory: str, is_binary: bool, gpu: bool,
           train_size: int) -> tuple[faiss.Index, int, int]:
    """(index, count, trained_on) of the factory's index filled with the blocks; their ids go to folder/ids.jsonl."""
    index = binary.new_binary_index(dim, factory, DEFAULT_EF_SEARCH) if is_binary else new_index(dim, factory)
    with open(folder / IDS_FILE, "wb") as ids_out:
        working = to_gpu(index) if gpu else index
        count, trained_on = _fill(working, blocks, ids_out, train_size)
    return (faiss.index_gpu_to_cpu(working) if gpu else index), count, trained_on


# --- writing the folder ------------------------------------------------------------------------------------------

def _write_folder(folder: Path, index: faiss.Index, meta: dict) -> None:
    """Write index.faiss, then index.json with the size and checksum of index.faiss and ids.jsonl."""
    if meta.get("binary"):
        binary.write_binary(index, folder / INDEX_FILE)
    else:
        faiss.write_index(index, str(folder / INDEX_FILE))
    if "choice" in meta:  # chosen by --max-memory: what the estimate came to
        meta["choice"]["actual_bytes"] = (folder / INDEX_FILE).stat().st_size
    write_meta(folder, meta)


def _search_defaults(index: faiss.Index) -> dict:
    """The search parameters stored in the index: nprobe for IVF, efSearch for HNSW."""
    if isinstance(index, faiss.IndexBinary):
        return binary.binary_search_defaults(index)
    ivf = faiss.try_extract_index_ivf(index)
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    return {**({"nprobe": ivf.nprobe} if ivf is not None else {}),
            **({"efSearch": hnsw.efSearch} if hnsw is not None else {})}


def _meta(index: faiss.Index, *, model: str | None, dim: int, factory: str, count: int, trained_on: int,
          precision: str = "float32") -> dict:
    is_binary = precision == "ubinary"
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model, "dim": dim,
            "metric": "hamming" if is_binary else "inner_product", "normalized": not is_binary,
            "score": "1 - 2 * hamming distance / dim" if is_binary else
                     "cosine similarity (L2-normalized on insertion)",
            "factory": binary.binary_factory(factory) if is_binary else factory, "count": count,
            "trained_on": trained_on,
            "search_defaults": _search_defaults(index), "faiss_version": faiss.__version__,
            "precision": precision, "binary": is_binary}


def _record_model(record: Record) -> str | None:
    meta = record.get("meta")
    model = meta.get("model") if isinstance(meta, dict) else None
    return model if isinstance(model, str) else None


# --- the public API --------------------------------------------------------------------------------------------------

def build_index(records: Iterable[Record | VectorBlock], out_dir: Path, factory: str = DEFAULT_FACTORY, *,
                overwrite: bool = False, model: str | None = None, train_size: int = DEFAULT_TRAIN_SIZE,
                gpu: bool = False, checker: EmbeddingChecker | None = None, batch_size: int = ADD_BATCH,
                precision: str = "float32", budget: Budget | None = None) -> dict:
    """Build an index folder at out_dir from embedding records (float lists or base64), atomically; return its meta.

    `precision` is the input's (records/vector_precision.py): ubinary records (packed uint8 bits) build a binary
    index of the float factory's binary form (index/binary_index.py), every other a float index.

    `records` are checked here (errors name the record's position), unless `checker` is the EmbeddingChecker they
    already went through (as read_records' validator: errors then name lines, and --skip-invalid can skip); then
    the stream may also hold VectorBlocks that passed it (index/inputs.py's bulk path). `model` defaults to the
    first record's meta.model. InputError for bad or no input; EmbtoolsError for an existing out_dir without
    `overwrite`, a bad factory string or too few vectors to train on.
    """
    require_faiss()
    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite)
    if gpu:
        require_gpu()
    blocks = blocks_of(records if checker else checked_records(records, EmbeddingChecker()), batch_size)
    first = next(blocks, None)
    if first is None:
        raise InputError("no embeddings to index")
    is_binary = precision == "ubinary"
    if is_binary != first.binary:
        raise InputError(f"{precision} input but {first.vectors.dtype} vectors")
    dim = first.vectors.shape[1] * (8 if is_binary else 1)
    if budget is not None and (is_binary or gpu):
        raise EmbtoolsError("--max-memory chooses among float indexes on the CPU: not for ubinary input or --gpu")
    if is_binary and gpu:
        raise EmbtoolsError("--gpu builds float indexes only; build binary ones on the CPU")
    with atomic_dir(out_dir, overwrite) as folder:
        if budget is not None:
            index, count, trained_on, choice = build_within_budget(chain([first], blocks), folder, budget,
                                                                   train_size=train_size, batch_size=batch_size)
            factory = choice["factory"]
        else:
            index, count, trained_on = _build(chain([first], blocks), folder, dim, factory, is_binary, gpu,
                                              train_size)
        meta = _meta(index, model=model or _record_model(first.records[0]), dim=dim, factory=factory, count=count,
                     trained_on=trained_on, precision=precision)
        meta.update({"choice": choice} if budget is not None else {})
        _write_folder(folder, index, meta)
    return meta


def add_to_index(records: Iterable[Record | VectorBlock], index_dir: Path, *, checker: EmbeddingChecker | None = None,
                 batch_size: int = ADD_BATCH) -> dict:
    """Append embedding records to an existing index folder, atomically (a new folder replaces it); return its meta.

    Vectors must have the index's dimension and ids must be new. Without `checker` the records are checked here;
    with one, it must have been made by `checker_for_index(index_dir)` and already applied (to records and
    VectorBlocks alike).
    """
    require_faiss()
    index_dir = Path(index_dir)
    meta = read_meta(index_dir, verify=checker is None)  # checker_for_index verified the folder
    if checker is None:
        records = checked_records(records, EmbeddingChecker(meta["dim"], read_ids(index_dir, meta["count"])))
    blocks = blocks_of(records, batch_size)
    first = next(blocks, None)
    if first is None:
        raise InputError("no embeddings to add")
    path = index_dir / INDEX_FILE
    index = binary.read_binary(path) if meta.get("binary") else faiss.read_index(str(path))
    if bool(meta.get("binary")) != first.binary:
        raise InputError(f"this index holds {'binary' if meta.get('binary') else 'float'} vectors; "
                         "add vectors of the same kind")
    with atomic_dir(index_dir, overwrite=True) as folder:
        shutil.copyfile(index_dir / IDS_FILE, folder / IDS_FILE)
        with open(folder / IDS_FILE, "ab") as ids_out:
            added = sum(_add(index, block, ids_out) for block in chain([first], blocks))
        meta = {**meta, "count": meta["count"] + added, "faiss_version": faiss.__version__}
        _write_folder(folder, index, meta)
    return meta


def checker_for_index(index_dir: Path) -> EmbeddingChecker:
    """The checker records to add to an index folder must pass: its dimension, none of its ids."""
    meta = read_meta(Path(index_dir))
    is_binary = bool(meta.get("binary"))
    return EmbeddingChecker(stored_width("ubinary", meta["dim"]) if is_binary else meta["dim"],
                            read_ids(Path(index_dir), meta["count"]), binary=is_binary)


def _read_faiss(path: Path, mmap: bool) -> faiss.Index:
    """faiss.read_index, memory-mapped where the index type allows it, read into memory otherwise."""
    if not path.is_file():
        raise EmbtoolsError(f"{path.parent} is incomplete: {INDEX_FILE} is missing")
    if mmap:
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            log.debug("this index type cannot be memory-mapped; reading it into memory")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise EmbtoolsError(f"{path} is corrupt: {faiss_reason(exc)}") from None


class VectorIndex:
    """A loaded index folder: `.index` (faiss), `.ids` (row order), `.meta` (index.json), `.dim`, `.ntotal`."""

    def __init__(self, index: faiss.Index, ids: list[Id], meta: dict):
        self.index, self.ids, self.meta = index, ids, meta

    @classmethod
    def load(cls, index_dir: Path, *, mmap: bool = True, nprobe: int | None = None, ef_search: int | None = None,
             gpu: bool = False) -> VectorIndex:
        """Open an index folder for search; nprobe / ef_search override the setting `emb-index build --max-memory`
        chose (index.json's choice.search_params), which overrides the defaults stored in the index."""
        require_faiss()
        index_dir = Path(index_dir)
        meta = read_meta(index_dir)
        ids = read_ids(index_dir, meta["count"])
        is_binary = bool(meta.get("binary"))
        path = index_dir / INDEX_FILE
        index = binary.read_binary(path) if is_binary else _read_faiss(path, mmap and not gpu)
        if index.ntotal != len(ids) or index.d != meta["dim"]:
            raise EmbtoolsError(f"{index_dir} is inconsistent: {INDEX_FILE} holds {index.ntotal} {index.d}-d "
                                f"vectors, {META_FILE} says {meta['count']} {meta['dim']}-d")
        set_search = binary.set_binary_parameter if is_binary else set_parameter
        chosen = (meta.get("choice") or {}).get("search_params") or {}  # what --max-memory measured and chose
        set_search(index, "nprobe", nprobe or chosen.get("nprobe"))
        set_search(index, "efSearch", ef_search or chosen.get("efSearch"))
        if gpu and is_binary:
            raise EmbtoolsError("--gpu searches float indexes only")
        if gpu:
            require_gpu()
            index = to_gpu(index)
        return cls(index, ids, meta)

    @property
    def dim(self) -> int:
        return self.index.d

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, k: int, batch_size: int = SEARCH_BATCH) -> list[list[tuple[Id, float]]]:
        """For each query row, up to k (id, cosine score) pairs, best first; queries are normalized first (for a
        binary index: binarized, and scored as index/binary_index.py says)."""
        if self.meta.get("binary"):
            return self._search_binary(np.atleast_2d(queries), k, batch_size)
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise InputError(f"dimension {self.dim} expected, got {queries.shape[1]}")
        results: list[list[tuple[Id, float]]] = []
        for start in range(0, len(queries), batch_size):
            batch = np.array(queries[start:start + batch_size], dtype=np.float32, order="C")
            faiss.normalize_L2(batch)
            scores, rows = self.index.search(batch, k)
            results.extend([(self.ids[r], float(s)) for s, r in zip(srow, rrow) if r >= 0]
                           for srow, rrow in zip(scores, rows))
        return results

    def _search_binary(self, queries: np.ndarray, k: int, batch_size: int) -> list[list[tuple[Id, float]]]:
        packed = binary.packed_queries(queries, self.dim)
        results: list[list[tuple[Id, float]]] = []
        for start in range(0, len(packed), batch_size):
            distances, rows = self.index.search(packed[start:start + batch_size], k)
            scores = binary.binary_scores(distances, self.dim)
            results.extend([(self.ids[r], float(s)) for s, r in zip(srow, rrow) if r >= 0]
                           for srow, rrow in zip(scores, rows))
        return results


def search_records(records: Iterable[Record], index: VectorIndex, k: int, *, checker: EmbeddingChecker | None = None,
                   batch_size: int = SEARCH_BATCH) -> Iterator[Record]:
    """Hits records, one per query embedding record, in input order: `id` (the query's), `hits`: [{id, score}]
    best first, then the query's other fields except `embedding`. Queries are read and searched batch by batch.
    Without `checker` the queries are checked here (dimension of the index; repeated ids allowed)."""
    dim = None if index.meta.get("binary") else index.dim  # a binary index takes float or packed queries
    rows = iter(records) if checker else checked_records(records, EmbeddingChecker(dim, unique=False))
    while batch := list(islice(rows, batch_size)):
        found = index.search(np.stack([row["embedding"] for row in batch]), k, batch_size)
        for row, hits in zip(batch, found):
            yield {"id": row["id"], "hits": [{"id": hit, "score": score} for hit, score in hits],
                   **{key: value for key, value in row.items() if key not in ("id", "hits", "embedding")}}
