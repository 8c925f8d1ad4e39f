"""SNS message signatures and subscription confirmation (`stream.web.sns`).

No network to AWS: the tests make their own RSA key and self-signed certificate, sign the
documented SNS envelopes (tests/fixtures/ses/sns-*.json) exactly as AWS's documented procedure
says, and serve the certificate from a local aiohttp server. The verifier's URL checks are
injected to allow that server; the production checks are tested on their own and refuse it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from collector_http import ListSink, collector_app
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from factories import make_settings
from pydantic import ValidationError

from stream.settings import Settings
from stream.web.auth import AuthFailure, MemoryReplayGuard, Refusal
from stream.web.collector import Collector
from stream.web.sns import (
    SnsUnavailable,
    SnsVerifier,
    aiohttp_get,
    is_sns_host,
    signing_cert_url_allowed,
    string_to_sign,
    subscribe_url_allowed,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ses"
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
TOPIC = "arn:aws:sns:us-west-2:123456789012:MyTopic"


def envelope(name: str) -> dict[str, Any]:
    """A documented SNS message: `notification`, `subscription-confirmation`, ..."""
    loaded: dict[str, Any] = json.loads((FIXTURES / f"sns-{name}.json").read_text())
    return loaded


# ----------------------------------------------------------------------------- a signing key


@dataclass
class Signer:
    """An RSA key and its self-signed certificate, standing in for SNS's."""

    key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    not_before: datetime = NOW - timedelta(days=1)
    not_after: datetime = NOW + timedelta(days=30)

    def cert_pem(self) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, message: dict[str, Any], cert_url: str, version: str = "2") -> dict[str, Any]:
        signed = {**message, "SignatureVersion": version, "SigningCertURL": cert_url}
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        raw = string_to_sign(signed)
        assert raw is not None
        signature = self.key.sign(raw, padding.PKCS1v15(), digest)
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed


class AwsStandIn:
    """A local server with a certificate at `/cert.pem` and SNS's ConfirmSubscription at `/`."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self.cert_requests = 0
        self.confirmations: list[dict[str, list[str]]] = []
        self.down = False
        self.server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/cert.pem", self._cert)
        app.router.add_get("/", self._confirm)
        self.server = TestServer(app)
        await self.server.start_server()

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def _cert(self, request: web.Request) -> web.Response:
        self.cert_requests += 1
        if self.down:
            return web.Response(status=500)
        return web.Response(body=self.signer.cert_pem(), content_type="application/x-pem-file")

    async def _confirm(self, request: web.Request) -> web.Response:
        self.confirmations.append(parse_qs(request.query_string))
        return web.Response(text="<ConfirmSubscriptionResponse/>")

    def local_cert_url_allowed(self, url: str) -> bool:
        return url.startswith(self.url("/")) and urlsplit(url).path.endswith(".pem")

    def local_subscribe_url_allowed(self, url: str, topic: str) -> bool:
        query = parse_qs(urlsplit(url).query)
        return (
            url.startswith(self.url("/"))
            and query.get("Action") == ["ConfirmSubscription"]
            and query.get("TopicArn") == [topic]
        )

    def verifier(self, **overrides: Any) -> SnsVerifier:
        options: dict[str, Any] = {
            "cert_url_allowed": self.local_cert_url_allowed,
            "subscribe_url_allowed": self.local_subscribe_url_allowed,
            "clock": lambda: NOW,
        }
        return SnsVerifier(**{**options, **overrides})

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()


@pytest.fixture
async def aws() -> AsyncIterator[AwsStandIn]:
    stand_in = AwsStandIn(Signer())
    await stand_in.start()
    yield stand_in
    await stand_in.close()


def _refused(failure: AuthFailure) -> pytest.RaisesExc[Refusal]:
    return pytest.raises(Refusal, check=lambda exc: exc.failure is failure)


# ----------------------------------------------------------------------------- string to sign


def test_string_to_sign_follows_the_documented_field_order() -> None:
    notification = envelope("notification")
    assert string_to_sign(notification) == (
        b"Message\nHello world!\n"
        b"MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
        b"Subject\nMy First Message\n"
        b"Timestamp\n2012-05-02T00:54:06.655Z\n"
        b"TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n"
        b"Type\nNotification\n"
    )
    without_subject = {k: v for k, v in notification.items() if k != "Subject"}
    assert b"Subject" not in (string_to_sign(without_subject) or b"")
    confirmation = envelope("subscription-confirmation")
    names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    signed = string_to_sign(confirmation)
    assert signed == "".join(f"{name}\n{confirmation[name]}\n" for name in names).encode()
    # the Message's escaped newline is its real character in the string to sign
    assert signed is not None and b"MyTopic.\nTo confirm the subscription" in signed
    assert string_to_sign({**notification, "Type": "Other"}) is None
    assert string_to_sign({**notification, "MessageId": 7}) is None


# ------------------------------------------------------------------------ production URL checks


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7.pem", True),
        ("https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-1.pem", True),
        ("https://sns.ap-southeast-2.amazonaws.com:443/SimpleNotificationService-1.pem", True),
        ("http://sns.us-west-2.amazonaws.com/SimpleNotificationService-1.pem", False),
        ("https://sns.us-west-2.amazonaws.com:8443/SimpleNotificationService-1.pem", False),
        ("https://sns.us-west-2.amazonaws.com/SimpleNotificationService-1.txt", False),
        ("https://sns.us-west-2.amazonaws.com.attacker.example/cert.pem", False),
        ("https://attacker.example/sns.us-west-2.amazonaws.com/cert.pem", False),
        ("https://sns.us-west-2.amazonaws.com@attacker.example/cert.pem", False),
        ("https://user:pw@sns.us-west-2.amazonaws.com/cert.pem", False),
        ("https://s3.us-west-2.amazonaws.com/cert.pem", False),
        ("https://sns.amazonaws.com/cert.pem", False),
        ("https://xsns.us-west-2.amazonaws.com/cert.pem", False),
        ("https://127.0.0.1:8443/cert.pem", False),
        ("https://[::1/cert.pem", False),
    ],
)
def test_production_fetches_certificates_only_from_sns_hosts(url: str, allowed: bool) -> None:
    assert signing_cert_url_allowed(url) is allowed


def test_production_confirms_only_sns_links_for_the_message_topic() -> None:
    confirmation = envelope("subscription-confirmation")
    url = confirmation["SubscribeURL"]
    assert subscribe_url_allowed(url, TOPIC)
    assert not subscribe_url_allowed(url, "arn:aws:sns:us-west-2:123456789012:Other")
    assert not subscribe_url_allowed(url.replace("https://", "http://"), TOPIC)
    assert not subscribe_url_allowed(
        url.replace("sns.us-west-2.amazonaws.com", "attacker.example"), TOPIC
    )
    assert not subscribe_url_allowed(url.replace("ConfirmSubscription", "Unsubscribe"), TOPIC)
    assert is_sns_host("https://sns.eu-central-1.amazonaws.com/")
    assert not is_sns_host("https://sns.eu-central-1.amazonaws.com.cn/")


async def test_the_production_verifier_refuses_a_certificate_url_of_another_host(
    aws: AwsStandIn,
) -> None:
    """With the production URL check, a message pointing at any other server (here the local
    one, which serves a certificate that would verify) is refused before anything is fetched."""
    signed = aws.signer.sign(envelope("notification"), aws.url("/cert.pem"))
    with _refused(AuthFailure.INVALID_SIGNATURE):
        await SnsVerifier(clock=lambda: NOW).verify(signed)
    assert aws.cert_requests == 0


# ----------------------------------------------------------------------------- verification


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_signed_message_verifies_and_the_certificate_is_cached(
    aws: AwsStandIn, version: str
) -> None:
    verifier = aws.verifier()
    for name in ("notification", "subscription-confirmation", "unsubscribe-confirmation"):
        await verifier.verify(aws.signer.sign(envelope(name), aws.url("/cert.pem"), version))
    assert aws.cert_requests == 1


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        ({"Message": "Hello world?"}, AuthFailure.INVALID_SIGNATURE),
        ({"TopicArn": "arn:aws:sns:us-west-2:123456789012:Other"}, AuthFailure.INVALID_SIGNATURE),
        ({"Subject": None}, AuthFailure.INVALID_SIGNATURE),
        ({"SignatureVersion": "3"}, AuthFailure.INVALID_SIGNATURE),
        ({"SignatureVersion": "1"}, AuthFailure.INVALID_SIGNATURE),  # signed with SHA256
        ({"Signature": "not base64!"}, AuthFailure.INVALID_SIGNATURE),
        ({"Signature": None}, AuthFailure.MISSING_SIGNATURE),
        ({"SigningCertURL": None}, AuthFailure.MISSING_SIGNATURE),
    ],
)
async def test_a_changed_or_unsigned_message_is_refused(
    aws: AwsStandIn, change: dict[str, Any], failure: AuthFailure
) -> None:
    signed = aws.signer.sign(envelope("notification"), aws.url("/cert.pem"))
    changed = {k: v for k, v in {**signed, **change}.items() if v is not None}
    with _refused(failure):
        await aws.verifier().verify(changed)


async def test_a_signature_by_another_key_is_refused(aws: AwsStandIn) -> None:
    forged = Signer().sign(envelope("notification"), aws.url("/cert.pem"))
    with _refused(AuthFailure.INVALID_SIGNATURE):
        await aws.verifier().verify(forged)


async def test_expired_and_not_rsa_certificates_are_refused(aws: AwsStandIn) -> None:
    message = aws.signer.sign(envelope("notification"), aws.url("/cert.pem"))
    later = aws.verifier(clock=lambda: NOW + timedelta(days=31))
    with _refused(AuthFailure.INVALID_SIGNATURE):
        await later.verify(message)

    ec_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    ec_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ec_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(ec_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )

    async def serve(pem: bytes) -> Callable[[str, int], Any]:
        async def get(url: str, limit: int) -> bytes:
            return pem

        return get

    for pem in (ec_cert, b"not a certificate"):
        verifier = aws.verifier(http_get=await serve(pem))
        with _refused(AuthFailure.INVALID_SIGNATURE):
            await verifier.verify(message)


async def test_a_certificate_that_cannot_be_fetched_is_unavailable_not_refused(
    aws: AwsStandIn,
) -> None:
    aws.down = True
    message = aws.signer.sign(envelope("notification"), aws.url("/cert.pem"))
    verifier = aws.verifier()
    with pytest.raises(SnsUnavailable, match="answered 500"):
        await verifier.verify(message)
    aws.down = False  # a failed fetch is not cached
    await verifier.verify(message)
    closed = aws.url("/cert.pem")
    await aws.close()
    with pytest.raises(SnsUnavailable, match="could not be reached"):
        await aiohttp_get(closed, 1024)


async def test_a_subscription_is_confirmed_by_a_get_of_its_subscribe_url(
    aws: AwsStandIn,
) -> None:
    confirmation = envelope("subscription-confirmation")
    token = "2336412f37"
    confirmation["SubscribeURL"] = aws.url(
        f"/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}"
    )
    await aws.verifier().confirm(confirmation)
    assert aws.confirmations == [
        {"Action": ["ConfirmSubscription"], "TopicArn": [TOPIC], "Token": [token]}
    ]
    other_topic = {**confirmation, "TopicArn": "arn:aws:sns:us-west-2:123456789012:Other"}
    with _refused(AuthFailure.INVALID_SIGNATURE):
        await aws.verifier().confirm(other_topic)
    with _refused(AuthFailure.INVALID_SIGNATURE):  # the production check: not an SNS host
        await SnsVerifier().confirm(confirmation)
    assert len(aws.confirmations) == 1


# ----------------------------------------------------------------------------- over HTTP


@dataclass
class Collecting:
    """The collector's routes on a local server, its SNS verifier pointed at the stand-in."""

    server: TestServer
    session: ClientSession
    sink: ListSink

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def post(self, message: object, **headers: str) -> tuple[int, Any]:
        body = message if isinstance(message, bytes) else orjson.dumps(message)
        async with self.session.post(self.url("/webhooks/ses"), data=body, headers=headers) as r:
            return r.status, await r.json()

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(record.value) for record in self.sink.records]


@pytest.fixture
async def collecting(aws: AwsStandIn) -> AsyncIterator[Callable[..., Any]]:
    started: list[Collecting] = []

    async def start(**overrides: Any) -> Collecting:
        options: dict[str, Any] = {"ses_sns_topic_arns": [TOPIC], "auth_tokens": []}
        settings = make_settings(**{**options, **overrides})
        sink = ListSink()
        collector = Collector(settings, sink, replays=MemoryReplayGuard(), sns=aws.verifier())
        app = collector_app(collector)
        server = TestServer(app)
        await server.start_server()
        one = Collecting(server, ClientSession(), sink)
        started.append(one)
        return one

    yield start
    for one in started:
        await one.session.close()
        await one.server.close()


def _ses_notification(aws: AwsStandIn, event_file: str, message_id: str) -> dict[str, Any]:
    """The documented SNS notification carrying a documented SES event, signed."""
    message = {
        **envelope("notification"),
        "MessageId": message_id,
        "Message": (FIXTURES / event_file).read_text(),
    }
    return aws.signer.sign(message, aws.url("/cert.pem"))


async def test_ses_notifications_are_verified_and_converted(
    aws: AwsStandIn, collecting: Callable[..., Any]
) -> None:
    served: Collecting = await collecting()
    bounce = _ses_notification(aws, "event-bounce.json", "m-bounce")
    status, body = await served.post(bounce, **{"x-amz-sns-message-type": "Notification"})
    assert (status, body) == (202, {"accepted": ["ses:m-bounce:0"], "rejected": []})
    (event,) = served.events()
    assert (event["type"], event["bounce"], event["anonymous_id"]) == (
        "email_bounced",
        "hard",
        "email:recipient@example.com",
    )
    assert served.sink.records[0].topic == "leads.email.v1"
    delay = _ses_notification(aws, "event-delivery-delay.json", "m-delay")
    status, body = await served.post(delay)
    assert status == 202 and body["accepted"] == []
    assert body["rejected"][0]["kind"] == "DeliveryDelay"
    # a retry of the same notification is the same event
    status, body = await served.post(bounce)
    assert body["accepted"] == ["ses:m-bounce:0"]


async def test_ses_machine_ranges_come_from_the_settings(
    aws: AwsStandIn, collecting: Callable[..., Any]
) -> None:
    served: Collecting = await collecting(machine_ip_ranges=["Acme scanner=192.0.2.0/24"])
    status, _ = await served.post(_ses_notification(aws, "event-open.json", "m-open"))
    assert status == 202
    (event,) = served.events()
    assert event["machine"] == "address of Acme scanner"


async def test_ses_refusals(aws: AwsStandIn, collecting: Callable[..., Any]) -> None:
    served: Collecting = await collecting()
    good = _ses_notification(aws, "event-send.json", "m-send")
    other_topic = aws.signer.sign(
        {**good, "TopicArn": "arn:aws:sns:us-west-2:123456789012:Other"}, aws.url("/cert.pem")
    )
    cases: list[tuple[object, dict[str, str], int, str]] = [
        (other_topic, {}, 401, "unexpected_topic"),
        ({**good, "Message": "{}"}, {}, 401, "invalid_signature"),
        ({**good, "Signature": None}, {}, 401, "missing_signature"),
        (good, {"x-amz-sns-message-type": "SubscriptionConfirmation"}, 400, "invalid_call"),
        ({**good, "Type": "Teleport"}, {}, 400, "invalid_call"),
        ([good], {}, 400, "invalid_call"),
        (b"{not json", {}, 400, "not_json"),
    ]
    for message, headers, status, error in cases:
        got = await served.post(message, **headers)
        assert (got[0], got[1]["error"]) == (status, error), message
    assert served.sink.records == []
    aws.down = True  # the certificate cannot be fetched: SNS is asked to retry
    fresh = await collecting()
    status, body = await fresh.post(good)
    assert (status, body["error"]) == (503, "unavailable")


async def test_ses_subscription_confirmation_and_unsubscribe(
    aws: AwsStandIn, collecting: Callable[..., Any]
) -> None:
    served: Collecting = await collecting()
    confirmation = {
        **envelope("subscription-confirmation"),
        "SubscribeURL": aws.url(f"/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=t-1"),
    }
    signed = aws.signer.sign(confirmation, aws.url("/cert.pem"))
    status, body = await served.post(signed)
    assert (status, body) == (200, {"status": "confirmed", "topic_arn": TOPIC})
    assert aws.confirmations == [
        {"Action": ["ConfirmSubscription"], "TopicArn": [TOPIC], "Token": ["t-1"]}
    ]
    unsubscribed = aws.signer.sign(envelope("unsubscribe-confirmation"), aws.url("/cert.pem"))
    status, body = await served.post(unsubscribed)
    assert (status, body["status"]) == (200, "unsubscribed")
    # a confirmation of a topic that is not allowed is never confirmed
    other = aws.signer.sign(
        {**confirmation, "TopicArn": "arn:aws:sns:us-west-2:123456789012:Other"},
        aws.url("/cert.pem"),
    )
    status, body = await served.post(other)
    assert (status, body["error"]) == (401, "unexpected_topic")
    assert len(aws.confirmations) == 1
    assert served.sink.records == []


async def test_ses_without_topics_is_refused_unless_auth_is_disabled(
    aws: AwsStandIn, collecting: Callable[..., Any]
) -> None:
    unconfigured: Collecting = await collecting(ses_sns_topic_arns=[])
    good = _ses_notification(aws, "event-send.json", "m-1")
    status, body = await unconfigured.post(good)
    assert (status, body["error"]) == (401, "auth_not_configured")
    development: Collecting = await collecting(ses_sns_topic_arns=[], auth_disabled=True)
    unsigned = {key: value for key, value in good.items() if key != "Signature"}
    status, body = await development.post(unsigned)
    assert (status, body["accepted"]) == (202, ["ses:m-1:0"])
    status, body = await development.post(envelope("subscription-confirmation"))
    assert (status, body["error"]) == (401, "auth_not_configured")  # never confirmed
    assert aws.confirmations == []
    assert aws.cert_requests == 0


def test_topic_arns_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSTREAM_SES_SNS_TOPIC_ARNS", f" {TOPIC}, arn:aws:sns:eu-west-1:1:x ,")
    with pytest.raises(ValidationError, match="is not an SNS topic ARN"):
        Settings()
    other = "arn:aws:sns:eu-west-1:210987654321:ses-events.fifo"
    monkeypatch.setenv("LEADSTREAM_SES_SNS_TOPIC_ARNS", f" {TOPIC}, {other} ,")
    assert Settings().ses_sns_topic_arns == [TOPIC, other]
