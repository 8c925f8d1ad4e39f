"""`leadstream rules diff OLD NEW`: what a model change would do to a sample of leads.

The sample (a seeded simulation, or events read from JSONL) is scored offline through the pure
core under both model files (`stream.offline.history`), and read at one moment: the end of the
sample. Per model id in both files: the stage distribution under each, the leads whose stage changes
(counted by from -> to), the mean total score and its shift, and the rules whose mean points
per lead move most.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from schemas import codec
from schemas.errors import DecodeError
from schemas.events import EventBase
from schemas.stages import Stage
from stream.offline.history import score_history
from stream.scoring import ModelSet, explain, score_at

__all__ = ["ModelDiff", "diff_models", "read_events", "render"]

TOP_RULES = 10


def read_events(path: str | Path) -> tuple[list[EventBase], int]:
    """The events in a JSONL file, and how many lines did not decode.

    A line is an event's JSON, or a record as `leadstream simulate --out` writes it
    (`{"topic", "key", "value"}`). Raises `OSError` when the file cannot be read.
    """
    events: list[EventBase] = []
    bad = 0
    with Path(path).open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            value = line
            try:
                record = codec.loads(line)
                if isinstance(record, dict) and "topic" in record:
                    value = (
                        base64.b64decode(record["value_b64"])
                        if "value_b64" in record
                        else (str(record["value"]).encode())
                    )
                events.append(codec.decode(value, now=None))
            except (DecodeError, ValueError, KeyError):
                bad += 1
    return events, bad


@dataclass(frozen=True)
class ModelDiff:
    model: str
    old_version: str
    new_version: str
    leads: int
    old_stages: Counter[str]
    new_stages: Counter[str]
    moves: Counter[tuple[str, str]]
    old_mean: float
    new_mean: float
    rule_means: dict[str, tuple[float, float]]
    """Mean points per lead of each rule: (old, new)."""


@dataclass(frozen=True)
class _Result:
    stage: str
    total: float
    rules: dict[str, float]


def _results(
    by_lead: dict[str, list[EventBase]],
    models: ModelSet,
    at: datetime,
    progress: Callable[[int], None] | None,
) -> dict[str, dict[str, _Result]]:
    out: dict[str, dict[str, _Result]] = {}
    for n, (lead_id, events) in enumerate(by_lead.items(), start=1):
        history = score_history(lead_id, events, models, until=at)
        per_model: dict[str, _Result] = {}
        if history.state is not None:
            for model_id, state in history.state.models.items():
                why = explain(state, at)
                rules = {line.rule_id: line.points for line in why.rules}
                per_model[model_id] = _Result(state.stage.value, score_at(state, at).total, rules)
        out[lead_id] = per_model
        if progress is not None:
            progress(n)
    return out


def diff_models(
    by_lead: dict[str, list[EventBase]],
    old: ModelSet,
    new: ModelSet,
    *,
    at: datetime,
    progress: Callable[[str, int], None] | None = None,
) -> list[ModelDiff]:
    """Compare every model id the two files share, on the same leads, at `at`."""
    before = _results(by_lead, old, at, (lambda n: progress("old", n)) if progress else None)
    after = _results(by_lead, new, at, (lambda n: progress("new", n)) if progress else None)
    diffs = []
    none = _Result(Stage.LEAD.value, 0.0, {})
    for model_id in [m for m in old.ids if m in new.ids]:
        leads = sorted(by_lead)
        pairs = [
            (before[lead].get(model_id, none), after[lead].get(model_id, none)) for lead in leads
        ]
        rule_ids = sorted({r for a, b in pairs for r in (*a.rules, *b.rules)})
        count = max(len(pairs), 1)
        diffs.append(
            ModelDiff(
                model=model_id,
                old_version=old.get(model_id).version,
                new_version=new.get(model_id).version,
                leads=len(pairs),
                old_stages=Counter(a.stage for a, _ in pairs),
                new_stages=Counter(b.stage for _, b in pairs),
                moves=Counter((a.stage, b.stage) for a, b in pairs if a.stage != b.stage),
                old_mean=sum(a.total for a, _ in pairs) / count,
                new_mean=sum(b.total for _, b in pairs) / count,
                rule_means={
                    rule: (
                        sum(a.rules.get(rule, 0.0) for a, _ in pairs) / count,
                        sum(b.rules.get(rule, 0.0) for _, b in pairs) / count,
                    )
                    for rule in rule_ids
                },
            )
        )
    return diffs


def render(diffs: list[ModelDiff], old: ModelSet, new: ModelSet, *, source: str) -> str:
    """The comparison as plain text tables."""
    lines = [f"sample: {source}"]
    only_old = [m for m in old.ids if m not in new.ids]
    only_new = [m for m in new.ids if m not in old.ids]
    if only_old:
        lines.append(f"models only in OLD (not compared): {', '.join(only_old)}")
    if only_new:
        lines.append(f"models only in NEW (not compared): {', '.join(only_new)}")
    stage_order = [stage.value for stage in Stage]
    for d in diffs:
        changed = sum(d.moves.values())
        lines += [
            "",
            f"model {d.model}: {d.old_version} -> {d.new_version}, {d.leads} leads, "
            f"{changed} change stage ({100 * changed / max(d.leads, 1):.1f}%)",
            f"mean total score {d.old_mean:.2f} -> {d.new_mean:.2f} "
            f"(shift {d.new_mean - d.old_mean:+.2f})",
            "",
            f"{'stage':14s} {'old':>6s} {'new':>6s} {'change':>7s}",
        ]
        for stage in stage_order:
            was, now = d.old_stages.get(stage, 0), d.new_stages.get(stage, 0)
            if was or now:
                lines.append(f"{stage:14s} {was:6d} {now:6d} {now - was:+7d}")
        if d.moves:
            lines += ["", f"{'from -> to':30s} {'leads':>6s}"]
            for (origin, target), n in sorted(d.moves.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"{origin + ' -> ' + target:30s} {n:6d}")
        moved = sorted(
            ((rule, a, b) for rule, (a, b) in d.rule_means.items() if abs(b - a) >= 0.005),
            key=lambda row: (-abs(row[2] - row[1]), row[0]),
        )[:TOP_RULES]
        lines += ["", "rules whose mean points per lead change most:"]
        if moved:
            lines.append(f"{'rule':24s} {'old':>8s} {'new':>8s} {'change':>8s}")
            lines += [f"{r:24s} {a:8.2f} {b:8.2f} {b - a:+8.2f}" for r, a, b in moved]
        else:
            lines.append("(none)")
    return "\n".join(lines)
