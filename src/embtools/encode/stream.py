"""Text records to embedding records, streamed in chunks and kept in input order, in one process or several.

Records are validated, grouped into chunks, and each chunk encoded as one length-sorted unit. Under several
processes chunk k goes to rank k mod N, and rank 0 gathers each round's chunks and yields them in order, so the
output streams in input order whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

import numpy as np

from embtools.distributed import gather_to_main, is_main_process, rank, world_size
from embtools.encode.encoder import Encoder
from embtools.errors import InputError
from embtools.instructions import document_text, with_instruction
from embtools.records.embeddings import encode_vector
from embtools.records.jsonl import Record, require_id, require_string

TEXT_FIELDS = ("id", "text", "title", "instruction")


def validate_text_record(record: Record) -> Record:
    """A text record: `id`, `text`, optional string `title` and `instruction`."""
    require_id(record)
    require_string(record, "text")
    require_string(record, "title", optional=True)
    require_string(record, "instruction", optional=True)
    return record


def text_record_validator(id_field: str = "id"):
    """The text-record validator for records whose id is in `id_field` (BEIR files call it `_id`): the value moves
    to `id`, so the embedding record has the contract's `id`."""
    if id_field == "id":
        return validate_text_record

    def validate(record: Record) -> Record:
        if id_field not in record:
            raise InputError(f'field "{id_field}" is missing')
        record["id"] = record.pop(id_field)
        return validate_text_record(record)
    return validate


def model_input(record: Record, instruction: str | None) -> str:
    """What the model reads: a query with its instruction (the record's own wins), or a document with its title."""
    text = document_text(record["text"], record.get("title"))
    return with_instruction(text, record.get("instruction") or instruction)


def chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def embedding_records(chunk: list[Record], vectors, encoding: str) -> list[Record]:
    """The chunk's records with their vectors: id, embedding, and any field a text record does not define."""
    return [{"id": r["id"], "embedding": encode_vector(v, encoding), **passed_through(r)}
            for r, v in zip(chunk, vectors)]


def passed_through(record: Record) -> Record:
    """The fields of a text record that its embedding record keeps: those a text record does not define."""
    return {k: val for k, val in record.items() if k not in TEXT_FIELDS and k != "embedding"}


def output_record(record: Record) -> Record:
    """A text record as its embedding record will be, without the embedding: `id` and the fields passed through."""
    return {"id": record["id"], **passed_through(record)}


def shard(records: Iterable[Record], index: int, count: int) -> Iterator[Record]:
    """Shard `index` of `count`: the records at positions index, index + count, ... (0-based, counting the valid
    records in input order), as emb-generate's --shard does; the shards are disjoint and together hold them all."""
    return islice(records, index, None, count)


def embedded_chunks(records: Iterable[Record], encoder: Encoder, instruction: str | None = None,
                    chunk_size: int = 1024) -> Iterator[tuple[list[Record], np.ndarray]]:
    """(the chunk's records, its float32 vectors) per chunk, in input order. Under WORLD_SIZE > 1 every rank must
    call this with the same records; rank 0 yields them all, the other ranks yield nothing."""
    if world_size() == 1:
        for chunk in chunks(records, chunk_size):
            yield chunk, encoder.encode([model_input(r, instruction) for r in chunk])
        return
    yield from _embed_distributed(records, encoder, instruction, chunk_size)


def embed_records(records: Iterable[Record], encoder: Encoder, instruction: str | None = None,
                  encoding: str = "float", chunk_size: int = 1024) -> Iterator[Record]:
    """Embedding records in input order (on rank 0; see embedded_chunks)."""
    for chunk, vectors in embedded_chunks(records, encoder, instruction, chunk_size):
        yield from embedding_records(chunk, vectors, encoding)


def _embed_distributed(records, encoder, instruction, chunk_size) -> Iterator[tuple[list[Record], np.ndarray]]:
    size, me = world_size(), rank()
    stream = chunks(records, chunk_size)
    while True:
        round_chunks = list(islice(stream, size))
        mine = round_chunks[me] if me < len(round_chunks) else []
        gathered = gather_to_main((mine, encoder.encode([model_input(r, instruction) for r in mine])))
        if is_main_process():
            yield from (part for part in gathered if part[0])
        if len(round_chunks) < size:
            return
