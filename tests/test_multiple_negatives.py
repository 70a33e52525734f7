"""More than one hard negative per example: the record, the loss and GradCache with a ragged count, emb-train's cap,
and emb-filter's miner writing K negatives (sampling, the absolute bound, the embedding cache, the language warning)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA, read_jsonl, run_cli, write_jsonl
from embtools.commands.filter import main as emb_filter
from embtools.encode.embedding_cache import EmbeddingCache
from embtools.filter.labeled_data import beir_examples
from embtools.filter.negative_mining import MiningSettings, NegativeMiner
from embtools.records.examples import example_problem, negatives
from embtools.records.jsonl import RejectSink
from embtools.records.text_keys import match_key
from embtools.train.data import TrainingExample, to_example, validate_example
from embtools.train.infonce_loss import InfoNCELoss
from embtools.train.step import batch_keys, train_step
from test_filter_mining import texts_by_id, write_scifact_slice
from test_train import examples, invoke, one_thread, tiny_llama  # noqa: F401 - fixtures: SciFact examples, a tiny llama

RAGGED = [  # 0, 1 and 3 negatives; the third negative of the last example is the first one's positive
    TrainingExample("q zero", "p zero", (), "t"),
    TrainingExample("q one", "p one", ("n one a",), "t"),
    TrainingExample("q two", "p two", ("n two a", "n two b", "P  Zero"), "t"),
]


@pytest.mark.parametrize("value, problem", [
    (None, None), ("a negative", None), (["first", "second"], None),
    ([], 'field "negative" is an empty list (use null for none)'),
    (["first", " "], 'field "negative[1]" is empty'),
    (["first", 3], 'field "negative[1]" must be a string, got int'),
    (3, 'field "negative" must be a string, got int'),
])
def test_a_negative_is_a_string_a_list_of_strings_or_null(value, problem):
    record = {"id": 1, "task_type": "short-long", "instruction": "i", "query": "q", "positive": "p",
              "negative": value, "language": "English", "meta": {}}
    assert example_problem(record) == problem
    assert example_problem(record, for_training=True) == problem


def test_training_takes_the_first_n_negatives_of_a_list_or_a_string():
    record = validate_example({"instruction": "", "query": "q", "positive": "p", "negative": ["a", "b", "c"]})
    assert to_example(record, 0, 2).negatives == ("a", "b")
    assert to_example(record, 0, 0).negatives == ()
    assert to_example({**record, "negative": "a"}, 0, 3).negatives == ("a",)
    assert negatives({**record, "negative": None}) == []


def _hand_computed_infonce(q, p, n, temperature) -> float:
    """InfoNCE written out example by example: query i against every positive and every present negative, minus
    the candidates whose text is i's positive (other than its own) and the positives of queries with i's text."""
    candidates = [(p[j], e.positive, j) for j, e in enumerate(RAGGED)]
    candidates += [(n[i * 3 + k], text, None) for i, e in enumerate(RAGGED) for k, text in enumerate(e.negatives)]
    total = 0.0
    for i, example in enumerate(RAGGED):
        def logit(vector):
            return float(torch.dot(q[i], vector) / (q[i].norm() * vector.norm())) / temperature

        kept = [logit(v) for v, text, j in candidates
                if j == i or match_key(text) != match_key(example.positive)]
        total += math.log(sum(math.exp(s) for s in kept)) - logit(p[i])
    return total / len(RAGGED)


def test_loss_with_ragged_negatives_equals_hand_computed_infonce():
    torch.manual_seed(0)
    q, p, n = torch.randn(3, 8), torch.randn(3, 8), torch.randn(9, 8)  # 3 negative slots per example
    keys = batch_keys(RAGGED)
    assert keys.has_negative.tolist() == [False] * 3 + [True, False, False] + [True] * 3
    loss = InfoNCELoss(0.5)(q, p, n, keys)
    assert loss.item() == pytest.approx(_hand_computed_infonce(q, p, n, 0.5), rel=1e-5)
    unmasked = InfoNCELoss(0.5, mask_false_negatives=False)(q, p, n, keys)
    assert unmasked.item() > loss.item()  # "P  Zero" counted as query 0's negative raises its loss


@pytest.fixture(scope="module")
def tiny_model(tiny_decoder):
    from transformers import AutoModel, AutoTokenizer

    from embtools.train.text_batches import TextBatcher

    torch.manual_seed(0)
    model = AutoModel.from_pretrained(tiny_decoder).train()
    return model, TextBatcher(AutoTokenizer.from_pretrained(tiny_decoder), "last", 24, 24)


def _step_gradients(tiny_model, batch, mini_batch_size: int):
    from accelerate import Accelerator

    from embtools.train.loop import TrainConfig

    model, batcher = tiny_model
    model.zero_grad()
    config = TrainConfig(output=Path("unused"), sources=[], mini_batch_size=mini_batch_size)
    loss, tokens = train_step(model, batcher, InfoNCELoss(0.02), batch, config, Accelerator(cpu=True))
    return loss, tokens, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_grad_cache_with_ragged_negatives_gives_the_plain_gradients(tiny_model, sts_dev):
    """train_step with mini-batches of 2 (GradCache) == one backward of the whole batch (the plain path)."""
    pairs = sts_dev[:10]
    spare = [p["sentence2"] for p in sts_dev[10:20]]
    counts = [0, 1, 3, 2, 0, 1]
    batch, used = [], 0
    for pair, count in zip(pairs, counts):
        batch.append(TrainingExample(pair["sentence1"], pair["sentence2"], tuple(spare[used:used + count]), "sts"))
        used += count
    plain_loss, plain_tokens, plain = _step_gradients(tiny_model, batch, mini_batch_size=len(batch))
    cached_loss, cached_tokens, cached = _step_gradients(tiny_model, batch, mini_batch_size=2)
    assert plain_tokens == cached_tokens
    assert cached_loss.item() == pytest.approx(plain_loss.item(), rel=1e-5)
    assert plain.norm() > 0 and ((cached - plain).norm() / plain.norm()).item() < 1e-4
    _, _, without = _step_gradients(tiny_model, [TrainingExample(e.query, e.positive, (), e.task) for e in batch],
                                    mini_batch_size=2)
    assert ((without - plain).norm() / plain.norm()).item() > 1e-3  # the negatives do reach the gradients


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory):
    return write_scifact_slice(tmp_path_factory.mktemp("slice") / "scifact")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return EmbeddingCache(tmp_path_factory.mktemp("cache") / "embeddings.sqlite")


def _mine(folder, minilm, cache, **settings):
    miner = NegativeMiner(MiningSettings(model="minilm-l6", candidate_sources=(folder,), **settings), minilm, cache)
    return list(miner.mine(beir_examples(folder, "train"), RejectSink())), miner


def test_random_sampling_is_seeded_and_stays_in_the_window(scifact_slice, minilm, cache):
    folder, _ = scifact_slice
    draw = dict(first_rank=2, last_rank=40, num_negatives=3, sampling="random")
    first, _ = _mine(folder, minilm, cache, seed=1, **draw)
    again, _ = _mine(folder, minilm, cache, seed=1, **draw)
    other, _ = _mine(folder, minilm, cache, seed=2, **draw)
    assert [r["negative"] for r in first] == [r["negative"] for r in again]
    assert [r["negative"] for r in first] != [r["negative"] for r in other]
    for record in first:
        ranks = record["meta"]["filter"]["mined_negative"]["rank"]
        assert len(ranks) == 3 and ranks == sorted(ranks) and 2 <= ranks[0] and ranks[-1] <= 40
    top, _ = _mine(folder, minilm, cache, first_rank=2, last_rank=40, num_negatives=3)
    assert [r["negative"] for r in first] != [r["negative"] for r in top]


def test_the_absolute_bound_removes_negatives_scoring_above_it(scifact_slice, minilm, cache):
    folder, _ = scifact_slice
    unbounded, _ = _mine(folder, minilm, cache, first_rank=1, last_rank=30, num_negatives=3)
    scores = sorted(s for r in unbounded if r["negative"] for s in r["meta"]["filter"]["mined_negative"]["score"])
    bound = scores[len(scores) // 2]
    bounded, miner = _mine(folder, minilm, cache, first_rank=1, last_rank=30, num_negatives=3, max_score=bound)
    kept = [s for r in bounded if r["negative"] for s in r["meta"]["filter"]["mined_negative"]["score"]]
    assert kept and max(kept) < bound <= max(scores)
    assert miner.stats.skipped["above the bound"] > 0 and "above the bound" in miner.report()


@pytest.fixture(scope="module")
def cli_runs(scifact_slice, tmp_path_factory):
    """emb-filter --mine-negatives --num-negatives 3 over the slice, twice with other ranks, the second time on
    the same examples labelled German; a fresh EMBTOOLS_HOME, so the first run finds an empty embedding cache."""
    folder, _ = scifact_slice
    work = tmp_path_factory.mktemp("cli")
    english = write_jsonl(work / "english.jsonl", beir_examples(folder, "train"))
    german = write_jsonl(work / "german.jsonl", [{**r, "language": "German"} for r in beir_examples(folder, "train")])
    common = ["--mine-negatives", "--model", "minilm-l6", "--max-length", "64", "--no-language-check",
              "--negatives-from", folder, "--num-negatives", "3"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBTOOLS_HOME", str(work / "home"))
        first = run_cli(emb_filter, [english, *common, "--negative-ranks", "2-30"])
        second = run_cli(emb_filter, [german, *common, "--negative-ranks", "5-60", "--negative-margin", "0.9"])
    return first, second


def test_mining_three_writes_three_distinct_pool_negatives_never_a_positive(scifact_slice, cli_runs):
    folder, qrels = scifact_slice
    code, records, err = cli_runs[0]
    assert code == 0, err
    documents = texts_by_id(folder)
    full = [r for r in records if r["negative"] is not None]
    assert len(full) >= 0.9 * len(records)
    for record in full:
        found = record["negative"]
        positives = {documents[d] for d in qrels[record["meta"]["source"]["query_id"]]}
        assert isinstance(found, list) and len(found) == 3 and len(set(found)) == 3
        assert set(found) <= set(documents.values()) and not set(found) & positives


def _encoded_and_cached(err: list[str]) -> tuple[int, int]:
    report = [line for line in err if "mined negatives with" in line]
    assert len(report) == 1, err
    found = re.search(r"; (\d+) texts encoded, (\d+) from the embedding cache", report[0])
    return int(found.group(1)), int(found.group(2))


def test_a_second_mining_run_with_other_ranks_encodes_nothing(cli_runs):
    (_, _, first), (code, _, second) = cli_runs
    assert code == 0, second
    encoded, cached = _encoded_and_cached(first)
    assert encoded > 300  # the 322 pool texts and the distinct queries, into an empty cache
    assert _encoded_and_cached(second) == (0, encoded + cached)


def test_an_english_only_miner_warns_of_non_english_data_once(cli_runs):
    (_, _, english), (_, _, german) = cli_runs
    assert not [line for line in english if "English-only" in line]
    warned = [line for line in german if "English-only" in line]
    assert len(warned) == 1 and warned[0].startswith("emb-filter: warning: mining negatives for ")
    assert "non-English examples (German) with minilm-l6" in warned[0]


def test_emb_train_takes_up_to_n_negatives_of_a_list(tiny_decoder, sts_dev, tmp_path):
    """One step on the same batch from the same weights: every extra unmasked negative adds a term to each
    query's softmax denominator, so the first loss grows strictly with --negatives-per-example while it adds
    negatives (here examples carry 0 to 3)."""
    from embtools.commands.train import main as emb_train

    spare = [p["sentence2"] for p in sts_dev[100:140]]
    records = [{"instruction": "Retrieve a similar sentence", "query": p["sentence1"], "positive": p["sentence2"],
                "negative": spare[i * 3:i * 3 + i % 4] or None} for i, p in enumerate(sts_dev[:8])]
    data = write_jsonl(tmp_path / "examples.jsonl", records)
    losses = []
    for n in (0, 1, 3):
        code, summary, err = run_cli(emb_train, [data, "-o", tmp_path / f"n{n}", "--model", tiny_decoder,
                                                 "--batch-size", "8", "--mini-batch-size", "4", "--max-steps", "1",
                                                 "--max-length", "24", "--negatives-per-example", n])
        assert code == 0, err[-20:]
        losses.append(summary[0]["first_loss"])
    assert losses[0] < losses[1] < losses[2], losses


def test_the_memory_estimate_counts_every_negative():
    """--estimate-memory with --negatives-per-example 3 embeds 5 texts per example, not 3."""
    from embtools.train.memory_estimate import ModelShape, estimate_memory, training_run_shape

    options = {"batch_size": 64, "mini_batch_size": 8, "query_max_length": None, "max_length": 128,
               "mixed_precision": "bf16", "gradient_checkpointing": False, "no_lora": False, "lora_rank": 16,
               "lora_dropout": 0.1, "deepspeed_name": None}
    one, three = (training_run_shape({**options, "negatives_per_example": n}, 1) for n in (1, 3))
    assert (one.texts_per_example, three.texts_per_example) == (3, 5)
    shape = ModelShape.from_model_dir(Path(__file__).parent / "fixtures" / "mistral-7b")
    small, large = (dict((name, size) for name, size, _ in estimate_memory(shape, run).terms) for run in (one, three))
    assert large["score matrix"] == 2 * small["score matrix"] and large["batch vectors"] > small["batch vectors"]


@pytest.mark.parametrize("words", [(16, 99), (3, 7)], ids=["long: a shared run", "short: an exact copy"])
def test_emb_filter_checks_every_negative_of_a_list(sts_dev, tmp_path, words):
    """A list passes the schema check, and decontamination reads every negative on its own: an evaluation sentence
    as the second negative is caught, as it would be as the only one (a short one only by exact match)."""
    leaked = next(p["sentence1"] for p in sts_dev if words[0] <= len(p["sentence1"].split()) <= words[1])
    base = {"task_type": "short-long", "instruction": "Retrieve a passage", "query": "how do vaccines work",
            "positive": "Vaccines train the immune system to recognise a pathogen.", "language": "English",
            "meta": {}}
    records = [{**base, "id": "clean", "negative": ["Volcanoes erupt molten rock.", "Tides follow the moon."]},
               {**base, "id": "leaky", "negative": ["Volcanoes erupt molten rock.", leaked],
                "query": "how do vaccines work here"}]
    code, kept, err = run_cli(emb_filter, [write_jsonl(tmp_path / "in.jsonl", records), "--no-guidelines",
                                           "--no-language-check", "--no-near-dup", "--rejects", tmp_path / "r.jsonl",
                                           "--decontaminate", DATA / "stsbenchmark" / "dev.jsonl"])
    assert code == 0, err
    assert [r["id"] for r in kept] == ["clean"] and kept[0]["negative"] == records[0]["negative"]
    assert "contaminated" in (tmp_path / "r.jsonl").read_text()


@pytest.fixture(scope="module")
def ragged_examples(examples, tmp_path_factory) -> Path:  # noqa: F811
    """test_train's 24 SciFact examples with 0 to 3 negatives each (lists), so each process's share is ragged."""
    records = read_jsonl(examples)
    spare = [r["positive"] for r in records[12:]] + [r["negative"] for r in records if r["negative"]]
    for i, record in enumerate(records):
        record["negative"] = [spare[(i + k) % len(spare)] for k in range(i % 4)] or None
    return write_jsonl(tmp_path_factory.mktemp("ragged") / "examples.jsonl", records)


@pytest.mark.slow
def test_two_ddp_processes_with_ragged_negatives_train_like_one(tiny_llama, ragged_examples, tmp_path):  # noqa: F811
    """Each rank embeds as many negative slots as the widest example of either rank: DDP still matches one
    process, and neither rank hangs when one has no negative and the other three."""
    from test_train_distributed import SETTINGS, losses, two_processes, update_difference

    extra = ["--negatives-per-example", "3"]
    one = tmp_path / "one"
    invoke([ragged_examples, "--model", tiny_llama, *SETTINGS, "-o", one, *extra])
    ddp = two_processes(tiny_llama, ragged_examples, tmp_path / "ddp", *extra)
    assert update_difference(one, ddp) < 1e-3
    np.testing.assert_allclose(losses(ddp), losses(one), rtol=1e-4)


def test_a_model_is_english_only_when_its_card_says_so(tmp_path):
    from embtools.models.language_support import card_languages, model_languages
    from embtools.models.loading import inspect_model

    assert model_languages(inspect_model("minilm-l6")) == ("en",)
    (tmp_path / "README.md").write_text("---\nlanguage:\n- en\n- German\n- fr\n---\n# a card\n")
    assert card_languages(tmp_path) == ("en", "de", "fr")
    (tmp_path / "README.md").write_text("# a card without metadata\n")
    assert card_languages(tmp_path) is None and card_languages(tmp_path / "absent") is None


def test_a_list_negative_equal_to_the_positive_breaks_the_sts_guideline():
    from embtools.filter.guidelines import GuidelineCheck

    record = {"id": 1, "task_type": "sts", "instruction": "Retrieve semantically similar text.",
              "query": "A man plays a guitar on a stage.", "positive": "Someone is playing a guitar on stage.",
              "negative": ["A dog sleeps on the sofa.", "someone is  PLAYING a guitar on stage."],
              "language": "English", "meta": {}}
    check = GuidelineCheck()
    assert (check(record) or "").startswith("guideline-same-s2-s3")
    assert check({**record, "negative": ["A dog sleeps on the sofa."]}) is None


def test_a_resumed_run_must_take_as_many_negatives_as_its_checkpoint():
    from embtools.errors import EmbtoolsError
    from embtools.train.checkpoint import check_compatible
    from embtools.train.loop import TrainConfig

    saved = TrainConfig(output=Path("unused"), sources=[]).data_meta()
    check_compatible(saved, TrainConfig(output=Path("unused"), sources=[]).data_meta())
    with pytest.raises(EmbtoolsError, match="negatives_per_example=1, this run has 3"):
        check_compatible(saved, TrainConfig(output=Path("unused"), sources=[], negatives_per_example=3).data_meta())


def test_each_negative_of_a_list_must_have_the_asked_length():
    from embtools.filter.guidelines import GuidelineCheck

    long = " ".join(["word"] * 60)
    record = {"id": 1, "task_type": "short-long", "instruction": "Retrieve a passage", "query": "what is a word",
              "positive": long, "negative": [long, "Far too short."], "language": "English",
              "meta": {"placeholders": {"num_words": "50", "query_type": "", "query_length": "", "clarity": "",
                                        "difficulty": ""}}}
    assert (GuidelineCheck()(record) or "").startswith("guideline-num-words: negative has 3 words")
    assert GuidelineCheck()({**record, "negative": [long, long]}) is None
