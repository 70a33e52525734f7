"""The per-GPU peak memory of an emb-train run, term by term, from the model's config.json alone (no weights; torch
is imported only to ask a GPU its memory, `cuda_device_memory`).

The peak of a GradCache step is reached in the backward of one mini-batch: the (sharded) weights, the trainable
weights' gradients and optimizer state, the activations of that mini-batch's forward with grad, the cached vectors and
the score matrix of the whole per-rank batch, and what the framework itself holds. Each term below says why it is what
it is. The activation terms follow what autograd saves in a llama-style decoder layer (RMSNorm, GQA attention through
SDPA, gated MLP) with peft LoRA on its linear layers; every text is counted at its maximum length (the worst case).

Checked against measured peaks on the CPU for smollm2-135m in float32 (bench/memory_estimate.py, docs/train.md);
the GPU-only terms (16-bit copies, ZeRO-3 gathering, the CUDA context) are stated assumptions, not measurements.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from embtools.errors import EmbtoolsError

GIB = 2**30
PRECISIONS = {"fp32": 4, "bf16": 2, "fp16": 2}  # bytes of an activation (a matmul output) under each precision
ZERO_STAGES = (0, 1, 2, 3)  # 0 = plain DDP (or one process); 1 shards the optimizer state, 2 the gradients too
MIXED_PRECISION = {"no": "fp32", "bf16": "bf16", "fp16": "fp16", "auto": "bf16"}  # auto: bf16, as on a GPU with it
CUDA_CONTEXT_BYTES = int(1.0 * GIB)  # assumption: CUDA context, cuBLAS/cuDNN workspaces and NCCL buffers
ALLOCATOR_SLACK = 0.10  # assumption: the caching allocator's fragmentation on a GPU, a fraction of the tensors
ZERO3_PREFETCH_ELEMENTS = 2e8  # stage3_prefetch_bucket_size of the bundled zero3 config (deepspeed_configs)
ZERO_REDUCE_BUCKET_ELEMENTS = 2e8  # reduce_bucket_size of the bundled zero2/zero3 configs
# linear layers that read the same tensor (without dropout, their adapters keep one copy of it between them)
_SHARED_INPUT = {"q_proj": "attention input", "k_proj": "attention input", "v_proj": "attention input",
                 "gate_proj": "mlp input", "up_proj": "mlp input"}


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a llama-style decoder (llama, mistral, qwen2, ...) that memory depends on."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    attention_bias: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ModelShape":
        try:
            heads = config["num_attention_heads"]
            return cls(hidden=config["hidden_size"], layers=config["num_hidden_layers"], heads=heads,
                       kv_heads=config.get("num_key_value_heads") or heads,
                       head_dim=config.get("head_dim") or config["hidden_size"] // heads,
                       intermediate=config["intermediate_size"], vocab=config["vocab_size"],
                       attention_bias=bool(config.get("attention_bias", config.get("model_type") == "qwen2")))
        except KeyError as exc:
            raise EmbtoolsError(f"config.json has no {exc.args[0]}: the memory estimate knows llama-style "
                                "decoders (hidden_size, num_hidden_layers, num_attention_heads, ...)") from None

    @classmethod
    def from_model_dir(cls, path: Path) -> "ModelShape":
        try:
            return cls.from_config(json.loads((Path(path) / "config.json").read_text()))
        except (OSError, ValueError) as exc:
            raise EmbtoolsError(f"cannot read {path}/config.json: {exc}") from None

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer, by peft's module names."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {"q_proj": (self.hidden, q), "k_proj": (self.hidden, kv), "v_proj": (self.hidden, kv),
                "o_proj": (q, self.hidden), "gate_proj": (self.hidden, self.intermediate),
                "up_proj": (self.hidden, self.intermediate), "down_proj": (self.intermediate, self.hidden)}

    def layer_parameters(self) -> int:
        biases = sum(out for name, (_, out) in self.linears().items() if name in ("q_proj", "k_proj", "v_proj"))
        return sum(i * o for i, o in self.linears().values()) + self.attention_bias * biases + 2 * self.hidden

    def parameters(self) -> int:
        """The bare transformer emb-train loads (AutoModel: embeddings, layers, final norm; no LM head)."""
        return self.vocab * self.hidden + self.layers * self.layer_parameters() + self.hidden

    def lora_parameters(self, rank: int, targets: tuple[str, ...]) -> int:
        """A and B of every targeted linear layer: rank x (in + out) each."""
        return self.layers * sum(rank * (i + o) for name, (i, o) in self.linears().items() if name in targets)


@dataclass(frozen=True)
class RunShape:
    """The settings of a run that memory depends on (emb-train's options)."""

    batch_size: int = 2048
    mini_batch_size: int = 16
    query_max_length: int = 512
    document_max_length: int = 512
    precision: str = "fp32"
    gradient_checkpointing: bool = False
    lora_rank: int | None = 16  # None: every weight trains (--no-lora)
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lora_dropout: float = 0.1
    num_gpus: int = 1
    zero_stage: int = 0
    hard_negatives: int = 1  # per example (--negatives-per-example); the worst case: every example has them all
    device: str = "cuda"  # "cpu": no CUDA context and no allocator slack

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise EmbtoolsError(f"precision {self.precision!r}: not one of {', '.join(PRECISIONS)}")
        if self.zero_stage not in ZERO_STAGES:
            raise EmbtoolsError(f"ZeRO stage {self.zero_stage}: not one of {ZERO_STAGES}")

    @property
    def per_rank_batch(self) -> int:
        return self.batch_size // self.num_gpus

    @property
    def texts_per_example(self) -> int:
        return 2 + int(self.hard_negatives)

    def describe(self) -> str:
        lora = f"LoRA r{self.lora_rank}" if self.lora_rank else "every weight trained"
        where = f"{self.num_gpus} GPU(s)" if self.device == "cuda" else "CPU"
        return (f"{where}, ZeRO stage {self.zero_stage}, {self.precision}, batch "
                f"{self.batch_size} ({self.per_rank_batch} per GPU), mini-batch {self.mini_batch_size}, "
                f"{self.query_max_length}/{self.document_max_length} tokens, "
                f"checkpointing {'on' if self.gradient_checkpointing else 'off'}, {lora}")


@dataclass
class MemoryEstimate:
    """The estimate: (name, bytes, why) per term; `total` is their sum."""

    terms: list[tuple[str, int, str]]
    shape: ModelShape
    run: RunShape

    @property
    def total(self) -> int:
        return sum(size for _, size, _ in self.terms)

    def table(self) -> str:
        rows = [f"{name:<24} {size / GIB:>9.2f} GiB  {why}" for name, size, why in self.terms]
        rule = "-" * 36
        return "\n".join([self.run.describe(), f"{'term':<24} {'per GPU':>13}", rule, *rows, rule,
                          f"{'total':<24} {self.total / GIB:>9.2f} GiB"])

    def record(self) -> dict[str, Any]:
        return {"per_gpu_bytes": self.total, "per_gpu_gib": round(self.total / GIB, 2),
                "terms": {name: size for name, size, _ in self.terms},
                "parameters": self.shape.parameters(), "settings": asdict(self.run)}


def weight_bytes(run: RunShape) -> int:
    """emb-train loads float32 weights; mixed precision under DDP only autocasts, while DeepSpeed casts the module
    itself to bf16/fp16 (keeping fp32 master copies of the trainable weights in its optimizer)."""
    return PRECISIONS[run.precision] if run.zero_stage else 4


def autocast_copies(run: RunShape) -> bool:
    """fp32 weights under a 16-bit autocast: every matmul casts its weight, and autograd keeps the cast copy."""
    return run.precision != "fp32" and weight_bytes(run) == 4


def mini_batch_tokens(run: RunShape) -> int:
    """Tokens in one forward pass with grad. GradCache embeds mini-batches one at a time (documents are the longest);
    a per-rank batch that fits in one mini-batch is embedded without GradCache, all its texts with a graph at once."""
    if run.per_rank_batch > run.mini_batch_size:
        return run.mini_batch_size * max(run.query_max_length, run.document_max_length)
    documents = run.texts_per_example - 1
    return run.per_rank_batch * (run.query_max_length + documents * run.document_max_length)


def layer_activation_bytes(shape: ModelShape, run: RunShape) -> int:
    """Bytes autograd saves per token in one decoder layer's forward with grad."""
    a = PRECISIONS[run.precision]
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    norms = 2 * 4 * shape.hidden  # each RMSNorm keeps its input in fp32 (it upcasts before the variance)
    # SDPA's fused kernels (flash, memory-efficient; on the CPU too, measured) keep q, k, v, the output and a
    # logsumexp per head, never the seq x seq scores; eager attention would add those (heads x seq per token).
    attention = (2 * q + 2 * kv) * a + 4 * shape.heads
    mlp = 3 * shape.intermediate * a  # SiLU keeps the gate's output, the product keeps SiLU's output and up's
    return norms + attention + mlp + lora_activation_bytes(shape, run)


def dropout_mask_bytes(run: RunShape) -> int:
    """CUDA's fused dropout keeps a boolean mask; on the CPU torch's composite dropout keeps the scaled noise tensor
    it multiplied by, in the input's dtype (measured: the saved tensors of a smollm2 forward, docs/train.md)."""
    return 1 if run.device == "cuda" else PRECISIONS[run.precision]


def lora_activation_bytes(shape: ModelShape, run: RunShape) -> int:
    """A frozen linear keeps nothing of its input (its weight gives the input's gradient), but lora_A needs its input
    for its own gradient: with dropout, each adapter's dropped-out copy (cast to the activation dtype) and its mask;
    without, the one input its adapters share. lora_B keeps lora_A's rank-wide output."""
    if run.lora_rank is None:
        return sum(i * PRECISIONS[run.precision] for i, _ in shape.linears().values())  # full training keeps inputs
    a = PRECISIONS[run.precision]
    targeted = {name: size for name, size in shape.linears().items() if name in run.lora_targets}
    if run.lora_dropout > 0:
        inputs = sum(i * (a + dropout_mask_bytes(run)) for i, _ in targeted.values())
    else:
        inputs = sum({_SHARED_INPUT.get(name, name): i * a for name, (i, _) in targeted.items()}.values())
    return inputs + len(targeted) * run.lora_rank * a


def activation_bytes(shape: ModelShape, run: RunShape) -> tuple[int, str]:
    """The activations of one mini-batch's forward with grad, and why; the backward adds one layer's working set
    (the gradients flowing through the layer being differentiated)."""
    tokens = mini_batch_tokens(run)
    layer = layer_activation_bytes(shape, run) * tokens
    residual = weight_bytes(run) * shape.hidden * tokens
    if run.gradient_checkpointing:
        return (shape.layers * residual + 2 * layer,
                f"checkpointing: {shape.layers} layer inputs of {tokens} tokens + one layer recomputed + backward")
    return ((shape.layers + 1) * layer + residual,
            f"{shape.layers} layers of {tokens} tokens (no checkpointing) + backward")


def autocast_copy_bytes(shape: ModelShape, run: RunShape) -> int:
    """16-bit copies of the weights that autograd keeps until backward (all layers; one with checkpointing)."""
    if not autocast_copies(run):
        return 0
    layers = 1 if run.gradient_checkpointing else shape.layers
    return 2 * layers * shape.layer_parameters()


def batch_cache_bytes(shape: ModelShape, run: RunShape) -> int:
    """GradCache's cached vectors of the per-rank batch (the vectors, their concatenation as the loss's leaves and
    the leaves' gradients), and the gathered candidates of all ranks (fp32: normalized copy and gradient)."""
    local = run.per_rank_batch * run.texts_per_example * shape.hidden * weight_bytes(run) * 3
    candidates = (run.texts_per_example - 1) * run.batch_size * shape.hidden * 4 * 3
    return local + candidates


def score_bytes(run: RunShape) -> int:
    """[per-rank queries x all candidates] fp32 scores: scaled, masked, log-softmax and their gradient (4 copies),
    and the boolean masks of false negatives (3)."""
    cells = run.per_rank_batch * (run.texts_per_example - 1) * run.batch_size
    return cells * (4 * 4 + 3)


def trainable_parameters(shape: ModelShape, run: RunShape) -> int:
    return shape.parameters() if run.lora_rank is None else shape.lora_parameters(run.lora_rank, run.lora_targets)


def parameter_terms(shape: ModelShape, run: RunShape) -> list[tuple[str, int, str]]:
    """Weights, LoRA weights, gradients and optimizer state (sharded as the ZeRO stage says)."""
    n, wb, trainable = run.num_gpus, weight_bytes(run), trainable_parameters(shape, run)
    weight_shards = n if run.zero_stage == 3 else 1
    optimizer_shards = n if run.zero_stage >= 1 else 1
    state_shards = n if run.zero_stage >= 2 else 1
    base = 0 if run.lora_rank is None else shape.parameters()
    ddp_buckets = 2 if run.zero_stage == 0 and n > 1 else 1  # DDP's reducer keeps a flat copy of the gradients
    grads = trainable * 4 * ddp_buckets // state_shards
    why_grads = "fp32" + (", and DDP's bucket copy" if ddp_buckets == 2 else "") + _sharded(state_shards)
    if run.zero_stage:  # DeepSpeed fills 16-bit gradients into a reduce bucket before it shards them
        grads += int(min(trainable, ZERO_REDUCE_BUCKET_ELEMENTS)) * wb
        why_grads += " + a reduce bucket"
    master = 4 if run.zero_stage and wb == 2 else 0  # DeepSpeed's fp32 master copy of 16-bit trainable weights
    return [
        ("weights", base * wb // weight_shards, f"{base:,} frozen parameters x {wb} B{_sharded(weight_shards)}"),
        ("trainable weights", trainable * wb // weight_shards,
         f"{trainable:,} parameters x {wb} B{_sharded(weight_shards)}"),
        ("gradients", grads, why_grads),
        ("optimizer state", trainable * (8 + master) // optimizer_shards,
         f"AdamW's two fp32 moments{' + fp32 master weights' if master else ''}{_sharded(optimizer_shards)}"),
    ]


def _sharded(shards: int) -> str:
    return f", sharded over {shards} GPUs" if shards > 1 else ""


def zero3_gather_bytes(shape: ModelShape, run: RunShape) -> int:
    """ZeRO-3 gathers each layer's full weights to use them, plus the prefetch bucket of the next ones."""
    if run.zero_stage != 3:
        return 0
    largest = max(shape.layer_parameters(), shape.vocab * shape.hidden)
    return int(largest + ZERO3_PREFETCH_ELEMENTS) * weight_bytes(run)


def estimate_memory(shape: ModelShape, run: RunShape) -> MemoryEstimate:
    """The per-GPU peak of a run of `run` on a model of `shape`, term by term."""
    activations, why_activations = activation_bytes(shape, run)
    terms = parameter_terms(shape, run) + [
        ("ZeRO-3 gathered weights", zero3_gather_bytes(shape, run), "the layer in use + the prefetch bucket"),
        ("activations", activations, why_activations),
        ("autocast weight copies", autocast_copy_bytes(shape, run), "16-bit casts of fp32 weights kept for backward"),
        ("batch vectors", batch_cache_bytes(shape, run),
         f"{run.per_rank_batch} examples' cached vectors and all candidates"),
        ("score matrix", score_bytes(run),
         f"{run.per_rank_batch} x {(run.texts_per_example - 1) * run.batch_size} scores and masks"),
    ]
    if run.device == "cuda":
        tensors = sum(size for _, size, _ in terms)
        terms.append(("framework overhead", CUDA_CONTEXT_BYTES + int(ALLOCATOR_SLACK * tensors),
                      f"assumed: {CUDA_CONTEXT_BYTES / GIB:.1f} GiB CUDA context + {ALLOCATOR_SLACK:.0%} "
                      "allocator fragmentation"))
    return MemoryEstimate([t for t in terms if t[1]], shape, run)


def largest_fitting_mini_batch(shape: ModelShape, run: RunShape, device_bytes: int) -> int | None:
    """The largest --mini-batch-size (a power of two up to the current one) whose estimate fits, or None."""
    size = run.mini_batch_size
    while size >= 1:
        if estimate_memory(shape, replace(run, mini_batch_size=size)).total <= device_bytes:
            return size
        size //= 2
    return None


def memory_advice(shape: ModelShape, run: RunShape, device_bytes: int) -> str:
    """Which flag to change so that the run fits, in the order that costs least: checkpointing, then the mini-batch,
    then ZeRO-3."""
    if not run.gradient_checkpointing and estimate_memory(
            shape, replace(run, gradient_checkpointing=True)).total <= device_bytes:
        return "add --gradient-checkpointing"
    fitting = largest_fitting_mini_batch(shape, run, device_bytes)
    if fitting is not None and fitting < run.mini_batch_size:
        return f"lower --mini-batch-size (now {run.mini_batch_size}) to {fitting}"
    if run.zero_stage != 3 and estimate_memory(shape, replace(run, zero_stage=3)).total <= device_bytes:
        return "use --deepspeed zero3"
    return "use more GPUs (--num-processes) with --deepspeed zero3, or a smaller model"


def check_fits(estimate: MemoryEstimate, device_bytes: int | None) -> None:
    """Raise one line naming the flag to change when the estimate exceeds `device_bytes` (None: no check)."""
    if device_bytes is None or estimate.total <= device_bytes:
        return
    advice = memory_advice(estimate.shape, estimate.run, device_bytes)
    raise EmbtoolsError(f"this run needs ~{estimate.total / GIB:.1f} GiB per GPU (--estimate-memory), this GPU has "
                        f"{device_bytes / GIB:.1f} GiB: {advice}, or pass --no-memory-check to run anyway")


def zero_stage_of(deepspeed: str | None) -> int:
    """The ZeRO stage of `--deepspeed zero2|zero3|PATH` (0 without DeepSpeed), read as emb-train reads it."""
    if not deepspeed:
        return 0
    from embtools.train.deepspeed_configs import deepspeed_config

    return int(deepspeed_config(deepspeed, 1, "no").get("zero_optimization", {}).get("stage", 0))


def training_run_shape(options: Mapping[str, Any], num_gpus: int, device: str = "cuda") -> RunShape:
    """The RunShape of emb-train's options (its click parameters, by name) on `num_gpus` processes."""
    return RunShape(batch_size=options["batch_size"], mini_batch_size=options["mini_batch_size"],
                    query_max_length=options["query_max_length"] or options["max_length"],
                    document_max_length=options["max_length"], precision=MIXED_PRECISION[options["mixed_precision"]],
                    gradient_checkpointing=options["gradient_checkpointing"],
                    lora_rank=None if options["no_lora"] else options["lora_rank"],
                    lora_dropout=options["lora_dropout"], num_gpus=num_gpus,
                    zero_stage=zero_stage_of(options["deepspeed_name"]), device=device,
                    hard_negatives=options.get("negatives_per_example", 1))


def estimate_for_model(model: str, run: RunShape) -> MemoryEstimate:
    """The estimate for a model name or folder (an adapter's base), from its config.json."""
    from embtools.models.loading import inspect_model

    spec = inspect_model(model)
    if not spec.is_decoder:
        raise EmbtoolsError(f"the memory estimate knows decoder-only models (llama, mistral, ...); {model} is not one")
    return estimate_memory(ModelShape.from_model_dir(spec.base_path or spec.path), run)


def check_model_fits(model: str, run: RunShape, device_bytes: int | None) -> None:
    """Refuse a run whose estimate exceeds `device_bytes` (None: a CPU, nothing to check; encoders are not
    estimated, so not checked)."""
    from embtools.models.loading import inspect_model

    if device_bytes is not None and inspect_model(model).is_decoder:
        check_fits(estimate_for_model(model, run), device_bytes)


def cuda_device_memory() -> int | None:
    """Total memory of this process's GPU (LOCAL_RANK), or None without CUDA (the check is skipped on CPUs)."""
    import os

    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(int(os.environ.get("LOCAL_RANK", 0))).total_memory
