"""Machine opens and clicks told by their timing against the lead's recent messages.

A mail privacy proxy (Apple Mail Privacy Protection) fetches a message's images as the message is
delivered, and a security gateway (Safe Links, Proofpoint, Mimecast, Barracuda) follows every link
of a message seconds after delivery, one link after another. What one event cannot show, the
lead's recent messages can: each model remembers, per message, when it was delivered (or sent,
when no delivery is reported), when a person first opened it, and its latest click. The tests
(`spam.machine_timing` of the model file) are:

| code | the event | default |
| --- | --- | --- |
| `o` | an open within `open_within` of delivery | 1 s |
| `c` | a click within `click_within` of delivery | 10 s |
| `u` | a click within `unopened_click_within` of delivery, no person's open of it first | 30 s |
| `l` | a click on another link within `next_link_within` of the message's previous click | 2 s |

(`i`: the event came marked: its `machine` field or a vendor's flag.) Only event times are
compared, so a replay judges exactly as the first pass did. An open or click that arrives before
its message's delivery is judged without it (a person's). A message is forgotten once every test
has expired for it, so a lead carries this memory only for seconds to minutes after a delivery.

Entries are `(message, delivered, opened, clicked, link)`: the message id's and the link's 8-
character hashes, and event times in epoch seconds (`None`: not seen).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "REASONS",
    "Entry",
    "Mail",
    "Timing",
    "judge_click",
    "judge_open",
    "note_delivery",
    "prune",
]

REASONS = {
    "i": "marked at ingest",
    "o": "opened within {open} of delivery",
    "c": "clicked within {click} of delivery",
    "u": "clicked within {unopened} of delivery, unopened",
    "l": "another link clicked within {next_link}",
}
"""Reason code → text (formatted with the model's durations)."""


class Timing(NamedTuple):
    """A model's `machine_timing`, in seconds (`None`: that test is off)."""

    open_within: float | None
    click_within: float | None
    unopened_within: float | None
    next_link_within: float | None
    messages: int

    @property
    def horizon(self) -> float:
        """How long after delivery a message can still decide a test."""
        return max(
            (v for v in (self.open_within, self.click_within, self.unopened_within) if v),
            default=0.0,
        )


class Entry(NamedTuple):
    message: str
    delivered: float | None
    opened: float | None
    clicked: float | None
    link: str | None


Mail = tuple[Entry, ...]


def _find(mail: Mail, message: str) -> int:
    for index, entry in enumerate(mail):
        if entry.message == message:
            return index
    return -1


def _put(mail: Mail, index: int, entry: Entry, timing: Timing) -> Mail:
    if index >= 0:
        return (*mail[:index], entry, *mail[index + 1 :])
    return (*mail, entry)[-timing.messages :]


def note_delivery(mail: Mail, timing: Timing, message: str, t: float, *, sent: bool) -> Mail:
    """Remember a message's delivery (`sent`: only its sending, used until a delivery comes)."""
    index = _find(mail, message)
    if index >= 0:
        entry = mail[index]
        if sent and entry.delivered is not None:
            return mail
        return _put(mail, index, entry._replace(delivered=t), timing)
    return _put(mail, -1, Entry(message, t, None, None, None), timing)


def judge_open(
    mail: Mail, timing: Timing, message: str, t: float, *, machine: bool
) -> tuple[Mail, str | None]:
    """An open of `message` at `t`: the memory after it, and the reason code when its timing
    says a machine opened it. `machine`: already known to be a machine's (not a person's open)."""
    index = _find(mail, message)
    if index < 0:
        return mail, None
    entry = mail[index]
    reason = None
    if (
        not machine
        and entry.delivered is not None
        and timing.open_within is not None
        and 0.0 <= t - entry.delivered < timing.open_within
    ):
        reason = "o"
    if machine or reason is not None or (entry.opened is not None and entry.opened <= t):
        return mail, reason
    return _put(mail, index, entry._replace(opened=t), timing), None


def judge_click(
    mail: Mail, timing: Timing, message: str, link: str, t: float
) -> tuple[Mail, str | None]:
    """A click on `link` of `message` at `t`: the memory after it, and the reason code when its
    timing says a machine followed the link."""
    index = _find(mail, message)
    if index < 0:
        return _put(mail, -1, Entry(message, None, None, t, link), timing), None
    entry = mail[index]
    reason = None
    since = t - entry.delivered if entry.delivered is not None else None
    if since is not None and since >= 0.0:
        if timing.click_within is not None and since < timing.click_within:
            reason = "c"
        elif (
            timing.unopened_within is not None
            and since < timing.unopened_within
            and (entry.opened is None or entry.opened > t)
        ):
            reason = "u"
    if (
        reason is None
        and timing.next_link_within is not None
        and entry.clicked is not None
        and entry.link != link
        and 0.0 <= t - entry.clicked < timing.next_link_within
    ):
        reason = "l"
    if entry.clicked is None or t >= entry.clicked:
        entry = entry._replace(clicked=t, link=link)
    return _put(mail, index, entry, timing), reason


def prune(mail: Mail, timing: Timing, now: float) -> Mail:
    """The entries that can still decide a test at `now` or later."""
    horizon = timing.horizon
    next_link = timing.next_link_within or 0.0
    return tuple(
        entry
        for entry in mail
        if (entry.delivered is not None and now - entry.delivered < horizon)
        or (entry.clicked is not None and now - entry.clicked < next_link)
    )
