"""Generate: the paper's synthetic data, behind emb-brainstorm and emb-generate.

In: task types or task records, and a generator (an OpenAI-compatible endpoint or the local model).
- `prompt_templates` and `placeholders`: the paper's templates and the values their placeholders are drawn from.
- `jobs`: records -> chat requests (`Job`), and answers -> task or example records.
- `chat_request`, `chat_client`, `local_generator`: what a generator is asked and answers; HTTP and local backends.
- `response_cache`: answered requests in SQLite, so a re-run pays only for what is missing.
- `job_runner`: cache first, then C requests in flight, budgets, answers in input order.
- `answer_parsing`: strict parsing of what the LLM wrote.
- `generation_run`: what both commands share: generator choice, outcome writing, dry runs, summaries.
Out: task records (brainstorm) and example records (generate), and rejected answers with a reason.
"""
