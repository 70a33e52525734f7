"""Which languages a model was trained for: the `language:` of its model card (the README.md front matter the
Hugging Face hub reads), of the adapter folder or else of its base model; built-in names know theirs. None when
nothing says, which callers treat as "no warning": a model is called English-only only when its card says so.
"""

from __future__ import annotations

from pathlib import Path

from embtools.languages import iso_code
from embtools.models.builtin import BUILTIN_MODELS
from embtools.models.loading import ModelSpec

ENGLISH = "en"


def card_languages(folder: Path | None) -> tuple[str, ...] | None:
    """The ISO codes of the `language:` field of FOLDER/README.md (a code or a list), or None without one."""
    card = folder / "README.md" if folder else None
    if card is None or not card.is_file():
        return None
    from huggingface_hub.repocard import metadata_load

    try:
        value = (metadata_load(card) or {}).get("language")
    except Exception:  # noqa: BLE001 - a card that does not parse says nothing about languages
        return None
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    codes = tuple(code for code in (iso_code(v) or (v if isinstance(v, str) else None) for v in values) if code)
    return codes or None


def model_languages(spec: ModelSpec) -> tuple[str, ...] | None:
    """The languages the model was trained for, as ISO codes; None when unknown."""
    builtin = BUILTIN_MODELS.get(spec.name)
    if builtin is not None:
        return builtin.languages
    return card_languages(spec.path) or card_languages(spec.base_path)


def is_english_only(spec: ModelSpec) -> bool:
    return model_languages(spec) == (ENGLISH,)
