"""embtools: Unix-style commands that build text-embedding models the E5-mistral way.

One package per stage, each `__init__` saying what flows through it: `records` (JSONL, files, data sets), `models`,
`generate`, `filter`, `train`, `encode`, `index`, `evaluate`. What every stage shares stays here: `errors` (the two
failures a command reports), `cli` (error lines, exit codes, logging), `command_runner` (read -> validate -> write,
rejects and the summary line, for all seven commands), `distributed` (ranks, devices, the launcher), `home`
(EMBTOOLS_HOME), `instructions` (task types and E5 instructions), `languages` (the XLM-R table). `commands/` holds
one thin click module per command.
"""

__version__ = "0.1.0"
