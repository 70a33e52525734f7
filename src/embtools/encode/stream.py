"""Text records to embedding records, streamed in chunks and kept in input order, in one process or several.

Records are validated, grouped into chunks, and each chunk encoded as one length-sorted unit. Under several
processes chunk k goes to rank k mod N, and rank 0 gathers each round's chunks and yields them in order, so the
output streams in input order whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

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


def embed_chunk(encoder: Encoder, chunk: list[Record], instruction: str | None, encoding: str) -> list[Record]:
    """Embedding records for one chunk: id, embedding, and any field a text record does not define."""
    vectors = encoder.encode([model_input(r, instruction) for r in chunk])
    return [
        {"id": r["id"], "embedding": encode_vector(v, encoding),
         **{k: val for k, val in r.items() if k not in TEXT_FIELDS and k != "embedding"}}
        for r, v in zip(chunk, vectors)
    ]


def embed_records(records: Iterable[Record], encoder: Encoder, instruction: str | None = None,
                  encoding: str = "float", chunk_size: int = 1024) -> Iterator[Record]:
    """Embedding records in input order. Under WORLD_SIZE > 1 every rank must call this with the same records;
    rank 0 yields them all, the other ranks yield nothing."""
    if world_size() == 1:
        for chunk in chunks(records, chunk_size):
            yield from embed_chunk(encoder, chunk, instruction, encoding)
        return
    yield from _embed_distributed(records, encoder, instruction, encoding, chunk_size)


def _embed_distributed(records, encoder, instruction, encoding, chunk_size) -> Iterator[Record]:
    size, me = world_size(), rank()
    stream = chunks(records, chunk_size)
    while True:
        round_chunks = list(islice(stream, size))
        mine = round_chunks[me] if me < len(round_chunks) else []
        gathered = gather_to_main(embed_chunk(encoder, mine, instruction, encoding))
        if is_main_process():
            for part in gathered:
                yield from part
        if len(round_chunks) < size:
            return

