"""Vendor adapters against the real vendor payloads kept in tests/fixtures/<vendor>/.

Each folder's SOURCE.md says where its files come from (repository, path, commit or URL, and
licence); docs/DATASETS.md lists them. Every payload file either converts (the expected event
types are listed in `EXPECTED`) or is rejected with a reason; API answers a vendor's client
fetches are listed in `API_ANSWERS`; at least one payload per vendor is checked field by field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.adapters import customerio, linkedin, meta, rudderstack
from schemas.adapters.base import Conversion
from schemas.codec import decode, encode
from schemas.events import (
    EmailBounced,
    EmailClicked,
    EmailOpened,
    EmailSent,
    Identify,
    PageViewed,
    ProfileUpdated,
    SocialFormSubmitted,
    VideoViewed,
)
from schemas.topics import topic_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
RECEIVED = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
NOT_FILES = {"SOURCE.md"}

# file → the event types it converts to, or the start of the reason it is rejected with.
EXPECTED: dict[str, list[str] | str] = {
    "customerio/openapi-example.customer-subscribed.json": ["email_subscribed"],
    "customerio/openapi-example.email-sent.json": ["email_sent"],
    "customerio/openapi-example.sms-sent.json": "a 'sms' message: only email",
    "customerio/rudder-transformer.customer-subscribed.json": ["email_subscribed"],
    "customerio/rudder-transformer.customer-subscribed.timestamp-not-a-number.json": [
        "email_subscribed"
    ],
    "customerio/rudder-transformer.customer-unsubscribed.json": ["email_unsubscribed"],
    "customerio/rudder-transformer.email-bounced.newsletter.json": ["email_bounced"],
    "customerio/rudder-transformer.email-clicked.json": ["email_clicked"],
    "customerio/rudder-transformer.email-delivered.transactional.json": ["email_delivered"],
    "customerio/rudder-transformer.email-drafted.json": "a draft: nothing was sent",
    "customerio/rudder-transformer.email-sent.with-body-content.json": ["email_sent"],
    "customerio/rudder-transformer.email-subscribed.json": ["email_subscribed"],
    "customerio/rudder-transformer.push-sent.json": "a 'push' message: only email",
    "customerio/rudder-transformer.sms-attempted.json": "Customer.io could not hand the message",
    "rudderstack/event-spec.identify.json": ["identify"],
    "rudderstack/event-spec.page.json": "neither userId nor anonymousId",
    "rudderstack/event-spec.video-content-completed.json": ["video_viewed"],
    "rudderstack/event-spec.video-playback-completed.json": "track event 'Video Playback Resumed'",
    "rudderstack/http-api.batch.json": ["profile_updated"],
    # the lead, and (context.traits.email) the address linked to it
    "rudderstack/webhook-destination.identify.json": ["identify", "identify"],
    "rudderstack/webhook-destination.page.json": ["page_viewed"],
    "rudderstack/webhook-destination.track.json": "track event 'Product Purchased' has no",
    # Meta notifications, each lead answered by the documented lead (meta/...retrieving.lead.json)
    "meta/developers-docs.webhooks-for-leadgen.notification.json": [
        "social_form_submitted",
        "profile_updated",
        "social_form_submitted",
        "profile_updated",
    ],
    "meta/fbsamples.test-lead-notification.json": ["social_form_submitted", "profile_updated"],
}

API_ANSWERS = {
    "linkedin/lead-sync-collection.lead-form-response.json",
    "linkedin/lead-sync-collection.lead-forms.json",
    "meta/developers-docs.retrieving.lead.doc-verbatim.txt",
    "meta/developers-docs.retrieving.lead.json",
}
"""Answers of a vendor's API (not webhook payloads): read by the tests of their adapters."""

LICENCE_TEXTS = {"customerio/LICENSE.rudder-transformer.ELv2.txt"}
"""Licence texts that must travel with the files they cover."""


def fixture(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def meta_conversion(body: bytes, *, received_at: datetime) -> Conversion:
    """A notification's events, each lead fetched as the documented Graph API answer."""
    found, result = meta.notices(json.loads(body))
    lead = json.loads(fixture("meta/developers-docs.retrieving.lead.json"))
    for notice in found:
        made = meta.convert_lead(notice, lead, received_at=received_at)
        result.events.extend(made.events)
        result.rejected.extend(made.rejected)
    return result


def convert_fixture(relative: str) -> Conversion:
    vendor = relative.split("/", 1)[0]
    converters = {
        "customerio": customerio.convert_body,
        "rudderstack": rudderstack.convert_body,
        "meta": meta_conversion,
    }
    return converters[vendor](fixture(relative), received_at=RECEIVED)


def test_every_fixture_is_named_and_every_folder_says_where_its_files_come_from() -> None:
    files = {
        path.relative_to(FIXTURES).as_posix()
        for path in FIXTURES.rglob("*")
        if path.is_file()
        and path.name not in NOT_FILES
        and path.relative_to(FIXTURES).parts[0] in {"customerio", "rudderstack", "linkedin", "meta"}
    }
    assert files == set(EXPECTED) | API_ANSWERS | LICENCE_TEXTS
    for folder in {relative.split("/", 1)[0] for relative in files}:
        source = (FIXTURES / folder / "SOURCE.md").read_text(encoding="utf-8")
        for relative in files:
            if relative.startswith(f"{folder}/"):
                assert relative.split("/", 1)[1] in source, f"{relative} is not in its SOURCE.md"


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_each_payload_converts_or_is_rejected_with_a_reason(relative: str) -> None:
    result = convert_fixture(relative)
    expected = EXPECTED[relative]
    if isinstance(expected, str):
        assert result.events == []
        assert result.rejected, "a rejection must say why"
        assert result.rejected[0].reason.startswith(expected), result.rejected
        return
    assert [event.type for event in result.events] == expected, result.rejected
    for event in result.events:  # every event passes the contract and has a topic
        assert decode(encode(event), now=RECEIVED) == event
        assert topic_for(event)


# ----------------------------------------------------------------------------- Customer.io


def test_customerio_clicked_field_by_field() -> None:
    (event,) = convert_fixture("customerio/rudder-transformer.email-clicked.json").events
    assert isinstance(event, EmailClicked)
    assert event.event_id == "customerio:01E4C8BES5XT87ZWRJFTB35YJ3"
    assert event.occurred_at == datetime(2020, 3, 26, 20, 25, 48, tzinfo=UTC)
    assert (event.anonymous_id, event.lead_id) == ("email:test@example.com", None)
    assert (event.source, event.url) == ("customerio", "http://google.com")
    assert (event.message_id, event.campaign_id) == ("RPILAgABcRhIBqSp7kiPekGBIeVh", "broadcast:9")
    assert (event.machine, event.machine_click) == (None, False)


def test_customerio_bounce_sent_and_a_missing_timestamp() -> None:
    (bounce,) = convert_fixture(
        "customerio/rudder-transformer.email-bounced.newsletter.json"
    ).events
    assert isinstance(bounce, EmailBounced)
    assert bounce.bounce == "hard" and bounce.campaign_id == "newsletter:736"
    assert bounce.reason == "550 5.5.0 Requested action not taken: mailbox unavailable"
    (sent,) = convert_fixture("customerio/openapi-example.email-sent.json").events
    assert isinstance(sent, EmailSent)
    assert (sent.message_id, sent.campaign_id) == ("RPILAgUBcRhIBqSfeiIwdIYJKxTY", "broadcast:9")
    relative = "customerio/rudder-transformer.customer-subscribed.timestamp-not-a-number.json"
    (subscribed,) = convert_fixture(relative).events
    assert subscribed.occurred_at == RECEIVED  # "timestamp": "abc"


def _customerio(metric: str, **data: object) -> dict[str, object]:
    """A documented event shape with the flags of the reporting-webhooks OpenAPI document."""
    return {
        "event_id": f"01HX-{metric}-{len(data)}",
        "object_type": "email",
        "metric": metric,
        "timestamp": 1713484800,
        "data": {"delivery_id": "RPIyMTM6OjEyMzQ=", "identifiers": {"id": "user-123"}, **data},
    }


def test_customerio_machine_flags() -> None:
    opened = customerio.convert(
        [
            _customerio("opened", recipient="ada@example.com", prefetched=True),
            _customerio("opened", recipient="ada@example.com", proxied=True, synthetic=True),
        ],
        received_at=RECEIVED,
    ).events
    machine_open, person_open = opened
    assert isinstance(machine_open, EmailOpened) and isinstance(person_open, EmailOpened)
    assert (machine_open.machine, machine_open.machine_open) == ("vendor flag: prefetched", True)
    assert (person_open.machine, person_open.machine_open) == (None, False)
    (click,) = customerio.convert(
        _customerio("clicked", recipient="a@b.example", href="https://x.example/", machine=True),
        received_at=RECEIVED,
    ).events
    assert isinstance(click, EmailClicked)
    assert (click.machine, click.machine_click) == ("vendor flag: machine", True)


def test_customerio_without_an_address_names_the_person_by_their_customerio_id() -> None:
    (event,) = customerio.convert(_customerio("spammed"), received_at=RECEIVED).events
    assert (event.type, event.anonymous_id) == ("email_spam_reported", "customerio:user-123")
    result = customerio.convert(
        [_customerio("clicked", recipient="a@b.example"), {"metric": "sent"}, "x"],
        received_at=RECEIVED,
    )
    assert [(r.where, r.reason) for r in result.rejected] == [
        ("[0]", "clicked event without an href"),
        ("[1]", "no object_type"),
        ("[2]", "not a JSON object"),
    ]


# ----------------------------------------------------------------------------- RudderStack


def test_rudderstack_webhook_destination_identify_field_by_field() -> None:
    event, link = convert_fixture("rudderstack/webhook-destination.identify.json").events
    assert isinstance(event, Identify) and isinstance(link, Identify)
    assert (link.lead_id, link.anonymous_id) == ("my-user-id", "email:user@domain.com")
    assert event.event_id == "rudderstack:508d5e8c-96e4-4301-bd46-1890dba5c866"
    assert (event.source, event.lead_id) == ("rudderstack", "my-user-id")
    assert event.anonymous_id == "21b43de4-3b9b-423f-b51f-794eae31fc03"
    assert event.occurred_at == datetime(2020, 4, 22, 8, 6, 20, 337000, tzinfo=UTC)
    # RudderStack's SDKs put identify traits in context.traits
    assert (event.traits.email, event.traits.first_name, event.traits.last_name) == (
        "user@domain.com",
        "User",
        "name",
    )
    assert event.traits.custom["plan"] == "Enterprise"


def test_rudderstack_page_video_and_batch_shapes() -> None:
    (page,) = convert_fixture("rudderstack/webhook-destination.page.json").events
    assert isinstance(page, PageViewed)
    assert page.url == "http://localhost:1111/tests/html/script-test.html"
    assert page.user_agent is not None and page.user_agent.startswith("Mozilla/5.0 (Macintosh")
    (video,) = convert_fixture("rudderstack/event-spec.video-content-completed.json").events
    assert isinstance(video, VideoViewed) and video.video_id == "123"
    assert video.title == "Introduction"
    batch = convert_fixture("rudderstack/http-api.batch.json")
    assert [(r.where, r.vendor_kind) for r in batch.rejected] == [
        ("batch[1]", "track 'Product Purchased new'"),
        ("batch[2]", "page"),
        ("batch[3]", "screen"),
        ("batch[4]", "group"),
        ("batch[5]", "alias"),
    ]
    # the HTTP destination's batches are a bare array: the same calls, the same events
    calls = json.loads(fixture("rudderstack/http-api.batch.json"))["batch"]
    assert rudderstack.convert(calls, received_at=RECEIVED) == batch


# ----------------------------------------------------------------------------- LinkedIn

LINKEDIN_LEAD = json.loads(fixture("linkedin/lead-sync-collection.lead-form-response.json"))
LINKEDIN_FORMS = json.loads(fixture("linkedin/lead-sync-collection.lead-forms.json"))["elements"]


def linkedin_notification(**overrides: object) -> dict[str, object]:
    """A lead notification with the documented fields, naming the documented lead."""
    return {
        "type": "LEAD_ACTION",
        "leadGenFormResponse": f"urn:li:leadGenFormResponse:{LINKEDIN_LEAD['id']}",
        "leadGenForm": LINKEDIN_LEAD["versionedLeadGenFormUrn"],
        "owner": LINKEDIN_LEAD["owner"],
        "associatedEntity": {"sponsoredCreative": "urn:li:sponsoredCreative:241257736"},
        "leadType": "SPONSORED",
        "leadAction": "CREATED",
        "occurredAt": 1689894600000,
        **overrides,
    }


def test_linkedin_lead_field_by_field() -> None:
    (form,) = [f for f in LINKEDIN_FORMS if f["id"] == 7234246]
    (notice,), reported = linkedin.notices(linkedin_notification())
    assert reported.rejected == []
    assert notice.response_id == "249592fc-d272-44ba-a7db-c2bdce579507-6"
    result = linkedin.convert_lead(notice, LINKEDIN_LEAD, form, received_at=RECEIVED)
    submitted, profile = result.events
    assert isinstance(submitted, SocialFormSubmitted) and isinstance(profile, ProfileUpdated)
    assert submitted.event_id == "linkedin:249592fc-d272-44ba-a7db-c2bdce579507-6"
    assert profile.event_id == "linkedin:249592fc-d272-44ba-a7db-c2bdce579507-6/profile"
    assert submitted.occurred_at == datetime(2023, 7, 20, 23, 9, 59, 288000, tzinfo=UTC)
    assert (submitted.source, submitted.network) == ("linkedin", "linkedin")
    assert submitted.anonymous_id == profile.anonymous_id == "email:kevjohonson@email.com"
    assert (submitted.form_id, submitted.form_name) == (
        "urn:li:leadGenForm:7234246",
        "Form with written spanish",
    )
    assert submitted.account_id == "urn:li:sponsoredAccount:1234567"
    assert submitted.ad_id == "urn:li:sponsoredCreative:241257736"
    assert submitted.campaign_id == "urn:li:sponsoredCampaign:198356826"
    assert submitted.fields == {
        "email": "kevjohonson@email.com",
        "work_email": "kjohonson@email.com",
        "Custom question 0": "Rojo",  # a multiple-choice answer: the option's text
        "Custom question 1": "Mexico",
        "first_name": "Kevin",
        "last_name": "Johonson",
        "job_title": "Senior Engineer",
        "job_function": "Ingeniería",
        "hidden_field": "abc678",
        "campo_escondido": "def789",
    }
    # the documented lead is a test lead: shown, never scored
    assert submitted.machine == "vendor flag: testLead"
    traits = profile.traits
    assert (traits.email, traits.first_name, traits.last_name, traits.job_title) == (
        "kevjohonson@email.com",
        "Kevin",
        "Johonson",
        "Senior Engineer",
    )
    assert traits.custom["linkedin_member"] == "urn:li:person:BcLKblgopR"
    assert traits.custom["job_function"] == "Ingeniería"


def test_linkedin_notifications_that_name_no_new_lead_are_reported() -> None:
    found, result = linkedin.notices(
        [
            linkedin_notification(leadAction="DELETED"),
            linkedin_notification(type="ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS"),
            linkedin_notification(leadGenFormResponse="urn:li:person:x"),
            linkedin_notification(leadAction="UPDATED"),
            [],
        ]
    )
    assert found == []
    assert [(r.where, r.reason) for r in result.rejected] == [
        ("[0]", "the member deleted the lead: nothing to score"),
        ("[1]", "notification type 'ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS'"),
        ("[2]", "no leadGenFormResponse URN"),
        ("[3]", "unknown leadAction"),
        ("[4]", "not a JSON object"),
    ]


def test_linkedin_lead_without_its_form_or_an_email() -> None:
    (notice,), _ = linkedin.notices(linkedin_notification())
    real = {**LINKEDIN_LEAD, "testLead": False}
    submitted, profile = linkedin.convert_lead(notice, real, None, received_at=RECEIVED).events
    # without the form's questions the answers are named by question id, and there is no email
    assert submitted.machine is None
    assert submitted.anonymous_id == "urn:li:person:BcLKblgopR"
    assert submitted.fields["question_307234246"] == "kevjohonson@email.com"
    assert profile.traits.email is None
    nobody = {k: v for k, v in real.items() if k != "submitter"}
    result = linkedin.convert_lead(notice, nobody, None, received_at=RECEIVED)
    assert [r.reason for r in result.rejected] == ["the lead has no email answer and no submitter"]


# ----------------------------------------------------------------------------- Meta


def test_meta_lead_field_by_field() -> None:
    body = fixture("meta/developers-docs.webhooks-for-leadgen.notification.json")
    first, second = meta.notices(json.loads(body))[0]
    assert (first.where, first.leadgen_id, first.page_id) == (
        "entry[0].changes[0]",
        "123123123123",
        "123123123",
    )
    assert second.leadgen_id == "123123123124"
    lead = json.loads(fixture("meta/developers-docs.retrieving.lead.json"))
    submitted, profile = meta.convert_lead(first, lead, received_at=RECEIVED).events
    assert isinstance(submitted, SocialFormSubmitted) and isinstance(profile, ProfileUpdated)
    assert (submitted.event_id, profile.event_id) == (
        "meta:123123123123",
        "meta:123123123123/profile",
    )
    assert submitted.occurred_at == datetime(2015, 2, 28, 8, 49, 14, tzinfo=UTC)
    assert (submitted.source, submitted.network, submitted.account_id) == (
        "meta",
        "facebook",
        "123123123",
    )
    assert (submitted.form_id, submitted.ad_id, submitted.campaign_id) == (
        "12312312312",
        "12312312312",
        None,
    )
    assert submitted.anonymous_id == profile.anonymous_id == "email:joe@example.com"
    assert submitted.fields == {
        "car_make": "Honda",
        "full_name": "Joe Example",
        "email": "joe@example.com",
        "selected_dealer": "99213450",
    }
    traits = profile.traits
    assert (traits.email, traits.first_name, traits.last_name) == (
        "joe@example.com",
        "Joe",
        "Example",
    )
    assert traits.custom == {"car_make": "Honda", "selected_dealer": "99213450"}


def test_meta_documented_lead_is_the_verbatim_block_less_its_ellipsis() -> None:
    verbatim = fixture("meta/developers-docs.retrieving.lead.doc-verbatim.txt").decode()
    with pytest.raises(json.JSONDecodeError):
        json.loads(verbatim)
    assert verbatim.replace("  }],\n  ...\n}", "  }]\n}") == (
        fixture("meta/developers-docs.retrieving.lead.json").decode()
    )


def test_meta_changes_that_name_no_lead_and_leads_without_an_email_are_reported() -> None:
    found, result = meta.notices(
        {
            "object": "page",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {"field": "feed", "value": {"item": "post"}},
                        {"field": "leadgen", "value": {"form_id": "2"}},
                        {"field": "leadgen", "value": {"leadgen_id": "3", "form_id": "2"}},
                    ],
                }
            ],
        }
    )
    assert [(r.where, r.vendor_kind, r.reason) for r in result.rejected] == [
        ("entry[0].changes[0]", "feed", "not a leadgen change"),
        ("entry[0].changes[1]", "leadgen", "no leadgen_id"),
    ]
    (notice,) = found
    assert notice.page_id == "1"
    no_email = {"id": "3", "field_data": [{"name": "full_name", "values": ["Joe Example"]}]}
    result = meta.convert_lead(notice, no_email, received_at=RECEIVED)
    assert [r.reason for r in result.rejected] == ["the lead has no email answer"]
    _, other = meta.notices({"object": "instagram", "entry": []})
    assert other.rejected[0].reason == "not a Page notification (object is not page)"
    instagram = {
        **no_email,
        "platform": "ig",
        "field_data": [{"name": "email", "values": ["a@b.example"]}],
    }
    (submitted, _) = meta.convert_lead(notice, instagram, received_at=RECEIVED).events
    assert submitted.network == "instagram" and submitted.occurred_at == RECEIVED
