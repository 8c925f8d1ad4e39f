"""Reading scoring-model files: the file-reading edge around the pure `stream.scoring` parser."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from stream.scoring.spec import ModelFileError, ModelSet, Problem, parse_models

__all__ = ["DEFAULT_MODELS", "load_default_models", "load_model_file"]

DEFAULT_MODELS = "default_models.yaml"
"""The model file shipped in `stream.scoring` (documented in the README, "Scoring models")."""


def load_model_file(path: str | Path) -> ModelSet:
    """Read and validate a model file; `ModelFileError` names the file, model, rule and field."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ModelFileError(source, [Problem(message=f"cannot read the file: {reason}")]) from exc
    return parse_models(text, source=source)


def load_default_models() -> ModelSet:
    """The default models shipped with Leadstream."""
    text = resources.files("stream.scoring").joinpath(DEFAULT_MODELS).read_text(encoding="utf-8")
    return parse_models(text, source=f"stream/scoring/{DEFAULT_MODELS}")
