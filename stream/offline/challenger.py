"""Champion and challenger in a model file: add a proposal as a shadow model, promote it.

A challenger runs beside the live models as a shadow model (`shadow: true`): scored in the same
pass, published with its own id, never moving stages, evaluated live on CRM outcomes
(`leadstream models evaluate`). Promoting it flips `shadow` off and gives it a new version; the
model it replaces is put in shadow (or left out), so one model per line of business moves the
stages. Files are read and written as YAML data: comments are not kept. Every result is checked
by the model-file parser before it is returned.
"""

from __future__ import annotations

from typing import Any

import yaml

from stream.scoring.spec import ModelFileError, Problem, _Loader, parse_models, suggest

__all__ = ["add_shadow", "promote"]

_HEADER = "# Leadstream model file: live models and shadow (challenger) models.\n"


def _load(text: str, source: str) -> dict[str, Any]:
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ModelFileError(source, [Problem(message=f"not YAML: {exc}")]) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise ModelFileError(source, [Problem(message="no list of models")])
    return raw


def _dump(raw: dict[str, Any], source: str) -> str:
    text = _HEADER + yaml.safe_dump(raw, sort_keys=False, width=100, allow_unicode=True)
    parse_models(text, source=source)  # a file the worker would refuse is never written
    return text


def _model(raw: dict[str, Any], model_id: str, source: str) -> dict[str, Any]:
    for model in raw["models"]:
        if isinstance(model, dict) and model.get("id") == model_id:
            return model
    ids = [str(m.get("id")) for m in raw["models"] if isinstance(m, dict)]
    message = f"no model {model_id!r}{suggest(model_id, ids)} (models: {', '.join(ids)})"
    raise ModelFileError(source, [Problem(message=message)])


def add_shadow(
    live_text: str, proposal_text: str, *, model_id: str, proposal_model: str | None = None
) -> str:
    """The live model file with the proposal's model added as shadow model `model_id`.

    `proposal_model` picks the proposal's model (default: its first). A shadow model of the live
    file with the id `model_id` is replaced; a live one is refused (it would stop moving stages).
    """
    live = _load(live_text, "live models")
    for model in live["models"]:
        if isinstance(model, dict) and model.get("id") == model_id and not model.get("shadow"):
            problem = Problem(
                model=model_id,
                message="a live model has this id: give the challenger an id of its own",
            )
            raise ModelFileError("live models", [problem])
    proposal = _load(proposal_text, "proposal")
    chosen = (
        _model(proposal, proposal_model, "proposal") if proposal_model else proposal["models"][0]
    )
    challenger = {**chosen, "id": model_id, "shadow": True}
    live["models"] = [m for m in live["models"] if m.get("id") != model_id] + [challenger]
    return _dump(live, "models with the challenger")


def promote(text: str, model_id: str, *, version: str, retire: str | None = None) -> str:
    """`text` with `model_id` live (`shadow` off) at `version`; `retire`, the model it replaces,
    goes to shadow (it is still scored and evaluated, and moves no stage), and the accounts
    section, if it rolled up `retire`, rolls up `model_id`."""
    raw = _load(text, "models")
    model = _model(raw, model_id, "models")
    if str(model.get("version")) == version:
        problem = Problem(message=f"{model_id!r} already has version {version!r}: give a new one")
        raise ModelFileError("models", [problem])
    model.pop("shadow", None)
    model["version"] = version
    if retire is not None:
        if retire == model_id:
            raise ModelFileError("models", [Problem(message="a model cannot replace itself")])
        _model(raw, retire, "models")["shadow"] = True
        accounts = raw.get("accounts")
        if isinstance(accounts, dict) and accounts.get("model") == retire:
            accounts["model"] = model_id  # accounts roll up the live model
    return _dump(raw, "promoted models")
