"""What Leadstream remembers about a lead under a model, and its compact serialised form.

A `ModelState` holds one lead's state under one model; a `LeadState` holds every model's state
of one lead plus the ids of the events already applied (one table value per lead). Both turn into
plain JSON-able dicts with short keys (`to_dict`) and back (`from_dict`), because every table
write is a changelog message.

Serialised `ModelState` (keys are omitted when empty or default):

| key | meaning |
| --- | --- |
| `a` | as of: the event time (epoch seconds) the state is evaluated at |
| `s` | stage |
| `h` | stage history, oldest first: `[from, to, a - at, reason]` (`[null, to, a - at]`: new lead) |
| `f` | fit points per rule: `points`, or `[points, ft - t]` when set before the latest profile |
| `ft` | `a -` the time of the latest profile values (fit rules are last-writer-wins per rule) |
| `e` | engagement per rule: the points decayed to `a` (`S` with `T = a`), 12 significant digits |
| `c` | cap counters per rule: `[window - current window, used, ...]` (current and previous) |
| `w` | burst window: `[a - t, rule, points, rule, points, ...]` per recent action |
| `p` | recent contributions: `[rule, round(a - t)]`, plus the points when not the rule's own |
| `g` | flags (spam signals, bot, hold, set by hand) |
| `x` | `a -` the time of the latest applied CRM feedback or hand-set stage |
| `k` | the latest hand-raise: `[a - t, rule]` |
| `n` | revision of the last published score |
| `o` | the last published `[fit, engagement]` |
| `i` | ids of recently applied events (base64 of 6-byte BLAKE2b hashes) |

Rules are keyed by a 4-character hash of their id (`stream.scoring.spec.rule_code`), so states
survive edits to the model. Times are stored relative to `a` so that they are short; for event
times that are less than 27 years apart the subtraction and its inverse are exact in binary
floating point. Engagement is rounded to 12 significant digits when stored (a relative error of
at most 5·10⁻¹³ per write); the in-memory state the engine works on is exact.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from schemas.errors import LeadstreamError
from schemas.stages import Stage
from stream.scoring.compiled import CompiledModel
from stream.scoring.spec import ModelSet, ScoringModel

__all__ = [
    "BOT",
    "CAP_LATE_WINDOWS",
    "DISPOSABLE",
    "FIT_DQ",
    "GIBBERISH",
    "HISTORY",
    "HOLD",
    "INVALID",
    "MANUAL",
    "NEW_LEAD",
    "RECENT",
    "SEEN_IDS",
    "Contribution",
    "LeadState",
    "ModelState",
    "StageEntry",
    "StateFormatError",
    "event_hash",
]

SEEN_IDS = 32
"""How many recently applied event ids a lead remembers. An event replayed after this many newer
events of the same lead is applied again (counted twice)."""
HISTORY = 8
"""Stage changes kept per lead and model (the oldest are dropped)."""
RECENT = 3
"""Recent contributions kept per lead and model for explanations."""
CAP_LATE_WINDOWS = 1
"""Cap counters are kept for the lead's current cap window and this many before it. A capped
rule's event in an older window (more than one window late) is not scored: its counter is gone,
so the cap is assumed used up and is never exceeded."""
PRUNE_BELOW = 1e-9
"""Decayed engagement below this many points is dropped when the state is serialised."""

# Flags.
DISPOSABLE = 1
INVALID = 2
GIBBERISH = 4
BOT = 8
HOLD = 16
"""Sales sent the lead back: thresholds do not promote it until its score falls below the
demotion threshold (otherwise it would be re-qualified at once by the score sales rejected)."""
MANUAL = 32
"""The stage was set by hand: thresholds leave it alone until the next CRM or hand-set stage."""
FIT_DQ = 64
"""A disqualifying fit rule matches the lead's current profile."""

FLAG_NAMES = {
    DISPOSABLE: "disposable email domain",
    INVALID: "invalid email domain",
    GIBBERISH: "gibberish name",
    BOT: "bot burst seen",
    HOLD: "on hold after sales feedback",
    MANUAL: "stage set by hand",
    FIT_DQ: "disqualifying profile",
}


class StateFormatError(LeadstreamError):
    """A serialised state that cannot be read back."""


class StageEntry(NamedTuple):
    """One stage change: from, to, when (epoch seconds, event time) and why."""

    from_stage: Stage | None
    to_stage: Stage
    at: float
    reason: str


class Contribution(NamedTuple):
    """Points a rule gave the lead for one event (after caps)."""

    rule_id: str
    points: float
    at: float
    """Event time, epoch seconds."""


def event_hash(event_id: str) -> int:
    """A 48-bit hash of an event id, stable across processes (BLAKE2b, not Python's `hash`).

    Two different ids collide with probability 2⁻⁴⁸, so among a lead's 32 remembered ids a new
    event is taken for a replay about once in 10¹³ events.
    """
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=6).digest(), "big")


def _pack_ids(ids: tuple[int, ...]) -> str:
    return base64.b64encode(b"".join(i.to_bytes(6, "big") for i in ids)).decode("ascii")


def _unpack_ids(text: str) -> tuple[int, ...]:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % 6:
        raise ValueError("event-id hashes are 6 bytes each")
    return tuple(int.from_bytes(raw[i : i + 6], "big") for i in range(0, len(raw), 6))


def _short(value: float) -> float | int:
    """`value` to 12 significant digits (relative error at most 5e-13): engagement sums."""
    return _num(float(f"{value:.12g}"))


def _num(value: float) -> float | int:
    """Whole numbers as ints (shorter in JSON), other numbers unchanged."""
    if isinstance(value, int):
        return value
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


Window = tuple[tuple[float, tuple[tuple[str, float], ...]], ...]
Caps = dict[str, tuple[tuple[int, float], ...]]
"""Per capped rule: `(window index, points or events used)` for the current and previous
window (window index = floor(event time / cap period))."""

NEW_LEAD = "new lead"


class ModelState:
    """One lead's state under one scoring model.

    Engagement is kept per rule as `(S, T)`: the rule's points decayed to time `T`. Because a
    rule's points decay with its group's half-life, the group's `(S, T)` of the architecture is
    the sum of its rules', and keeping them per rule gives the exact per-rule breakdown for
    explanations at no extra cost.
    """

    __slots__ = (
        "as_of",
        "c",
        "caps",
        "emitted",
        "eng",
        "fact_at",
        "fit",
        "fit_items",
        "fit_total",
        "flags",
        "hand_raise",
        "history",
        "model",
        "recent",
        "revision",
        "seen",
        "stage",
        "window",
    )

    def __init__(
        self,
        model: ScoringModel,
        *,
        as_of: float,
        stage: Stage,
        history: tuple[StageEntry, ...] = (),
        fit: dict[str, tuple[float, float]] | None = None,
        eng: dict[str, tuple[float, float]] | None = None,
        caps: Caps | None = None,
        window: Window = (),
        recent: tuple[Contribution, ...] = (),
        flags: int = 0,
        fact_at: float = -math.inf,
        hand_raise: tuple[float, str] | None = None,
        revision: int = 0,
        emitted: tuple[float, float] | None = None,
        seen: tuple[int, ...] = (),
    ) -> None:
        self.model = model
        self.c: CompiledModel = model.compiled
        """The model prepared for scoring (kept here: reaching it through the model is slow)."""
        self.as_of = as_of
        self.stage = stage
        self.history = history
        self.fit: dict[str, tuple[float, float]] = {}
        self.fit_total = 0.0
        self.fit_items: tuple[tuple[float, float, str], ...] = ()
        self.set_fit(fit if fit is not None else {})
        self.eng: dict[str, tuple[float, float]] = eng if eng is not None else {}
        self.caps: Caps = caps if caps is not None else {}
        self.window = window
        self.recent = recent
        self.flags = flags
        self.fact_at = fact_at
        self.hand_raise = hand_raise
        self.revision = revision
        self.emitted = emitted
        self.seen = seen

    def copy(self) -> ModelState:
        """A copy that can be changed without changing this state (the engine replaces, rather
        than edits, the `fit` and `caps` dicts; `eng` is copied here)."""
        new = ModelState.__new__(ModelState)
        new.model = self.model
        new.c = self.c
        new.as_of = self.as_of
        new.stage = self.stage
        new.history = self.history
        new.fit = self.fit
        new.fit_total = self.fit_total
        new.fit_items = self.fit_items
        new.eng = dict(self.eng)
        new.caps = self.caps
        new.window = self.window
        new.recent = self.recent
        new.flags = self.flags
        new.fact_at = self.fact_at
        new.hand_raise = self.hand_raise
        new.revision = self.revision
        new.emitted = self.emitted
        new.seen = self.seen
        return new

    def set_fit(self, fit: dict[str, tuple[float, float]]) -> None:
        """Replace the fit points (and what is derived from them)."""
        self.fit = fit
        self.fit_total = math.fsum(points for points, _ in fit.values())
        self.fit_items = tuple(
            sorted(((abs(p), p, rule) for rule, (p, _) in fit.items() if p), reverse=True)
        )
        """Non-zero fit points as `(|points|, points, rule)`, largest first."""

    def engagement_at(self, now: float) -> float:
        """Engagement points decayed to `now` (epoch seconds, not before `as_of`)."""
        rates = self.c.rates
        total = 0.0
        for rule_id, (s, t) in self.eng.items():
            rate = rates[rule_id]
            total += s * math.exp(-rate * (now - t)) if rate else s
        return total

    def __repr__(self) -> str:
        return (
            f"ModelState(model={self.model.id!r}, stage={self.stage.value!r}, as_of={self.as_of})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelState):
            return NotImplemented
        return self.to_dict() == other.to_dict() and self.model == other.model

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ serialisation

    def to_dict(self, *, with_seen: bool = True) -> dict[str, Any]:
        """The state as a plain JSON-able dict (see the module docstring for the keys)."""
        a = self.as_of
        out: dict[str, Any] = {"a": _num(a), "s": self.stage.value}
        if self.history:
            out["h"] = [
                [e.from_stage and e.from_stage.value, e.to_stage.value, _num(a - e.at), e.reason]
                if e.from_stage is not None or e.reason != NEW_LEAD
                else [None, e.to_stage.value, _num(a - e.at)]
                for e in self.history
            ]
        if self.fit:
            self._dump_fit(out)
        if self.eng:
            self._dump_engagement(out)
        if self.caps:
            self._dump_caps(out)
        code = self.c.code
        if self.window:
            out["w"] = [
                [_num(a - t), *(x for rule, p in grants for x in (code[rule], _num(p)))]
                for t, grants in self.window
            ]
        if self.recent:
            self._dump_recent(out)
        if self.flags:
            out["g"] = self.flags
        if self.fact_at != -math.inf:
            out["x"] = _num(a - self.fact_at)
        if self.hand_raise is not None:
            out["k"] = [_num(a - self.hand_raise[0]), code[self.hand_raise[1]]]
        if self.revision:
            out["n"] = self.revision
        if self.emitted is not None:
            out["o"] = [_num(self.emitted[0]), _num(self.emitted[1])]
        if with_seen and self.seen:
            out["i"] = _pack_ids(self.seen)
        return out

    def _dump_fit(self, out: dict[str, Any]) -> None:
        code = self.c.code
        latest = max(t for _, t in self.fit.values())
        out["f"] = {
            code[rule]: _num(points) if t == latest else [_num(points), _num(latest - t)]
            for rule, (points, t) in self.fit.items()
        }
        out["ft"] = _num(self.as_of - latest)

    def _dump_engagement(self, out: dict[str, Any]) -> None:
        code, rates, a = self.c.code, self.c.rates, self.as_of
        eng: dict[str, float | int] = {}
        for rule, (s, t) in self.eng.items():
            rate = rates[rule]
            value = s * math.exp(-rate * (a - t)) if rate else s
            if value != 0.0 and not (rate and abs(value) < PRUNE_BELOW):
                eng[code[rule]] = _short(value)
        if eng:
            out["e"] = eng

    def _dump_caps(self, out: dict[str, Any]) -> None:
        caps: dict[str, list[float | int]] = {}
        for rule, windows in self.caps.items():
            current = math.floor(self.as_of / self.c.rules[rule].cap_per)
            flat = [
                x
                for w, used in windows
                if w >= current - CAP_LATE_WINDOWS
                for x in (w - current, _num(used))
            ]
            if flat:
                caps[self.c.code[rule]] = flat
        if caps:
            out["c"] = caps

    def _dump_recent(self, out: dict[str, Any]) -> None:
        c, a = self.c, self.as_of
        out["p"] = [
            [c.code[r.rule_id], _num(round(a - r.at))]
            + ([] if c.rules[r.rule_id].points == r.points else [_num(r.points)])
            for r in self.recent
        ]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], model: ScoringModel) -> ModelState:
        """Read a state back, bound to `model`.

        When the model changed since the state was written, engagement, cap counters and fit
        points of rules the model no longer has are dropped; the rest is kept as earned (fit
        points are recomputed on the lead's next profile event).
        """
        try:
            return cls._from_dict(data, model)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise StateFormatError(f"unreadable state for model {model.id!r}: {exc!r}") from exc

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any], model: ScoringModel) -> ModelState:
        c = model.compiled
        rule_of = c.rule_of
        a = float(data["a"])
        history = tuple(
            StageEntry(
                Stage(entry[0]) if entry[0] is not None else None,
                Stage(entry[1]),
                a - float(entry[2]),
                str(entry[3]) if len(entry) > 3 else NEW_LEAD,
            )
            for entry in data.get("h", ())
        )
        fit: dict[str, tuple[float, float]] = {}
        if "f" in data:
            latest = a - float(data["ft"])
            for key, value in data["f"].items():
                rule = rule_of.get(key)
                if rule is None or rule not in c.fit_by_id:
                    continue
                if isinstance(value, list):
                    fit[rule] = (float(value[0]), latest - float(value[1]))
                else:
                    fit[rule] = (float(value), latest)
        eng = {
            rule: (float(value), a)
            for key, value in data.get("e", {}).items()
            if (rule := rule_of.get(key)) is not None and rule in c.rates
        }
        caps: Caps = {}
        for key, flat in data.get("c", {}).items():
            rule = rule_of.get(key)
            if rule is None or rule not in c.rules or not c.rules[rule].cap_per:
                continue
            current = math.floor(a / c.rules[rule].cap_per)
            caps[rule] = tuple(
                (current + int(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)
            )
        window = tuple(
            (
                a - float(entry[0]),
                tuple(
                    (rule_of[entry[i]], float(entry[i + 1]))
                    for i in range(1, len(entry), 2)
                    if rule_of.get(entry[i]) in c.rates
                ),
            )
            for entry in data.get("w", ())
        )
        recent = tuple(
            Contribution(
                rule_of[entry[0]],
                float(entry[2]) if len(entry) > 2 else c.rules[rule_of[entry[0]]].points,
                a - float(entry[1]),
            )
            for entry in data.get("p", ())
            if rule_of.get(entry[0]) in c.rules
        )
        hand = data.get("k")
        hand_rule = rule_of.get(hand[1]) if hand is not None else None
        return cls(
            model,
            as_of=a,
            stage=Stage(data["s"]),
            history=history,
            fit=fit,
            eng=eng,
            caps=caps,
            window=window,
            recent=recent,
            flags=int(data.get("g", 0)),
            fact_at=a - float(data["x"]) if "x" in data else -math.inf,
            hand_raise=(a - float(hand[0]), hand_rule)
            if hand is not None and hand_rule is not None
            else None,
            revision=int(data.get("n", 0)),
            emitted=(float(data["o"][0]), float(data["o"][1])) if "o" in data else None,
            seen=_unpack_ids(data["i"]) if "i" in data else (),
        )


class LeadState:
    """Every model's state of one lead, and the ids of the events already applied to it."""

    __slots__ = ("models", "seen")

    def __init__(
        self, models: dict[str, ModelState] | None = None, seen: tuple[int, ...] = ()
    ) -> None:
        self.models: dict[str, ModelState] = models if models is not None else {}
        self.seen = seen

    def __repr__(self) -> str:
        return f"LeadState(models={sorted(self.models)}, seen={len(self.seen)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LeadState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """`{"v": 1, "m": {model id: model state}, "i": applied event ids}`."""
        out: dict[str, Any] = {
            "v": 1,
            "m": {mid: state.to_dict(with_seen=False) for mid, state in self.models.items()},
        }
        if self.seen:
            out["i"] = _pack_ids(self.seen)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], models: ModelSet) -> LeadState:
        """Read a lead's state back; states of models no longer in `models` are dropped."""
        try:
            if data.get("v") != 1:
                raise ValueError(f"unknown lead-state format {data.get('v')!r}")
            seen = _unpack_ids(data["i"]) if "i" in data else ()
            raw_models = data["m"]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateFormatError(f"unreadable lead state: {exc!r}") from exc
        states = {
            model.id: ModelState.from_dict(raw_models[model.id], model)
            for model in models.models
            if model.id in raw_models
        }
        return cls(states, seen)
