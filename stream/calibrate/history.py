"""Calibrating from an event log: the points of an existing model's rules, learned from outcomes.

The log (JSONL of Leadstream events) is scored through the pure core under a base model (the
current one, or the shipped default), as the stream would score it, each lead up to the time of
its outcome (the outcomes file's time column, else the end of the log; later events are left
out, they happened after the fact). The features are what the stream computes per rule: whether
each fit rule matched (units above the base for `per_unit_above` rules) and each engagement
rule's decayed count (its decayed points over its points, caps applied). A regularised logistic
regression on them gives each rule a weight; scaled like a scorecard (`pdo` points double the
odds) the weights are the rules' new points. The rules, tests, caps and decay stay as they were,
so the new model file is the base model with new points and thresholds.

Constraints of the format are kept: negative points only in a decay group that does not decay,
positive points for a rule with a points cap (its cap is scaled with its points) and non-zero
points for a disqualifying rule; a rule the constraint holds back keeps the nearest allowed
value and is listed in the notes. Rules that never fired in the history keep their points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from schemas.events import EventBase
from stream.calibrate.table import CalibrationError, parse_target
from stream.offline.history import group_by_lead, score_history
from stream.scoring import ModelSet, ScoringModel, parse_models, score_at
from stream.scoring.explain import explain
from stream.scoring.spec import _Loader

__all__ = ["HistoryCalibration", "calibrate_history"]


@dataclass
class RuleResult:
    rule_id: str
    kind: str
    old: float
    new: float
    fired: int
    """Training leads the rule gave points to."""
    rate_did: float
    rate_not: float
    note: str = ""


@dataclass
class HistoryCalibration:
    yaml_text: str
    model_id: str
    leads: int
    converted: int
    train: int
    test_labels: Any
    test_scores: Any
    """The new points applied to the held-out leads' features (offline)."""
    stream_scores: Any
    """The held-out leads' histories replayed under the new model file."""
    current_scores: Any
    """The base model's totals for the held-out leads."""
    rules: list[RuleResult]
    mql_at: float
    sql_at: float
    factor: float
    notes: list[str] = field(default_factory=list)

    def auc(self, scores: Any) -> float:
        return float(roc_auc_score(self.test_labels, scores))

    def render(self) -> str:
        n_test = len(self.test_labels)
        stream, offline = self.auc(self.stream_scores), self.auc(self.test_scores)
        lines = [
            "Summary",
            "-------",
            f"{self.leads} leads with outcomes, {self.converted} converted; trained on "
            f"{self.train}, held out {n_test}",
            f"held-out AUC: {offline:.4f} (new points), "
            f"current model {self.auc(self.current_scores):.4f}",
            f"stream AUC (held-out histories replayed under the new model file): {stream:.4f}, "
            f"difference {abs(stream - offline):.4f}",
            f"scaling: {self.factor * math.log(2):g} points double the odds",
            f"MQL at {self.mql_at:g} points, SQL at {self.sql_at:g} (top shares of training leads)",
            *self.notes,
            "",
            "Rules (per-action close rate: leads the rule scored against the others)",
            "-----",
        ]
        header = ("rule", "kind", "old", "new", "leads", "converted", "others", "note")
        rows = [
            (r.rule_id, r.kind, f"{r.old:g}", f"{r.new:g}", str(r.fired),
             _rate(r.rate_did), _rate(r.rate_not), r.note)
            for r in self.rules
        ]  # fmt: skip
        table = [header, *rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  for row in table]  # fmt: skip
        return "\n".join(lines) + "\n"


def _rate(rate: float) -> str:
    """A close rate as a percentage, `-` when no lead is on that side (a rule that never fired,
    or fired for every lead)."""
    return "-" if math.isnan(rate) else f"{100 * rate:.1f}%"


def _as_time(value: object, default: datetime) -> datetime:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return default
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise CalibrationError(f"outcome time {value!r} is not ISO 8601") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _features(
    model: ScoringModel, models: ModelSet, events: list[EventBase], until: datetime, lead: str
) -> tuple[dict[str, float], float]:
    """A lead's value per rule at `until` (units of the rule's points), and its total."""
    history = score_history(lead, [e for e in events if e.occurred_at <= until], models)
    state = history.state.models.get(model.id) if history.state is not None else None
    if state is None:
        return {}, 0.0
    points = {r.id: r.points for r in model.fit} | {r.id: r.points for r in model.engagement}
    values = {
        line.rule_id: line.points / points[line.rule_id]
        for line in explain(state, until).rules
        if points.get(line.rule_id)
    }
    return values, score_at(state, until).total


def _allowed(rule: dict[str, Any], new: float, model: dict[str, Any]) -> tuple[float, str]:
    """The nearest value the format allows for a rule's new points, and why it moved."""
    cap = rule.get("cap") or {}
    if "max_points" in cap and new <= 0:  # before the decay test: 0 points cannot be capped
        return 1.0, "has a points cap: kept positive"
    if "event" in rule and new < 0 and model["decay"].get(rule.get("group")) not in (None, "never"):
        return 0.0, "negative, but its group decays: 0"
    if rule.get("disqualify") and new == 0:
        return float(rule["points"]), "disqualifies: kept"
    return new, ""


def _design(
    outcomes: Any,
    model: ScoringModel,
    models: ModelSet,
    by_lead: dict[str, list[EventBase]],
    *,
    rule_ids: list[str],
    lead_column: str,
    time_column: str | None,
    end: datetime,
) -> tuple[Any, Any, list[datetime]]:
    """Per lead: the rules' values, the base model's total, and the time it is scored at."""
    x = np.zeros((len(outcomes), len(rule_ids)))
    current = np.zeros(len(outcomes))
    untils = []
    for i, row in enumerate(outcomes.to_dict("records")):
        lead = str(row[lead_column])
        until = _as_time(row.get(time_column) if time_column else None, end)
        untils.append(until)
        values, current[i] = _features(model, models, by_lead.get(lead, []), until, lead)
        for j, rule_id in enumerate(rule_ids):
            x[i, j] = values.get(rule_id, 0.0)
    return x, current, untils


def _rewrite(
    raw_model: dict[str, Any],
    rule_ids: list[str],
    *,
    weights: dict[int, float],
    factor: float,
    x: Any,
    y: Any,
) -> tuple[list[RuleResult], Any, list[str]]:
    """Put the new points (and scaled points caps) into the raw model."""
    raw_rules = {r["id"]: r for r in [*raw_model.get("fit", []), *raw_model.get("engagement", [])]}
    results: list[RuleResult] = []
    new_points = np.zeros(len(rule_ids))
    notes: list[str] = []
    for j, rule_id in enumerate(rule_ids):
        rule = raw_rules[rule_id]
        old = float(rule["points"])
        fired = np.abs(x[:, j]) > 0
        if math.isnan(weights[j]):
            new, note = old, "never fired: kept"
        else:
            new, note = _allowed(rule, float(round(weights[j] * factor)), raw_model)
            if note:
                notes.append(f"rule {rule_id}: {note}")
        cap = rule.get("cap") or {}
        if "max_points" in cap and old > 0:
            cap["max_points"] = max(1, round(cap["max_points"] * new / old))
        if rule.get("max_points") is not None and old:
            rule["max_points"] = abs(round(rule["max_points"] * new / old)) or 1
        rule["points"] = int(new) if float(new).is_integer() else new
        new_points[j] = new
        results.append(
            RuleResult(
                rule_id,
                "engagement" if "event" in rule else "fit",
                old,
                new,
                int(fired.sum()),
                float(y[fired].mean()) if fired.any() else math.nan,
                float(y[~fired].mean()) if (~fired).any() else math.nan,
                note,
            )
        )
    return results, new_points, notes


def _set_stages(raw_model: dict[str, Any], mql_at: float, sql_at: float) -> None:
    """New thresholds; a demotion threshold keeps its ratio to the promotion threshold."""
    stages = raw_model.setdefault("stages", {})
    old_mql = stages.get("mql") or {}
    mql: dict[str, Any] = {**old_mql, "promote_at": mql_at}
    mql.pop("demote_below", None)
    demote, promote = old_mql.get("demote_below"), old_mql.get("promote_at")
    if demote is not None and promote and mql_at > 0:
        mql["demote_below"] = float(np.floor(mql_at * demote / promote))
    stages["mql"] = mql
    stages["sql"] = {**(stages.get("sql") or {}), "promote_at": sql_at}


def calibrate_history(
    events: list[EventBase],
    outcomes: Any,
    *,
    base_text: str,
    model_id: str | None,
    lead_column: str,
    target: str,
    time_column: str | None,
    positive: str | None = None,
    pdo: float = 20.0,
    c: float = 0.5,
    holdout: float = 0.25,
    seed: int = 42,
    mql_top: float = 0.2,
    sql_top: float = 0.05,
    version: str | None = None,
) -> HistoryCalibration:
    """Learn new points for the rules of the base model (see the module's docstring)."""
    base = parse_models(base_text, source="base model")
    if model_id and model_id not in base.ids:
        raise CalibrationError(f"the base model file {base.no_model(model_id)}")
    model = base.get(model_id) if model_id else base.models[0]
    models = ModelSet(models=(model,))
    for name in (lead_column, target, *([time_column] if time_column else [])):
        if name not in outcomes.columns:
            raise CalibrationError(f"the outcomes have no column {name!r}")
    label, _ = parse_target(outcomes[target], positive)
    keep = label.notna().to_numpy()
    outcomes = outcomes.loc[keep].reset_index(drop=True)
    y = label[keep].to_numpy(dtype=bool)
    if not events:
        raise CalibrationError("the event log holds no valid events")
    end = max(e.occurred_at for e in events)
    by_lead = group_by_lead(events)
    rule_ids = [r.id for r in model.fit] + [r.id for r in model.engagement]
    x, current, untils = _design(
        outcomes, model, models, by_lead,
        rule_ids=rule_ids, lead_column=lead_column, time_column=time_column, end=end,
    )  # fmt: skip
    positions = np.arange(len(y))
    train, test = train_test_split(positions, test_size=holdout, stratify=y, random_state=seed)
    used = np.flatnonzero(np.abs(x[train]).sum(axis=0) > 0)
    regression = LogisticRegression(C=c, max_iter=5000).fit(x[train][:, used], y[train])
    factor = pdo / math.log(2)
    weights = dict.fromkeys(range(len(rule_ids)), math.nan)
    for j, w in zip(used.tolist(), regression.coef_[0].tolist(), strict=True):
        weights[j] = w
    raw = yaml.load(base_text, Loader=_Loader)  # noqa: S506  (a SafeLoader)
    raw_model = next(m for m in raw["models"] if m["id"] == model.id)
    results, new_points, notes = _rewrite(
        raw_model, rule_ids, weights=weights, factor=factor, x=x[train], y=y[train]
    )
    train_scores = x[train] @ new_points
    mql_at = float(np.floor(np.quantile(train_scores, 1 - mql_top)))
    sql_at = max(float(np.floor(np.quantile(train_scores, 1 - sql_top))), mql_at)
    _set_stages(raw_model, mql_at, sql_at)
    raw_model["version"] = version or f"{raw_model['version']}.calibrated"
    raw_model["description"] = (
        f"{raw_model.get('description') or model.id} Points learned from {len(train)} leads' "
        f"histories and outcomes; {pdo:g} points double the odds of converting."
    )
    text = "# Calibrated by `leadstream calibrate --events`: rule points learned from outcomes.\n"
    text += yaml.safe_dump({"format": 1, "models": [raw_model]}, sort_keys=False, width=100)
    new_models = parse_models(text, source="calibrated model")
    stream = np.zeros(len(test))
    for k, i in enumerate(test.tolist()):
        lead = str(outcomes.iloc[i][lead_column])
        _, stream[k] = _features(
            new_models.models[0], new_models, by_lead.get(lead, []), untils[i], lead
        )
    return HistoryCalibration(
        yaml_text=text,
        model_id=model.id,
        leads=len(y),
        converted=int(y.sum()),
        train=len(train),
        test_labels=y[test],
        test_scores=x[test] @ new_points,
        stream_scores=stream,
        current_scores=current[test],
        rules=results,
        mql_at=mql_at,
        sql_at=sql_at,
        factor=factor,
        notes=notes,
    )
