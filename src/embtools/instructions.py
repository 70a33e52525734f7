"""E5 instructions: the one place the query template and the known task instructions live."""

from __future__ import annotations

QUERY_TEMPLATE = "Instruct: {instruction}\nQuery: {text}"

# Task instructions used by E5-mistral for MTEB (paper, Table 13; the same strings as mteb's E5 prompts).
TASK_INSTRUCTIONS = {
    "SciFact": "Given a scientific claim, retrieve documents that support or refute the claim",
    "STSBenchmark": "Retrieve semantically similar text.",
    "STS": "Retrieve semantically similar text.",
}


def with_instruction(text: str, instruction: str | None) -> str:
    """`Instruct: {instruction}\\nQuery: {text}` for a query with an instruction; the text itself otherwise."""
    if not instruction:
        return text
    return QUERY_TEMPLATE.format(instruction=instruction, text=text)


def document_text(text: str, title: str | None) -> str:
    """A document as mteb and BEIR join it: `title text`, stripped."""
    return f"{title} {text}".strip() if title else text
