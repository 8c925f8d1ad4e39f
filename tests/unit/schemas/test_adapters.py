"""Vendor adapters against the real vendor samples in ../shared/datasets/webhooks (read in place)
and the permissively licensed ones kept in tests/fixtures.

Where the samples come from, and how to lay them out: docs/DATASETS.md.

Every sample either converts (the expected event types are listed) or is rejected with a reason;
at least one sample per vendor is checked field by field.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.adapters import hubspot, mailchimp, mailgun, segment, sendgrid, snowplow
from schemas.adapters.base import Conversion, vendor_event_id
from schemas.codec import decode, encode
from schemas.events import (
    Clicked,
    CtaClicked,
    EmailBounced,
    EmailClicked,
    EmailOpened,
    EmailSubscribed,
    EventBase,
    FormSubmitted,
    Identify,
    PageViewed,
    ProfileUpdated,
    Traits,
    Utm,
)
from schemas.stages import Stage
from schemas.topics import topic_for

REPO = Path(__file__).resolve().parents[3]
DATASETS = (REPO / ".." / "shared" / "datasets" / "webhooks").resolve()
FIXTURES = REPO / "tests" / "fixtures"
RECEIVED = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)

needs_samples = pytest.mark.skipif(not DATASETS.is_dir(), reason=f"{DATASETS} is absent")

NOT_JSON = "body is not valid JSON"
NO_TYPE = "unknown Mailchimp webhook type 'None'"  # annotated doc comments, not payloads
NO_ID = "no user identifier"

# file → the event types it converts to, or the start of the reason it is rejected with.
EXPECTED: dict[str, list[str] | str] = {
    "hubspot/webhook.contact.creation.snowplow-enrich-test.json": "contact.creation carries no",
    "mailchimp/campaign.connector-comment-verbatim.txt": NO_TYPE,
    "mailchimp/campaign.fields.json": "a campaign's sending status",
    "mailchimp/campaign.form-urlencoded.txt": "a campaign's sending status",
    "mailchimp/cleaned.connector-comment-verbatim.txt": NO_TYPE,
    "mailchimp/cleaned.fields.json": ["email_bounced"],
    "mailchimp/cleaned.form-urlencoded.txt": ["email_bounced"],
    "mailchimp/profile.connector-comment-verbatim.txt": NO_TYPE,
    "mailchimp/profile.fields.json": ["profile_updated"],
    "mailchimp/profile.form-urlencoded.txt": ["profile_updated"],
    "mailchimp/subscribe.connector-comment-verbatim.txt": NO_TYPE,
    "mailchimp/subscribe.fields.json": ["email_subscribed", "profile_updated"],
    "mailchimp/subscribe.form-urlencoded.txt": ["email_subscribed", "profile_updated"],
    "mailchimp/unsubscribe.connector-comment-verbatim.txt": NO_TYPE,
    "mailchimp/unsubscribe.fields.json": ["email_unsubscribed"],
    "mailchimp/unsubscribe.form-urlencoded.txt": ["email_unsubscribed"],
    "mailchimp/unsubscribe.real-capture.snowplow-enrich-test.form-urlencoded.txt": [
        "email_unsubscribed"
    ],
    "mailchimp/upemail.connector-comment-verbatim.txt": NO_TYPE,
    "mailchimp/upemail.fields.json": ["profile_updated"],
    "mailchimp/upemail.form-urlencoded.txt": ["profile_updated"],
    "mailgun/event-data.accepted.json": ["email_sent"],
    "mailgun/event-data.clicked.doc-verbatim.txt": NOT_JSON,
    "mailgun/event-data.clicked.json": ["email_clicked"],
    "mailgun/event-data.complained.doc-verbatim.txt": NOT_JSON,
    "mailgun/event-data.complained.json": ["email_spam_reported"],
    "mailgun/event-data.delivered.json": ["email_delivered"],
    "mailgun/event-data.failed-permanent-delayed-bounce.doc-verbatim.txt": NOT_JSON,
    "mailgun/event-data.failed-permanent.json": ["email_bounced"],
    "mailgun/event-data.opened.doc-verbatim.txt": NOT_JSON,
    "mailgun/event-data.opened.json": ["email_opened"],
    "mailgun/event-data.unsubscribed.doc-verbatim.txt": NOT_JSON,
    "mailgun/event-data.unsubscribed.json": ["email_unsubscribed"],
    "mailgun/webhook-envelope.opened.doc-verbatim.txt": NOT_JSON,
    "segment/b2b-saas.track-signed-in.json": "track event 'Signed In' has no Leadstream",
    "segment/b2b-saas.track-signed-up.json": ["form_submitted"],
    "segment/common-fields.full-example.json": "track event 'Report Submitted' has no",
    "segment/email-spec.email-bounced.json": ["email_bounced"],
    "segment/email-spec.email-delivered.json": ["email_delivered"],
    "segment/email-spec.email-marked-as-spam.json": ["email_spam_reported"],
    "segment/email-spec.email-opened.json": ["email_opened"],
    "segment/email-spec.unsubscribed.json": ["email_unsubscribed"],
    "segment/identify.complete-example.json": ["identify", "identify"],
    "segment/identify.minimal.json": ["identify"],
    "segment/page.minimal.json": "neither userId nor anonymousId",
    "segment/track.complete-example.json": "track event 'Course Clicked' has no",
    "segment/track.minimal.json": "neither userId nor anonymousId",
    "sendgrid/ab-test-processed.json": ["email_sent"],
    "sendgrid/ab-test-winning-phase-delivered.json": ["email_delivered"],
    "sendgrid/bounce-type-blocked.json": ["email_bounced"],
    "sendgrid/bounce.json": ["email_bounced"],
    "sendgrid/category-array.json": ["email_opened", "email_opened"],
    "sendgrid/category-string.json": ["email_opened", "email_opened"],
    "sendgrid/click.json": ["email_clicked"],
    "sendgrid/deferred.json": "a temporary delay",
    "sendgrid/delivered.json": ["email_delivered"],
    "sendgrid/dropped.json": ["email_bounced"],
    "sendgrid/group_resubscribe.json": ["email_subscribed"],
    "sendgrid/group_unsubscribe.json": ["email_unsubscribed"],
    "sendgrid/legacy-marketing-unsubscribe.json": ["email_unsubscribed"],
    "sendgrid/marketing-campaign-processed.json": ["email_sent"],
    "sendgrid/open.json": ["email_opened"],
    "sendgrid/pool.json": ["email_sent"],
    "sendgrid/processed.json": ["email_sent"],
    "sendgrid/spamreport.json": ["email_spam_reported"],
    "sendgrid/unsubscribe.json": ["email_unsubscribed"],
    "snowplow/pixel-get.page-view-with-entity.html.txt": NO_ID,
    "snowplow/pixel-get.page-view.html.txt": NO_ID,
    "snowplow/pixel-redirect.click.html.txt": NO_ID,
    "snowplow/tp2-post.custom-entities.cx-decoded.json": "not a Snowplow payload_data body",
    "snowplow/tp2-post.custom-entities.json": "self-describing event 'iglu:com.my_company",
    "snowplow/tp2-post.page-ping.json": "a page ping",
    "snowplow/tp2-post.page-view.json": ["page_viewed"],
    "snowplow/tp2-post.self-describing-event.json": "self-describing event 'iglu:com.my_company",
    "snowplow/tp2-post.self-describing-event.ue_px-decoded.json": "not a Snowplow payload_data",
}

_JSON_ADAPTERS = {
    "sendgrid": sendgrid.convert_body,
    "mailgun": mailgun.convert_body,
    "segment": segment.convert_body,
    "snowplow": snowplow.convert_body,
    "hubspot": hubspot.convert_body,
}


def _pixel_url(page: str) -> str:
    match = re.search(r'(?:src|href)="([^"]+)"', page)
    assert match, "no pixel or redirect URL in the sample"
    return html.unescape(match.group(1))


def convert_sample(path: Path) -> Conversion:
    """Feed a sample to its vendor's adapter the way the HTTP collector would."""
    vendor, name, body = path.parent.name, path.name, path.read_bytes()
    if vendor == "mailchimp" and name.endswith(".fields.json"):
        return mailchimp.convert(json.loads(body), received_at=RECEIVED)
    if vendor == "mailchimp":
        return mailchimp.convert(body.strip(), received_at=RECEIVED)
    if vendor == "snowplow" and name.startswith("pixel-"):
        return snowplow.convert_pixel(_pixel_url(body.decode()), received_at=RECEIVED)
    return _JSON_ADAPTERS[vendor](body, received_at=RECEIVED)


def sample(relative: str) -> Path:
    return DATASETS / relative


def fixture(relative: str) -> Any:
    """A payload kept in tests/fixtures (sources in each folder's SOURCE.md), parsed."""
    return json.loads((FIXTURES / relative).read_text())


def _samples() -> list[str]:
    if not DATASETS.is_dir():
        return []
    return sorted(
        path.relative_to(DATASETS).as_posix()
        for path in DATASETS.rglob("*")
        if path.is_file() and path.name != "SOURCE.md"
    )


@needs_samples
def test_every_sample_has_an_expected_outcome() -> None:
    assert _samples() == sorted(EXPECTED), "a sample was added or removed: list its outcome"


@needs_samples
@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_each_sample_converts_or_is_rejected_with_a_reason(relative: str) -> None:
    result = convert_sample(sample(relative))
    expected = EXPECTED[relative]
    if isinstance(expected, list):
        assert [event.type for event in result.events] == expected, result.rejected
        assert result.rejected == []
        for event in result.events:
            assert decode(encode(event), now=RECEIVED, topic=topic_for(event)) == event
    else:
        assert result.events == []
        assert len(result.rejected) == 1
        assert result.rejected[0].reason.startswith(expected), result.rejected[0]


# ------------------------------------------------------------------------------- event ids


@needs_samples
def test_vendor_event_ids_are_scoped_by_their_source() -> None:
    (sg,) = sendgrid.convert([_sendgrid_documented("open")], **_AT).events
    assert sg.event_id == "sendgrid:sg_event_id"
    # a Mailgun event that happens to carry the same id is another event
    opened = json.loads(sample("mailgun/event-data.opened.json").read_text())
    (mg,) = mailgun.convert({**opened, "id": "sg_event_id"}, **_AT).events
    assert mg.event_id == "mailgun:sg_event_id"
    hubspot_ids = [
        e.event_id
        for e in hubspot.convert(
            [
                {
                    "objectId": 5,
                    "eventId": 2,
                    "eventType": "contact.merge",
                    "mergedObjectIds": [6, 7],
                }
            ],
            **_AT,
        ).events
    ]
    assert hubspot_ids == ["hubspot:2-0", "hubspot:2-1"]


def test_scoped_event_ids_fit_the_contract() -> None:
    long = "m" * 200  # a usable vendor id may be 256 characters, an event id only 128
    scoped = vendor_event_id("segment", long)
    assert scoped is not None and scoped.startswith("segment:") and len(scoped) <= 128
    assert scoped == vendor_event_id("segment", long) != vendor_event_id("snowplow", long)
    assert vendor_event_id("segment", "has a space") is None
    call = {**fixture("segment/track.button-clicked-context-traits.json"), "messageId": long}
    (event,) = segment.convert(call, **_AT).events
    assert event.event_id == scoped
    # derived ids (no vendor id) are uuid5s, unscoped as before
    (derived,) = segment.convert({k: v for k, v in call.items() if k != "messageId"}, **_AT).events
    assert len(derived.event_id) == 36 and ":" not in derived.event_id


# --------------------------------------------------------------------------------- SendGrid


@needs_samples
def test_sendgrid_click_field_by_field() -> None:
    (event,) = convert_sample(sample("sendgrid/click.json")).events
    assert isinstance(event, EmailClicked)
    assert event.event_id == "sendgrid:kCAi1KttyQdEKHhdC-nuEA=="
    assert event.occurred_at == datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)
    assert event.lead_id is None
    assert event.anonymous_id == "email:example@test.com"
    assert event.source == "sendgrid"
    assert event.message_id == "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"
    assert event.campaign_id is None
    assert event.url == "http://www.sendgrid.com/"
    assert event.machine_click is False
    assert event.user_agent is not None
    assert event.user_agent.startswith("Mozilla/4.0 (compatible; MSIE 6.1")


@needs_samples
def test_sendgrid_bounce_kinds_and_campaigns() -> None:
    (hard,) = convert_sample(sample("sendgrid/bounce.json")).events
    (soft,) = convert_sample(sample("sendgrid/bounce-type-blocked.json")).events
    assert isinstance(hard, EmailBounced)
    assert isinstance(soft, EmailBounced)
    assert (hard.bounce, soft.bounce) == ("hard", "soft")
    assert hard.reason == "500 unknown recipient"
    (sent,) = convert_sample(sample("sendgrid/marketing-campaign-processed.json")).events
    assert sent.campaign_id == "12345"  # type: ignore[attr-defined]
    (resubscribed,) = convert_sample(sample("sendgrid/group_resubscribe.json")).events
    assert isinstance(resubscribed, EmailSubscribed)
    assert resubscribed.list_id == "10"


def _sendgrid_documented(event: str) -> dict[str, Any]:
    """The `event` item of SendGrid's documented batch of every event (tests/fixtures)."""
    (item,) = [i for i in fixture("sendgrid/event-webhook-all-events.json") if i["event"] == event]
    return dict(item)


def test_sendgrid_bounce_without_type_is_judged_by_classification_then_status() -> None:
    bounce = _sendgrid_documented("bounce")
    assert "type" not in bounce and bounce["status"] == "5.0.0"

    def kind(**changes: str) -> str:
        (event,) = sendgrid.convert([{**bounce, **changes}], received_at=RECEIVED).events
        assert isinstance(event, EmailBounced)
        assert event.reason == "500 unknown recipient"
        return event.bounce

    assert kind() == "hard"  # 5.x.x: a permanent failure
    assert kind(status="4.0.0") == "soft"  # 4.x.x: a transient one
    # the current documentation's example of this item adds the classification
    assert kind(bounce_classification="Invalid Address") == "hard"
    assert kind(bounce_classification="Invalid Address", status="4.0.0") == "hard"
    for about_the_sender in ("Content", "Reputation", "Frequency or Volume Too High"):
        assert kind(bounce_classification=about_the_sender) == "soft"
    assert kind(bounce_classification="Technical Failure") == "soft"
    # classifications that say nothing either way leave it to the status
    assert kind(bounce_classification="Mailbox Unavailable", status="4.2.2") == "soft"
    assert kind(bounce_classification="Unclassified") == "hard"
    # `type`, when sent, decides (the documentation's `blocked` example is classified
    # "Invalid Address" and still a temporary refusal)
    assert kind(type="blocked", bounce_classification="Invalid Address") == "soft"
    assert kind(type="bounce", status="4.0.0") == "hard"
    assert sendgrid.bounce_kind({"event": "bounce"}) == "hard"  # documented as permanent


@needs_samples
def test_sendgrid_events_without_an_id_get_a_stable_derived_one() -> None:
    first = convert_sample(sample("sendgrid/category-array.json")).events
    again = convert_sample(sample("sendgrid/category-array.json")).events
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert first[0].event_id != first[1].event_id


def test_sendgrid_opens_and_clicks_made_by_machines() -> None:
    open_, click = _sendgrid_documented("open"), _sendgrid_documented("click")

    def made(item: dict[str, Any], ranges: tuple[str, ...] = ()) -> EventBase:
        (event,) = sendgrid.convert([item], **_AT, machine_ranges=ranges).events
        return event

    # the documented open and click: MSIE 6.1 from 255.255.255.255, a person
    assert made(open_).machine is None and made(click).machine is None
    flagged = made({**open_, "sg_machine_open": True})
    assert isinstance(flagged, EmailOpened)
    assert (flagged.machine_open, flagged.machine) == (True, "vendor flag: sg_machine_open")
    # a security gateway following the link, from its published range
    scanned = made({**click, "ip": "40.107.22.10"})
    assert isinstance(scanned, EmailClicked)
    assert scanned.machine == "address of Microsoft Exchange Online Protection"
    assert scanned.machine_click is False  # SendGrid has no machine flag for clicks
    configured = made({**open_, "ip": "203.0.113.9"}, ("Acme gateway=203.0.113.0/24",))
    assert configured.machine == "address of Acme gateway"
    barracuda = made({**click, "useragent": "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"})
    assert barracuda.machine == "user agent: Barracuda"
    # SendGrid reports a user agent with every open and click: one without is a machine's
    assert made({k: v for k, v in open_.items() if k != "useragent"}).machine == "no user agent"
    # what is not an open or a click is not judged
    assert made(_sendgrid_documented("delivered")).machine is None


def test_sendgrid_machine_opens_lead_ids_and_millisecond_timestamps() -> None:
    item = {
        "email": "Ada@Example.com",
        "timestamp": 1_700_000_000_123,
        "event": "open",
        "sg_event_id": "e-1",
        "sg_machine_open": True,
        "lead_id": "lead-9",
    }
    (event,) = sendgrid.convert([item], received_at=RECEIVED).events
    assert isinstance(event, EmailOpened)
    assert event.machine_open is True
    assert event.machine == "vendor flag: sg_machine_open"
    assert event.lead_id == "lead-9"
    assert event.anonymous_id == "email:ada@example.com"
    assert event.occurred_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)


def test_sendgrid_unknown_and_broken_items_are_reported_and_the_rest_converts() -> None:
    batch = [
        {"email": "a@b.c", "timestamp": 1, "event": "open"},
        {"email": "a@b.c", "timestamp": 1, "event": "forwarded"},
        "junk",
        {"timestamp": 1, "event": "open"},
        {"email": "a@b.c", "timestamp": 1, "event": "click"},
    ]
    result = sendgrid.convert(batch, received_at=RECEIVED)
    assert [event.type for event in result.events] == ["email_opened"]
    assert [(r.where, r.vendor_kind) for r in result.rejected] == [
        ("[1]", "forwarded"),
        ("[2]", "?"),
        ("[3]", "open"),
        ("[4]", "click"),
    ]
    assert "unknown SendGrid event 'forwarded'" in result.rejected[0].reason


# ---------------------------------------------------------------------------------- Mailgun


@needs_samples
def test_mailgun_failed_permanent_field_by_field() -> None:
    (event,) = convert_sample(sample("mailgun/event-data.failed-permanent.json")).events
    assert isinstance(event, EmailBounced)
    assert event.event_id == "mailgun:pl271FzxTTmGRW8Uj3dUWw"
    assert event.occurred_at == datetime(2018, 6, 22, 21, 12, 49, 818328, tzinfo=UTC)
    assert event.anonymous_id == "email:slava@mailgun.com"
    assert event.lead_id is None
    assert event.source == "mailgun"
    assert event.message_id == "20180622211249.1.2A6098970A380E12@example.org"
    assert event.bounce == "hard"
    assert event.reason == (  # reason `suppress-bounce`: Mailgun did not send
        "not sent: the address was suppressed after an earlier bounce "
        "(605 Not delivering to previously bounced address)"
    )


@needs_samples
def test_mailgun_envelope_and_bot_flags() -> None:
    data = json.loads(sample("mailgun/event-data.opened.json").read_text())
    envelope = {"signature": {"timestamp": "1", "token": "t", "signature": "s"}, "event-data": data}
    (human,) = mailgun.convert(envelope, received_at=RECEIVED).events
    assert isinstance(human, EmailOpened)
    assert (human.machine_open, human.machine) == (False, None)
    data["client-info"]["bot"] = "apple"
    data["user-variables"] = {"lead_id": "lead-3"}
    (machine,) = mailgun.convert(data, received_at=RECEIVED).events
    assert isinstance(machine, EmailOpened)
    assert machine.machine_open is True
    assert machine.machine == "vendor flag: client-info.bot=apple"
    assert machine.lead_id == "lead-3"


@needs_samples
def test_mailgun_clicks_made_by_machines() -> None:
    data = json.loads(sample("mailgun/event-data.clicked.json").read_text())

    def made(ranges: tuple[str, ...] = (), **changes: Any) -> EmailClicked:
        (event,) = mailgun.convert({**data, **changes}, **_AT, machine_ranges=ranges).events
        assert isinstance(event, EmailClicked)
        return event

    assert made().machine is None  # Chromium on Linux, from 123.123.123.321
    assert made(ip="104.47.1.9").machine == "address of Microsoft Exchange Online Protection"
    configured = made(("Acme gateway=123.123.123.0/24",), ip="123.123.123.32")
    assert configured.machine == "address of Acme gateway"
    assert configured.machine_click is False  # the vendor flag stays the vendor's
    scanner = {**data["client-info"], "user-agent": "Mozilla/5.0 (compatible; Mimecast)"}
    assert made(**{"client-info": scanner}).machine == "user agent: Mimecast"
    # Mailgun reports the client with every click: a click without a user agent is a machine's
    assert made(**{"client-info": {}}).machine == "no user agent"
    # what is not an open or a click is not judged
    delivered = json.loads(sample("mailgun/event-data.delivered.json").read_text())
    (event,) = mailgun.convert(delivered, **_AT).events
    assert event.machine is None


def test_mailgun_temporary_failure_is_reported_not_a_bounce() -> None:
    # Mailgun retries after a temporary failure: the message may yet be delivered, so it is not
    # a bounce (as SendGrid's `deferred` is not)
    result = mailgun.convert(
        fixture("mailgun/event-data.failed-temporary.json"), received_at=RECEIVED
    )
    assert result.events == []
    (rejected,) = result.rejected
    assert (rejected.where, rejected.vendor_kind) == ("event-data", "failed")
    assert rejected.reason.startswith("a temporary failure: Mailgun retries")
    assert "451 4.7.652 The mail server" in rejected.reason


def test_mailgun_unknown_events_are_reported() -> None:
    base = {"id": "x1", "timestamp": 1.5, "recipient": "a@b.c"}
    stored = mailgun.convert({**base, "event": "stored"}, received_at=RECEIVED)
    assert stored.events == []
    assert stored.rejected[0].vendor_kind == "stored"


# ------------------------------------------------------------------ suppressions, both vendors


_AT: dict[str, Any] = {"received_at": RECEIVED}


def _dropped(reason: str | None = None) -> Conversion:
    item = _sendgrid_documented("dropped")  # reason "Bounced Address"
    return sendgrid.convert([item if reason is None else {**item, "reason": reason}], **_AT)


def _mailgun_failed(reason: str) -> Conversion:
    data = json.loads(sample("mailgun/event-data.failed-permanent.json").read_text())
    assert data["reason"] == "suppress-bounce"
    return mailgun.convert({**data, "reason": reason}, **_AT)


@needs_samples
def test_a_bounce_suppression_is_a_hard_bounce_for_both_vendors() -> None:
    (sendgrid_bounce,) = _dropped().events
    (mailgun_bounce,) = _mailgun_failed("suppress-bounce").events
    for event in (sendgrid_bounce, mailgun_bounce):
        assert isinstance(event, EmailBounced)
        assert event.bounce == "hard"
        assert event.reason is not None
        assert event.reason.startswith(
            "not sent: the address was suppressed after an earlier bounce"
        )
    assert sendgrid_bounce.reason.endswith("(Bounced Address)")  # type: ignore[union-attr]


@needs_samples
@pytest.mark.parametrize(
    ("sendgrid_reason", "mailgun_reason", "after"),
    [
        ("Unsubscribed Address", "suppress-unsubscribe", "after an unsubscribe"),
        ("Spam Reporting Address", "suppress-complaint", "after a spam report"),
    ],
)
def test_unsubscribe_and_complaint_suppressions_are_reported_alike(
    sendgrid_reason: str, mailgun_reason: str, after: str
) -> None:
    said = []
    for vendor, result in (
        ("SendGrid", _dropped(sendgrid_reason)),
        ("Mailgun", _mailgun_failed(mailgun_reason)),
    ):
        assert result.events == []
        (rejected,) = result.rejected
        assert rejected.reason.startswith(f"{vendor} did not send: the address was suppressed")
        assert after in rejected.reason
        said.append(rejected.reason.removeprefix(vendor).split(" (")[0])
    assert said[0] == said[1]  # the same words for the same fact


def test_sendgrid_captured_drops_unsubscribed_and_invalid() -> None:
    # captured SendGrid deliveries (django-anymail's tests, tests/fixtures/sendgrid/SOURCE.md)
    unsubscribed = sendgrid.convert(
        fixture("sendgrid/anymail.dropped-unsubscribed-address.json"), **_AT
    )
    assert unsubscribed.events == []
    assert unsubscribed.rejected[0].reason.startswith(
        "SendGrid did not send: the address was suppressed after an unsubscribe"
    )
    # an address SendGrid found malformed is no suppression of ours: reported with the reason
    invalid = sendgrid.convert(fixture("sendgrid/anymail.dropped-invalid.json"), **_AT)
    assert invalid.events == []
    assert invalid.rejected[0].reason == (
        "SendGrid dropped the message without sending it (Invalid): nothing happened to the person"
    )
    (bounced,) = _dropped().events  # the documented batch's drop: "Bounced Address"
    assert bounced.bounce == "hard"  # type: ignore[attr-defined]


def test_mailgun_signature_verification() -> None:
    key, timestamp, token = "key-secret", "1529006854", "a8ce0edb2dd8301dee6c2405235584e45aa9"
    good = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    assert mailgun.verify_signature(key, timestamp=timestamp, token=token, signature=good)
    assert not mailgun.verify_signature("other", timestamp=timestamp, token=token, signature=good)
    assert not mailgun.verify_signature(key, timestamp="1529006855", token=token, signature=good)


# -------------------------------------------------------------------------------- Mailchimp


@needs_samples
def test_mailchimp_subscribe_field_by_field() -> None:
    subscribed, profile = convert_sample(sample("mailchimp/subscribe.form-urlencoded.txt")).events
    fired = datetime(2009, 3, 26, 21, 35, 57, tzinfo=UTC)
    assert isinstance(subscribed, EmailSubscribed)
    assert subscribed.occurred_at == fired
    assert subscribed.anonymous_id == "email:api@mailchimp.com"
    assert subscribed.list_id == "a6b5da1054"
    assert subscribed.source == "mailchimp"
    assert isinstance(profile, ProfileUpdated)
    assert profile.occurred_at == fired
    assert profile.traits.email == "api@mailchimp.com"
    assert profile.traits.first_name == "MailChimp"
    assert profile.traits.last_name == "API"
    assert profile.traits.custom == {"mailchimp_interests": "Group1,Group2"}
    assert subscribed.event_id != profile.event_id


@needs_samples
def test_mailchimp_form_body_and_parsed_fields_give_the_same_events() -> None:
    for kind in ("subscribe", "unsubscribe", "profile", "upemail", "cleaned"):
        from_body = convert_sample(sample(f"mailchimp/{kind}.form-urlencoded.txt")).events
        from_fields = convert_sample(sample(f"mailchimp/{kind}.fields.json")).events
        assert from_body == from_fields, kind


@needs_samples
def test_mailchimp_upemail_links_the_old_address_to_the_new() -> None:
    (event,) = convert_sample(sample("mailchimp/upemail.form-urlencoded.txt")).events
    assert isinstance(event, ProfileUpdated)
    assert event.anonymous_id == "email:api+old@mailchimp.com"
    assert event.traits.email == "api+new@mailchimp.com"


def test_mailchimp_abuse_is_a_spam_report() -> None:
    body = "type=unsubscribe&fired_at=2009-03-26+21:40:57&data[reason]=abuse&data[email]=a%40b.c"
    (event,) = mailchimp.convert(body, received_at=RECEIVED).events
    assert event.type == "email_spam_reported"


# ---------------------------------------------------------------------------------- Segment


@needs_samples
def test_segment_identify_field_by_field() -> None:
    event, link = convert_sample(sample("segment/identify.complete-example.json")).events
    assert isinstance(event, Identify)
    assert event.event_id == "segment:022bb90c-bbac-11e4-8dfc-aa07a5b093db"
    assert event.occurred_at == datetime(2015, 2, 23, 22, 28, 55, 111000, tzinfo=UTC)
    assert event.lead_id == "97980cfea0067"
    assert event.anonymous_id == "507f191e810c19729de860ea"
    assert event.source == "segment"
    assert event.traits.email == "peter@example.com"
    assert (event.traits.first_name, event.traits.last_name) == ("Peter", "Gibbons")
    assert event.traits.region == "CA"
    assert event.traits.country is None  # "USA" is not an ISO alpha-2 code
    assert event.traits.custom == {"plan": "premium", "logins": 5, "address_country": "USA"}
    # the call has an anonymousId and an address: a second identify links the address too
    assert isinstance(link, Identify)
    assert (link.lead_id, link.anonymous_id) == ("97980cfea0067", "email:peter@example.com")
    assert link.traits == Traits()
    assert (link.occurred_at, link.source) == (event.occurred_at, "segment")
    assert link.event_id != event.event_id
    again = convert_sample(sample("segment/identify.complete-example.json")).events
    assert [e.event_id for e in again] == [event.event_id, link.event_id]


def test_segment_identify_with_an_address_and_no_anonymous_id_links_the_address() -> None:
    # Segment's HTTP API examples: no anonymousId, traits.email (the path /v1/identify sets the
    # type, as the collector does)
    call = {**fixture("segment/http-api.identify.json"), "type": "identify"}
    (event,) = segment.convert(call, **_AT).events
    assert isinstance(event, Identify)
    assert (event.lead_id, event.anonymous_id) == ("019mr8mf4r", "email:pgibbons@example.com")
    assert event.traits.email == "pgibbons@example.com"
    batch = segment.convert(fixture("segment/http-api.batch.json"), **_AT)
    identified = [(e.lead_id, e.anonymous_id) for e in batch.events]
    assert identified == [
        ("019mr8mf4r", "email:jake@yahoo.com"),
        ("971mj8mk7p", "email:cindy@example.com"),
    ]
    assert [r.vendor_kind for r in batch.rejected] == ["track 'Song Played'"] * 2
    # without a userId there is no lead to link to: the traits go to the address
    anonymous = {k: v for k, v in call.items() if k != "userId"}
    (profile,) = segment.convert(anonymous, **_AT).events
    assert isinstance(profile, ProfileUpdated)
    assert (profile.lead_id, profile.anonymous_id) == (None, "email:pgibbons@example.com")
    # an explicit anonymousId wins: the visitor's earlier activity is held under it
    (visitor,) = segment.convert({**anonymous, "anonymousId": "aid-1"}, **_AT).events
    assert (visitor.type, visitor.anonymous_id) == ("profile_updated", "aid-1")


@needs_samples
def test_segment_context_traits_email_names_the_person() -> None:
    # the Email spec's calls carry the intended recipient in context.traits.email
    call = json.loads(sample("segment/email-spec.email-bounced.json").read_text())
    assert call["context"]["traits"]["email"] == "pgibbons@example.com"
    (event,) = segment.convert(call, **_AT).events
    assert (event.lead_id, event.anonymous_id) == ("019mr8mf4r", "email:pgibbons@example.com")
    # the same call from a source that knows only the address is held under the address
    (held,) = segment.convert({k: v for k, v in call.items() if k != "user_id"}, **_AT).events
    assert (held.lead_id, held.anonymous_id) == (None, "email:pgibbons@example.com")
    # but not when the call has an anonymousId of its own
    (own,) = segment.convert({**call, "anonymous_id": "aid-7"}, **_AT).events
    assert own.anonymous_id == "aid-7"
    # an address that makes no usable id is ignored, not a reason to lose the event
    broken = {**call, "context": {**call["context"], "traits": {"email": "p gibbons@example.com"}}}
    (kept,) = segment.convert(broken, **_AT).events
    assert (kept.lead_id, kept.anonymous_id) == ("019mr8mf4r", None)


def test_segment_generic_ui_events_are_clicks() -> None:
    # Segment's Track spec: the "Button Clicked" example, with context.traits (no address)
    call = fixture("segment/track.button-clicked-context-traits.json")
    (event,) = segment.convert(call, **_AT).events
    assert isinstance(event, Clicked)
    assert event.event_id == "segment:ajs-f8ca1e4de5024d9430b3928bd8ac6b96"
    assert (event.lead_id, event.anonymous_id) == (
        "AiUGstSDIg",
        "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
    )
    assert event.url == "https://segment.com/academy/"
    assert event.target == "Intro to Analytics"
    assert event.href is None
    assert event.user_agent is not None and event.user_agent.startswith("Mozilla/5.0 (Macintosh")
    assert event.occurred_at == datetime(2015, 12, 12, 19, 11, 1, 249000, tzinfo=UTC)

    def converted(name: str, **properties: str) -> Conversion:
        return segment.convert({**call, "event": name, "properties": properties}, **_AT)

    for name in ("Clicked Button", "button  clicked", "Link Clicked"):
        (click,) = converted(name, href="https://segment.com/docs/").events
        assert (click.type, click.href) == ("clicked", "https://segment.com/docs/")  # type: ignore[attr-defined]
    (cta,) = converted("CTA Clicked", title="Intro to Analytics").events
    assert isinstance(cta, CtaClicked)
    assert (cta.cta_id, cta.label) == ("intro_to_analytics", "Intro to Analytics")
    (cta,) = converted("CTA Clicked", cta_id="hero-demo", label="Book a demo").events
    assert (cta.cta_id, cta.label) == ("hero-demo", "Book a demo")  # type: ignore[attr-defined]
    unnamed = converted("CTA Clicked")
    assert "without cta_id" in unnamed.rejected[0].reason
    # "Form submitted", as one of Segment's destination pages spells it
    (form,) = converted("Form submitted", email="pgibbons@example.com").events
    assert form.type == "form_submitted"


@needs_samples
def test_segment_old_key_style_is_read() -> None:
    (event,) = convert_sample(sample("segment/email-spec.unsubscribed.json")).events
    assert event.lead_id == "019mr8mf4r"
    assert event.list_id == "1425"  # type: ignore[attr-defined]
    assert event.message_id == "18vzF7u3z"  # type: ignore[attr-defined]
    assert event.campaign_id == "123"  # type: ignore[attr-defined]
    assert event.occurred_at == RECEIVED  # the sample has no timestamp


@needs_samples
def test_segment_signed_up_becomes_a_form_submission() -> None:
    (event,) = convert_sample(sample("segment/b2b-saas.track-signed-up.json")).events
    assert isinstance(event, FormSubmitted)
    assert event.form_id == "signed_up"
    assert event.fields["email"] == "pgibbons@example.com"


def test_segment_page_batch_and_unknown_calls() -> None:
    batch = {
        "batch": [
            {
                "type": "page",
                "anonymousId": "anon-1",
                "messageId": "m-1",
                "timestamp": "2025-01-02T03:04:05+01:00",
                "properties": {"url": "https://acme.example/pricing?utm_source=news&x=1"},
                "context": {"page": {"title": "Pricing"}},
            },
            {"type": "group", "userId": "u-1", "groupId": "g-1"},
        ]
    }
    result = segment.convert(batch, received_at=RECEIVED)
    (page,) = result.events
    assert isinstance(page, PageViewed)
    assert page.occurred_at == datetime(2025, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert page.title == "Pricing"
    assert page.utm == Utm(source="news")
    assert [(r.where, r.vendor_kind) for r in result.rejected] == [("batch[1]", "group")]


# --------------------------------------------------------------------------------- Snowplow


@needs_samples
def test_snowplow_tp2_page_view_field_by_field() -> None:
    (event,) = convert_sample(sample("snowplow/tp2-post.page-view.json")).events
    assert isinstance(event, PageViewed)
    assert event.event_id == "snowplow:2ec13853-ef9e-414a-8976-e64a4693b134"
    assert event.occurred_at == RECEIVED  # dtm == stm: no device clock skew to correct
    assert event.lead_id is None
    assert event.anonymous_id == "85094061-f702-4b62-a46d-20f7226b4741"
    assert event.session_id == "be9520e7-16a5-4d4e-afa1-8e269f99a1cf"
    assert event.source == "snowplow"
    assert event.url == "https://snowplow.io/"
    assert event.path == "/"
    assert event.title == "Snowplow: behavioral data creation leader"
    assert event.referrer is None
    assert event.utm is None


@needs_samples
def test_snowplow_pixel_converts_once_the_collector_knows_the_visitor() -> None:
    url = _pixel_url(sample("snowplow/pixel-get.page-view.html.txt").read_text())
    (event,) = snowplow.convert_pixel(url, received_at=RECEIVED, network_user_id="nuid-7").events
    assert isinstance(event, PageViewed)
    assert event.anonymous_id == "nuid-7"
    assert event.url == "http://github.com/snowplow/snowplow"
    assert event.title == "Root README"
    assert event.occurred_at == RECEIVED
    redirect = _pixel_url(sample("snowplow/pixel-redirect.click.html.txt").read_text())
    (click,) = snowplow.convert_pixel(redirect, received_at=RECEIVED, network_user_id="n").events
    assert click.href == "https://github.com/snowplow/snowplow"  # type: ignore[attr-defined]


def test_snowplow_corrects_the_device_clock_and_reads_link_clicks() -> None:
    link = {
        "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
        "data": {
            "schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
            "data": {"targetUrl": "https://acme.example/demo", "elementId": "cta"},
        },
    }
    params = {
        "e": "ue",
        "ue_pr": json.dumps(link),
        "duid": "d-1",
        "uid": "lead-1",
        "dtm": "1700000000000",
        "stm": "1700000005000",  # the device clock is 5 s behind the send
    }
    (event,) = snowplow.convert_params(params, received_at=RECEIVED).events
    assert event.type == "clicked"
    assert event.href == "https://acme.example/demo"  # type: ignore[attr-defined]
    assert event.target == "cta"  # type: ignore[attr-defined]
    assert event.lead_id == "lead-1"
    assert event.occurred_at == RECEIVED - timedelta(seconds=5)


# ---------------------------------------------------------------------------------- HubSpot


def test_hubspot_manual_lifecycle_change_is_a_stage_set() -> None:
    change: dict[str, Any] = {
        "objectId": 1246965,
        "propertyName": "lifecyclestage",
        "propertyValue": "marketingqualifiedlead",
        "changeSource": "CRM_UI",
        "eventId": 3816279340,
        "occurredAt": 1462216307945,
        "subscriptionType": "contact.propertyChange",
    }
    (event,) = hubspot.convert([change], received_at=RECEIVED).events
    assert event.type == "stage_set"
    assert event.stage is Stage.MQL  # type: ignore[attr-defined]
    assert event.lead_id == "hubspot:1246965"
    assert event.event_id == "hubspot:3816279340"
    assert event.occurred_at == datetime(2016, 5, 2, 19, 11, 47, 945000, tzinfo=UTC)
    echoed = hubspot.convert([{**change, "changeSource": "INTEGRATION"}], received_at=RECEIVED)
    assert echoed.events == []
    assert "not by a person" in echoed.rejected[0].reason


def test_hubspot_deletion_and_merge() -> None:
    deleted = {"objectId": 5, "subscriptionType": "contact.privacyDeletion", "eventId": 1}
    merged = {
        "objectId": 5,
        "primaryObjectId": 5,
        "mergedObjectIds": [6, 7],
        "eventType": "contact.merge",
        "eventId": 2,
    }
    events = hubspot.convert([deleted, merged], received_at=RECEIVED).events
    assert [e.type for e in events] == ["lead_erased", "leads_merged", "leads_merged"]
    assert [getattr(e, "merged_lead_id", None) for e in events] == [None, "hubspot:6", "hubspot:7"]
