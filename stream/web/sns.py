"""Amazon SNS messages posted to an HTTP(S) endpoint: their signature, and their subscription.

`SnsVerifier.verify` follows AWS's documented procedure ("Verifying the signatures of Amazon
SNS messages", Amazon SNS Developer Guide):

1. `SignatureVersion` `1` is SHA1withRSA, `2` SHA256withRSA (RSASSA-PKCS1-v1_5); any other
   version is refused.
2. The string to sign is `name\\nvalue\\n` for each of these fields, in this order: for a
   `Notification` `Message`, `MessageId`, `Subject` (only when present), `Timestamp`,
   `TopicArn`, `Type`; for a `SubscriptionConfirmation` or `UnsubscribeConfirmation`
   `Message`, `MessageId`, `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type`. The values
   are the parsed JSON strings (escapes such as `\\n` turned back into their characters).
3. The certificate comes from `SigningCertURL`, which must be `https://sns.<region>.amazonaws.com/`
   `...pem` (no other host, port or scheme: a certificate an attacker serves is never
   fetched); it is fetched over verified TLS, must be a currently valid X.509 certificate with
   an RSA key, and is cached per URL (for a day at most, and never past its expiry).
4. The base64-decoded `Signature` must verify against the string with that key.

AWS also says to refuse messages from unexpected topics: the collector accepts only the topic
ARNs of `LEADSTREAM_SES_SNS_TOPIC_ARNS` before anything is fetched. `SnsVerifier.confirm`
confirms a `SubscriptionConfirmation` by a GET of its `SubscribeURL`, which must be
`https://sns.<region>.amazonaws.com/?Action=ConfirmSubscription&TopicArn=<the message's topic>`.

No timestamp window is enforced: SNS retries a notification with the same `MessageId` for up to
hours under a custom delivery policy, and a replayed notification converts to the same event
ids, which consumers drop as duplicates.

The URL checks and the HTTP client are injectable (`cert_url_allowed`, `subscribe_url_allowed`,
`http_get`) so that tests can serve a certificate from a local server; production uses the
functions of this module, which accept only SNS hosts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from stream.errors import InfrastructureError
from stream.web.auth import AuthFailure, Refusal

__all__ = [
    "SNS_MESSAGE_TYPE_HEADER",
    "HttpGet",
    "SnsUnavailable",
    "SnsVerifier",
    "aiohttp_get",
    "is_sns_host",
    "signing_cert_url_allowed",
    "string_to_sign",
    "subscribe_url_allowed",
]

SNS_MESSAGE_TYPE_HEADER: Final = "x-amz-sns-message-type"

_SNS_HOST: Final = re.compile(r"^sns\.[a-z]{2}(?:-[a-z]+)+-\d{1,2}\.amazonaws\.com$")
_NOTIFICATION_FIELDS: Final = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS: Final = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_HASHES: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "1": hashes.SHA1,
    "2": hashes.SHA256,
}
_CERT_MAX_BYTES: Final = 64 * 1024
_CONFIRM_MAX_BYTES: Final = 64 * 1024
_CACHE_SECONDS: Final = 24 * 3600.0
_CACHE_ENTRIES: Final = 32
_HTTP_TIMEOUT_SECONDS: Final = 10.0

HttpGet = Callable[[str, int], Awaitable[bytes]]
"""GET a URL and return at most `limit` bytes of a 2xx body; `SnsUnavailable` otherwise."""


class SnsUnavailable(InfrastructureError):
    """An SNS URL could not be fetched (network, timeout, not 2xx): the caller answers 503."""


# ----------------------------------------------------------------------------- URL checks


def is_sns_host(url: str) -> bool:
    """Whether `url` is `https://sns.<region>.amazonaws.com` (default port, no credentials)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and parts.username is None
        and parts.password is None
        and port in (None, 443)
        and bool(_SNS_HOST.fullmatch(parts.hostname or ""))
    )


def signing_cert_url_allowed(url: str) -> bool:
    """Whether `url` may be fetched as an SNS signing certificate: an SNS host, a `.pem` path."""
    return is_sns_host(url) and urlsplit(url).path.endswith(".pem") and "?" not in url


def subscribe_url_allowed(url: str, topic_arn: str) -> bool:
    """Whether `url` is SNS's `ConfirmSubscription` link for `topic_arn` on an SNS host."""
    if not is_sns_host(url):
        return False
    query = parse_qs(urlsplit(url).query)
    return query.get("Action") == ["ConfirmSubscription"] and query.get("TopicArn") == [topic_arn]


# ----------------------------------------------------------------------------- the signature


def string_to_sign(message: Mapping[str, Any]) -> bytes | None:
    """The bytes SNS signed for `message`, or None when a field it needs is missing."""
    kind = message.get("Type")
    names: tuple[str, ...]
    if kind == "Notification":
        names = _NOTIFICATION_FIELDS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        names = _SUBSCRIPTION_FIELDS
    else:
        return None
    lines: list[str] = []
    for name in names:
        value = message.get(name)
        if name == "Subject" and value is None:
            continue
        if not isinstance(value, str):
            return None
        lines.extend((name, value))
    return ("\n".join(lines) + "\n").encode()


async def aiohttp_get(url: str, limit: int) -> bytes:
    """GET `url` with aiohttp (TLS verified), at most `limit` bytes of a 2xx answer."""
    import aiohttp  # noqa: PLC0415 - only the web server needs it

    timeout = aiohttp.ClientTimeout(total=_HTTP_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if not 200 <= response.status < 300:
                raise SnsUnavailable(f"{_host(url)} answered {response.status}")
            body = await response.content.read(limit + 1)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise SnsUnavailable(f"{_host(url)} could not be reached: {type(exc).__name__}") from exc
    if len(body) > limit:
        raise SnsUnavailable(f"{_host(url)} answered more than {limit} bytes")
    return body


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


class SnsVerifier:
    """Checks SNS message signatures (certificates fetched once per URL) and confirms
    subscriptions. See the module docstring for the procedure."""

    def __init__(
        self,
        *,
        http_get: HttpGet = aiohttp_get,
        cert_url_allowed: Callable[[str], bool] = signing_cert_url_allowed,
        subscribe_url_allowed: Callable[[str, str], bool] = subscribe_url_allowed,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._get = http_get
        self._cert_url_allowed = cert_url_allowed
        self._subscribe_url_allowed = subscribe_url_allowed
        self._clock = clock
        self._monotonic = monotonic
        self._keys: OrderedDict[str, tuple[rsa.RSAPublicKey, float]] = OrderedDict()
        self._lock = asyncio.Lock()

    async def verify(self, message: Mapping[str, Any]) -> None:
        """Return when `message` carries a valid SNS signature; raise `Refusal` when it does
        not, `SnsUnavailable` when its certificate cannot be fetched."""
        signature = message.get("Signature")
        cert_url = message.get("SigningCertURL")
        if not isinstance(signature, str) or not isinstance(cert_url, str):
            raise Refusal(
                AuthFailure.MISSING_SIGNATURE, "an SNS message needs Signature and SigningCertURL"
            )
        make_hash = _HASHES.get(str(message.get("SignatureVersion")))
        if make_hash is None:
            raise Refusal(AuthFailure.INVALID_SIGNATURE, "SignatureVersion must be 1 or 2")
        signed = string_to_sign(message)
        if signed is None:
            raise Refusal(AuthFailure.INVALID_SIGNATURE, "the message lacks a field SNS signs")
        if not self._cert_url_allowed(cert_url):
            raise Refusal(
                AuthFailure.INVALID_SIGNATURE,
                "SigningCertURL is not an https URL of an SNS host (sns.<region>.amazonaws.com)",
            )
        key = await self._public_key(cert_url)
        try:
            raw = base64.b64decode(signature, validate=True)
            key.verify(raw, signed, padding.PKCS1v15(), make_hash())
        except (binascii.Error, ValueError, InvalidSignature):
            raise Refusal(
                AuthFailure.INVALID_SIGNATURE, "the SNS signature does not verify"
            ) from None

    async def confirm(self, message: Mapping[str, Any]) -> None:
        """Confirm a (verified) `SubscriptionConfirmation` by a GET of its `SubscribeURL`."""
        url = message.get("SubscribeURL")
        topic = message.get("TopicArn")
        if not (
            isinstance(url, str)
            and isinstance(topic, str)
            and self._subscribe_url_allowed(url, topic)
        ):
            raise Refusal(
                AuthFailure.INVALID_SIGNATURE,
                "SubscribeURL is not SNS's ConfirmSubscription link for this topic",
            )
        await self._get(url, _CONFIRM_MAX_BYTES)

    async def _public_key(self, url: str) -> rsa.RSAPublicKey:
        async with self._lock:  # one fetch per URL, however many messages arrive at once
            now = self._monotonic()
            cached = self._keys.get(url)
            if cached is not None and cached[1] > now:
                self._keys.move_to_end(url)
                return cached[0]
            pem = await self._get(url, _CERT_MAX_BYTES)
            key, expires = self._load(pem, now)
            self._keys[url] = (key, expires)
            self._keys.move_to_end(url)
            while len(self._keys) > _CACHE_ENTRIES:
                self._keys.popitem(last=False)
            return key

    def _load(self, pem: bytes, now: float) -> tuple[rsa.RSAPublicKey, float]:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise Refusal(
                AuthFailure.INVALID_SIGNATURE, "SigningCertURL is not a PEM certificate"
            ) from None
        wall = self._clock()
        if not cert.not_valid_before_utc <= wall <= cert.not_valid_after_utc:
            raise Refusal(AuthFailure.INVALID_SIGNATURE, "the signing certificate is not valid now")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refusal(AuthFailure.INVALID_SIGNATURE, "the signing certificate is not RSA")
        left = (cert.not_valid_after_utc - wall).total_seconds()
        return key, now + min(_CACHE_SECONDS, left)
