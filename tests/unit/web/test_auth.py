"""Caller checks of the collector: bearer tokens, SendGrid and Mailgun signatures, replays."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stream.errors import ConfigurationError
from stream.web.auth import (
    AuthFailure,
    BearerAuth,
    MemoryReplayGuard,
    Refusal,
    load_sendgrid_key,
    secret_matches,
    verify_mailgun,
    verify_sendgrid,
)

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
BODY = b'[{"email":"ada@example.com","event":"open","sg_event_id":"e1","timestamp":1741944413}]'


def _refused(failure: AuthFailure) -> pytest.RaisesExc[Refusal]:
    return pytest.raises(Refusal, check=lambda exc: exc.failure is failure)


# ----------------------------------------------------------------------------- bearer tokens


def test_bearer_accepts_each_configured_token() -> None:
    auth = BearerAuth(["tok-a", "tok-b"])
    auth.check("Bearer tok-a")
    auth.check("bearer   tok-b ")
    # Segment's libraries: the write key as Basic user name, empty password
    auth.check("Basic " + base64.b64encode(b"tok-b:").decode())


@pytest.mark.parametrize(
    ("header", "failure"),
    [
        (None, AuthFailure.MISSING_TOKEN),
        ("", AuthFailure.MISSING_TOKEN),
        ("Bearer", AuthFailure.MISSING_TOKEN),
        ("Token tok-a", AuthFailure.MISSING_TOKEN),
        ("Basic !!!", AuthFailure.MISSING_TOKEN),
        ("Bearer tok-c", AuthFailure.INVALID_TOKEN),
        ("Bearer tok-a-and-more", AuthFailure.INVALID_TOKEN),
        ("Basic " + base64.b64encode(b"tok-c:").decode(), AuthFailure.INVALID_TOKEN),
    ],
)
def test_bearer_refuses(header: str | None, failure: AuthFailure) -> None:
    with _refused(failure):
        BearerAuth(["tok-a", "tok-b"]).check(header)


def test_without_tokens_everything_is_refused_unless_auth_is_disabled() -> None:
    with _refused(AuthFailure.NOT_CONFIGURED):
        BearerAuth([]).check("Bearer anything")
    BearerAuth([], disabled=True).check(None)
    assert not BearerAuth([""]).configured


def test_secret_matches() -> None:
    assert secret_matches("path-key", "path-key")
    assert not secret_matches("path-ke", "path-key")
    assert not secret_matches("", "path-key")


# ----------------------------------------------------------------------------- SendGrid


def _sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


def _sign(private: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    return base64.b64encode(
        private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    ).decode()


def test_sendgrid_signature_verifies() -> None:
    private, public = _sendgrid_keys()
    verify_sendgrid(
        load_sendgrid_key(public),
        signature=_sign(private, TS, BODY),
        timestamp=TS,
        body=BODY,
        now=NOW + timedelta(seconds=30),
        tolerance_seconds=300,
    )


def test_sendgrid_key_as_pem() -> None:
    private, _ = _sendgrid_keys()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = load_sendgrid_key(pem.decode())
    sig = _sign(private, TS, BODY)
    verify_sendgrid(key, signature=sig, timestamp=TS, body=BODY, now=NOW, tolerance_seconds=5)


@pytest.mark.parametrize("bad", ["not base64 !", base64.b64encode(b"junk").decode()])
def test_sendgrid_bad_key_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="SENDGRID_PUBLIC_KEY"):
        load_sendgrid_key(bad)


def test_sendgrid_refusals() -> None:
    private, public = _sendgrid_keys()
    other, _ = _sendgrid_keys()
    key = load_sendgrid_key(public)
    good = _sign(private, TS, BODY)

    def check(signature: str | None, timestamp: str | None, body: bytes, now: datetime) -> None:
        verify_sendgrid(
            key, signature=signature, timestamp=timestamp, body=body, now=now, tolerance_seconds=300
        )

    with _refused(AuthFailure.INVALID_SIGNATURE):  # wrong key
        check(_sign(other, TS, BODY), TS, BODY, NOW)
    with _refused(AuthFailure.INVALID_SIGNATURE):  # body changed
        check(good, TS, BODY + b" ", NOW)
    with _refused(AuthFailure.INVALID_SIGNATURE):  # timestamp changed (and still fresh)
        check(good, str(int(TS) + 1), BODY, NOW)
    with _refused(AuthFailure.INVALID_SIGNATURE):
        check("%%%", TS, BODY, NOW)
    with _refused(AuthFailure.STALE_TIMESTAMP):
        check(good, TS, BODY, NOW + timedelta(seconds=301))
    with _refused(AuthFailure.STALE_TIMESTAMP):  # from the future as well
        check(good, TS, BODY, NOW - timedelta(seconds=301))
    with _refused(AuthFailure.INVALID_SIGNATURE):
        check(good, "yesterday", BODY, NOW)
    with _refused(AuthFailure.MISSING_SIGNATURE):
        check(None, TS, BODY, NOW)
    with _refused(AuthFailure.MISSING_SIGNATURE):
        check(good, "", BODY, NOW)


# ----------------------------------------------------------------------------- Mailgun

MAILGUN_KEY = "key-0123456789abcdef"


def _mailgun_body(token: str, timestamp: str = TS, key: str = MAILGUN_KEY) -> dict[str, object]:
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {"event": "delivered", "recipient": "ada@example.com"},
    }


async def _verify(body: object, guard: MemoryReplayGuard, now: datetime = NOW) -> str:
    return await verify_mailgun(MAILGUN_KEY, body, now=now, tolerance_seconds=300, replays=guard)


async def test_mailgun_valid_then_replayed() -> None:
    guard = MemoryReplayGuard()
    body = _mailgun_body("tok-1")
    assert await _verify(body, guard) == "tok-1"
    with _refused(AuthFailure.REPLAYED):
        await _verify(body, guard)
    assert await _verify(_mailgun_body("tok-2"), guard) == "tok-2"
    # a request that failed later forgets its token, so the vendor's retry gets through
    await guard.forget("tok-2")
    assert await _verify(_mailgun_body("tok-2"), guard) == "tok-2"


async def test_mailgun_refusals_record_no_token() -> None:
    guard = MemoryReplayGuard()
    with _refused(AuthFailure.INVALID_SIGNATURE):
        await _verify(_mailgun_body("tok-1", key="key-other"), guard)
    with _refused(AuthFailure.STALE_TIMESTAMP):
        await _verify(_mailgun_body("tok-1"), guard, now=NOW + timedelta(minutes=6))
    with _refused(AuthFailure.INVALID_SIGNATURE):  # signed, then the token was changed
        body = _mailgun_body("tok-1")
        body["signature"]["token"] = "tok-x"  # type: ignore[index]
        await _verify(body, guard)
    for missing in ({}, {"signature": "x"}, {"signature": {"timestamp": TS}}, [], None):
        with _refused(AuthFailure.MISSING_SIGNATURE):
            await _verify(missing, guard)
    assert len(guard) == 0
    assert await _verify(_mailgun_body("tok-1"), guard) == "tok-1"


async def test_mailgun_accepts_an_integer_timestamp() -> None:
    body = _mailgun_body("tok-1")
    body["signature"]["timestamp"] = int(TS)  # type: ignore[index]
    assert await _verify(body, MemoryReplayGuard()) == "tok-1"


async def test_memory_replay_guard_expires_and_is_bounded() -> None:
    clock = [100.0]
    guard = MemoryReplayGuard(max_entries=3, clock=lambda: clock[0])
    assert await guard.first_use("a", ttl_seconds=10)
    assert not await guard.first_use("a", ttl_seconds=10)
    clock[0] += 10
    assert await guard.first_use("a", ttl_seconds=10)  # expired, so new again
    for token in "bcde":
        assert await guard.first_use(token, ttl_seconds=10)
    assert len(guard) == 3  # the oldest went first
    assert await guard.first_use("a", ttl_seconds=10)
    assert not await guard.first_use("e", ttl_seconds=10)
