"""The two failures every command reports as one line: bad input and runtime trouble."""


class EmbtoolsError(Exception):
    """A runtime failure (bad input, model, network): exit code 1, one line on stderr."""


class InputError(EmbtoolsError):
    """A record that cannot be used; `line` is its 1-based line number in the input, when known."""

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)
