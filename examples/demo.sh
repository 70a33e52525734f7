#!/usr/bin/env bash
# `make demo`: the whole method on this machine, offline, in about half an hour on 2 CPU cores.
#   brainstorm -> generate (the embedded SmolLM2 generator, or OPENAI_BASE_URL when set) -> filter (decontaminated
#   against the evaluation sets) -> labeled SciFact + STS Benchmark train data (mined negatives) -> train (smollm2-135m,
#   LoRA, InfoNCE) -> eval before/after with minilm-l6 as the reference -> encode -> index -> search.
# Each stage is a file target of examples/Makefile, run here one by one and timed; a re-run (or a run after an
# interruption) skips what is done and resumes generation from its response cache.
# Knobs (make variables, e.g. `make demo N_TASKS=4 STEPS=80`): see examples/Makefile. OUT defaults to demo-out/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$here/demo-out}"
pipeline=(make --no-print-directory -f "$here/examples/Makefile" "OUT=$OUT")
stages=(
  "brainstorm:tasks.jsonl" "generate:examples.jsonl" "filter:filtered.jsonl" "labeled SciFact:labeled-scifact.jsonl"
  "labeled STS:labeled-sts.jsonl"
  "eval reference:eval/reference.jsonl" "eval before:eval/before.jsonl" "train:train.json"
  "eval after:eval/after.jsonl" "encode:corpus.emb.jsonl" "index:index/index.json" "search:search.hits.jsonl"
)
timings=()
total_start=$SECONDS
for stage in "${stages[@]}"; do
  name="${stage%%:*}" target="$OUT/${stage#*:}"
  if "${pipeline[@]}" -q "$target" 2>/dev/null; then
    timings+=("$name|done before")
    continue
  fi
  printf '\n== %s -> %s\n' "$name" "$target" >&2
  start=$SECONDS
  "${pipeline[@]}" "$target"
  timings+=("$name|$((SECONDS - start)) s")
done

printf '\n== time per stage\n\n| stage | time |\n|---|---|\n'
for row in "${timings[@]}"; do printf '| %s | %s |\n' "${row%%|*}" "${row#*|}"; done
printf '| total | %s s |\n' $((SECONDS - total_start))
printf '\n== before/after (%s)\n\n' "$OUT/report.md"
sed -n '/^| task/,/^$/p' "$OUT/report.md"
printf '\nsearch with the trained model (%s):\n' "$OUT/search.hits.jsonl"
cut -c1-150 "$OUT/search.hits.jsonl"
printf '\nreport: %s (chart: %s), training log: %s\n' "$OUT/report.md" "$OUT/report.png" "$OUT/model/train_log.jsonl"
