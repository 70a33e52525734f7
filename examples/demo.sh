#!/usr/bin/env bash
# `make demo`: a real run of the commands that exist so far, on the built-in models and ../shared/data.
#   1. emb-encode the 3,000 STS Benchmark dev sentences (minilm-l6);
#   2. emb-index the SciFact corpus (minilm-l6) and search it with three test claims;
#   3. emb-eval minilm-l6 on STS Benchmark dev and a 1,000-document SciFact slice, and the decoder smollm2-135m
#      (E5 last-token pooling and instruction, not yet trained for embeddings) on STS Benchmark dev.
# The embedding cache means a second `make demo` re-encodes nothing in step 3.
# Knobs: DATA (default ../shared/data), OUT (default demo-out), MAX_CORPUS (default 1000).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA:-$here/../shared/data}"
OUT="${OUT:-$here/demo-out}"
MAX_CORPUS="${MAX_CORPUS:-1000}"
mkdir -p "$OUT"
stage() { printf '\n== %s\n' "$*" >&2; }
timed() { local start=$SECONDS; "$@"; printf '   (%ss)\n' $((SECONDS - start)) >&2; }

sts_texts() { python3 -c '
import json, sys
for i, line in enumerate(open(sys.argv[1])):
    pair = json.loads(line)
    for side in ("sentence1", "sentence2"):
        print(json.dumps({"id": f"{i}-{side[-1]}", "text": pair[side]}))' "$DATA/stsbenchmark/dev.jsonl"; }
beir() { python3 -c '
import itertools, json, sys
limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
for line in itertools.islice(open(sys.argv[1]), limit):
    r = json.loads(line)
    print(json.dumps({"id": r["_id"], "title": r.get("title") or None, "text": r["text"]}))' "$@"; }

stage "emb-encode: 3,000 STS Benchmark dev sentences"
sts_texts > "$OUT/sts-dev.texts.jsonl"
timed emb-encode -m minilm-l6 "$OUT/sts-dev.texts.jsonl" -o "$OUT/sts-dev.minilm.emb.jsonl"

stage "emb-index: the SciFact corpus (5,183 abstracts, minilm-l6), searched with 3 test claims"
beir "$DATA/scifact/corpus.jsonl" | timed emb-encode -m minilm-l6 -o "$OUT/scifact.minilm.emb.jsonl"
timed emb-index -o "$OUT/scifact.minilm.index" --overwrite "$OUT/scifact.minilm.emb.jsonl"
# minilm-l6 is not instruction-tuned, so its queries go in plain (as emb-eval does for it).
beir "$DATA/scifact/queries.jsonl" 3 | emb-encode -q -m minilm-l6 \
  | emb-index search --index "$OUT/scifact.minilm.index" -k 3 | tee "$OUT/search.hits.jsonl" | cut -c1-160

stage "emb-eval: minilm-l6 on STS Benchmark dev and SciFact (test queries, ${MAX_CORPUS}-document slice)"
timed emb-eval -m minilm-l6 "$DATA/stsbenchmark/dev.jsonl" "$DATA/scifact" --max-corpus "$MAX_CORPUS" \
  --output-folder "$OUT/results" > "$OUT/minilm.metrics.jsonl"
stage "emb-eval: smollm2-135m (untrained decoder, E5 pooling and instruction) on STS Benchmark dev"
timed emb-eval -m smollm2-135m "$DATA/stsbenchmark/dev.jsonl" --output-folder "$OUT/results" > "$OUT/smollm.metrics.jsonl"

stage "summary (main scores)"
python3 - "$OUT"/minilm.metrics.jsonl "$OUT"/smollm.metrics.jsonl <<'PY'
import json, sys
rows = [json.loads(line) for path in sys.argv[1:] for line in open(path)]
print(f"{'model':<16} {'task':<28} {'metric':<22} value")
for r in rows:
    if r["main"]:
        print(f"{r['model']:<16} {r['task']:<28} {r['metric']:<22} {r['value']:.4f}")
PY
echo "outputs in $OUT" >&2
