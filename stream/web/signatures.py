"""Webhook checks of Customer.io, LinkedIn and Meta: HMAC signatures and URL verifications.

Plain functions with the time passed in, like `stream.web.auth` (whose `Refusal` they raise, so
every failure is a 401 naming the reason). Digests are compared in constant time; a hex digest
is compared case-insensitively.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from stream.web.auth import AuthFailure, Refusal, _check_fresh, secret_matches

__all__ = [
    "CUSTOMERIO_SIGNATURE_HEADER",
    "CUSTOMERIO_TIMESTAMP_HEADER",
    "LINKEDIN_SIGNATURE_HEADER",
    "META_SIGNATURE_HEADER",
    "customerio_signature",
    "linkedin_challenge_response",
    "linkedin_signature",
    "meta_signature",
    "meta_verification",
    "verify_customerio",
    "verify_linkedin",
    "verify_meta",
]


def _hex_hmac(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _same_hex(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().lower().encode(), expected.encode())


# ----------------------------------------------------------------------------- Customer.io

CUSTOMERIO_SIGNATURE_HEADER = "X-CIO-Signature"
CUSTOMERIO_TIMESTAMP_HEADER = "X-CIO-Timestamp"


def customerio_signature(signing_key: str, *, timestamp: str, body: bytes) -> str:
    """Customer.io's signature: hex HMAC-SHA256 of ``v0:<timestamp>:<body>``."""
    return _hex_hmac(signing_key, b"v0:" + timestamp.encode() + b":" + body)


def verify_customerio(
    signing_key: str,
    *,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: datetime,
    tolerance_seconds: float,
) -> None:
    """Check a reporting webhook's `X-CIO-Signature` and that its `X-CIO-Timestamp` is fresh."""
    if not signature or not timestamp:
        raise Refusal(
            AuthFailure.MISSING_SIGNATURE,
            f"{CUSTOMERIO_SIGNATURE_HEADER} and {CUSTOMERIO_TIMESTAMP_HEADER} are required",
        )
    expected = customerio_signature(signing_key, timestamp=timestamp.strip(), body=body)
    if not _same_hex(signature, expected):
        raise Refusal(AuthFailure.INVALID_SIGNATURE, "the Customer.io signature does not verify")
    _check_fresh(timestamp, now, tolerance_seconds)


# ----------------------------------------------------------------------------- LinkedIn

LINKEDIN_SIGNATURE_HEADER = "X-LI-Signature"
_LINKEDIN_PREFIX = b"hmacsha256="


def linkedin_challenge_response(client_secret: str, challenge_code: str) -> str:
    """The answer to LinkedIn's URL validation: hex HMAC-SHA256 of the challenge code under the
    application's client secret."""
    return _hex_hmac(client_secret, challenge_code.encode())


def linkedin_signature(client_secret: str, body: bytes) -> str:
    """`X-LI-Signature` as LinkedIn sends it: hex HMAC-SHA256 of ``hmacsha256=`` + the body."""
    return _hex_hmac(client_secret, _LINKEDIN_PREFIX + body)


def verify_linkedin(client_secret: str, *, signature: str | None, body: bytes) -> None:
    """Check a notification's `X-LI-Signature`.

    LinkedIn's documentation says the header is the HMAC-SHA256 "of the JSON-encoded string
    representation of the POST body prefixed by `hmacsha256=`", which reads two ways. Both are
    accepted (each needs the client secret): the digest of ``hmacsha256=`` + body (what LinkedIn
    sends) or of the body alone, with or without ``hmacsha256=`` before the hex digest.
    """
    if not signature:
        raise Refusal(AuthFailure.MISSING_SIGNATURE, f"{LINKEDIN_SIGNATURE_HEADER} is required")
    given = signature.strip()
    if given.lower().startswith(_LINKEDIN_PREFIX.decode()):
        given = given[len(_LINKEDIN_PREFIX) :]
    prefixed = _same_hex(given, linkedin_signature(client_secret, body))
    bare = _same_hex(given, _hex_hmac(client_secret, body))
    if not (prefixed or bare):
        raise Refusal(AuthFailure.INVALID_SIGNATURE, "the LinkedIn signature does not verify")


# ----------------------------------------------------------------------------- Meta

META_SIGNATURE_HEADER = "X-Hub-Signature-256"


def meta_signature(app_secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256` as Meta sends it: ``sha256=`` + hex HMAC-SHA256 of the body."""
    return "sha256=" + _hex_hmac(app_secret, body)


def verify_meta(app_secret: str, *, signature: str | None, body: bytes) -> None:
    """Check a notification's `X-Hub-Signature-256` (the raw body, under the app secret)."""
    if not signature:
        raise Refusal(AuthFailure.MISSING_SIGNATURE, f"{META_SIGNATURE_HEADER} is required")
    scheme, _, digest = signature.strip().partition("=")
    if scheme.lower() != "sha256" or not _same_hex(digest, _hex_hmac(app_secret, body)):
        raise Refusal(AuthFailure.INVALID_SIGNATURE, "the Meta signature does not verify")


def meta_verification(
    verify_token: str, *, mode: str | None, token: str | None, challenge: str | None
) -> str:
    """The answer to Meta's verification request (`hub.mode=subscribe`, `hub.verify_token`,
    `hub.challenge`): the challenge, when the token is the configured one."""
    if mode != "subscribe" or not challenge:
        raise Refusal(AuthFailure.WRONG_SECRET, "hub.mode=subscribe and hub.challenge are required")
    if token is None or not secret_matches(token, verify_token):
        raise Refusal(AuthFailure.WRONG_SECRET, "hub.verify_token is not the configured one")
    return challenge
