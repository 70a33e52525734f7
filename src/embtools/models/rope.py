"""Rotary position settings: `--rope-theta` and `--rope-scaling`, applied to a model's config before its weights load.

The paper extends E5-mistral to long inputs by raising the RoPE base (theta) and tests it with personalized passkey
retrieval (evaluate/passkey.py). transformers 5 keeps a model's rotary settings in `config.rope_parameters`:
`{"rope_type": "default", "rope_theta": 10000.0}`, plus the scaling's own keys (`factor`, and for yarn and dynamic
`original_max_position_embeddings`). An override replaces those keys and nothing else; a model without rotary
positions (BERT-style encoders) refuses it with one line.

emb-train records the override it trained with in the output's training_args.json (`rope`), so emb-encode and emb-eval
load a trained adapter with the positions it learned; `--merge` also writes it into the merged model's config.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embtools.errors import EmbtoolsError

# Scalings that take one factor and stretch the trained context by it (transformers' rope_type names).
SCALING_TYPES = ("linear", "dynamic", "yarn")


@dataclass(frozen=True)
class RopeOverride:
    """`theta`: the new RoPE base; `scaling`: (rope_type, factor). Both None: the model as it is."""

    theta: float | None = None
    scaling: tuple[str, float] | None = None

    def __bool__(self) -> bool:
        return self.theta is not None or self.scaling is not None

    def to_json(self) -> dict[str, Any] | None:
        """The JSON form kept in training_args.json and in cache fingerprints; None for no override."""
        if not self:
            return None
        return {"theta": self.theta, "scaling": list(self.scaling) if self.scaling else None}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> RopeOverride:
        if not value:
            return cls()
        scaling = value.get("scaling")
        return cls(value.get("theta"), (str(scaling[0]), float(scaling[1])) if scaling else None)

    def over(self, recorded: RopeOverride) -> RopeOverride:
        """This override where it says something, else the one a trained model recorded (flag > model folder)."""
        return RopeOverride(self.theta if self.theta is not None else recorded.theta,
                            self.scaling if self.scaling is not None else recorded.scaling)


def parse_rope_scaling(text: str) -> tuple[str, float]:
    """`TYPE:FACTOR` (`linear:4`, `dynamic:2`, `yarn:4`) -> ("yarn", 4.0); EmbtoolsError names what is wrong."""
    kind, _, factor = text.partition(":")
    if kind not in SCALING_TYPES:
        raise EmbtoolsError(f"--rope-scaling {text}: expected TYPE:FACTOR, TYPE one of {', '.join(SCALING_TYPES)}")
    value = _number(factor, f"--rope-scaling {text}: the factor after ':' must be a number, e.g. {kind}:4")
    if value <= 1.0:
        raise EmbtoolsError(f"--rope-scaling {text}: the factor must be above 1 (it stretches the trained context)")
    return kind, value


def parse_rope_theta(text: str) -> float:
    """`1e6` -> 1000000.0; EmbtoolsError for anything but a positive number."""
    value = _number(text, f"--rope-theta {text}: expected a number such as 1e6")
    if value <= 0:
        raise EmbtoolsError(f"--rope-theta {text}: the RoPE base must be positive")
    return value


def _number(text: str, message: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise EmbtoolsError(message) from None


def apply_rope(config: Any, override: RopeOverride, model_name: str) -> Any:
    """`config` (a transformers PretrainedConfig) with the override written into its rope_parameters; returned."""
    if not override:
        return config
    params = getattr(config, "rope_parameters", None)
    if not params or "rope_theta" not in params:
        raise EmbtoolsError(f"{model_name} has no rotary position embeddings: --rope-theta and --rope-scaling "
                            "apply to RoPE models (Mistral, Llama, Qwen, SmolLM, ...)")
    params = dict(params)
    if override.theta is not None:
        params["rope_theta"] = float(override.theta)
    if override.scaling is not None:
        kind, factor = override.scaling
        original = int(params.get("original_max_position_embeddings") or config.max_position_embeddings)
        params.update(rope_type=kind, factor=factor, original_max_position_embeddings=original)
        config.max_position_embeddings = int(original * factor)
    config.rope_parameters = params
    return config


def rope_of(config: Any) -> dict[str, Any] | None:
    """The rotary settings a loaded model runs with (for reports and tests)."""
    params = getattr(config, "rope_parameters", None)
    return dict(params) if params else None
