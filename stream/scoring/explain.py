"""Explanations: why a lead has its score and stage, and a model printed as tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.stages import Stage
from stream.scoring.compiled import CompiledModel
from stream.scoring.engine import score_at, to_datetime
from stream.scoring.mail import REASONS
from stream.scoring.spec import AccountSpec, ScoringModel, format_duration
from stream.scoring.state import FLAG_NAMES, ModelState

__all__ = [
    "FORMATS",
    "Explanation",
    "RuleLine",
    "StageLine",
    "describe_accounts",
    "describe_model",
    "explain",
    "rule_rows",
]


@dataclass(frozen=True, slots=True)
class RuleLine:
    """One rule's part of the score now."""

    rule_id: str
    kind: str
    """`fit` or `engagement`."""
    group: str | None
    """The decay group of an engagement rule."""
    points: float
    """Fit points, or engagement points decayed to the explanation's time."""


@dataclass(frozen=True, slots=True)
class StageLine:
    from_stage: Stage | None
    to_stage: Stage
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """A lead's score under one model at `as_of`, rule by rule, with its stage history."""

    model: str
    model_version: str
    as_of: datetime
    fit: float
    engagement: float
    total: float
    grade: str
    stage: Stage
    rules: tuple[RuleLine, ...]
    """Every rule with a non-zero part, largest first."""
    groups: tuple[tuple[str, float], ...]
    """Engagement per decay group, decayed to `as_of`."""
    recent: tuple[tuple[str, float, datetime], ...]
    """The latest contributions: rule, points when earned, event time."""
    history: tuple[StageLine, ...]
    flags: tuple[str, ...]
    """Spam and bot signals and other conditions, in words."""
    machine_events: int = 0
    """Events a machine made (privacy proxies' opens, link scanners' clicks), not scored."""
    machine_reason: str | None = None
    """Why the latest of them was taken for a machine's."""

    def format(self) -> str:
        """The explanation as text for people."""
        lines = [
            f"{self.model} {self.model_version} as of {self.as_of.isoformat()}: "
            f"total {self.total:.2f} = fit {self.fit:.2f} + engagement {self.engagement:.2f}, "
            f"grade {self.grade}, stage {self.stage.value}",
        ]
        if self.flags:
            lines.append(f"flags: {', '.join(self.flags)}")
        if self.machine_events:
            lines.append(
                f"machine-made events not scored: {self.machine_events} "
                f"(latest: {self.machine_reason})"
            )
        rows = [(r.rule_id, r.kind, r.group or "", f"{r.points:+.2f}") for r in self.rules]
        lines += ["", *_table(("rule", "kind", "group", "points"), rows)]
        if self.groups:
            group_rows = [(name, f"{points:+.2f}") for name, points in self.groups]
            lines += ["", *_table(("decay group", "points"), group_rows)]
        if self.recent:
            recent_rows = [(rule, f"{p:+g}", at.isoformat()) for rule, p, at in self.recent]
            lines += ["", *_table(("recent rule", "points", "at"), recent_rows)]
        history_rows = [
            (
                h.at.isoformat(),
                h.from_stage.value if h.from_stage else "-",
                h.to_stage.value,
                h.reason,
            )
            for h in self.history
        ]
        lines += ["", *_table(("at", "from", "to", "reason"), history_rows)]
        return "\n".join(lines)


def explain(state: ModelState, now: datetime) -> Explanation:
    """Why the lead has its score and stage at `now` (the state's model gives the rules)."""
    score = score_at(state, now)  # also checks that `now` is timezone-aware
    at = max(now.timestamp(), state.as_of)
    c = state.c
    lines = [RuleLine(rule_id, "fit", None, points) for rule_id, (points, _) in state.fit.items()]
    groups: dict[str, float] = {}
    for rule_id, (s, t) in state.eng.items():
        rule = c.rules[rule_id]
        value = s * math.exp(-rule.rate * (at - t)) if rule.rate else s
        lines.append(RuleLine(rule_id, "engagement", rule.group, value))
        groups[rule.group] = groups.get(rule.group, 0.0) + value
    lines = [line for line in lines if line.points]
    lines.sort(key=lambda line: -abs(line.points))
    return Explanation(
        model=c.id,
        model_version=c.version,
        as_of=score.as_of,
        fit=score.fit,
        engagement=score.engagement,
        total=score.total,
        grade=score.grade,
        stage=score.stage,
        rules=tuple(lines),
        groups=tuple(sorted(groups.items())),
        recent=tuple((r.rule_id, r.points, to_datetime(r.at)) for r in reversed(state.recent)),
        history=tuple(
            StageLine(h.from_stage, h.to_stage, to_datetime(h.at), h.reason) for h in state.history
        ),
        flags=tuple(name for bit, name in FLAG_NAMES.items() if state.flags & bit),
        machine_events=state.machine[0] if state.machine is not None else 0,
        machine_reason=machine_reason(state.model, state.machine[1])
        if state.machine is not None
        else None,
    )


def machine_reason(model: ScoringModel, code: str) -> str:
    """A machine-event reason code (`stream.scoring.mail.REASONS`) in words, with the model's
    durations."""
    timing = model.spam.machine_timing
    durations = {
        "open": timing.open_within if timing else None,
        "click": timing.click_within if timing else None,
        "unopened": timing.unopened_click_within if timing else None,
        "next_link": timing.next_link_within if timing else None,
    }
    words = {k: format_duration(v) if v is not None else "?" for k, v in durations.items()}
    return REASONS.get(code, code).format(**words)


# ----------------------------------------------------------------------- model tables


FORMATS = ("text", "md")
"""How `describe_model` writes its tables: aligned plain text, or Markdown."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], fmt: str = "text") -> list[str]:
    if fmt == "md":
        return [
            "| " + " | ".join(_cell(h) or " " for h in header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
        ]
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _section(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], fmt: str
) -> list[str]:
    """A titled table, after a blank line."""
    heading = f"### {title}" if fmt == "md" else title
    return ["", heading, *([""] if fmt == "md" else []), *_table(header, rows, fmt)]


def _points(value: float) -> str:
    return f"{value:+g}"


def _describe_one(model: ScoringModel, *, full: bool, fmt: str) -> list[str]:
    title = f"model {model.id} (version {model.version})"
    out = [f"## {title}"] if fmt == "md" else [title, "=" * len(title)]
    if model.description:
        out += ["", model.description] if fmt == "md" else [model.description]
    out += _describe_rules(model, full=full, fmt=fmt)
    out += _describe_stages(model, fmt)
    out += _describe_grades_and_spam(model, fmt)
    return out


def rule_rows(model: ScoringModel, *, full: bool = False) -> list[dict[str, str]]:
    """Every rule of the model as the cells of a table row: kind, rule, test, points, cap,
    decay group, flag and description (tests in full with `full`)."""
    rows = [
        {
            "kind": "fit",
            "rule": rule.id,
            "test": rule.describe_test(full=full),
            "points": _points(rule.points) + ("/unit" if rule.per_unit_above is not None else ""),
            "cap": "",
            "decay group": "never decays",
            "flag": "disqualifies" if rule.disqualify else "",
            "description": rule.description or "",
        }
        for rule in model.fit
    ]
    for erule in model.engagement:
        half_life = model.decay[erule.group]
        rows.append(
            {
                "kind": "engagement",
                "rule": erule.id,
                "test": erule.describe_test(full=full),
                "points": _points(erule.points),
                "cap": erule.cap.describe() if erule.cap else "",
                "decay group": f"{erule.group} "
                f"({format_duration(half_life) if half_life else 'no decay'})",
                "flag": "hand-raise" if erule.hand_raise else "",
                "description": erule.description or "",
            }
        )
    return rows


def _describe_rules(model: ScoringModel, *, full: bool, fmt: str) -> list[str]:
    rows = rule_rows(model, full=full)
    described = ["description"] if full else []
    fit = [
        [r[k] for k in ("rule", "test", "points", "flag", *described)]
        for r in rows
        if r["kind"] == "fit"
    ]
    out = _section(
        "Fit rules (profile; never decay)", ("rule", "test", "points", "", *described), fit, fmt
    )
    engagement = [
        [r[k] for k in ("rule", "test", "points", "cap", "decay group", "flag", *described)]
        for r in rows
        if r["kind"] == "engagement"
    ]
    out += _section(
        "Engagement and negative rules (events)",
        ("rule", "when", "points", "cap", "decay group", "", *described),
        engagement,
        fmt,
    )
    group_rows = [
        (name, f"half-life {format_duration(h)}" if h is not None else "does not decay")
        for name, h in model.decay.items()
    ]
    out += _section("Decay groups", ("group", "decay"), group_rows, fmt)
    return out


def _threshold_text(
    basis: str, promote_at: float, min_fit: float | None, min_eng: float | None
) -> str:
    text = f"{basis} >= {promote_at:g}"
    if min_fit is not None:
        text += f" and fit >= {min_fit:g}"
    if min_eng is not None:
        text += f" and engagement >= {min_eng:g}"
    return text


def _describe_stages(model: ScoringModel, fmt: str) -> list[str]:
    stages = model.stages
    stage_rows = [("initial stage", stages.initial.value)]
    if stages.mql is not None:
        mql = stages.mql
        text = _threshold_text(mql.basis, mql.promote_at, mql.min_fit, mql.min_engagement)
        stage_rows.append(("-> mql", text))
        if mql.demote_below is not None:
            stage_rows.append(("mql -> recycled", f"{mql.basis} < {mql.demote_below:g} (decay)"))
    if stages.sql is not None:
        sql = stages.sql
        text = _threshold_text(sql.basis, sql.promote_at, sql.min_fit, sql.min_engagement)
        stage_rows.append(("-> sql", text))
    hand_raisers = [r.id for r in model.engagement if r.hand_raise]
    if hand_raisers:
        stage_rows.append(
            (
                "hand-raise -> sql",
                f"{', '.join(hand_raisers)} with fit >= {stages.hand_raise.min_fit:g} "
                f"(within {format_duration(stages.hand_raise.within)})",
            )
        )
    for name in type(stages.crm).model_fields:
        stage_rows.append((name, f"-> {getattr(stages.crm, name).value}"))
    signals = ", ".join(model.spam.disqualify) or "none"
    stage_rows.append(("disqualified by", f"{signals}; fit rules marked 'disqualifies'"))
    out = _section("Stages and thresholds", ("transition", "when"), stage_rows, fmt)

    c: CompiledModel = model.compiled
    graph_rows = [
        (stage.value, ", ".join(sorted(t.value for t in c.graph.get(stage, frozenset()))) or "-")
        for stage in Stage
    ]
    source = "model's own" if stages.graph is not None else "default"
    out += _section(f"Allowed transitions ({source} graph)", ("from", "to"), graph_rows, fmt)
    return out


def _describe_grades_and_spam(model: ScoringModel, fmt: str) -> list[str]:
    fa, fb, fc = model.grades.fit
    e1, e2, e3 = model.grades.engagement
    fit_bands = [("A", f">= {fa:g}"), ("B", f">= {fb:g}"), ("C", f">= {fc:g}"), ("D", f"< {fc:g}")]
    eng_bands = [f"1 (>= {e1:g})", f"2 (>= {e2:g})", f"3 (>= {e3:g})", f"4 (< {e3:g})"]
    grid = [
        (f"{letter} fit {rng}", *(f"{letter}{digit}" for digit in "1234"))
        for letter, rng in fit_bands
    ]
    out = _section("Grade matrix (fit band x engagement band)", ("", *eng_bands), grid, fmt)

    spam = model.spam
    burst = (
        f"more than {spam.burst.max_events} actions within {format_duration(spam.burst.within)}"
        if spam.burst is not None
        else "off"
    )
    extra = f" + {len(spam.disposable_domains)} listed" if spam.disposable_domains else ""
    spam_rows = [
        ("disposable domains", ("built-in" if spam.builtin_disposable_domains else "none") + extra),
        ("invalid domains", "checked" if spam.invalid_email_domains else "off"),
        ("gibberish names", "checked" if spam.gibberish_names else "off"),
        (
            "machine opens/clicks",
            "scored only by rules marked machine" if spam.ignore_machine_events else "scored",
        ),
        ("machine timing", _timing_words(model) if spam.ignore_machine_events else "off"),
        ("bot bursts", burst),
    ]
    out += _section("Spam and bot signals", ("signal", "handling"), spam_rows, fmt)
    outputs = model.outputs
    out += [
        "",
        f"Score updates: published when fit or engagement moves >= {outputs.min_change:g} "
        f"or the grade or stage changes; top {outputs.top_rules} rules attached.",
    ]
    return out


def _timing_words(model: ScoringModel) -> str:
    timing = model.spam.machine_timing
    if timing is None:
        return "off"
    tests = {
        "o": timing.open_within,
        "c": timing.click_within,
        "u": timing.unopened_click_within,
        "l": timing.next_link_within,
    }
    return "; ".join(machine_reason(model, c) for c, v in tests.items() if v is not None) or "off"


def describe_model(model: ScoringModel, *, full: bool = False, fmt: str = "text") -> str:
    """A scoring model as readable tables: rules, points, caps, decay groups, thresholds,
    stages, the allowed transitions and the grade matrix. `full`: every test in full and each
    rule's description; `fmt`: `text` (aligned columns) or `md` (Markdown)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: give one of {', '.join(FORMATS)}")
    return "\n".join(_describe_one(model, full=full, fmt=fmt))


def describe_accounts(spec: AccountSpec, *, fmt: str = "text") -> str:
    """A model file's accounts section as readable tables: account fit, buying-group roles,
    engaged contacts and the account stages; `fmt`: `text` or `md`, as `describe_model`."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: give one of {', '.join(FORMATS)}")
    title = f"Accounts: leads roll up to their company's account under model {spec.model}"
    out = [f"## {title}"] if fmt == "md" else [title]
    fit = [(rule.id, rule.describe_test(), _points(rule.points)) for rule in spec.fit]
    if fit:
        out += ["", *_table(("account fit rule", "test", "points"), fit, fmt)]
    roles = [(role.id, f"job_title ~ /{role.regex}/", _points(role.points)) for role in spec.roles]
    if roles:
        out += ["", *_table(("buying-group role", "test", "points"), roles, fmt)]
    out += [
        "",
        f"Engaged contacts: members whose latest action is less than "
        f"{format_duration(spec.engaged_within)} old, {spec.contact_points:g} points each "
        f"(at most {spec.max_contacts}).",
    ]
    rows = []
    for name, level in (("engaged", spec.stages.engaged), ("mqa", spec.stages.mqa)):
        needs = [f"{level.min_roles} roles"] if level.min_roles else []
        needs += [f"{level.min_contacts} engaged contacts"] if level.min_contacts else []
        rows.append(
            (
                name,
                f"score >= {level.promote_at:g}" + (f" with {', '.join(needs)}" if needs else ""),
                f"score < {level.demote_below:g}",
            )
        )
    rows += [
        ("opportunity", "a member's lead stage is opportunity", "no member there"),
        ("customer", "a member's lead stage is customer", "no member there"),
    ]
    out += _section("Account stages", ("stage", "reached when", "left when"), rows, fmt)
    return "\n".join(out)
