"""Scoring a file of leads with a model file, as the worker would (`leadstream score`).

A table (CSV or Parquet, one row per lead) becomes each row's events (`rows`: the mapping the
README documents, read off the model's rules); an event log (JSONL) is grouped by lead with
identities and merges resolved (`stream.offline.history`). Either way every lead's events go
through the scoring core one by one, its state kept between events in the stored form the worker
keeps, under every model of the file as a worker runs them; the chosen model's total, fit,
engagement, grade, stage and top rules are read at the end: at `REPLAY_AT` for a table (nothing
decays), at the end of the log (or `at`) for events.

The stream check of `leadstream calibrate` is this same code on the held-out rows.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from schemas.events import EventBase
from stream.calibrate.metrics import Section, auc, by_stage, deciles, ks_statistic, pct
from stream.calibrate.rows import REPLAY_AT, Inputs, lead_events, model_inputs
from stream.calibrate.table import (
    CalibrationError,
    Role,
    column_keys,
    column_numbers,
    infer_role,
    parse_target,
)
from stream.calibrate.values import category
from stream.errors import LeadstreamError
from stream.offline.history import group_by_lead, score_history
from stream.scoring import LeadState, ModelSet, ScoringModel, explain, score_at
from stream.scoring.spec import suggest

__all__ = [
    "LeadScore",
    "Scored",
    "evaluate",
    "score_events",
    "score_table",
    "to_csv",
    "to_json",
]

Progress = Callable[[str, int, int], None]
NO_EVENTS = "(no events)"
"""The stage shown for a lead of the outcomes that has no event in the log."""


class _OutOfTime(LeadstreamError):
    """The time given to score the leads ran out (never leaves this module)."""


@dataclass(frozen=True)
class LeadScore:
    """A lead's score under one model."""

    lead_id: str
    total: float
    fit: float
    engagement: float
    grade: str
    stage: str
    top_rules: tuple[tuple[str, float], ...]
    """The rules giving the most points (as many as the model's `outputs.top_rules`)."""
    label: bool | None = None
    """Converted or not, when the outcome is known."""


@dataclass
class Scored:
    """Every lead's score, and how the file was read."""

    model: ScoringModel
    leads: list[LeadScore]
    at: datetime
    asked: int
    """How many leads there were to score (more than `leads` when time ran out)."""
    inputs: Inputs | None = None
    """For a table: the columns the model reads."""
    target: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.leads) == self.asked

    @property
    def totals(self) -> Any:
        return np.array([lead.total for lead in self.leads], dtype="float64")


def _lead_score(
    lead_id: str, state: LeadState | None, model: ScoringModel, at: datetime
) -> LeadScore:
    model_state = state.models.get(model.id) if state is not None else None
    if model_state is None:
        return LeadScore(lead_id, 0.0, 0.0, 0.0, "", NO_EVENTS, ())
    score = score_at(model_state, at)
    rules = explain(model_state, at).rules
    top = tuple((line.rule_id, line.points) for line in rules[: model.outputs.top_rules])
    return LeadScore(
        lead_id, score.total, score.fit, score.engagement, score.grade, score.stage.value, top
    )


def _timed(events: Iterable[EventBase], deadline: float | None) -> Iterator[EventBase]:
    for n, event in enumerate(events):
        if deadline is not None and n % 64 == 0 and time.monotonic() > deadline:
            raise _OutOfTime
        yield event


def _lead_ids(frame: Any, lead_column: str | None, skip: set[str]) -> list[str]:
    """The table's lead ids: `lead_column`, else the first column inferred as an id, else the
    row numbers (from 1)."""
    rows = len(frame)
    if lead_column is None:
        for name in map(str, frame.columns):
            if name not in skip:
                role, _ = infer_role(name, frame[name], column_numbers(frame[name]), rows)
                if role == Role.ID:
                    lead_column = name
                    break
    if lead_column is None:
        return [str(n) for n in range(1, rows + 1)]
    cells = frame[lead_column].tolist()
    return [str(n) if (v := category(cell)) is None else v for n, cell in enumerate(cells, 1)]


def score_table(
    frame: Any,
    models: ModelSet,
    model_id: str | None = None,
    *,
    lead_column: str | None = None,
    target: str | None = None,
    positive: str | None = None,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> Scored:
    """Score every row of `frame` (a pandas DataFrame) as a lead. With `deadline` (a
    `time.monotonic()` value) the leads scored before it are returned."""
    model = models.get(model_id) if model_id else models.models[0]
    names = list(map(str, frame.columns))
    for name in (lead_column, target):
        if name is not None and name not in names:
            raise CalibrationError(
                f"no column {name!r}{suggest(name, names)} (columns: {', '.join(names)})"
            )
    inputs = model_inputs(model, frame, target=target)
    if not inputs.inputs:
        raise CalibrationError(
            f"model {model.id} reads no column of the table: its fit rules test "
            f"{', '.join(inputs.unmatched) or 'no custom.<column> attribute'} and no engagement "
            "rule counts clicked events with a column's name as target (README: how the table "
            "maps to the stream)"
        )
    columns = {key: name for name, key in column_keys(names, target).items()}
    notes = []
    for field_name in inputs.unmatched:
        close = difflib.get_close_matches(field_name.removeprefix("custom."), list(columns), n=1)
        renamed = f" (did you mean the column {columns[close[0]]!r}?)" if close else ""
        notes.append(
            f"{field_name}: no column of the table gives it{renamed}; every lead is scored "
            "without it"
        )
    ids = _lead_ids(frame, lead_column, {*inputs.columns, *([target] if target else [])})
    repeated = len(ids) - len(set(ids))
    if repeated:
        notes.append(
            f"{repeated} rows repeat a lead id seen before: each row is scored as a lead of its "
            "own (a worker would add the rows' events up under one lead)"
        )
    labels: list[bool | None] = [None] * len(frame)
    if target is not None:
        labels = parse_target(frame[target], positive, both=False)[0].tolist()
    records = frame[inputs.columns].to_dict("records")
    leads: list[LeadScore] = []
    try:
        for n, row in enumerate(records):
            events = lead_events(ids[n], row, inputs.inputs, ref=f"r{n + 1}")
            history = score_history(ids[n], _timed(events, deadline), models)
            result = _lead_score(ids[n], history.state, model, REPLAY_AT)
            leads.append(result if labels[n] is None else _labelled(result, labels[n]))
            if progress is not None:
                progress("scoring (leads)", n + 1, len(records))
    except _OutOfTime:
        pass
    return Scored(model, leads, REPLAY_AT, len(records), inputs, target, notes)


def _labelled(lead: LeadScore, label: bool | None) -> LeadScore:
    return LeadScore(
        lead.lead_id, lead.total, lead.fit, lead.engagement, lead.grade, lead.stage,
        lead.top_rules, label,
    )  # fmt: skip


def score_events(
    events: Iterable[EventBase],
    models: ModelSet,
    model_id: str | None = None,
    *,
    at: datetime | None = None,
    outcomes: Mapping[str, bool] | None = None,
    target: str | None = None,
    progress: Progress | None = None,
) -> Scored:
    """Score every lead of an event log at `at` (default: its latest event). With `outcomes`
    (lead id → converted), leads of the outcomes without events are listed with no score."""
    model = models.get(model_id) if model_id else models.models[0]
    listed = list(events)
    if not listed:
        raise CalibrationError("the event log holds no valid events")
    moment = at or max(e.occurred_at for e in listed)
    by_lead = group_by_lead(listed)
    leads: list[LeadScore] = []
    for n, (lead_id, lead_events_) in enumerate(by_lead.items(), start=1):
        history = score_history(lead_id, lead_events_, models, until=moment)
        result = _lead_score(lead_id, history.state, model, moment)
        label = outcomes.get(lead_id) if outcomes is not None else None
        leads.append(_labelled(result, label))
        if progress is not None:
            progress("scoring (leads)", n, len(by_lead))
    notes = []
    if outcomes is not None:
        absent = [lead for lead in outcomes if lead not in by_lead]
        leads += [_labelled(_lead_score(lead, None, model, moment), outcomes[lead])
                  for lead in absent]  # fmt: skip
        if absent:
            notes.append(f"{len(absent)} leads of the outcomes have no event: scored 0")
        unknown = sum(1 for lead in by_lead if lead not in outcomes)
        if unknown:
            notes.append(f"{unknown} leads of the log have no outcome: left out of the figures")
    return Scored(model, leads, moment, len(leads), None, target, notes)


def evaluate(scored: Scored) -> list[Section]:
    """With known outcomes: AUC, KS, conversion and lift by decile and by stage."""
    known = [lead for lead in scored.leads if lead.label is not None]
    lines = [
        f"model {scored.model.id} (version {scored.model.version}): "
        f"{len(scored.leads)} leads scored"
        + ("" if scored.complete else f" of {scored.asked} (time ran out)"),
        *scored.notes,
    ]
    if scored.inputs is not None:
        shown = ", ".join(
            f"{i.column} ({i.kind}{', (missing) when blank' if i.missing else ''})"
            for i in scored.inputs.inputs
        )
        lines.insert(1, f"columns read: {shown}")
    if not known:
        return [Section("Summary", (), tuple((line,) for line in lines))]
    labels = np.array([bool(lead.label) for lead in known])
    totals = np.array([lead.total for lead in known], dtype="float64")
    lines.append(
        f"{len(known)} leads with an outcome, {int(labels.sum())} converted "
        f"({pct(float(labels.mean()))})"
    )
    stages = by_stage([lead.stage for lead in known], labels, "Conversion by stage")
    if labels.all() or not labels.any():
        lines.append("AUC - (every lead has the same outcome)")
        return [Section("Summary", (), tuple((line,) for line in lines)), stages]
    lines.append(f"AUC {auc(labels, totals):.4f}, KS {ks_statistic(totals, labels):.3f}")
    return [
        Section("Summary", (), tuple((line,) for line in lines)),
        deciles(totals, labels, "Conversion by score decile (highest scores first)"),
        stages,
    ]


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else round(x, 4)


def _row(lead: LeadScore, target: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "lead_id": lead.lead_id,
        "total": _number(lead.total),
        "fit": _number(lead.fit),
        "engagement": _number(lead.engagement),
        "grade": lead.grade,
        "stage": lead.stage,
        "top_rules": [{"rule": r, "points": _number(p)} for r, p in lead.top_rules],
    }
    if target is not None:
        row[target] = lead.label
    return row


def to_json(scored: Scored, *, lines: bool = False) -> str:
    """The leads as a JSON array, or JSON Lines (one object per lead)."""
    rows = [_row(lead, scored.target) for lead in scored.leads]
    if lines:
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"


def to_csv(scored: Scored) -> str:
    """The leads as CSV; `top_rules` reads `rule +points; rule +points`."""
    out = io.StringIO()
    header = ["lead_id", "total", "fit", "engagement", "grade", "stage", "top_rules"]
    if scored.target is not None:
        header.append(scored.target)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for lead in scored.leads:
        row = _row(lead, scored.target)
        row["top_rules"] = "; ".join(f"{r['rule']} {r['points']:+}" for r in row["top_rules"])
        if scored.target is not None:
            label = row[scored.target]
            row[scored.target] = "" if label is None else int(label)
        writer.writerow([row[name] for name in header])
    return out.getvalue()
