"""emb-train --estimate-memory: the formula's arithmetic on known configs, the refusal of a run that cannot fit
(device memory passed as a plain number, no GPU needed), the command's output, and (slow) the estimate against a
measured peak on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from embtools.errors import EmbtoolsError
from embtools.train.memory_estimate import (
    GIB,
    ModelShape,
    RunShape,
    check_fits,
    check_model_fits,
    estimate_memory,
    layer_activation_bytes,
)

REPO = Path(__file__).resolve().parents[1]
MISTRAL = REPO / "tests" / "fixtures" / "mistral-7b"  # Mistral-7B-v0.1's config.json values, no weights
# The paper's run: LoRA r16, batch 2048, 512 tokens, bf16, gradient checkpointing, 8 GPUs, ZeRO-3.
PAPER = RunShape(batch_size=2048, mini_batch_size=32, precision="bf16", gradient_checkpointing=True, num_gpus=8,
                 zero_stage=3)


def terms(estimate) -> dict[str, int]:
    return {name: size for name, size, _ in estimate.terms}


@pytest.fixture(scope="module")
def mistral() -> ModelShape:
    return ModelShape.from_model_dir(MISTRAL)


def test_mistral_parameters_match_the_published_count(mistral):
    lm_head = 32000 * 4096  # emb-train loads the bare model; the published 7,241,732,096 includes the LM head
    assert mistral.parameters() + lm_head == 7_241_732_096
    # LoRA r16 on all 7 linear layers of 32 layers: 16 x (in + out) each
    per_layer = 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + (4096 + 14336) * 3)
    assert mistral.lora_parameters(16, PAPER.lora_targets) == 32 * per_layer == 41_943_040


@pytest.fixture(scope="module")
def smollm2_lora():
    """(shape from config.json, the real smollm2-135m with LoRA r16 on all linear layers, its base parameter count)."""
    from embtools.models.loading import inspect_model
    from embtools.train.lora import LoraSettings, add_lora, load_base_model

    spec = inspect_model("smollm2-135m")
    model, _ = load_base_model(spec)
    base = sum(p.numel() for p in model.parameters())
    torch.manual_seed(0)
    return ModelShape.from_model_dir(spec.path), add_lora(model, LoraSettings()).train(), base


def test_smollm2_weights_and_lora_are_its_parameter_counts(smollm2_lora):
    from embtools.train.lora import trainable_parameters

    shape, model, base = smollm2_lora
    lora = sum(p.numel() for _, p in trainable_parameters(model))
    estimate = terms(estimate_memory(shape, RunShape(device="cpu")))
    assert estimate["weights"] == base * 4 == 134_515_008 * 4
    assert estimate["trainable weights"] == lora * 4
    assert estimate["optimizer state"] == lora * 8  # AdamW: two fp32 moments per trainable parameter


def test_layer_activations_are_what_autograd_saves(smollm2_lora):
    """Every tensor autograd saves in a forward with grad (fp32, CPU, LoRA dropout 0.1), counted once per storage,
    the weights' storages left out: per token and layer, as the formula says (the first layer saves a little less,
    its input being the frozen embeddings)."""
    shape, model, _ = smollm2_lora
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(3, 40_000, (4, 48))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    measured = sum(saved.values()) / ids.numel() / shape.layers
    assert abs(layer_activation_bytes(shape, RunShape(device="cpu")) - measured) / measured < 0.01, measured


def test_zero_stages_shard_what_they_promise(mistral):
    ddp, zero2, zero3 = (terms(estimate_memory(mistral, replace(PAPER, zero_stage=z))) for z in (0, 2, 3))
    assert ddp["weights"] == mistral.parameters() * 4  # DDP autocasts fp32 weights
    assert zero2["weights"] == mistral.parameters() * 2  # DeepSpeed casts the module to bf16
    assert zero3["weights"] == mistral.parameters() * 2 // 8
    adam_and_master = mistral.lora_parameters(16, PAPER.lora_targets) * 12
    assert zero2["optimizer state"] == zero3["optimizer state"] == adam_and_master // 8
    assert "ZeRO-3 gathered weights" in zero3 and "ZeRO-3 gathered weights" not in zero2


def test_grad_cache_bounds_activations_by_the_mini_batch(mistral):
    small, large = (terms(estimate_memory(mistral, replace(PAPER, batch_size=b))) for b in (512, 4096))
    assert small["activations"] == large["activations"]
    assert large["score matrix"] > small["score matrix"]
    checkpointed = terms(estimate_memory(mistral, PAPER))["activations"]
    full = terms(estimate_memory(mistral, replace(PAPER, gradient_checkpointing=False)))["activations"]
    assert full > 5 * checkpointed


def test_a_run_that_cannot_fit_is_refused_with_the_flag_to_change(mistral):
    too_large = replace(PAPER, mini_batch_size=256)
    needed = estimate_memory(mistral, too_large).total
    with pytest.raises(EmbtoolsError) as refused:
        check_model_fits(str(MISTRAL), too_large, 80 * GIB)
    message = str(refused.value)
    assert needed > 80 * GIB and "--mini-batch-size (now 256)" in message and "--no-memory-check" in message
    fitting = int(message.split("now 256) to ")[1].split(",")[0])
    assert estimate_memory(mistral, replace(too_large, mini_batch_size=fitting)).total <= 80 * GIB
    assert estimate_memory(mistral, replace(too_large, mini_batch_size=2 * fitting)).total > 80 * GIB
    check_model_fits(str(MISTRAL), PAPER, 80 * GIB)  # the recipe fits: no error
    check_model_fits(str(MISTRAL), too_large, None)  # no GPU: nothing to check


def test_the_cheapest_fix_is_named_first(mistral):
    without_checkpointing = replace(PAPER, gradient_checkpointing=False, mini_batch_size=16)
    with pytest.raises(EmbtoolsError, match="add --gradient-checkpointing"):
        check_fits(estimate_memory(mistral, without_checkpointing), 40 * GIB)
    ddp = replace(PAPER, zero_stage=0, mini_batch_size=8)  # fp32 weights on each of 8 GPUs of 32 GiB
    with pytest.raises(EmbtoolsError, match="use --deepspeed zero3, or pass"):
        check_fits(estimate_memory(mistral, ddp), 32 * GIB)
    one_gpu = replace(PAPER, num_gpus=1, zero_stage=3, mini_batch_size=1)
    with pytest.raises(EmbtoolsError, match="use more GPUs"):
        check_fits(estimate_memory(mistral, one_gpu), 16 * GIB)


def test_estimate_memory_prints_a_table_and_a_record_without_torch():
    """The command reads config.json only: torch is never imported."""
    probe = ("import sys\nfrom embtools.commands.train import main\n"
             "try:\n    main(sys.argv[1:])\nfinally:\n    print('torch' in sys.modules, file=sys.stderr)")
    args = ["--model", str(MISTRAL), "--estimate-memory", "--batch-size", "2048", "--mini-batch-size", "32",
            "--mixed-precision", "bf16", "--gradient-checkpointing", "--num-processes", "8", "--deepspeed", "zero3"]
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["per_gpu_bytes"] == estimate_memory(ModelShape.from_model_dir(MISTRAL), PAPER).total
    assert record["settings"]["zero_stage"] == 3 and record["terms"]["activations"] > 0
    assert "activations" in done.stderr and "total" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "False"


def test_estimate_memory_refuses_an_encoder():
    from click.testing import CliRunner

    from embtools.commands.train import main

    result = CliRunner().invoke(main, ["--model", "minilm-l6", "--estimate-memory"])
    assert result.exit_code == 1 and "decoder-only" in result.output


def test_output_is_required_unless_estimating():
    from click.testing import CliRunner

    from embtools.commands.train import main

    result = CliRunner().invoke(main, ["--model", str(MISTRAL)])
    assert result.exit_code == 2 and "Missing option '-o' / '--output'" in result.output
