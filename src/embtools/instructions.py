"""E5 task types and instructions: the one place the query template, the six task types and the known task
instructions live."""

from __future__ import annotations

QUERY_TEMPLATE = "Instruct: {instruction}\nQuery: {text}"

# The paper's six groups of synthetic data (the `task_type` of task and example records).
TASK_TYPES = ("short-long", "long-short", "short-short", "long-long", "sts", "bitext")
TWO_STEP_TYPES = TASK_TYPES[:4]  # brainstorm first, then one example per task
ONE_STEP_TYPES = TASK_TYPES[4:]  # no brainstorm step

# The fixed instructions of the two symmetric groups (paper, Table 16); STS_INSTRUCTION is also the one E5-mistral
# uses for every MTEB STS task (Table 13).
STS_INSTRUCTION = "Retrieve semantically similar text."
BITEXT_INSTRUCTION = "Retrieve parallel sentences."

# Task instructions used by E5-mistral for MTEB (paper, Table 13; the same strings as mteb's E5 prompts).
TASK_INSTRUCTIONS = {
    "SciFact": "Given a scientific claim, retrieve documents that support or refute the claim",
    "STSBenchmark": STS_INSTRUCTION,
    "STS": STS_INSTRUCTION,
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
