"""The lead record's stored form and the bounded cache of decoded records."""

from __future__ import annotations

from stream.worker.leads import MAX_CONTROL_IDS, LeadRecord, LiveCache


def test_a_record_round_trips_through_its_stored_form_without_empty_fields() -> None:
    record = LeadRecord(state={"v": 1}, anonymous_ids=["a-1"], merged_into=None, controls=["m"])
    assert record.to_json() == {"s": {"v": 1}, "a": ["a-1"], "c": ["m"]}
    assert LeadRecord.from_json(record.to_json()) == record
    assert LeadRecord().to_json() == {}


def test_control_ids_are_remembered_once_and_bounded() -> None:
    record = LeadRecord()
    assert record.remember_control("x")
    assert not record.remember_control("x")
    for n in range(2 * MAX_CONTROL_IDS):
        record.remember_control(f"c{n}")
    assert len(record.controls) == MAX_CONTROL_IDS
    assert record.controls[-1] == f"c{2 * MAX_CONTROL_IDS - 1}"


def test_the_cache_answers_only_for_the_bytes_a_record_was_decoded_from() -> None:
    cache = LiveCache(size=2)
    record = LeadRecord(state={"v": 1})
    cache.keep("lead-1", b"one", record)
    assert cache.get("lead-1", b"one") is record
    assert cache.get("lead-1", b"changed by a restore") is None
    cache.remember_live("lead-1", "decoded")
    assert record.live == "decoded"
    cache.drop("lead-1")
    assert cache.get("lead-1", b"one") is None


def test_the_least_recently_used_lead_is_dropped_beyond_the_size() -> None:
    cache = LiveCache(size=2)
    for lead in ("a", "b"):
        cache.keep(lead, lead.encode(), LeadRecord())
    assert cache.get("a", b"a") is not None  # "a" is now the most recent
    cache.keep("c", b"c", LeadRecord())
    assert len(cache) == 2
    assert cache.get("b", b"b") is None
    assert cache.get("a", b"a") is not None and cache.get("c", b"c") is not None
