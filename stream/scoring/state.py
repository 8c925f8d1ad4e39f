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
| `i` | ids of recently applied events: their 6-byte BLAKE2b hashes in base64, concatenated |
| `ml` | recent messages (`stream.scoring.mail`): `[message, delivered, opened, clicked, link]` |
| `q` | events a machine made, not scored: `[count, the latest one's reason code]` |

Rules are keyed by a 4-character hash of their id (`stream.scoring.spec.rule_code`), so states
survive edits to the model. Times are stored relative to `a`, to the microsecond, so that they
are short: event times are whole microseconds (`datetime.timestamp()` is exactly
microseconds / 1e6), and reading a time back gives exactly the same float. Engagement is
rounded to 12 significant digits when stored (a relative error of at most 5·10⁻¹³ per write);
the in-memory state the engine works on is exact.
"""

from __future__ import annotations

import binascii
import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from schemas.errors import LeadstreamError
from schemas.stages import Stage
from stream.scoring.accountlink import AccountLink
from stream.scoring.compiled import CompiledModel
from stream.scoring.mail import Entry as MailEntry
from stream.scoring.mail import Mail, prune
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
    "seen_add",
    "seen_contains",
    "seen_union",
]

SEEN_IDS = 32
"""How many recently applied event ids a lead remembers. An event replayed after this many newer
events of the same lead is applied again (counted twice)."""
HISTORY = 8
"""Stage changes kept per lead and model (the oldest are dropped)."""
RECENT = 3
"""Recent contributions kept per lead and model for explanations."""
CAP_LATE_WINDOWS = 7
"""Cap counters are kept for the lead's current cap window and this many before it (a week of
daily windows; only windows with counts are stored). A worker reads its source topics side by
side and one may run behind another (a restart, a backfill), so a capped event arriving that
late still scores. A capped rule's event in an older window is not scored: its counter is gone,
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


def event_hash(event_id: str) -> str:
    """An event id's 48-bit BLAKE2b hash, as 8 base64 characters (stable across processes,
    unlike Python's `hash`).

    Two different ids collide with probability 2⁻⁴⁸, so among a lead's 32 remembered ids a new
    event is taken for a replay about once in 10¹³ events.
    """
    digest = hashlib.blake2b(event_id.encode(), digest_size=6).digest()
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


def seen_contains(seen: str, digest: str) -> bool:
    """Whether `digest` (from `event_hash`) is one of the hashes concatenated in `seen`."""
    at = seen.find(digest)
    while at >= 0:
        if at % 8 == 0:
            return True
        at = seen.find(digest, at + 1)
    return False


def seen_add(seen: str, digest: str) -> str:
    """`seen` with `digest` added, keeping the latest `SEEN_IDS`."""
    joined = seen + digest
    return joined if len(joined) <= 8 * SEEN_IDS else joined[-8 * SEEN_IDS :]


def seen_union(first: str, second: str) -> str:
    """The hashes of both (first's, then second's new ones), keeping the latest `SEEN_IDS`."""
    present = {first[i : i + 8] for i in range(0, len(first), 8)}
    extra = "".join(
        h for h in (second[i : i + 8] for i in range(0, len(second), 8)) if h not in present
    )
    joined = first + extra
    return joined[-8 * SEEN_IDS :]


_SEEN = re.compile(r"^(?:[A-Za-z0-9+/]{8})*$")


def _check_seen(text: object) -> str:
    if not isinstance(text, str) or not _SEEN.match(text):
        raise ValueError("event ids must be 8-character base64 hashes")
    return text


def _mail_entry(a: float, e: list[Any]) -> MailEntry:
    """A stored `[message, delivered, opened, clicked, link]` (trailing Nones left out)."""
    e = [*e, None, None, None, None][:5]
    delivered, opened, clicked = (None if g is None else _back(a, g) for g in e[1:4])
    return MailEntry(str(e[0]), delivered, opened, clicked, None if e[4] is None else str(e[4]))


def _trim(values: list[Any]) -> list[Any]:
    """`values` without its trailing Nones."""
    while values and values[-1] is None:
        values.pop()
    return values


def _gap(later: float, earlier: float) -> float | int:
    """`later - earlier` in seconds, to the microsecond (times are whole microseconds: they come
    from `datetime.timestamp()`, which is exactly microseconds / 1e6). Short in JSON."""
    micros = round(later * 1e6) - round(earlier * 1e6)
    return micros // 1_000_000 if micros % 1_000_000 == 0 else micros / 1e6


def _back(later: float, gap: float) -> float:
    """The time `gap` seconds before `later`, exactly as `datetime.timestamp()` would give it."""
    return (round(later * 1e6) - round(gap * 1e6)) / 1e6


def _short(value: float) -> float | int:
    """`value` to 12 significant digits (relative error at most 5e-13): engagement sums."""
    return _num(float(f"{value:.12g}"))


def _num(value: float) -> float | int:
    """Whole numbers as ints (shorter in JSON), other numbers unchanged."""
    whole = int(value)
    return whole if whole == value else value


Window = tuple[tuple[float, tuple[tuple[str, float], ...]], ...]
Caps = dict[str, tuple[tuple[int, float], ...]]
"""Per capped rule: `(window index, points or events used)` for the current and previous
window (window index = floor(event time / cap period))."""

NEW_LEAD = "new lead"
_STAGE = {stage.value: stage for stage in Stage}
_new_tuple = tuple.__new__
_VALUE = {stage: stage.value for stage in Stage}  # faster than the enum's `.value`


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
        "machine",
        "mail",
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
        seen: str = "",
        mail: Mail = (),
        machine: tuple[int, str] | None = None,
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
        if fit:
            self.set_fit(fit)
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
        self.mail = mail
        """Recent messages for the machine-timing tests."""
        self.machine = machine
        """How many events a machine made (not scored), and the latest one's reason code."""

    def copy(self) -> ModelState:
        """A copy that can be changed without changing this state (the engine replaces, rather
        than edits, the `fit` and `caps` dicts; `eng` is copied here)."""
        new = ModelState(self.model, as_of=self.as_of, stage=self.stage)
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
        new.mail = self.mail
        new.machine = self.machine
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
        out: dict[str, Any] = {"a": _num(a), "s": _VALUE[self.stage]}
        if self.history:
            self._dump_history(out)
        if self.fit:
            self._dump_fit(out)
        if self.eng:
            self._dump_engagement(out)
        if self.caps:
            self._dump_caps(out)
        code = self.c.code
        if self.window:
            self._dump_window(out)
        if self.recent:
            self._dump_recent(out)
        if self.flags:
            out["g"] = self.flags
        if self.fact_at != -math.inf:
            out["x"] = _gap(a, self.fact_at)
        if self.hand_raise is not None:
            out["k"] = [_gap(a, self.hand_raise[0]), code[self.hand_raise[1]]]
        if self.revision:
            out["n"] = self.revision
        if self.emitted is not None:
            out["o"] = [_num(self.emitted[0]), _num(self.emitted[1])]
        if with_seen and self.seen:
            out["i"] = self.seen
        self._dump_machine(out)
        return out

    def _dump_history(self, out: dict[str, Any]) -> None:
        a = self.as_of
        a_micros = round(a * 1e6)
        history: list[list[Any]] = []
        for from_stage, to_stage, at, reason in self.history:
            micros = a_micros - round(at * 1e6)  # `_gap(a, at)`, inline
            gap = micros // 1_000_000 if micros % 1_000_000 == 0 else micros / 1e6
            if from_stage is not None:
                history.append([_VALUE[from_stage], _VALUE[to_stage], gap, reason])
            elif reason == NEW_LEAD:
                history.append([None, _VALUE[to_stage], gap])
            else:
                history.append([None, _VALUE[to_stage], gap, reason])
        out["h"] = history

    def _dump_window(self, out: dict[str, Any]) -> None:
        a, code = self.as_of, self.c.code
        window: list[list[Any]] = []
        for t, grants in self.window:
            entry: list[Any] = [_gap(a, t)]
            for rule, p in grants:
                entry.append(code[rule])
                entry.append(_num(p))
            window.append(entry)
        out["w"] = window

    def _dump_machine(self, out: dict[str, Any]) -> None:
        if self.machine is not None:
            out["q"] = [self.machine[0], self.machine[1]]
        if not self.mail:
            return
        a = self.as_of
        timing = self.c.timing
        mail = prune(self.mail, timing, a) if timing is not None else ()
        if mail:
            out["ml"] = [
                _trim(
                    [
                        e.message,
                        None if e.delivered is None else _gap(a, e.delivered),
                        None if e.opened is None else _gap(a, e.opened),
                        None if e.clicked is None else _gap(a, e.clicked),
                        e.link,
                    ]
                )
                for e in mail
            ]

    def _dump_fit(self, out: dict[str, Any]) -> None:
        code = self.c.code
        latest = max(t for _, t in self.fit.values())
        out["f"] = {
            code[rule]: _num(points) if t == latest else [_num(points), _gap(latest, t)]
            for rule, (points, t) in self.fit.items()
        }
        out["ft"] = _gap(self.as_of, latest)

    def _dump_engagement(self, out: dict[str, Any]) -> None:
        c, a = self.c, self.as_of
        code, rates = c.code, c.rates
        exp = math.exp
        eng: dict[str, float | int] = {}
        for rule, (s, t) in self.eng.items():
            rate = rates[rule]
            value = s * exp(-rate * (a - t)) if rate else s
            if value != 0.0 and not (rate and -PRUNE_BELOW < value < PRUNE_BELOW):
                short = float(f"{value:.12g}")  # `_short`, inline
                whole = int(short)
                eng[code[rule]] = whole if whole == short else short
        if eng:
            out["e"] = eng

    def _dump_caps(self, out: dict[str, Any]) -> None:
        c, a = self.c, self.as_of
        code, rules = c.code, c.rules
        floor = math.floor
        caps: dict[str, list[float | int]] = {}
        for rule, windows in self.caps.items():
            current = floor(a / rules[rule].cap_per)
            oldest = current - CAP_LATE_WINDOWS
            flat: list[float | int] = []
            for w, used in windows:
                if w >= oldest:
                    whole = int(used)  # `_num`, inline
                    flat.append(w - current)
                    flat.append(whole if whole == used else used)
            if flat:
                caps[code[rule]] = flat
        if caps:
            out["c"] = caps

    def _dump_recent(self, out: dict[str, Any]) -> None:
        c, a = self.c, self.as_of
        code, rules = c.code, c.rules
        recent: list[list[Any]] = []
        for rule_id, points, at in self.recent:
            age = round(a - at)
            if rules[rule_id].points == points:
                recent.append([code[rule_id], age])
            else:
                recent.append([code[rule_id], age, _num(points)])
        out["p"] = recent

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
        c: CompiledModel = model.compiled
        rule_of = c.rule_of
        a = round(float(data["a"]) * 1e6) / 1e6
        st = cls(model, as_of=a, stage=_STAGE[data["s"]])
        if "h" in data:
            st._load_history(data["h"])
        if "f" in data:
            st._load_fit(data["f"], _back(a, data["ft"]))
        if "e" in data:
            rates = c.rates
            eng = st.eng
            for key, value in data["e"].items():
                rule = rule_of.get(key)
                if rule in rates:
                    eng[rule] = (float(value), a)
        if "c" in data:
            st._load_caps(data["c"])
        if "w" in data:
            st.window = tuple(
                (
                    _back(a, entry[0]),
                    tuple(
                        (rule_of[entry[i]], float(entry[i + 1]))
                        for i in range(1, len(entry), 2)
                        if rule_of.get(entry[i]) in c.rates
                    ),
                )
                for entry in data["w"]
            )
        if "p" in data:
            rules = c.rules
            st.recent = tuple(
                _new_tuple(
                    Contribution,
                    (
                        rule_of[entry[0]],
                        float(entry[2]) if len(entry) > 2 else rules[rule_of[entry[0]]].points,
                        a - entry[1],
                    ),
                )
                for entry in data["p"]
                if rule_of.get(entry[0]) in rules
            )
        st.flags = int(data.get("g", 0))
        if "x" in data:
            st.fact_at = _back(a, data["x"])
        hand = data.get("k")
        if hand is not None and hand[1] in rule_of:
            st.hand_raise = (_back(a, hand[0]), rule_of[hand[1]])
        st.revision = int(data.get("n", 0))
        if "o" in data:
            st.emitted = (float(data["o"][0]), float(data["o"][1]))
        if "i" in data:
            st.seen = _check_seen(data["i"])
        st._load_machine(data)
        return st

    def _load_machine(self, data: Mapping[str, Any]) -> None:
        a = self.as_of
        if "ml" in data and self.c.timing is not None:
            self.mail = tuple(_mail_entry(a, entry) for entry in data["ml"])
        if "q" in data:
            self.machine = (int(data["q"][0]), str(data["q"][1]))

    def _load_fit(self, data: Mapping[str, Any], latest: float) -> None:
        fit: dict[str, tuple[float, float]] = {}
        rule_of, fit_rules = self.c.rule_of, self.c.fit_by_id
        for key, value in data.items():
            rule = rule_of.get(key)
            if rule in fit_rules:
                if value.__class__ is list:
                    fit[rule] = (float(value[0]), _back(latest, value[1]))
                else:
                    fit[rule] = (float(value), latest)
        self.set_fit(fit)

    def _load_caps(self, data: Mapping[str, Any]) -> None:
        rule_of, rules, a, caps = self.c.rule_of, self.c.rules, self.as_of, self.caps
        for key, flat in data.items():
            rule = rule_of.get(key)
            if rule in rules and (per := rules[rule].cap_per):
                current = int(a // per)
                windows = []
                for i in range(0, len(flat), 2):
                    windows.append((current + int(flat[i]), float(flat[i + 1])))
                caps[rule] = tuple(windows)

    def _load_history(self, data: list[list[Any]]) -> None:
        a_micros = round(self.as_of * 1e6)
        history = []
        for entry in data:
            from_stage = entry[0]
            history.append(
                _new_tuple(
                    StageEntry,
                    (
                        _STAGE[from_stage] if from_stage is not None else None,
                        _STAGE[entry[1]],
                        (a_micros - round(entry[2] * 1e6)) / 1e6,  # `_back(a, entry[2])`
                        str(entry[3]) if len(entry) > 3 else NEW_LEAD,
                    ),
                )
            )
        self.history = tuple(history)


class LeadState:
    """Every model's state of one lead, the ids of the events already applied to it, and its
    account link (`stream.scoring.accountlink`; kept when the model file has accounts)."""

    __slots__ = ("account", "models", "seen")

    def __init__(
        self,
        models: dict[str, ModelState] | None = None,
        seen: str = "",
        account: AccountLink | None = None,
    ) -> None:
        self.models: dict[str, ModelState] = models if models is not None else {}
        self.seen = seen
        self.account = account

    def __repr__(self) -> str:
        return f"LeadState(models={sorted(self.models)}, seen={len(self.seen) // 8})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LeadState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """`{"v": 1, "m": {model id: model state}, "i": applied event ids, "ac": account
        link}`."""
        out: dict[str, Any] = {
            "v": 1,
            "m": {mid: state.to_dict(with_seen=False) for mid, state in self.models.items()},
        }
        if self.seen:
            out["i"] = self.seen
        if self.account is not None:
            out["ac"] = self.account.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], models: ModelSet) -> LeadState:
        """Read a lead's state back; states of models no longer in `models` are dropped."""
        try:
            if data.get("v") != 1:
                raise ValueError(f"unknown lead-state format {data.get('v')!r}")
            seen = _check_seen(data["i"]) if "i" in data else ""
            raw_models = data["m"]
            account = AccountLink.from_dict(data["ac"]) if "ac" in data else None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise StateFormatError(f"unreadable lead state: {exc!r}") from exc
        states = {
            model.id: ModelState.from_dict(raw_models[model.id], model)
            for model in models.models
            if model.id in raw_models
        }
        return cls(states, seen, account)
