"""E5 instructions: the one place the query template and the known task instructions live."""

from __future__ import annotations

QUERY_TEMPLATE = "Instruct: {instruction}\nQuery: {text}"

# Task instructions used by E5-mistral for MTEB (paper, Table 13; the same strings as mteb's E5 prompts).
TASK_INSTRUCTIONS = {
    "SciFact": "Given a scientific claim, retrieve documents that support or refute the claim",
    "STSBenchmark": "Retrieve semantically similar text.",
    "STS": "Retrieve semantically similar text.",
}


# Task names for DATA paths, by lower-cased folder or file stem (`data/scifact` -> SciFact).
TASK_NAMES_BY_PATH = {
    "scifact": "SciFact",
    "stsbenchmark": "STSBenchmark",
    "sts-benchmark": "STSBenchmark",
    "stsb": "STSBenchmark",
}


def model_takes_instructions(is_decoder: bool, prompts: dict[str, str] | None) -> bool:
    """Whether a model was trained to read E5 instructions: decoders embedded the E5 way, and sentence-transformers
    folders that declare prompts. Plain encoders such as all-MiniLM-L6-v2 read their texts as they are."""
    return is_decoder or bool(prompts)


def with_instruction(text: str, instruction: str | None) -> str:
    """`Instruct: {instruction}\\nQuery: {text}` for a query with an instruction; the text itself otherwise."""
    if not instruction:
        return text
    return QUERY_TEMPLATE.format(instruction=instruction, text=text)


def document_text(text: str, title: str | None) -> str:
    """A document as mteb and BEIR join it: `title text`, stripped."""
    return f"{title} {text}".strip() if title else text
