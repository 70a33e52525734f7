"""The two failures every command reports as one line: bad input and runtime trouble."""


class EmbtoolsError(Exception):
    """A runtime failure (bad input, model, network): exit code 1, one line on stderr."""


class InputError(EmbtoolsError):
    """A record that cannot be used; `line` is its 1-based line number in the input, when known (`unit` says what
    is counted: a JSONL line, or a Parquet row)."""

    def __init__(self, message: str, line: int | None = None, unit: str = "line"):
        self.line = line
        super().__init__(f"{unit} {line}: {message}" if line is not None else message)
