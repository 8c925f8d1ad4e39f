"""What a lead keeps to name its account (company) and describe its part in it.

A lead's account is, in this order:

1. the explicit `account_id` of its latest profile (`traits.account_id`) or CRM feedback event
   that gave one;
2. else the domain of its latest email address, unless that is a free-mail, disposable or
   invalid domain (or one the model file excludes), which names no company;
3. else none.

Each item is last-writer-wins by event time, so the link does not depend on the order events
arrive in, and two leads merged into one keep the newer of each. A changed link moves the
lead's contribution from its old account to its new one (`stream.scoring.accounts`).

Serialised (keys omitted when empty): `t` the latest time of the link, `x` explicit `[id, t -
time]`, `d` email domain `[domain or null, t - time]`, `j` job title `[title, t - time]`, `f`
firmographics `{field: [value, t - time]}`, `y` `t -` the time of the latest action the person
took (the engaged-contact window).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from schemas.events import CrmBase, EventBase, Identify, ProfileUpdated
from stream.scoring.compiled import ACTION, CompiledModel
from stream.scoring.spam import (
    BUILTIN_DISPOSABLE_DOMAINS,
    BUILTIN_FREE_MAIL_DOMAINS,
    email_domain,
    is_disposable_domain,
    is_invalid_domain,
)
from stream.scoring.spec import AccountSpec

__all__ = ["FIRMOGRAPHICS", "AccountLink", "Linker", "merge_links"]

FIRMOGRAPHICS = ("industry", "company_size", "annual_revenue", "country", "region")
"""Profile attributes that describe the company rather than the person."""

_PROFILES = Identify | ProfileUpdated

Item = tuple[Any, float]
"""A value and the event time it was given at."""


def _newer(current: Item | None, t: float) -> bool:
    return current is None or t >= current[1]


@dataclass(frozen=True, slots=True)
class AccountLink:
    """A lead's account key and what it contributes besides its scores."""

    explicit: tuple[str, float] | None = None
    domain: tuple[str | None, float] | None = None
    title: tuple[str, float] | None = None
    firmo: tuple[tuple[str, str | float, float], ...] = ()
    """`(field, value, time)` per firmographic attribute, by field."""
    active: float | None = None
    """The time of the person's latest action (a scored event they took, not a machine)."""

    @property
    def key(self) -> str | None:
        """The account id, or `None` when the lead names no account."""
        if self.explicit is not None:
            return self.explicit[0]
        if self.domain is not None:
            return self.domain[0]
        return None

    def to_dict(self) -> dict[str, Any]:
        """Times are kept as gaps (seconds, to the microsecond) before `t`, the latest one."""
        times = [item[1] for item in (self.explicit, self.domain, self.title) if item is not None]
        times += [t for _, _, t in self.firmo]
        if self.active is not None:
            times.append(self.active)
        if not times:
            return {}
        base = max(times)
        out: dict[str, Any] = {"t": _num(base)}
        if self.explicit is not None:
            out["x"] = [self.explicit[0], _gap(base, self.explicit[1])]
        if self.domain is not None:
            out["d"] = [self.domain[0], _gap(base, self.domain[1])]
        if self.title is not None:
            out["j"] = [self.title[0], _gap(base, self.title[1])]
        if self.firmo:
            out["f"] = {name: [value, _gap(base, t)] for name, value, t in self.firmo}
        if self.active is not None:
            out["y"] = _gap(base, self.active)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountLink:
        if not data:
            return cls()
        base = float(data["t"])

        def item(key: str) -> tuple[Any, float] | None:
            raw = data.get(key)
            return None if raw is None else (raw[0], _back(base, raw[1]))

        explicit, domain, title = item("x"), item("d"), item("j")
        return cls(
            explicit=(str(explicit[0]), explicit[1]) if explicit is not None else None,
            domain=(None if domain[0] is None else str(domain[0]), domain[1])
            if domain is not None
            else None,
            title=(str(title[0]), title[1]) if title is not None else None,
            firmo=tuple(
                (str(name), raw[0], _back(base, raw[1]))
                for name, raw in sorted(data.get("f", {}).items())
            ),
            active=_back(base, data["y"]) if "y" in data else None,
        )


def _num(value: float) -> float | int:
    whole = int(value)
    return whole if whole == value else value


def _gap(later: float, earlier: float) -> float | int:
    """`later - earlier` to the microsecond (event times are whole microseconds)."""
    micros = round(later * 1e6) - round(earlier * 1e6)
    return micros // 1_000_000 if micros % 1_000_000 == 0 else micros / 1e6


def _back(later: float, gap: float) -> float:
    return (round(later * 1e6) - round(gap * 1e6)) / 1e6


def merge_links(a: AccountLink | None, b: AccountLink | None) -> AccountLink | None:
    """The link of one lead that is both `a` (the survivor) and `b`: the newer of each item
    (ties: the survivor's), the later action."""
    if a is None or b is None:
        return a or b

    def pick(x: Item | None, y: Item | None) -> Any:
        if x is None or y is None:
            return x or y
        return y if y[1] > x[1] else x

    firmo = {name: (value, t) for name, value, t in a.firmo}
    for name, value, t in b.firmo:
        if name not in firmo or t > firmo[name][1]:
            firmo[name] = (value, t)
    actives = [t for t in (a.active, b.active) if t is not None]
    return AccountLink(
        explicit=pick(a.explicit, b.explicit),
        domain=pick(a.domain, b.domain),
        title=pick(a.title, b.title),
        firmo=tuple((name, value, t) for name, (value, t) in sorted(firmo.items())),
        active=max(actives) if actives else None,
    )


def _note_action(link: AccountLink | None, event: EventBase) -> AccountLink | None:
    """`link` after an action the model scores: only the time of the person's latest one."""
    if event.machine is not None:
        return link
    t = event.occurred_at.timestamp()
    if link is None:
        return AccountLink(active=t)
    if link.active is not None and t <= link.active:
        return link
    return AccountLink(link.explicit, link.domain, link.title, link.firmo, t)


class Linker:
    """An account section compiled: what an event changes in a lead's link."""

    def __init__(self, spec: AccountSpec, model: CompiledModel) -> None:
        self.spec = spec
        self.model = model
        self.excluded = (
            frozenset(d.lower() for d in spec.excluded_domains)
            | BUILTIN_FREE_MAIL_DOMAINS
            | BUILTIN_DISPOSABLE_DOMAINS
        )
        self.actions = frozenset(
            event_type
            for event_type, dispatch in model.dispatch.items()
            if dispatch.kind == ACTION and dispatch.rules
        )
        """The event types that are actions the model scores (they mark the person active)."""

    def domain_of(self, email: str) -> str | None:
        """The company domain of an address, or `None` for a personal or unusable one."""
        domain = email_domain(email)
        if is_invalid_domain(domain) or is_disposable_domain(domain, self.excluded):
            return None
        return domain

    def note(self, link: AccountLink | None, event: EventBase) -> AccountLink | None:
        """`link` after `event` (the same object when the event changes nothing)."""
        if event.type in self.actions:
            return _note_action(link, event)
        if not isinstance(event, _PROFILES | CrmBase):
            return link
        t = event.occurred_at.timestamp()
        current = link if link is not None else AccountLink()
        new = current
        traits = event.traits if isinstance(event, _PROFILES) else None
        if traits is not None:
            if traits.account_id is not None and _newer(new.explicit, t):
                new = replace(new, explicit=(traits.account_id, t))
            if traits.email is not None and _newer(new.domain, t):
                new = replace(new, domain=(self.domain_of(traits.email), t))
            if traits.job_title is not None and _newer(new.title, t):
                new = replace(new, title=(traits.job_title, t))
            firmo = {name: (value, at) for name, value, at in new.firmo}
            touched = False
            for name in FIRMOGRAPHICS:
                value = getattr(traits, name)
                if value is not None and _newer(firmo.get(name), t):
                    firmo[name] = (value, t)
                    touched = True
            if touched:
                new = replace(
                    new,
                    firmo=tuple((name, value, at) for name, (value, at) in sorted(firmo.items())),
                )
        elif (
            isinstance(event, CrmBase) and event.account_id is not None and _newer(new.explicit, t)
        ):
            new = replace(new, explicit=(event.account_id, t))
        if new == current:
            return link
        return new
