"""The GPU paths, checked without a GPU: every tensor the library makes must live on the device of the tensors it
meets, and every collective must carry tensors on its backend's device (NCCL cannot carry CPU tensors).

torch's `meta` device stands in for a GPU: it raises on any mix with a CPU tensor, as CUDA does. Two limits of the
stand-in, which a GPU run still has to cover: meta tensors hold no values, so these tests check placement, not
numbers; and last-token pooling reads a value on the host (its EOS check), so the meta runs pool by mean.
"""

from __future__ import annotations

import os

import pytest
import torch

from embtools import distributed
from embtools.distributed import free_port
from embtools.train.data import TrainingExample
from embtools.train.infonce_loss import InfoNCELoss
from embtools.train.step import batch_keys
from test_train import TINY_ARGS, examples, run_train, tiny_llama  # noqa: F401 - fixtures: SciFact examples, a tiny llama

META = torch.device("meta")


def _examples(sts_dev, count: int) -> list[TrainingExample]:
    """Real STS sentence pairs as training examples; every other one has a hard negative."""
    pairs = sts_dev[:count + 1]
    return [TrainingExample(query=p["sentence1"], positive=p["sentence2"],
                            negatives=(pairs[i + 1]["sentence2"],) if i % 2 == 0 else (), task="sts")
            for i, p in enumerate(pairs[:count])]


def test_loss_builds_its_masks_on_the_device_of_the_embeddings(sts_dev):
    """The keys come from the batch's texts on the CPU; the loss meets them with scores on the model's device."""
    batch = _examples(sts_dev, 4)
    queries, positives, negatives = (torch.randn(4, 8, device=META, requires_grad=True) for _ in range(3))
    loss = InfoNCELoss(0.02)(queries, positives, negatives, batch_keys(batch))
    assert loss.device == META and loss.shape == ()
    loss.backward()
    assert queries.grad.device == META


@pytest.fixture
def accelerator():
    """A real accelerate Accelerator on the CPU; its process-wide state is reset afterwards for later tests."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def meta_llama(tiny_llama):  # noqa: F811
    """A tiny random llama (SmolLM2's tokenizer) with LoRA, moved to the meta device, where every op runs through
    Python decompositions (a 30-layer model took minutes). Eager attention: sdpa's mask check reads a value."""
    from embtools.models.loading import inspect_model
    from embtools.train.lora import LoraSettings, add_lora, load_base_model

    model, tokenizer = load_base_model(inspect_model(str(tiny_llama)))
    model.set_attn_implementation("eager")
    torch.manual_seed(0)
    return add_lora(model, LoraSettings(rank=4, dropout=0.0)).to(META).train(), tokenizer


@pytest.mark.parametrize("mini_batch_size", [2, 8], ids=["grad-cache", "one-pass"])
def test_one_training_step_runs_on_the_models_device(sts_dev, meta_llama, accelerator, mini_batch_size, tmp_path):
    from embtools.train.loop import TrainConfig
    from embtools.train.step import train_step
    from embtools.train.text_batches import TextBatcher

    model, tokenizer = meta_llama
    config = TrainConfig(output=tmp_path / "model", sources=[], mini_batch_size=mini_batch_size)
    batcher = TextBatcher(tokenizer, "mean", 32, 32)
    loss, tokens = train_step(model, batcher, InfoNCELoss(0.02), _examples(sts_dev, 6), config, accelerator)
    assert loss.device == META and tokens > 0
    lora_grads = [p.grad for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_grads and all(g is not None and g.device == META for g in lora_grads)


def test_one_encoder_batch_runs_on_the_models_device(sts_dev_sentences, tiny_llama):  # noqa: F811
    from embtools.encode.encoder import Encoder, EncodeSettings

    encoder = Encoder(str(tiny_llama), EncodeSettings(dtype="float32", pooling="mean", device="meta"))
    encoder.model.set_attn_implementation("eager")
    ids = [encoder.tokenizer(text)["input_ids"] for text in sts_dev_sentences[:3]]
    vectors = encoder.embed_batch(ids)
    assert vectors.device == META and vectors.shape == (3, encoder.dim)


def test_each_rank_selects_its_gpu_before_joining_the_nccl_group(monkeypatch):
    """Without `torch.cuda.set_device(LOCAL_RANK)` every rank's NCCL object collectives run on cuda:0 (and hang)."""
    import torch.distributed as dist

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", str(device))))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    distributed.init_process_group()
    assert calls == [("set_device", "cuda:1"), ("init", "nccl")]
    assert distributed.device() == torch.device("cuda", 1)


def test_the_encoders_default_device_is_this_ranks_device(monkeypatch):
    from embtools.encode.encoder import default_device

    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert default_device() == "cuda:3"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # a scheduler showing each process its own GPU
    assert default_device() == "cuda:0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == "cpu"


def test_collectives_carry_tensors_on_the_collective_device_only_nccl_uses_the_gpu(monkeypatch):
    import torch.distributed as dist

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on any machine that runs NCCL
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.collective_device() == torch.device("cuda", 1)
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    assert distributed.collective_device() == torch.device("cpu")


# Tensor collectives the library (or accelerate on its behalf) may call.
_COLLECTIVES = ("all_gather", "all_gather_into_tensor", "all_reduce", "reduce", "reduce_scatter",
                "reduce_scatter_tensor", "all_to_all", "all_to_all_single", "broadcast", "gather", "scatter")


def _tensors_in(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors_in(item)


def _record_collectives(seen: list[tuple[str, str]]) -> None:
    """Wrap torch.distributed's tensor collectives: note each tensor's device; a call whose tensors are all meta
    (which hold no data) is not sent, any other goes through to the real gloo group."""
    import torch.distributed as dist

    for name in _COLLECTIVES:
        real = getattr(dist, name)

        def recorded(*args, _real=real, _name=name, **kwargs):
            tensors = list(_tensors_in([*args, *kwargs.values()]))
            seen.extend((_name, str(t.device)) for t in tensors)
            return None if all(t.device == META for t in tensors) else _real(*args, **kwargs)

        setattr(dist, name, recorded)


def _rank_worker(rank: int, port: int, sentences: list[str], out: str) -> None:
    """One rank of a real 2-process gloo group in which the library is told that its collectives use `meta`."""
    import json

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
    distributed.init_process_group()
    distributed.collective_device = lambda: META  # as NCCL's device is the GPU, not the CPU
    seen: list[tuple[str, str]] = []
    _record_collectives(seen)
    result: dict = {"seen": seen}
    try:
        batch = [TrainingExample(query=s, positive=s.upper(), negatives=() if i % 2 else (s[::-1],), task="sts")
                 for i, s in enumerate(sentences[rank * 4:rank * 4 + 4])]
        embeddings = [torch.randn(4, 8, device=META, requires_grad=True) for _ in range(3)]
        InfoNCELoss(0.02)(*embeddings, batch_keys(batch)).backward()
        from embtools.train.loop import step_totals

        result["totals"] = step_totals([torch.tensor(1.0 + 2 * rank)], tokens=10 * (rank + 1))
        result["gathered"] = distributed.gather_to_main({"rank": rank})
    except Exception as exc:  # noqa: BLE001 - reported with what the collectives were handed before it
        result["error"] = f"{type(exc).__name__}: {exc}"
    distributed.leave_process_group()
    result["left"] = not torch.distributed.is_initialized()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as stream:
        json.dump(result, stream)
    # As every command ends after leaving its group: without it, 4 of 40 runs of this worker aborted during
    # interpreter finalization (core dump: ~AsyncAllgatherWork in ProcessGroupGloo::runLoop); with it, 0 of 60.
    distributed.finish_process()
    raise AssertionError("finish_process returned after the group was left")


def test_no_collective_is_handed_a_tensor_off_the_collective_device(sts_dev_sentences, tmp_path):
    """Run the loss (forward and backward), the step's loss and token totals, the object gather of emb-encode and
    the end of a run in two real gloo processes; every tensor handed to a collective must be on the collective
    device, and each rank leaves the group destroyed."""
    import json

    import torch.multiprocessing as mp

    mp.spawn(_rank_worker, args=(free_port(), sts_dev_sentences[:8], str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for result in ranks:
        assert result["seen"], "no tensor collective ran: the check would be empty"
        assert {device for _, device in result["seen"]} == {"meta"}, result["seen"]
        assert "error" not in result, result["error"]
        assert result["totals"] == [2.0, 30]  # losses 1 and 3 averaged, tokens 10 and 20 summed
        assert result["left"], "the group outlived the run's end"
    assert ranks[0]["gathered"] == [{"rank": 0}, {"rank": 1}] and ranks[1]["gathered"] is None


@pytest.mark.parametrize("cuda, bf16, expected", [(False, False, "no"), (True, True, "bf16"), (True, False, "no")],
                         ids=["cpu", "bf16-gpu", "older-gpu"])
def test_mixed_precision_auto_is_bf16_on_gpus_that_support_it(monkeypatch, cuda, bf16, expected):
    from embtools.train.precision import resolve_mixed_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    assert resolve_mixed_precision("auto") == expected
    assert [resolve_mixed_precision(c) for c in ("no", "fp16", "bf16")] == ["no", "fp16", "bf16"]


def test_encode_dtype_auto_is_bf16_for_decoders_on_gpus_that_support_it(monkeypatch):
    from embtools.encode.encoder import resolve_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolve_dtype("auto", "cuda:1", is_decoder=True) == "bfloat16"
    assert resolve_dtype("auto", "cuda:1", is_decoder=False) == "float32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert resolve_dtype("auto", "cuda:1", is_decoder=True) == "float16"


@pytest.mark.slow
def test_mixed_precision_is_read_from_the_environment_logged_and_recorded(tiny_llama, examples, tmp_path):  # noqa: F811
    """`auto` is the default; EMBTOOLS_MIXED_PRECISION=bf16 is obeyed, logged and recorded with the model."""
    import json

    output = tmp_path / "model"
    result = run_train([examples, "-o", output, "--model", tiny_llama, "--max-steps", "1", *TINY_ARGS],
                       env={"EMBTOOLS_MIXED_PRECISION": "bf16"})
    assert "mixed precision bf16" in result.stderr
    assert json.loads((output / "training_args.json").read_text())["mixed_precision"] == "bf16"
    assert "--mixed-precision [auto|no|fp16|bf16]" in run_train(["--help"]).stdout
