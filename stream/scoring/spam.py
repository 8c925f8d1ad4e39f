"""Spam and fake-data signals: disposable or invalid email domains and gibberish names.

Bursts of events faster than a person could produce them are detected by the engine, which keeps
the lead's recent event times in its state (see `stream.scoring.engine`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "BUILTIN_DISPOSABLE_DOMAINS",
    "BUILTIN_FREE_MAIL_DOMAINS",
    "PLACEHOLDER_NAMES",
    "email_domain",
    "is_disposable_domain",
    "is_gibberish_name",
    "is_invalid_domain",
]

BUILTIN_DISPOSABLE_DOMAINS: frozenset[str] = frozenset(
    {
        "10minutemail.com",
        "burnermail.io",
        "dispostable.com",
        "emailondeck.com",
        "fakeinbox.com",
        "getairmail.com",
        "getnada.com",
        "guerrillamail.com",
        "guerrillamail.net",
        "guerrillamailblock.com",
        "maildrop.cc",
        "mailinator.com",
        "mailnesia.com",
        "mintemail.com",
        "moakt.com",
        "mohmal.com",
        "sharklasers.com",
        "spamgourmet.com",
        "temp-mail.org",
        "tempail.com",
        "tempmail.com",
        "tempr.email",
        "throwawaymail.com",
        "trashmail.com",
        "yopmail.com",
    }
)
"""A small built-in list of throwaway-address providers; models can add more."""

BUILTIN_FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "163.com",
        "aol.com",
        "gmail.com",
        "gmx.de",
        "gmx.net",
        "googlemail.com",
        "hotmail.com",
        "icloud.com",
        "live.com",
        "mail.com",
        "mail.ru",
        "me.com",
        "msn.com",
        "outlook.com",
        "proton.me",
        "protonmail.com",
        "qq.com",
        "web.de",
        "yahoo.com",
        "yandex.ru",
        "zoho.com",
    }
)
"""Free-mail providers: an address there names a person, not the company they work for."""

_RESERVED_TLDS = frozenset({"example", "invalid", "local", "localhost", "test"})
_RESERVED_DOMAINS = frozenset({"example.com", "example.net", "example.org"})
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")

PLACEHOLDER_NAMES: frozenset[str] = frozenset(
    {"asdf", "fake", "n/a", "na", "none", "null", "qwerty", "test", "unknown", "xxx"}
)
"""Values people type into a name field when they do not want to give one."""

_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEYBOARD_WALKS = frozenset(
    {"asdf", "hjkl", "qwer", "zxcv"}
    | {row[i : i + 5] for row in _KEYBOARD_ROWS for i in range(len(row) - 4)}
)
_REPEAT = re.compile(r"(.)\1{3}")
_VOWELS = frozenset("aeiouy")


def email_domain(email: str) -> str:
    """The lower-cased domain of an address (the part after the last `@`)."""
    return email.rpartition("@")[2].strip().lower().rstrip(".")


def _parents(domain: str) -> Iterable[str]:
    """`a.b.c` → `a.b.c`, `b.c`, `c`."""
    parts = domain.split(".")
    return (".".join(parts[i:]) for i in range(len(parts)))


def is_disposable_domain(domain: str, disposable: frozenset[str]) -> bool:
    """True when `domain` or one of its parent domains is in `disposable`."""
    return any(candidate in disposable for candidate in _parents(domain))


def is_invalid_domain(domain: str) -> bool:
    """True when mail to `domain` cannot be delivered to a real person.

    That is: no dot, a label that is not a valid host name label, a top-level domain that is not
    alphabetic (or an IDNA `xn--` label), a reserved name (RFC 2606/6761: `.test`, `.invalid`,
    `.localhost`, `.example`, `example.com`, ...), or an address literal such as `[10.0.0.1]`.
    """
    if "." not in domain or len(domain) > 253:
        return True
    labels = domain.split(".")
    if not all(_LABEL.match(label) for label in labels):
        return True
    if not _TLD.match(labels[-1]) or labels[-1] in _RESERVED_TLDS:
        return True
    return any(candidate in _RESERVED_DOMAINS for candidate in _parents(domain))


def is_gibberish_name(name: str) -> bool:
    """A simple heuristic: does this name look typed to get past a form?

    A name is gibberish when, lower-cased, it
    - is a placeholder (`test`, `asdf`, `n/a`, `xxx`, ...; see `PLACEHOLDER_NAMES`), or
    - contains a digit, an `@` or a web address (`http`, `www.`), or
    - repeats one character four times in a row (`aaaa`), or
    - contains `asdf`, `qwer`, `hjkl`, `zxcv` or a five-key walk along a keyboard row (`werty`,
      `sdfgh`, `xcvbn`, ...; four-key walks such as `erty` are allowed: Doherty, Ewert), or
    - has five or more ASCII letters and no vowel (`a e i o u y`): `xkcdqz`, `bcdfgh`.

    Names in other scripts are only checked by the first four rules, and consonant clusters alone
    are not held against a name (`Hirschsprung`, `Mkrtchyan` pass).
    """
    text = name.strip().lower()
    if not text:
        return False
    if text in PLACEHOLDER_NAMES:
        return True
    if any(ch.isdigit() for ch in text) or "@" in text or "http" in text or "www." in text:
        return True
    if _REPEAT.search(text):
        return True
    letters = "".join(ch for ch in text if "a" <= ch <= "z")
    if any(
        letters[i : i + n] in _KEYBOARD_WALKS for n in (4, 5) for i in range(len(letters) - n + 1)
    ):
        return True
    only_ascii = all(ch.isascii() for ch in text if ch.isalpha())
    return only_ascii and len(letters) >= 5 and not (_VOWELS & set(letters))
