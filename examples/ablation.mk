# The paper's first question (issue 18.1): what is the synthetic data worth on its own? Included by examples/Makefile:
#
#   make -j2 -f examples/Makefile ablation        # into pipeline-out/ablation/, offline; on 2 CPU cores about 1.6 hours
#                                                 # with steps side by side (docs/results.md), over 2 hours one by one
#   make -f examples/Makefile ablation BASE_URL=http://localhost:8000/v1 LLM_MODEL=Qwen/Qwen2.5-7B-Instruct
#
# One base, one step budget, three training sets: (a) synthetic only, (b) labeled only (SciFact train + STS Benchmark
# train, the demo's), (c) both. Each model and the untrained base are evaluated on the same held-out tasks: SciFact
# test (slice), STS Benchmark dev (slice), a classification task and a retrieval task made from STS Benchmark dev
# (examples/heldout_tasks.py; no training set comes from it). The synthetic set covers all six task groups: four
# brainstormed asymmetric groups, sts and bitext, generated once (the response cache keeps every answer) and filtered;
# each generation log ends with its calls, tokens and seconds, summed in $(ABL)/generation-cost.md.

ABL ?= $(OUT)/ablation
ABL_GROUPS := short-long long-short short-short long-long
# Brainstorm calls per asymmetric group (about 20 tasks each); one example per task. sts and bitext: examples each.
ABL_LISTS ?= 16
ABL_SYMMETRIC ?= 70
ABL_BITEXT_LANGUAGES ?= $(if $(BASE_URL),,en,de,fr,es)
ABL_GEN_ARGS ?= $(LOCAL_SAMPLING) $(if $(BASE_URL),--concurrency $(CONCURRENCY),--max-new-tokens 160 --concurrency 16)
ABL_STEPS ?= 48
ABL_TRAIN_ARGS ?= --lr 1e-3 --warmup-steps 5 --max-steps $(ABL_STEPS) --batch-size 8 --max-length 64
ABL_EVAL_ARGS ?= --max-corpus 1000 --max-queries 150 --max-length 64 --max-pairs 300
ABL_HELDOUT := $(ABL)/heldout/STSDevGenreClassification $(ABL)/heldout/STSDevParaphraseRetrieval
ABL_MODELS := untrained synthetic labeled both
ABL_LLM = --model $(LLM_MODEL) $(if $(BASE_URL),--base-url $(BASE_URL)) --seed $(SEED) --cache $(ABL)/llm-cache
# Held-out instructions (E5 style; unknown local folders have none of their own).
ABL_INSTRUCTION_STSDevGenreClassification := Classify the given sentence by its genre: news, image caption or forum post
ABL_INSTRUCTION_STSDevParaphraseRetrieval := Given a sentence, retrieve sentences that are semantically equivalent to it
# Logged with its wall time: stderr goes to $@.log (its end is shown if the step fails), then "seconds: N".
LOGGED = start=$$(date +%s);
LOG_END = 2> $@.log || { tail -n 5 $@.log >&2; exit 1; }; echo "seconds: $$(( $$(date +%s) - start ))" >> $@.log

.PHONY: ablation ablation-data
ablation: $(ABL)/report.md
ablation-data: $(ABL)/synthetic.jsonl

$(ABL)/.dir:
	mkdir -p $(ABL)/eval && touch $@

$(ABL)/tasks-%.jsonl: | $(ABL)/.dir
	$(LOGGED) emb-brainstorm --task-type $* -n $(ABL_LISTS) $(ABL_LLM) $(LOCAL_SAMPLING) \
	  $(if $(BASE_URL),,--max-new-tokens 256) -o $@ $(LOG_END)

$(ABL)/examples-%.jsonl: $(ABL)/tasks-%.jsonl
	$(LOGGED) emb-generate $(ABL_LLM) $(ABL_GEN_ARGS) $(if $(LANGUAGES),--languages $(LANGUAGES)) \
	  --rejects $(ABL)/generate-$*.rejects.jsonl -o $@ $< $(LOG_END)

$(ABL)/examples-sts.jsonl: | $(ABL)/.dir
	$(LOGGED) emb-generate --task-type sts -n $(ABL_SYMMETRIC) $(ABL_LLM) $(ABL_GEN_ARGS) \
	  $(if $(LANGUAGES),--languages $(LANGUAGES)) --rejects $(ABL)/generate-sts.rejects.jsonl -o $@ $(LOG_END)

$(ABL)/examples-bitext.jsonl: | $(ABL)/.dir
	$(LOGGED) emb-generate --task-type bitext -n $(ABL_SYMMETRIC) $(ABL_LLM) $(ABL_GEN_ARGS) \
	  $(if $(ABL_BITEXT_LANGUAGES),--languages $(ABL_BITEXT_LANGUAGES)) \
	  --rejects $(ABL)/generate-bitext.rejects.jsonl -o $@ $(LOG_END)

ABL_EXAMPLES := $(foreach g,$(ABL_GROUPS) sts bitext,$(ABL)/examples-$(g).jsonl)
.SECONDARY: $(ABL_GROUPS:%=$(ABL)/tasks-%.jsonl)

$(ABL)/synthetic.jsonl: $(ABL_EXAMPLES)
	$(LOGGED) cat $^ | emb-filter $(addprefix --decontaminate ,$(DECONTAMINATE)) \
	  --rejects $(ABL)/filter.rejects.jsonl --report $(ABL)/filter-report.md $(FILTER_ARGS) -o $@ $(LOG_END)

$(ABL)/generation-cost.md: $(ABL)/synthetic.jsonl
	python $(HERE)ablation_report.py cost $(ABL) > $@.part && mv $@.part $@

$(ABL)/heldout/.done: | $(ABL)/.dir
	python $(HERE)heldout_tasks.py $(DATA)/stsbenchmark/dev.jsonl $(ABL)/heldout && touch $@

# (a), (b), (c): the same base, steps, batch and seed; only the training files differ.
ABL_SET_synthetic = $(ABL)/synthetic.jsonl
ABL_SET_labeled = $(OUT)/labeled-scifact.jsonl $(OUT)/labeled-sts.jsonl:$(STS_WEIGHT)
ABL_SET_both = $(ABL_SET_synthetic) $(ABL_SET_labeled)
ABL_FILES_synthetic = $(ABL)/synthetic.jsonl
ABL_FILES_labeled = $(OUT)/labeled-scifact.jsonl $(OUT)/labeled-sts.jsonl
ABL_FILES_both = $(ABL_FILES_synthetic) $(ABL_FILES_labeled)

.SECONDEXPANSION:
$(ABL)/train-%.json: $$(ABL_FILES_$$*)
	$(LOGGED) emb-train --model $(MODEL) --seed $(SEED) $(ABL_TRAIN_ARGS) --overwrite -o $(ABL)/model-$* \
	  $(ABL_SET_$*) > $@.part $(LOG_END) && mv $@.part $@

ABL_MODEL_untrained = $(MODEL)
ABL_MODEL_synthetic = $(ABL)/model-synthetic
ABL_MODEL_labeled = $(ABL)/model-labeled
ABL_MODEL_both = $(ABL)/model-both
ABL_TRAINED = $(if $(filter untrained,$*),,$(ABL)/train-$*.json)

$(ABL)/eval/%.jsonl: $$(ABL_TRAINED) | $(ABL)/heldout/.done
	emb-eval --model $(ABL_MODEL_$*) $(ABL_EVAL_ARGS) $(EVAL_DATA) > $@.part
	$(foreach task,$(notdir $(ABL_HELDOUT)),emb-eval --model $(ABL_MODEL_$*) $(ABL_EVAL_ARGS) \
	  --instruction "$(ABL_INSTRUCTION_$(task))" $(ABL)/heldout/$(task) >> $@.part &&) mv $@.part $@

$(ABL)/report.md: $(ABL_MODELS:%=$(ABL)/eval/%.jsonl) $(ABL)/generation-cost.md
	python $(HERE)ablation_report.py table $(ABL)/scores.md $(ABL_MODELS:%=$(ABL)/eval/%.jsonl)
	cat $(ABL)/scores.md $(ABL)/generation-cost.md > $@.part && mv $@.part $@
