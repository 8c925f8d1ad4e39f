"""Checks of the collector's callers: bearer tokens, webhook signatures, replayed tokens.

Everything here is a plain function or a small class with the time passed in, so it is tested
without a web server. Comparisons of secrets are constant-time.

One status code for every refusal: **401** (missing or wrong token, bad or missing signature,
stale timestamp, replayed token, wrong secret, or a check that is not configured), with a JSON
body naming the reason (`error`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from schemas.adapters import mailgun
from stream.errors import ConfigurationError, LeadstreamError

__all__ = [
    "SENDGRID_SIGNATURE_HEADER",
    "SENDGRID_TIMESTAMP_HEADER",
    "AuthFailure",
    "BearerAuth",
    "MemoryReplayGuard",
    "RedisReplayGuard",
    "Refusal",
    "ReplayGuard",
    "check_webhook_credentials",
    "load_sendgrid_key",
    "secret_matches",
    "verify_mailgun",
    "verify_sendgrid",
]

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


class AuthFailure(StrEnum):
    """Why a caller was refused: the `error` of the 401 body (codes, not secrets)."""

    MISSING_TOKEN = "missing_token"  # noqa: S105
    INVALID_TOKEN = "invalid_token"  # noqa: S105
    NOT_CONFIGURED = "auth_not_configured"
    MISSING_SIGNATURE = "missing_signature"
    INVALID_SIGNATURE = "invalid_signature"
    STALE_TIMESTAMP = "stale_timestamp"
    REPLAYED = "replayed_token"
    WRONG_SECRET = "wrong_secret"  # noqa: S105
    MISSING_CREDENTIALS = "missing_credentials"
    UNEXPECTED_TOPIC = "unexpected_topic"


class Refusal(LeadstreamError):
    """A caller refused with 401: `failure` is the code, `detail` says more (no secrets)."""

    def __init__(self, failure: AuthFailure, detail: str) -> None:
        super().__init__(f"{failure}: {detail}")
        self.failure = failure
        self.detail = detail


def _digest(value: str | bytes) -> bytes:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).digest()


def secret_matches(given: str, expected: str) -> bool:
    """Whether `given` equals `expected`, in time independent of where they differ."""
    return hmac.compare_digest(_digest(given), _digest(expected))


class BearerAuth:
    """The collector's write tokens.

    ``Authorization: Bearer <token>`` is the documented form. ``Basic`` with the token as user
    name and an empty password (what Segment's libraries send with a write key) is accepted too.
    """

    def __init__(self, tokens: Sequence[str], *, disabled: bool = False) -> None:
        self._digests = tuple(_digest(token) for token in tokens if token)
        self.disabled = disabled

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def check(self, authorization: str | None) -> None:
        """Return when the header carries an accepted token; raise `Refusal` otherwise."""
        if self.disabled:
            return
        if not self._digests:
            raise Refusal(
                AuthFailure.NOT_CONFIGURED,
                "no collector token is configured (LEADSTREAM_AUTH_TOKENS)",
            )
        token = _token_of(authorization)
        if token is None:
            raise Refusal(AuthFailure.MISSING_TOKEN, "send Authorization: Bearer <token>")
        given = _digest(token)
        accepted = False
        for digest in self._digests:  # no early exit: the time does not tell which one matched
            accepted |= hmac.compare_digest(given, digest)
        if not accepted:
            raise Refusal(AuthFailure.INVALID_TOKEN, "the token is not accepted")


def _token_of(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return None
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() == "basic":
        try:
            user, _, _password = (
                base64.b64decode(credentials, validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    return None


def _check_fresh(timestamp: str, now: datetime, tolerance_seconds: float) -> None:
    try:
        sent = float(timestamp)
    except ValueError:
        raise Refusal(AuthFailure.INVALID_SIGNATURE, "the timestamp is not a number") from None
    if not abs(now.timestamp() - sent) <= tolerance_seconds:  # also refuses NaN
        raise Refusal(
            AuthFailure.STALE_TIMESTAMP,
            f"the timestamp is more than {tolerance_seconds:g} s away from the server's clock",
        )


# ----------------------------------------------------------------------------- SendGrid


def load_sendgrid_key(key: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 of the DER public key (as SendGrid shows it) or PEM."""
    text = key.strip()
    try:
        if text.startswith("-----BEGIN"):
            loaded: Any = load_pem_public_key(text.encode())
        else:
            loaded = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ConfigurationError(
            f"LEADSTREAM_SENDGRID_PUBLIC_KEY is not a public key: {type(exc).__name__}"
        ) from exc
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise ConfigurationError("LEADSTREAM_SENDGRID_PUBLIC_KEY is not an elliptic-curve key")
    return loaded


def verify_sendgrid(
    key: ec.EllipticCurvePublicKey,
    *,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: datetime,
    tolerance_seconds: float,
) -> None:
    """Check SendGrid's ECDSA (SHA-256) signature of ``timestamp + body``; raise `Refusal`."""
    if not signature or not timestamp:
        raise Refusal(
            AuthFailure.MISSING_SIGNATURE,
            f"{SENDGRID_SIGNATURE_HEADER} and {SENDGRID_TIMESTAMP_HEADER} are required",
        )
    _check_fresh(timestamp, now, tolerance_seconds)
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise Refusal(
            AuthFailure.INVALID_SIGNATURE, "the SendGrid signature does not verify"
        ) from None


# ----------------------------------------------------------------------------- Mailgun


class ReplayGuard(Protocol):
    """Remembers webhook tokens for a while, so each is accepted once."""

    async def first_use(self, token: str, *, ttl_seconds: int) -> bool:
        """Record `token`; whether it had not been seen within its time to live."""

    async def forget(self, token: str) -> None:
        """Forget `token` (its request failed, so the vendor's retry must be accepted)."""


class MemoryReplayGuard:
    """Seen tokens in this process only, at most `max_entries` of them (oldest go first).

    Correct with one worker; with several, a replay that reaches another worker is not caught:
    use `RedisReplayGuard` there.
    """

    def __init__(self, *, max_entries: int = 100_000, clock: Any = time.monotonic) -> None:
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def first_use(self, token: str, *, ttl_seconds: int) -> bool:
        now = self._clock()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        key = _digest(token)
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        self._seen[key] = now + ttl_seconds
        self._seen.move_to_end(key)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True

    async def forget(self, token: str) -> None:
        self._seen.pop(_digest(token), None)

    def __len__(self) -> int:
        return len(self._seen)


class RedisReplayGuard:
    """Seen tokens in Redis (``SET key 1 NX EX ttl``): shared by every worker, bounded by TTL."""

    def __init__(self, redis: Any, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, token: str) -> str:
        return f"{self._prefix}{hashlib.sha256(token.encode()).hexdigest()}"

    async def first_use(self, token: str, *, ttl_seconds: int) -> bool:
        return bool(await self._redis.set(self._key(token), b"1", nx=True, ex=ttl_seconds))

    async def forget(self, token: str) -> None:
        await self._redis.delete(self._key(token))


def mailgun_signature_fields(payload: object) -> tuple[str, str, str] | None:
    """`(timestamp, token, signature)` of a Mailgun webhook body, or None when absent."""
    block = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(block, dict):
        return None
    fields = (block.get("timestamp"), block.get("token"), block.get("signature"))
    if not all(isinstance(f, str | int) and not isinstance(f, bool) and str(f) for f in fields):
        return None
    timestamp, token, signature = (str(f) for f in fields)
    return timestamp, token, signature


async def verify_mailgun(
    signing_key: str,
    payload: object,
    *,
    now: datetime,
    tolerance_seconds: int,
    replays: ReplayGuard,
) -> str:
    """Check a Mailgun body's HMAC, its timestamp and that its token is new; the token.

    Raise `Refusal` otherwise. The token is recorded only when everything else checks out.
    """
    fields = mailgun_signature_fields(payload)
    if fields is None:
        raise Refusal(
            AuthFailure.MISSING_SIGNATURE,
            "the body has no signature object with timestamp, token and signature",
        )
    timestamp, token, signature = fields
    if not mailgun.verify_signature(
        signing_key, timestamp=timestamp, token=token, signature=signature
    ):
        raise Refusal(AuthFailure.INVALID_SIGNATURE, "the Mailgun signature does not verify")
    _check_fresh(timestamp, now, tolerance_seconds)
    # Remember the token past the window in which its timestamp is accepted.
    if not await replays.first_use(token, ttl_seconds=2 * tolerance_seconds + 60):
        raise Refusal(AuthFailure.REPLAYED, "this webhook token was already used")
    return token


# ----------------------------------------------------------------------------- HTTP Basic webhooks


def check_webhook_credentials(
    authorization: str | None, *, user: str, password: str, bearer: bool = False
) -> None:
    """Return when `authorization` carries a webhook's configured credentials; raise `Refusal`.

    `Basic` with the configured user name and password (what a vendor sends for a webhook URL
    of the form `https://user:password@host/...`); with `bearer`, also `Bearer <password>`.
    The user name and the password are both compared, in constant time, whichever differs.
    """
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and bearer and credentials:
        if not hmac.compare_digest(_digest(credentials), _digest(password)):
            raise Refusal(AuthFailure.WRONG_SECRET, "the webhook token is wrong")
        return
    if scheme.lower() != "basic" or not credentials:
        raise Refusal(
            AuthFailure.MISSING_CREDENTIALS, "send the webhook's user name and password (Basic)"
        )
    try:
        given_user, _, given_password = (
            base64.b64decode(credentials, validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        raise Refusal(
            AuthFailure.MISSING_CREDENTIALS, "the Basic credentials are not base64"
        ) from None
    user_ok = hmac.compare_digest(_digest(given_user), _digest(user))
    password_ok = hmac.compare_digest(_digest(given_password), _digest(password))
    if not (user_ok & password_ok):
        raise Refusal(AuthFailure.WRONG_SECRET, "the webhook's user name or password is wrong")
