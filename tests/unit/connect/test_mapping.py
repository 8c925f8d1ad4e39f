"""The mapping file: defaults, per-model overrides, and errors that say where and what."""

from __future__ import annotations

from pathlib import Path

import pytest
from crm_fakes.changes import make_change

from schemas.stages import Stage
from stream.connect.mapping import (
    MappingError,
    email_of,
    load_mapping,
    parse_mapping,
)


def test_the_defaults_follow_the_contracts_crm_values() -> None:
    mapping = load_mapping(None)
    hubspot = mapping.hubspot
    assert hubspot.id_property == "email"
    assert [hubspot.lifecycle(stage) for stage in (Stage.MQL, Stage.SQL, Stage.RECYCLED)] == [
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "lead",
    ]
    assert hubspot.lead_status(Stage.RECYCLED) == "BAD_TIMING"
    assert hubspot.lead_status(Stage.CUSTOMER) is None
    assert mapping.salesforce.lead_status(Stage.SQL) == "Working - Contacted"
    assert mapping.salesforce.external_id_field == "Leadstream_Lead_Id__c"
    assert mapping.mautic.segments == {}
    change = make_change(total=42.5, grade="C3").record
    assert hubspot.properties.values(change) == {
        "leadstream_score": 42.5,
        "leadstream_grade": "C3",
        "leadstream_stage": "mql",
    }
    assert mapping.mautic.fields.values(change) == {}


def test_the_order_of_lifecycle_stages_decides_what_is_backwards() -> None:
    hubspot = load_mapping(None).hubspot
    assert hubspot.is_backwards("salesqualifiedlead", "lead")
    assert not hubspot.is_backwards("lead", "marketingqualifiedlead")
    assert not hubspot.is_backwards(None, "lead")
    custom = parse_mapping(
        "hubspot:\n  lifecycle_order: [lead, '1001', customer]\n  lifecyclestage: {mql: '1001'}"
    ).hubspot
    assert custom.lifecycle(Stage.MQL) == "1001"
    assert custom.is_backwards("1001", "lead") and not custom.is_backwards("lead", "1001")


def test_stage_maps_merge_over_the_defaults_and_null_leaves_a_field_alone() -> None:
    hubspot = parse_mapping(
        "hubspot:\n  lifecyclestage: {disqualified: null}\n  hs_lead_status: {mql: NEW}\n"
    ).hubspot
    assert hubspot.lifecycle(Stage.DISQUALIFIED) is None
    assert hubspot.lifecycle(Stage.MQL) == "marketingqualifiedlead"
    assert hubspot.lead_status(Stage.MQL) == "NEW"


def test_models_select_and_override() -> None:
    section = parse_mapping(
        """
salesforce:
  fields: {score: Score__c}
  models:
    b2b: {}
    consumer:
      fields: {score: Consumer_Score__c}
      status: {mql: Working - Contacted}
"""
    ).salesforce
    b2b, consumer = section.for_model("b2b"), section.for_model("consumer")
    assert section.for_model("other") is None
    assert b2b is not None and b2b.fields.score == "Score__c"
    assert consumer is not None and consumer.fields.score == "Consumer_Score__c"
    assert consumer.fields.grade == "Leadstream_Grade__c"  # the rest stays
    assert consumer.lead_status(Stage.MQL) == "Working - Contacted"
    assert b2b.lead_status(Stage.MQL) == "Open - Not Contacted"
    listed = parse_mapping("mautic: {models: [b2b], segments: {mql: 3}}").mautic
    assert listed.for_model("b2b") is not None and listed.for_model("consumer") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "hubspot:\n  propertes: {score: x}\n",
            "<m>:2: hubspot.propertes: unknown key; did you mean 'properties'?",
        ),
        ("hubspt: {}\n", "<m>:1: hubspt: unknown key; did you mean 'hubspot'?"),
        (
            "salesforce:\n  status:\n    recyled: Open - Not Contacted\n",
            "<m>:3: salesforce.status.recyled: Input should be",
        ),
        ("salesforce:\n  status:\n    recyled: x\n", "did you mean 'recycled'?"),
        (
            "mautic:\n  segments:\n    mql: 0\n",
            "<m>:3: mautic.segments.mql: a segment id is a positive number",
        ),
        (
            "mautic:\n  segments:\n    sql: nurture\n",
            "<m>:3: mautic.segments.sql: Input should be a valid integer",
        ),
        (
            "hubspot:\n  models:\n    consumer:\n      properties: {scor: c}\n",
            "<m>:4: hubspot.models.consumer.properties.scor: unknown key; did you mean 'score'?",
        ),
        (
            "hubspot:\n  properties: {score: 'has space'}\n",
            "<m>:2: hubspot.properties.score: String should match pattern",
        ),
        ("hubspot: [1\n", "<m>:2: not valid YAML"),
        ("- hubspot\n", "<m>: a mapping file is a YAML mapping of destination sections"),
    ],
)
def test_errors_name_the_line_the_key_and_the_likely_intent(text: str, expected: str) -> None:
    with pytest.raises(MappingError) as raised:
        parse_mapping(text, where="<m>")
    assert expected in str(raised.value)


def test_a_correct_key_with_a_wrong_value_gets_no_suggestion() -> None:
    with pytest.raises(MappingError) as raised:
        parse_mapping("salesforce:\n  status: {mql: 5}\n", where="<m>")
    assert "<m>:2: salesforce.status.mql: Input should be a valid string" in str(raised.value)
    assert "did you mean" not in str(raised.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(MappingError) as raised:
        parse_mapping("hubspot: {idproperty: x}\nmautic: {segmnts: {}}\n", where="<m>")
    message = str(raised.value)
    assert "hubspot.idproperty: unknown key; did you mean 'id_property'?" in message
    assert "mautic.segmnts: unknown key; did you mean 'segments'?" in message


def test_a_file_is_read_and_a_missing_one_named(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("mautic:\n  segments: {recycled: 7}\n", encoding="utf-8")
    assert load_mapping(path).mautic.segments == {Stage.RECYCLED: 7}
    with pytest.raises(MappingError, match=r"cannot read the mapping file .*absent\.yaml"):
        load_mapping(tmp_path / "absent.yaml")
    path.write_text("mautic:\n  segments: {recycled: seven}\n", encoding="utf-8")
    with pytest.raises(MappingError, match=rf"{path}:2: mautic.segments.recycled"):
        load_mapping(path)


@pytest.mark.parametrize(
    ("lead_id", "email"),
    [
        ("ada@example.com", "ada@example.com"),
        ("email:Ada@Example.com", "ada@example.com"),
        ("crm-0042", None),
        ("ada@localhost", None),
        ("a b@example.com", None),
    ],
)
def test_email_of_a_lead_id(lead_id: str, email: str | None) -> None:
    assert email_of(lead_id) == email
