"""The Postmark, Amazon SES, Brevo and Mailjet adapters on the vendors' own payloads.

The payloads are in tests/fixtures/<vendor>/ (where each comes from: its SOURCE.md and
docs/DATASETS.md). Every one either converts (the expected event types are listed) or is
rejected with a reason, and at least one per vendor is checked field by field. Cases no
published payload shows are built in the tests below, which say so.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.adapters import brevo, mailjet, postmark, ses
from schemas.adapters.base import Conversion
from schemas.codec import decode, encode
from schemas.events import (
    EmailBounced,
    EmailClicked,
    EmailDelivered,
    EmailOpened,
    EmailSpamReported,
    EmailSubscribed,
    EmailUnsubscribed,
)
from schemas.topics import topic_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
RECEIVED = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
VENDORS = {"postmark": postmark, "ses": ses, "brevo": brevo, "mailjet": mailjet}

# file → the event types it converts to, or the start of the reason it is rejected with.
EXPECTED: dict[str, list[str] | str] = {
    "brevo/blocked.json": "Brevo blocked the message",
    "brevo/click.json": ["email_clicked"],
    "brevo/deferred.json": "a temporary delay; Brevo retries",
    "brevo/delivered.json": ["email_delivered"],
    "brevo/hard_bounce.json": ["email_bounced"],
    "brevo/opened.json": ["email_opened"],
    "brevo/proxy_open.json": ["email_opened"],
    "brevo/request.json": ["email_sent"],
    "brevo/soft_bounce.json": ["email_bounced"],
    "brevo/unique_opened.json": ["email_opened"],
    "mailjet/blocked.json": "Mailjet blocked the message, not sent (user unknown)",
    "mailjet/bounce.doc-verbatim.txt": "body is not valid JSON",
    "mailjet/bounce.json": ["email_bounced"],
    "mailjet/click.json": ["email_clicked"],
    "mailjet/grouped-sent.json": ["email_delivered", "email_delivered"],
    "mailjet/open.json": ["email_opened"],
    "mailjet/sent.json": ["email_delivered"],
    "mailjet/spam.json": ["email_spam_reported"],
    "mailjet/unsub.json": ["email_unsubscribed"],
    "postmark/bounce.json": ["email_bounced"],
    "postmark/click.json": ["email_clicked"],
    "postmark/delivery.json": ["email_delivered"],
    "postmark/open.json": ["email_opened"],
    "postmark/spam-complaint.json": ["email_spam_reported"],
    "postmark/subscription-change.json": "a suppression after a HardBounce",
    "ses/event-bounce.json": ["email_bounced"],
    "ses/event-click.json": ["email_clicked"],
    "ses/event-complaint.json": ["email_spam_reported"],
    "ses/event-delivery-delay.json": "a temporary delay; SES retries",
    "ses/event-delivery.json": ["email_delivered"],
    "ses/event-open.json": ["email_opened"],
    "ses/event-reject.json": "SES rejected the message (Bad content): not sent",
    "ses/event-rendering-failure.json": "the template failed to render",
    "ses/event-send.json": ["email_sent"],
    "ses/event-subscription.json": ["email_unsubscribed"],
    "ses/notification-bounce-with-dsn.json": ["email_bounced"],
    "ses/notification-bounce-without-dsn.json": ["email_bounced", "email_bounced"],
    "ses/notification-complaint-with-feedback.json": ["email_spam_reported"],
    "ses/notification-complaint-without-feedback.json": ["email_spam_reported"],
    "ses/notification-delivery.json": ["email_delivered"],
    "ses/sns-notification.json": "the SNS Message is not an SES event",  # "Hello world!"
    "ses/sns-subscription-confirmation.json": "an SNS subscription message",
    "ses/sns-unsubscribe-confirmation.json": "an SNS subscription message",
}


def fixture(relative: str) -> Path:
    return FIXTURES / relative


def convert_fixture(relative: str, **options: Any) -> Conversion:
    """Feed a payload to its vendor's adapter the way the HTTP collector would."""
    path = fixture(relative)
    vendor = VENDORS[path.parent.name]
    result: Conversion = vendor.convert_body(path.read_bytes(), received_at=RECEIVED, **options)
    return result


def load(relative: str) -> Any:
    return json.loads(fixture(relative).read_text())


def test_every_fixture_has_an_expected_outcome_and_a_source() -> None:
    found = sorted(
        path.relative_to(FIXTURES).as_posix()
        for vendor in VENDORS
        for path in (FIXTURES / vendor).iterdir()
        if path.name != "SOURCE.md"
    )
    assert found == sorted(EXPECTED), "a fixture was added or removed: list its outcome"
    for vendor in VENDORS:
        assert (FIXTURES / vendor / "SOURCE.md").is_file()


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_each_fixture_converts_or_is_rejected_with_a_reason(relative: str) -> None:
    result = convert_fixture(relative)
    expected = EXPECTED[relative]
    if isinstance(expected, list):
        assert [event.type for event in result.events] == expected, result.rejected
        assert result.rejected == []
        for event in result.events:
            assert decode(encode(event), now=RECEIVED, topic=topic_for(event)) == event
            assert event.source == relative.split("/", maxsplit=1)[0]
    else:
        assert result.events == []
        assert len(result.rejected) == 1
        assert result.rejected[0].reason.startswith(expected), result.rejected[0]


def test_event_ids_are_stable_and_distinct() -> None:
    ids: list[str] = []
    for relative in sorted(EXPECTED):
        first = [event.event_id for event in convert_fixture(relative).events]
        assert first == [event.event_id for event in convert_fixture(relative).events]
        if relative != "mailjet/sent.json":  # the first event of grouped-sent.json again
            ids.extend(first)
    assert len(ids) == len(set(ids))
    (single,) = convert_fixture("mailjet/sent.json").events
    assert single.event_id == convert_fixture("mailjet/grouped-sent.json").events[0].event_id


# --------------------------------------------------------------------------------- Postmark


def test_postmark_click_field_by_field() -> None:
    (event,) = convert_fixture("postmark/click.json").events
    assert isinstance(event, EmailClicked)
    assert event.occurred_at == datetime(2017, 10, 25, 15, 21, 11, 906561, tzinfo=UTC)
    assert event.anonymous_id == "email:john@example.com"
    assert event.lead_id is None
    assert event.source == "postmark"
    assert event.message_id == "00000000-0000-0000-0000-000000000000"
    assert event.url == "https://example.com"
    assert event.user_agent is not None and "Chrome/35.0.1916.153" in event.user_agent
    assert event.machine is None
    assert event.machine_click is False


def test_postmark_bounce_field_by_field() -> None:
    (event,) = convert_fixture("postmark/bounce.json").events
    assert isinstance(event, EmailBounced)
    assert event.event_id == "postmark:bounce-4323372036854775807"
    assert event.bounce == "hard"
    assert event.anonymous_id == "email:john@example.com"
    assert event.occurred_at == datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC)
    assert event.reason is not None
    assert event.reason.startswith("Hard bounce: The server was unable to deliver")
    (complaint,) = convert_fixture("postmark/spam-complaint.json").events
    assert complaint.event_id == "postmark:bounce-42"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("HardBounce", "hard"),
        ("BadEmailAddress", "hard"),
        ("SoftBounce", "soft"),
        ("Blocked", "soft"),
        ("SpamNotification", "soft"),
        ("Transient", "a temporary delay; Postmark retries"),
        ("DnsError", "a temporary DNS error"),
        ("AutoResponder", "an automatic reply"),
        ("ManuallyDeactivated", "the address was deactivated by hand"),
        ("NoSuchType", "unknown Postmark bounce type 'NoSuchType'"),
    ],
)
def test_postmark_bounce_types(kind: str, expected: str) -> None:
    bounce = {**load("postmark/bounce.json"), "Type": kind}
    result = postmark.convert(bounce, received_at=RECEIVED)
    if expected in ("hard", "soft"):
        (event,) = result.events
        assert isinstance(event, EmailBounced)
        assert event.bounce == expected
    else:
        assert result.events == []
        assert result.rejected[0].reason.startswith(expected)


def test_postmark_unsubscribe_and_spam_bounce_types_and_lead_ids() -> None:
    bounce = load("postmark/bounce.json")
    (unsubscribed,) = postmark.convert(
        {**bounce, "Type": "Unsubscribe"}, received_at=RECEIVED
    ).events
    assert isinstance(unsubscribed, EmailUnsubscribed)
    (spam,) = postmark.convert({**bounce, "Type": "SpamComplaint"}, received_at=RECEIVED).events
    assert isinstance(spam, EmailSpamReported)
    (delivered,) = postmark.convert(
        {**load("postmark/delivery.json"), "Metadata": {"lead_id": "lead-7"}},
        received_at=RECEIVED,
    ).events
    assert delivered.lead_id == "lead-7"


def test_postmark_subscription_changes_by_origin_and_reason() -> None:
    change = load("postmark/subscription-change.json")

    def convert(**fields: Any) -> Conversion:
        return postmark.convert({**change, **fields}, received_at=RECEIVED)

    (unsubscribed,) = convert(SuppressionReason="ManualSuppression").events
    assert isinstance(unsubscribed, EmailUnsubscribed)
    assert unsubscribed.list_id == "outbound"
    assert unsubscribed.anonymous_id == "email:bounced-address@wildbit.com"
    assert unsubscribed.occurred_at == datetime(2020, 2, 1, 10, 53, 34, 416071, tzinfo=UTC)
    (resubscribed,) = convert(SuppressSending=False, SuppressionReason=None).events
    assert isinstance(resubscribed, EmailSubscribed)
    by_customer = convert(Origin="Customer", SuppressionReason="ManualSuppression")
    assert by_customer.events == []
    assert "made by 'Customer'" in by_customer.rejected[0].reason
    spam = convert(SuppressionReason="SpamComplaint")
    assert spam.rejected[0].reason.startswith("a suppression after a SpamComplaint")


def test_postmark_machine_opens_from_user_agent_and_address() -> None:
    opened = load("postmark/open.json")
    (person,) = postmark.convert(opened, received_at=RECEIVED).events
    assert person.machine is None
    scanner = {**opened, "UserAgent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"}
    (event,) = postmark.convert(scanner, received_at=RECEIVED).events
    assert event.machine == "user agent: Barracuda"
    from_range = {**opened, "Geo": {**opened["Geo"], "IP": "40.107.1.2"}}
    (event,) = postmark.convert(from_range, received_at=RECEIVED).events
    assert event.machine == "address of Microsoft Exchange Online Protection"
    configured = postmark.convert(
        opened, received_at=RECEIVED, machine_ranges=["Acme gateway=188.2.0.0/16"]
    ).events[0]
    assert configured.machine == "address of Acme gateway"
    no_agent = {key: value for key, value in opened.items() if key != "UserAgent"}
    assert postmark.convert(no_agent, received_at=RECEIVED).events[0].machine is None
    empty_agent = {**opened, "UserAgent": ""}
    assert postmark.convert(empty_agent, received_at=RECEIVED).events[0].machine == (
        "no user agent"
    )


def test_postmark_batches_inbound_messages_and_unknown_records_are_reported() -> None:
    batch = [
        load("postmark/delivery.json"),
        {"FromFull": {"Email": "a@b.example"}, "MailboxHash": "", "MessageID": "x"},
        {"RecordType": "Inbound", "Recipient": "a@b.example"},
        "junk",
        {"RecordType": "Open"},
    ]
    result = postmark.convert(batch, received_at=RECEIVED)
    assert [event.type for event in result.events] == ["email_delivered"]
    assert [(r.where, r.reason[:24]) for r in result.rejected] == [
        ("[1]", "an inbound message, not "),
        ("[2]", "unknown Postmark record "),
        ("[3]", "not a JSON object"),
        ("[4]", "no recipient address and"),
    ]


# ------------------------------------------------------------------------------ Amazon SES


def _notification(message: Any, message_id: str = "sns-0001") -> dict[str, Any]:
    """The documented SNS envelope around an SES event (signatures are checked elsewhere)."""
    envelope: dict[str, Any] = load("ses/sns-notification.json")
    envelope.update(MessageId=message_id, Message=orjson.dumps(message).decode())
    return envelope


def test_ses_bounce_field_by_field_through_the_sns_envelope() -> None:
    event_record = load("ses/event-bounce.json")
    (event,) = ses.convert(_notification(event_record), received_at=RECEIVED).events
    assert isinstance(event, EmailBounced)
    assert event.event_id == "ses:sns-0001:0"
    assert event.occurred_at == datetime(2017, 8, 5, 0, 41, 2, 669000, tzinfo=UTC)
    assert event.anonymous_id == "email:recipient@example.com"
    assert event.source == "ses"
    assert event.message_id == "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
    assert event.bounce == "hard"
    assert event.reason == "Permanent/General: smtp; 550 5.1.1 user unknown"


def test_ses_per_recipient_events_and_their_ids() -> None:
    bounced = load("ses/notification-bounce-without-dsn.json")
    events = ses.convert(_notification(bounced, "n-1"), received_at=RECEIVED).events
    assert [event.anonymous_id for event in events] == [
        "email:jane@example.com",
        "email:richard@example.com",
    ]
    assert [event.event_id for event in events] == ["ses:n-1:0", "ses:n-1:1"]
    (complaint,) = convert_fixture("ses/notification-complaint-with-feedback.json").events
    assert complaint.anonymous_id == "email:richard@example.com"


@pytest.mark.parametrize(
    ("bounce_type", "expected"),
    [("Permanent", "hard"), ("Transient", "soft"), ("Undetermined", "soft")],
)
def test_ses_bounce_types(bounce_type: str, expected: str) -> None:
    record = load("ses/event-bounce.json")
    record["bounce"]["bounceType"] = bounce_type
    (event,) = ses.convert(record, received_at=RECEIVED).events
    assert isinstance(event, EmailBounced)
    assert event.bounce == expected


def test_ses_open_and_click_field_by_field() -> None:
    (opened,) = convert_fixture("ses/event-open.json").events
    assert isinstance(opened, EmailOpened)
    assert opened.occurred_at == datetime(2017, 8, 9, 22, 0, 19, 652000, tzinfo=UTC)
    assert opened.user_agent is not None and opened.user_agent.startswith("Mozilla/5.0 (iPhone")
    assert opened.machine is None
    (clicked,) = convert_fixture("ses/event-click.json").events
    assert isinstance(clicked, EmailClicked)
    assert (
        clicked.url == "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html"
    )
    scanned = load("ses/event-click.json")
    scanned["click"]["ipAddress"] = "104.47.1.1"
    (event,) = ses.convert(scanned, received_at=RECEIVED).events
    assert event.machine == "address of Microsoft Exchange Online Protection"


def test_ses_opens_of_a_message_with_several_recipients_are_reported() -> None:
    record = load("ses/event-open.json")
    record["mail"]["destination"] = ["a@example.com", "b@example.com"]
    result = ses.convert(record, received_at=RECEIVED)
    assert result.events == []
    assert "2 recipients" in result.rejected[0].reason


def test_ses_lead_id_tag_send_time_and_not_spam_reports() -> None:
    record = load("ses/event-send.json")
    record["mail"]["tags"]["lead_id"] = ["lead-9"]
    (sent,) = ses.convert(record, received_at=RECEIVED).events
    assert sent.lead_id == "lead-9"
    assert sent.occurred_at == datetime(2016, 10, 14, 5, 2, 16, 645000, tzinfo=UTC)
    complaint = load("ses/event-complaint.json")
    complaint["complaint"]["complaintFeedbackType"] = "not-spam"
    assert ses.convert(complaint, received_at=RECEIVED).rejected[0].reason == (
        "a not-spam feedback report"
    )
    complaint["complaint"]["complaintFeedbackType"] = "abuse"
    complaint["complaint"]["complaintSubType"] = "OnAccountSuppressionList"
    assert ses.convert(complaint, received_at=RECEIVED).events == []


def test_ses_subscription_topic_changes() -> None:
    (all_lists,) = convert_fixture("ses/event-subscription.json").events
    assert isinstance(all_lists, EmailUnsubscribed)
    assert all_lists.list_id == "ContactListName"
    assert all_lists.reason == "UnsubscribeHeader"
    record = load("ses/event-subscription.json")
    detail = record["subscription"]
    detail["newTopicPreferences"] = {
        "unsubscribeAll": False,
        "topicSubscriptionStatus": [
            {"topicName": "News", "subscriptionStatus": "OptOut"},
            {"topicName": "Offers", "subscriptionStatus": "OptIn"},
            {"topicName": "Same", "subscriptionStatus": "OptIn"},
        ],
    }
    detail["oldTopicPreferences"] = {
        "unsubscribeAll": False,
        "topicSubscriptionStatus": [
            {"topicName": "News", "subscriptionStatus": "OptIn"},
            {"topicName": "Same", "subscriptionStatus": "OptIn"},
        ],
    }
    news, offers = ses.convert(record, received_at=RECEIVED).events
    assert isinstance(news, EmailUnsubscribed) and news.list_id == "ContactListName/News"
    assert isinstance(offers, EmailSubscribed) and offers.list_id == "ContactListName/Offers"
    assert news.event_id != offers.event_id


def test_ses_broken_envelopes_are_reported() -> None:
    assert ses.convert([1], received_at=RECEIVED).rejected[0].reason == "not a JSON object"
    odd = ses.convert({"Type": "Odd"}, received_at=RECEIVED)
    assert odd.rejected[0].reason == "unknown SNS message type 'Odd'"
    unknown = ses.convert({"eventType": "Teleported"}, received_at=RECEIVED)
    assert unknown.rejected[0].reason == "unknown SES event type 'Teleported'"


# ------------------------------------------------------------------------------------ Brevo


def test_brevo_request_field_by_field() -> None:
    (sent,) = convert_fixture("brevo/request.json").events
    assert sent.type == "email_sent"
    assert sent.occurred_at == datetime.fromtimestamp(1520331023, UTC)  # ts_event
    assert sent.anonymous_id == "email:recipient@example.com"
    assert sent.message_id == "<201803062010.27287306012@smtp-relay.mailin.fr>"
    assert sent.source == "brevo"
    assert sent.lead_id is None  # X-Mailin-custom is {"meta": "data"}
    request = {**load("brevo/request.json"), "X-Mailin-custom": '{"lead_id": "lead-4"}'}
    assert brevo.convert(request, received_at=RECEIVED).events[0].lead_id == "lead-4"


def test_brevo_proxy_opens_are_machine_opens() -> None:
    (proxy,) = convert_fixture("brevo/proxy_open.json").events
    assert isinstance(proxy, EmailOpened)
    assert proxy.machine_open is True
    assert proxy.machine == "vendor flag: proxy_open"
    assert proxy.occurred_at == RECEIVED  # the payload has only its account-local `date`
    # Brevo names the first such open `unique_proxy_open` (not in the published samples)
    unique = {**load("brevo/proxy_open.json"), "event": "unique_proxy_open"}
    (event,) = brevo.convert(unique, received_at=RECEIVED).events
    assert event.machine == "vendor flag: unique_proxy_open"
    (person,) = convert_fixture("brevo/opened.json").events
    assert (person.machine, person.machine_open) == (None, False)  # type: ignore[attr-defined]
    with_agent = {**load("brevo/click.json"), "user_agent": "python-requests/2.31"}
    (click,) = brevo.convert(with_agent, received_at=RECEIVED).events
    assert isinstance(click, EmailClicked)
    assert click.machine == "user agent: python-requests"
    assert click.url == "https://example.com/click/me"


def test_brevo_bounces_and_the_events_no_published_sample_shows() -> None:
    (hard,) = convert_fixture("brevo/hard_bounce.json").events
    (soft,) = convert_fixture("brevo/soft_bounce.json").events
    assert isinstance(hard, EmailBounced) and isinstance(soft, EmailBounced)
    assert (hard.bounce, soft.bounce) == ("hard", "soft")
    assert (
        hard.reason == "RecipientError: 550 5.5.0 Requested action not taken: mailbox unavailable."
    )
    base = load("brevo/delivered.json")
    made = {
        kind: brevo.convert({**base, "event": kind}, received_at=RECEIVED)
        for kind in ("invalid_email", "spam", "complaint", "unsubscribed", "error", "forwarded")
    }
    invalid = made["invalid_email"].events[0]
    assert isinstance(invalid, EmailBounced) and invalid.bounce == "hard"
    assert isinstance(made["spam"].events[0], EmailSpamReported)
    assert isinstance(made["complaint"].events[0], EmailSpamReported)
    assert isinstance(made["unsubscribed"].events[0], EmailUnsubscribed)
    assert made["error"].rejected[0].reason.startswith("Brevo could not send")
    assert made["forwarded"].rejected[0].reason == "unknown Brevo event 'forwarded'"


def test_brevo_batched_events() -> None:
    batch = [load("brevo/delivered.json"), load("brevo/deferred.json"), 7]
    result = brevo.convert(batch, received_at=RECEIVED)
    assert [event.type for event in result.events] == ["email_delivered"]
    assert [(r.where, r.vendor_kind) for r in result.rejected] == [
        ("[1]", "deferred"),
        ("[2]", "?"),
    ]


# ---------------------------------------------------------------------------------- Mailjet


def test_mailjet_open_field_by_field() -> None:
    (event,) = convert_fixture("mailjet/open.json").events
    assert isinstance(event, EmailOpened)
    assert event.occurred_at == datetime.fromtimestamp(1433103519, UTC)
    assert event.anonymous_id == "email:api@mailjet.com"
    assert event.message_id == "19421777396190490"
    assert event.campaign_id == "7173"
    assert event.user_agent == "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0"
    assert event.machine is None
    (unsub,) = convert_fixture("mailjet/unsub.json").events
    assert isinstance(unsub, EmailUnsubscribed)
    assert unsub.list_id == "1"


def test_mailjet_sent_is_a_delivery_and_bounces_follow_hard_bounce() -> None:
    (sent,) = convert_fixture("mailjet/sent.json").events
    assert isinstance(sent, EmailDelivered)
    (hard,) = convert_fixture("mailjet/bounce.json").events
    assert isinstance(hard, EmailBounced)
    assert hard.bounce == "hard"
    assert hard.campaign_id is None  # mj_campaign_id 0
    assert hard.reason is not None and hard.reason.startswith("recipient: user unknown (Host or")
    bounce = load("mailjet/bounce.json")
    soft = {**bounce, "hard_bounce": False, "error": "quota exceeded"}
    (event,) = mailjet.convert(soft, received_at=RECEIVED).events
    assert event.bounce == "soft"  # type: ignore[attr-defined]
    greylisted = mailjet.convert({**soft, "error": "greylisted"}, received_at=RECEIVED)
    assert greylisted.events == []
    assert greylisted.rejected[0].reason.startswith("greylisted: a temporary refusal")


def test_mailjet_machine_clicks_and_payload_lead_ids() -> None:
    click = load("mailjet/click.json")
    scanner = {**click, "agent": "Mozilla/5.0 Mimecast/1.0", "Payload": '{"lead_id": "lead-2"}'}
    (event,) = mailjet.convert(scanner, received_at=RECEIVED).events
    assert isinstance(event, EmailClicked)
    assert event.machine == "user agent: Mimecast"
    assert event.lead_id == "lead-2"
    assert event.url == "https://mailjet.com"
