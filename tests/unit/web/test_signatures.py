"""The webhook checks of Customer.io, LinkedIn and Meta, computed here the way each vendor
documents them."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from stream.web.auth import AuthFailure, Refusal
from stream.web.signatures import (
    customerio_signature,
    linkedin_challenge_response,
    linkedin_signature,
    meta_signature,
    meta_verification,
    verify_customerio,
    verify_linkedin,
    verify_meta,
)

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
BODY = b'{"event_id":"01E4C4CT6YDC7Y5M7FE1GWWPQJ","metric":"sent"}'


def _hmac(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _failure(call: object) -> AuthFailure:
    assert callable(call)
    with pytest.raises(Refusal) as refused:
        call()
    return refused.value.failure


def test_customerio_signs_version_timestamp_and_body() -> None:
    timestamp = str(int(NOW.timestamp()))
    signature = _hmac("cio-key", f"v0:{timestamp}:".encode() + BODY)
    assert customerio_signature("cio-key", timestamp=timestamp, body=BODY) == signature

    def check(sig: str | None, ts: str | None, body: bytes = BODY, key: str = "cio-key") -> None:
        verify_customerio(
            key, signature=sig, timestamp=ts, body=body, now=NOW, tolerance_seconds=300
        )

    check(signature, timestamp)
    check(signature.upper(), timestamp)  # hex in either case
    assert _failure(lambda: check(None, timestamp)) is AuthFailure.MISSING_SIGNATURE
    assert _failure(lambda: check(signature, None)) is AuthFailure.MISSING_SIGNATURE
    assert _failure(lambda: check(signature, timestamp, BODY + b" ")) is (
        AuthFailure.INVALID_SIGNATURE
    )
    assert _failure(lambda: check(signature, timestamp, key="other")) is (
        AuthFailure.INVALID_SIGNATURE
    )
    assert _failure(lambda: check(_hmac("cio-key", BODY), timestamp)) is (
        AuthFailure.INVALID_SIGNATURE  # the body alone is not what Customer.io signs
    )
    stale = str(int(NOW.timestamp()) - 301)
    stale_signature = _hmac("cio-key", f"v0:{stale}:".encode() + BODY)
    assert _failure(lambda: check(stale_signature, stale)) is AuthFailure.STALE_TIMESTAMP


def test_linkedin_challenge_response_is_the_hmac_of_the_code() -> None:
    code = "890e4665-4dfe-4ab1-b689-ed553bceeed0"  # LinkedIn's documented example code
    assert linkedin_challenge_response("client-secret", code) == _hmac(
        "client-secret", code.encode()
    )


def test_linkedin_signature_readings() -> None:
    prefixed = _hmac("client-secret", b"hmacsha256=" + BODY)
    assert linkedin_signature("client-secret", BODY) == prefixed
    for header in (prefixed, prefixed.upper(), f"hmacsha256={prefixed}"):
        verify_linkedin("client-secret", signature=header, body=BODY)
    bare = _hmac("client-secret", BODY)  # the other reading of the documentation
    verify_linkedin("client-secret", signature=f"hmacsha256={bare}", body=BODY)
    assert _failure(lambda: verify_linkedin("client-secret", signature=None, body=BODY)) is (
        AuthFailure.MISSING_SIGNATURE
    )
    assert _failure(lambda: verify_linkedin("other", signature=prefixed, body=BODY)) is (
        AuthFailure.INVALID_SIGNATURE
    )
    assert _failure(
        lambda: verify_linkedin("client-secret", signature=prefixed, body=BODY + b"\n")
    ) is (AuthFailure.INVALID_SIGNATURE)


def test_meta_signature_and_verification() -> None:
    header = "sha256=" + _hmac("app-secret", BODY)
    assert meta_signature("app-secret", BODY) == header
    verify_meta("app-secret", signature=header, body=BODY)
    verify_meta("app-secret", signature=header.upper().replace("SHA256", "sha256"), body=BODY)
    for wrong in ("sha1=" + _hmac("app-secret", BODY), _hmac("app-secret", BODY), "sha256=00"):
        assert _failure(lambda w=wrong: verify_meta("app-secret", signature=w, body=BODY)) is (
            AuthFailure.INVALID_SIGNATURE
        )
    assert _failure(lambda: verify_meta("app-secret", signature="", body=BODY)) is (
        AuthFailure.MISSING_SIGNATURE
    )
    assert (
        meta_verification("vt", mode="subscribe", token="vt", challenge="1158201444")
        == "1158201444"
    )
    for mode, token, challenge in (
        ("subscribe", "other", "1"),
        ("subscribe", None, "1"),
        ("unsubscribe", "vt", "1"),
        ("subscribe", "vt", None),
    ):
        assert _failure(
            lambda m=mode, t=token, c=challenge: meta_verification(
                "vt", mode=m, token=t, challenge=c
            )
        ) is (AuthFailure.WRONG_SECRET)
