"""The spam and fake-data heuristics."""

from __future__ import annotations

import pytest

from stream.scoring.spam import (
    BUILTIN_DISPOSABLE_DOMAINS,
    email_domain,
    is_disposable_domain,
    is_gibberish_name,
    is_invalid_domain,
)


@pytest.mark.parametrize(
    "name",
    [
        "asdf",
        "Qwerty",
        "xxxx",
        "aaaa",
        "John2",
        "zxcvbn",
        "bcdfgh",
        "http://x.example",
        "a@b",
        "N/A",
    ],
)
def test_gibberish_names(name: str) -> None:
    assert is_gibberish_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "Ada",
        "Lovelace",
        "Doherty",  # 'erty' is a keyboard walk, and a common surname
        "Ewert",
        "Hirschsprung",  # long consonant clusters are fine
        "Mkrtchyan",
        "Lynn",
        "Nguyễn",
        "李",
        "Мария",
        "O'Brien",
        "",
    ],
)
def test_real_names(name: str) -> None:
    assert not is_gibberish_name(name)


@pytest.mark.parametrize(
    "domain",
    ["localhost", "example.com", "mail.example.org", "foo.test", "x.invalid", "a..b", "1.2"],
)
def test_invalid_domains(domain: str) -> None:
    assert is_invalid_domain(domain)


@pytest.mark.parametrize("domain", ["gmail.com", "engines.co.uk", "xn--80ak6aa92e.xn--p1ai"])
def test_valid_domains(domain: str) -> None:
    assert not is_invalid_domain(domain)


def test_disposable_domains_match_subdomains_and_extra_lists() -> None:
    assert is_disposable_domain("mailinator.com", BUILTIN_DISPOSABLE_DOMAINS)
    assert is_disposable_domain("eu.mailinator.com", BUILTIN_DISPOSABLE_DOMAINS)
    assert not is_disposable_domain("notmailinator.com", BUILTIN_DISPOSABLE_DOMAINS)
    assert is_disposable_domain("burner.example", frozenset({"burner.example"}))


def test_email_domain_is_lower_case_and_takes_the_last_at() -> None:
    assert email_domain("Ada@Engines.CO.UK.") == "engines.co.uk"
    assert email_domain('"a@b"@mail.example') == "mail.example"
