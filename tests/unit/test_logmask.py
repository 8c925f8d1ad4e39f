"""The log masking: no email address, token or configured secret reaches a handler."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from factories import make_settings
from pydantic import SecretStr

from stream import logmask


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("identify from Ada.Lovelace+x@Example.co.uk", "identify from ***@Example.co.uk"),
        ("anonymous_id=email:ada@example.com", "anonymous_id=email:***@example.com"),
        ("Authorization: Bearer abc.DEF-123_x", "Authorization: Bearer ***"),
        ("header was bearer abc.DEF-123_x", "header was bearer ***"),
        ("Basic dG9rZW46", "Basic ***"),
        ("redis://user:hunter22@cache:6379/0", "redis://user:***@cache:6379/0"),
        ('{"token": "tok_live_42", "n": 1}', '{"token": "***", "n": 1}'),
        ("signing_key=key-abc&x=1", "signing_key=***&x=1"),
        ("event key=lead-1", "event key=lead-1"),
        ("api_key=sk_123 password=p4ss", "api_key=*** password=***"),
        ("{'secret': 42, 'token':'t1'}", "{'secret': ***, 'token':'***'}"),
        ("refused missing_token: send a token", "refused missing_token: send a token"),
        ("POST /webhooks/mailchimp/s3cr3t-path?x=1", "POST /webhooks/mailchimp/***?x=1"),
        ("nothing to hide: lead-7f3a9c scored 62.5", "nothing to hide: lead-7f3a9c scored 62.5"),
    ],
)
def test_mask(raw: str, masked: str) -> None:
    assert logmask.mask(raw) == masked


def test_configured_secrets_are_masked_wherever_they_appear() -> None:
    assert logmask.mask("key key-abc leaked", ["key-abc"]) == "key *** leaked"
    # the longer of two overlapping secrets is masked whole
    masking = logmask.MaskingFilter(["abcd", "abcdefgh"])
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "got %s", ("abcdefgh",), None)
    masking.filter(record)
    assert record.getMessage() == "got ***"


def test_filter_formats_then_masks_and_keeps_the_record() -> None:
    masking = logmask.MaskingFilter()
    record = logging.LogRecord(
        "t", logging.WARNING, __file__, 1, "user %s sent %r", ("ada@example.com", 3), None
    )
    assert masking.filter(record) is True
    assert record.getMessage() == "user ***@example.com sent 3"
    # args are emptied, not None: formatters that re-read them (mode's) see nothing to apply
    assert record.args == ()


def test_tracebacks_are_masked() -> None:
    masking = logmask.MaskingFilter(["s3cret-value"])
    try:
        raise ValueError("bad token for ada@example.com: s3cret-value")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    masking.filter(record)
    assert record.exc_text is not None
    assert "ada@example.com" not in record.exc_text
    assert "s3cret-value" not in record.exc_text
    assert "ValueError" in record.exc_text


def test_a_broken_format_string_is_still_logged() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%d items", ("x",), None)
    logmask.MaskingFilter().filter(record)
    assert "items" in record.getMessage()


@pytest.fixture
def installed() -> Iterator[None]:
    yield
    logmask.uninstall()


def test_install_masks_records_of_every_logger(
    installed: None, caplog: pytest.LogCaptureFixture
) -> None:
    logmask.install(["tok-0123456789"])
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info(
            "call with tok-0123456789 from %s", "ada@example.com"
        )
    assert caplog.messages == ["call with *** from ***@example.com"]
    logmask.uninstall()
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("plain %s", "ada@example.com")
    assert caplog.messages[-1] == "plain ada@example.com"


def test_settings_secrets() -> None:
    settings = make_settings(
        auth_tokens=[SecretStr("tok-1111"), SecretStr("tok-2222")],
        mailgun_signing_key=SecretStr("key-mailgun"),
        mailchimp_webhook_key=SecretStr("mc-path-key"),
        link_signing_key=[SecretStr("link-key-" + "1" * 32)],
    )
    assert sorted(logmask.settings_secrets(settings)) == [
        "key-mailgun",
        "link-key-" + "1" * 32,
        "mc-path-key",
        "tok-1111",
        "tok-2222",
    ]
    # values too short to mask without mangling ordinary text are left out
    assert logmask.secrets_of(SecretStr("ab"), None, "abcd") == ["abcd"]
