"""The lead processor in Faust's test context (memory store), with the real scoring core.

Messages the processor sends to its internal topic are captured and delivered back to it as
the broker would, so identity linking, re-keying and merges run end to end in one process.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from factories import make_settings

from schemas import codec
from schemas.errors import ErrorKind
from schemas.events import EventBase, Traits
from schemas.examples import make_event
from schemas.internal import AccountMember, AccountMembers, Events
from schemas.outputs import (
    AccountScoreUpdated,
    AccountStageChanged,
    LeadErasedRecord,
    ScoreUpdated,
    StageChanged,
)
from schemas.stages import AccountStage, Stage
from schemas.topics import (
    ACCOUNT_SCORES,
    ACCOUNT_STAGE_CHANGES,
    DEAD_LETTERS,
    SCORES,
    STAGE_CHANGES,
    topic_for,
)
from stream.app import faust_options
from stream.scoring import LeadState, ModelSet, apply_all, parse_models, score_at
from stream.scoring.account_history import score_accounts
from stream.scoring.accounts import Member
from stream.scoring.state import SEEN_IDS
from stream.worker import processor as proc
from stream.worker.identity import IdentityLimits
from stream.worker.port import CoreEngine

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
INTERNAL = "leads.internal.v1"
CLICKSTREAM = "leads.clickstream.v1"
PROFILES = "leads.profiles.v1"
SENT_AS = {
    INTERNAL: "internal",
    SCORES.name: "scores",
    STAGE_CHANGES.name: "stage_changes",
    DEAD_LETTERS.name: "dead_letters",
    ACCOUNT_SCORES.name: "account_scores",
    ACCOUNT_STAGE_CHANGES.name: "account_stage_changes",
}


def default_models() -> ModelSet:
    text = resources.files("stream.scoring").joinpath("default_models.yaml").read_text()
    return parse_models(text, source="default_models.yaml")


class Harness:
    """Puts messages into the agent as if from a topic; loops internal messages back."""

    def __init__(self, processor: proc.LeadProcessor, ctx: Any) -> None:
        self.processor = processor
        self.ctx = ctx
        self.topic = CLICKSTREAM
        self.sent: dict[str, list[tuple[bytes | None, bytes | None]]] = defaultdict(list)
        self.pending: list[tuple[bytes, bytes, int | None]] = []
        to_message = ctx.to_message

        def relabelled(*args: Any, **kwargs: Any) -> Any:
            message = to_message(*args, **kwargs)
            message.topic = self.topic
            return message

        ctx.to_message = relabelled
        processor.sender = self  # type: ignore[assignment]

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """What the processor sends, by topic; internal records come back to it."""
        name = SENT_AS[topic]
        self.sent[name].append((key, value))
        if name == "internal":
            assert key is not None and value is not None
            self.pending.append((key, value, partition))

    async def put(
        self, topic: str, key: str | bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        """Deliver a record (on ``partition``; by default its key's, as the producer would)."""
        self.topic = topic
        raw_key = key.encode() if isinstance(key, str) else key
        if partition is None and raw_key is not None:
            every = list(range(self.processor.settings.topic_partitions))
            partition = int(DefaultPartitioner()(raw_key, every, every))
        await self.ctx.put(key=raw_key, value=value, partition=partition)
        while self.pending:
            internal_key, internal_value, internal_partition = self.pending.pop(0)
            self.topic = INTERNAL
            await self.ctx.put(key=internal_key, value=internal_value, partition=internal_partition)

    async def event(self, event: EventBase, *, key: str | None = None) -> None:
        """Deliver ``event`` on its own topic, keyed by its owner unless ``key`` says otherwise."""
        owner = event.lead_id or event.anonymous_id
        await self.put(topic_for(event), key if key is not None else owner, codec.encode(event))

    def scores(self) -> list[ScoreUpdated]:
        return [
            record
            for _, value in self.sent["scores"]
            if value is not None and isinstance(record := codec.decode_score(value), ScoreUpdated)
        ]

    def stage_changes(self) -> list[StageChanged]:
        return [
            record
            for _, value in self.sent["stage_changes"]
            if value is not None
            and isinstance(record := codec.decode_stage_change(value), StageChanged)
        ]

    def state(self, lead_id: str) -> LeadState | None:
        record = self.processor.load_lead(lead_id)
        if record is None or record.state is None:
            return None
        return LeadState.from_dict(record.state, self.processor.engine.models)  # type: ignore[attr-defined]


def make_processor(tmp_path: Path, models: ModelSet, **settings: Any) -> proc.LeadProcessor:
    # unprefixed topics: the harness labels messages with the contract's topic names
    config = make_settings(tmp_path, store="memory", topic_prefix="", **settings)
    app = faust.App(**faust_options(config))
    return proc.register(
        app,
        config,
        CoreEngine(models),
        limits=IdentityLimits(max_events=3, max_age=timedelta(hours=1)),
    )


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    processor = make_processor(tmp_path, default_models())
    async with processor.agent.test_context() as ctx:
        yield Harness(processor, ctx)


def ev(event_type: str, n: int, lead: str | None = "lead-1", **fields: Any) -> EventBase:
    return make_event(
        event_type,
        event_id=f"{event_type}-{n}-{lead}",
        lead_id=lead,
        occurred_at=T0 + timedelta(minutes=n),
        **fields,
    )


def buyer_events(lead: str = "lead-1") -> list[EventBase]:
    traits = Traits(
        email=f"{lead.replace('-', '.')}@acmecorp.com",
        job_title="VP Marketing",
        industry="software",
        company_size=400,
        age=40,
    )
    return [
        ev("profile_updated", 0, lead, traits=traits, anonymous_id=None),
        ev("page_viewed", 1, lead, path="/pricing", url="https://acme.example/pricing"),
        ev("page_viewed", 2, lead, path="/blog", url="https://acme.example/blog"),
        ev("webinar_attended", 3, lead),
        ev("demo_requested", 4, lead),
    ]


def assert_same_scores(got: LeadState | None, want: LeadState | None, at: datetime) -> None:
    """Same models, stages and scores (stored states round floats to 11 digits)."""
    assert got is not None and want is not None
    assert sorted(got.models) == sorted(want.models)
    for model_id, state in got.models.items():
        mine, theirs = score_at(state, at), score_at(want.models[model_id], at)
        assert mine.stage == theirs.stage, model_id
        assert mine.fit == pytest.approx(theirs.fit, rel=1e-9, abs=1e-9), model_id
        assert mine.engagement == pytest.approx(theirs.engagement, rel=1e-9, abs=1e-9), model_id


AT = T0 + timedelta(days=2)


def offline(events: list[EventBase], models: ModelSet, lead: str) -> LeadState | None:
    state = None
    for event in events:
        state = apply_all(state, event, models=models, lead_id=lead).state
    return state


async def test_a_buyer_is_scored_and_reaches_sql(harness: Harness) -> None:
    events = buyer_events()
    for event in events:
        await harness.event(event)
    stages = [(c.model, c.from_stage, c.to_stage) for c in harness.stage_changes()]
    assert ("b2b", Stage.LEAD, Stage.SQL) in stages or ("b2b", Stage.MQL, Stage.SQL) in stages
    models = harness.processor.engine.models  # type: ignore[attr-defined]
    assert_same_scores(harness.state("lead-1"), offline(events, models, "lead-1"), AT)
    latest = {s.model: s for s in harness.scores()}
    assert set(latest) == {"b2b", "consumer"}
    assert latest["b2b"].stage == Stage.SQL
    assert all(key == b"lead-1" for key, _ in harness.sent["stage_changes"])


async def test_duplicates_and_replays_change_nothing(harness: Harness) -> None:
    events = buyer_events()
    for event in events:
        await harness.event(event)
    sent = {name: list(records) for name, records in harness.sent.items()}
    state = harness.state("lead-1")
    for event in events:
        await harness.event(event)
    assert harness.state("lead-1") == state
    assert harness.sent["scores"] == sent["scores"]
    assert harness.sent["stage_changes"] == sent["stage_changes"]


async def test_malformed_messages_are_dead_lettered_and_the_agent_goes_on(harness: Harness) -> None:
    await harness.put(CLICKSTREAM, "lead-1", b"{truncated")
    await harness.put(CLICKSTREAM, "lead-1", codec.encode(ev("email_opened", 1)))  # wrong topic
    await harness.event(ev("page_viewed", 2))
    letters = [codec.decode_dead_letter(v) for _, v in harness.sent["dead_letters"] if v]
    assert [d.error_kind for d in letters] == [ErrorKind.NOT_JSON, ErrorKind.UNKNOWN_TYPE]
    assert letters[0].original == b"{truncated"
    assert letters[0].source_topic == CLICKSTREAM
    assert harness.state("lead-1") is not None


async def test_every_source_event_is_scored_from_the_internal_topic(harness: Harness) -> None:
    """One recorded order per partition: a source record is passed on, not scored, and the
    lead is scored when the internal topic delivers it."""
    event = ev("page_viewed", 1)
    harness.topic = CLICKSTREAM
    await harness.ctx.put(key=b"lead-1", value=codec.encode(event))
    assert harness.state("lead-1") is None
    assert harness.sent["scores"] == []
    assert [key for key, _ in harness.sent["internal"]] == [b"lead-1"]
    assert codec.decode_internal(harness.sent["internal"][0][1]) == Events(events=[event])
    await harness.put(INTERNAL, "lead-1", harness.pending.pop(0)[1])
    assert harness.state("lead-1") is not None
    assert [s.last_event_id for s in harness.scores()] == [event.event_id] * 2  # two models


async def test_events_keyed_otherwise_are_rekeyed_to_their_lead(harness: Harness) -> None:
    event = ev("page_viewed", 1)
    await harness.event(event, key="something-else")
    assert harness.sent["internal"][0][0] == b"lead-1"
    models = harness.processor.engine.models  # type: ignore[attr-defined]
    assert_same_scores(harness.state("lead-1"), offline([event], models, "lead-1"), AT)


async def test_anonymous_history_is_merged_exactly_on_identify(harness: Harness) -> None:
    anonymous = [
        ev("page_viewed", n, None, anonymous_id="anon-1", path="/pricing") for n in range(1, 3)
    ]
    for event in anonymous:
        await harness.event(event)
    assert harness.state("lead-1") is None
    assert harness.processor.load_anon("anon-1") is not None
    identify = ev("identify", 10, "lead-1", anonymous_id="anon-1", traits=Traits(age=30))
    await harness.event(identify)
    # the held events were released to the lead and scored at their own times
    released = [e.model_copy(update={"lead_id": "lead-1"}) for e in anonymous]
    models = harness.processor.engine.models  # type: ignore[attr-defined]
    assert_same_scores(
        harness.state("lead-1"), offline([identify, *released], models, "lead-1"), AT
    )
    # later anonymous activity goes straight to the lead
    later = ev("page_viewed", 20, None, anonymous_id="anon-1", path="/blog")
    await harness.event(later)
    expected = offline(
        [identify, *released, later.model_copy(update={"lead_id": "lead-1"})], models, "lead-1"
    )
    assert_same_scores(harness.state("lead-1"), expected, AT)


async def test_anonymous_holding_is_bounded_and_overflow_is_dead_lettered(harness: Harness) -> None:
    for n in range(5):
        await harness.event(ev("page_viewed", n, None, anonymous_id="anon-2"))
    letters = [codec.decode_dead_letter(v) for _, v in harness.sent["dead_letters"] if v]
    assert [d.error_kind for d in letters] == [ErrorKind.HELD_TOO_MANY] * 2
    record = harness.processor.load_anon("anon-2")
    assert record is not None
    assert len(record.held) == 3


async def test_merge_hands_the_absorbed_state_to_the_survivor(harness: Harness) -> None:
    models = harness.processor.engine.models  # type: ignore[attr-defined]
    a = [ev("page_viewed", 1, "lead-a", path="/pricing"), ev("webinar_attended", 2, "lead-a")]
    b = [ev("page_viewed", 3, "lead-b"), ev("email_opened", 4, "lead-b")]
    for event in a + b:
        await harness.event(event)
    merge = ev("leads_merged", 5, "lead-b", merged_lead_id="lead-a")
    await harness.event(merge)
    state_b = harness.state("lead-b")
    assert state_b is not None
    # one person: the same as if every event had been the survivor's
    as_one = [e.model_copy(update={"lead_id": "lead-b"}) for e in a + b]
    assert_same_scores(state_b, offline(as_one, models, "lead-b"), AT)
    # the absorbed id forwards to the survivor; a replayed merge changes nothing
    await harness.event(ev("page_viewed", 6, "lead-a"))
    await harness.event(merge)
    after = harness.state("lead-b")
    assert after is not None and after != state_b
    assert harness.processor.load_lead("lead-a").merged_into == "lead-b"  # type: ignore[union-attr]


async def test_erase_removes_the_lead_and_tells_downstream(harness: Harness) -> None:
    await harness.event(ev("identify", 0, "lead-1", anonymous_id="anon-9"))
    await harness.event(ev("page_viewed", 1))
    await harness.event(ev("lead_erased", 2))
    assert harness.processor.load_lead("lead-1") is None
    assert harness.processor.load_anon("anon-9") is None
    erased = [codec.decode_score(v) for _, v in harness.sent["scores"] if v is not None]
    assert {r.model for r in erased if isinstance(r, LeadErasedRecord)} == {"b2b", "consumer"}
    assert (codec.score_key("lead-1", "b2b"), None) in harness.sent["scores"]


DECAY_MODEL = """
format: 1
models:
  - id: fast
    version: "1"
    decay: {web: 1h}
    engagement:
      - {id: webinar, event: webinar_attended, points: 60, group: web}
    stages:
      initial: lead
      mql: {promote_at: 50, demote_below: 30, basis: total}
    grades:
      fit: [15, 8, 0]
      engagement: [100, 30, 10]
    spam:
      burst: {max_events: 12, within: 10s}
"""


async def test_the_timer_recycles_a_quiet_mql_without_a_new_event(tmp_path: Path) -> None:
    processor = make_processor(tmp_path, parse_models(DECAY_MODEL, source="test"))
    async with processor.agent.test_context() as ctx:
        harness = Harness(processor, ctx)
        await harness.event(ev("webinar_attended", 0))
        assert [c.to_stage for c in harness.stage_changes()] == [Stage.LEAD, Stage.MQL]
        due = processor.schedule.due_time(processor.partition_of("lead-1"), "l:lead-1")
        assert due is not None
        # 60 * 2^(-t/1h) < 30 after one hour: due at the first whole second after it
        hour = (T0 + timedelta(hours=1)).timestamp()
        assert due == int(due) and hour <= due <= hour + 1
        tick = proc.Tick(key="lead-1", kind="lead", at=T0 + timedelta(hours=2))
        await harness.put(INTERNAL, "lead-1", codec.encode(tick))
        changes = harness.stage_changes()
        assert [c.to_stage for c in changes] == [Stage.LEAD, Stage.MQL, Stage.RECYCLED]
        assert changes[-1].occurred_at == pytest.approx(
            T0 + timedelta(hours=1), abs=timedelta(seconds=1)
        )
        # a second tick finds nothing more to do
        await harness.put(INTERNAL, "lead-1", codec.encode(tick))
        assert len(harness.stage_changes()) == 3


async def test_a_new_owner_schedules_leads_from_their_stored_due_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker given a partition schedules its leads from the due time each stored record
    keeps (no state decoded), from the state for a record stored without one, and not at all
    for a merged lead; a time the agent set meanwhile is kept; a rebalance during the pass
    abandons it."""
    processor = make_processor(tmp_path, parse_models(DECAY_MODEL, source="test"))
    async with processor.agent.test_context() as ctx:
        harness = Harness(processor, ctx)
        for n, lead in enumerate(("lead-1", "lead-2", "lead-3", "lead-4")):
            await harness.event(ev("webinar_attended", n, lead))
        part = processor.partition_of
        computed = processor.schedule.due_time(part("lead-2"), "l:lead-2")
        assert computed is not None
        stored = {
            lead: codec.loads(processor.leads[lead.encode()])
            for lead in ("lead-1", "lead-2", "lead-3", "lead-4")
        }
        assert stored["lead-2"]["d"] == computed  # what a record keeps: the scheduled time
        # the tables as another worker left them: lead-1 with a due time unlike its state's,
        # lead-2 stored before records kept one, lead-3 merged into lead-4
        data = processor.leads.data
        data[b"lead-1"] = codec.dumps(stored["lead-1"] | {"d": 1_999_999_999})
        data[b"lead-2"] = codec.dumps({k: v for k, v in stored["lead-2"].items() if k != "d"})
        data[b"lead-3"] = codec.dumps(stored["lead-3"] | {"m": "lead-4"})
        partitions = {part(lead) for lead in stored}
        processor.schedule.drop_partitions(partitions)
        processor.scheduled_partitions.clear()
        monkeypatch.setattr(proc, "REBUILD_YIELD_EVERY", 1)

        processor.app.rebalancing = True
        await processor.rebuild_schedule(partitions)
        assert len(processor.schedule) == 0 and not processor.scheduled_partitions  # abandoned
        processor.app.rebalancing = False
        processor.schedule.set(part("lead-4"), "l:lead-4", 1_000)  # set by the agent meanwhile
        await processor.rebuild_schedule(partitions)
        assert processor.scheduled_partitions == partitions

        def due(lead: str) -> float | None:
            return processor.schedule.due_time(part(lead), f"l:{lead}")

        assert due("lead-1") == 1_999_999_999
        assert due("lead-2") == computed
        assert due("lead-3") is None
        assert due("lead-4") == 1_000


async def test_records_read_again_after_their_state_was_written_are_skipped(
    harness: Harness,
) -> None:
    """After a crash or a rebalance the lead's partition is read again from its last saved
    position, which can be older than the lead's stored state (the state is written before
    the position): records whose state was written are skipped by their offset, however many
    of the lead's events they hold (its memory of recent event ids covers only ``SEEN_IDS``:
    an identify that releases a long anonymous history is such a run)."""
    events = [
        ev(
            "page_viewed",
            n,
            path=f"/docs/{n}",
            url=f"https://acme.example/docs/{n}",
            anonymous_id=None,
        )
        for n in range(SEEN_IDS + 10)
    ]
    first = harness.ctx.sent_offset
    for event in events:
        await harness.put(INTERNAL, "lead-1", codec.encode(event))
    record = harness.processor.load_lead("lead-1")
    assert record is not None
    assert record.applied == first + len(events) - 1
    state, sent = harness.state("lead-1"), len(harness.sent["scores"])

    harness.ctx.sent_offset = first  # the same records again, at their offsets
    for event in events:
        await harness.put(INTERNAL, "lead-1", codec.encode(event))
    assert len(harness.sent["scores"]) == sent
    assert harness.state("lead-1") == state

    # a copy at a new offset is a new record (an event released or sent again): beyond the
    # memory of recent ids it is applied again, as the offline reference replays it
    await harness.put(INTERNAL, "lead-1", codec.encode(events[0]))
    assert harness.state("lead-1") != state


async def test_anonymous_records_read_again_are_not_held_twice(harness: Harness) -> None:
    anonymous = [
        ev("page_viewed", n, None, anonymous_id="anon-1", path=f"/docs/{n}") for n in range(1, 3)
    ]  # fewer than the harness holds (3), so a second copy would show
    first = harness.ctx.sent_offset
    for event in anonymous:
        await harness.put(INTERNAL, "anon-1", codec.encode(event))
    held = harness.processor.load_anon("anon-1")
    assert held is not None
    assert len(held.held) == len(anonymous)
    assert held.applied == first + len(anonymous) - 1
    harness.ctx.sent_offset = first  # read again at their offsets
    for event in anonymous:
        await harness.put(INTERNAL, "anon-1", codec.encode(event))
    again = harness.processor.load_anon("anon-1")
    assert again is not None
    assert again.held == held.held


# ------------------------------------------------------------------------------- accounts


def account_scores(harness: Harness) -> dict[str, AccountScoreUpdated]:
    """The latest account score per account (the compacted topic's view)."""
    latest: dict[str, AccountScoreUpdated] = {}
    for key, value in harness.sent["account_scores"]:
        assert key is not None and value is not None
        record = codec.decode_account_score(value)
        assert record.account_id == key.decode()
        if record.account_id not in latest or record.revision > latest[record.account_id].revision:
            latest[record.account_id] = record
    return latest


def account_changes(harness: Harness) -> list[AccountStageChanged]:
    return [
        codec.decode_account_stage_change(value)
        for _, value in harness.sent["account_stage_changes"]
        if value is not None
    ]


def account_history() -> list[EventBase]:
    """Members joining, changing, leaving, moving, merging and being erased."""

    def who(lead: str, n: int, email: str, title: str, **more: Any) -> EventBase:
        traits = Traits(email=email, job_title=title, industry="software", company_size=400)
        if more:
            traits = traits.model_copy(update=more)
        return ev("profile_updated", n, lead, traits=traits, anonymous_id=None)

    return [
        who("lead-a", 0, "ann@initech.io", "VP Engineering"),
        who("lead-b", 1, "bob@initech.io", "Data Engineer"),
        who("lead-c", 2, "cy@initech.io", "Marketing Analyst"),
        who("lead-d", 3, "di@globex.com", "Director of IT"),
        *[ev("demo_requested", 10 + i, f"lead-{x}") for i, x in enumerate("abcd")],
        *[ev("webinar_attended", 20 + i, f"lead-{x}") for i, x in enumerate("abcd")],
        *[ev("trial_requested", 25 + i, f"lead-{x}") for i, x in enumerate("abcd")],
        # c leaves for a personal address: it leaves the account
        who("lead-c", 30, "cy@gmail.com", "Marketing Analyst"),
        # b moves to globex through its CRM account id
        ev("sales_accepted", 31, "lead-b", account_id="globex.com"),
        # d is merged into a: d leaves globex, a brings both engagements to initech
        ev("leads_merged", 32, "lead-a", merged_lead_id="lead-d"),
        # a is erased: initech loses its contribution
        ev("lead_erased", 33, "lead-a"),
    ]


async def test_accounts_equal_the_offline_reference(harness: Harness) -> None:
    """Members join, change, leave, move, merge and are erased; the account records the worker
    publishes are the ones the pure core computes offline from the same events."""
    models = harness.processor.engine.models  # type: ignore[attr-defined]
    events = account_history()
    for event in events:
        await harness.event(event)
    reference = score_accounts(events, models)
    want_scores: dict[str, AccountScoreUpdated] = {}
    for account_id, record in reference.outputs:
        if isinstance(record, AccountScoreUpdated):
            want_scores[account_id] = record
    got_scores = account_scores(harness)
    assert set(got_scores) == {"initech.io", "globex.com"}

    def shown(record: AccountScoreUpdated) -> dict[str, Any]:
        return record.model_dump(exclude={"revision"})

    assert {a: shown(r) for a, r in got_scores.items()} == {
        a: shown(r) for a, r in want_scores.items()
    }
    want_changes = [r for _, r in reference.outputs if isinstance(r, AccountStageChanged)]
    assert account_changes(harness) == want_changes
    # what the history did: b moved to globex, c left, d merged away, a erased
    assert got_scores["globex.com"].members == 1
    assert got_scores["globex.com"].strongest_member == "lead-b"
    assert got_scores["initech.io"].members == 0
    stages = {(c.account_id, c.to_stage) for c in want_changes}
    assert ("initech.io", AccountStage.MQA) in stages


async def test_a_replayed_member_message_changes_nothing(harness: Harness) -> None:
    for event in buyer_events("lead-1"):
        await harness.event(event)
    members = [
        (key, value)
        for key, value in harness.sent["internal"]
        if value is not None and isinstance(codec.decode_internal(value), AccountMembers)
    ]
    assert members and {key for key, _ in members} == {b"acmecorp.com"}
    sent = len(harness.sent["account_scores"]), len(harness.sent["account_stage_changes"])
    before = harness.processor.accounts.load("acmecorp.com")  # type: ignore[union-attr]
    for key, value in members:
        await harness.put(INTERNAL, key, value)  # type: ignore[arg-type]
    after = len(harness.sent["account_scores"]), len(harness.sent["account_stage_changes"])
    assert after == sent
    assert harness.processor.accounts.load("acmecorp.com") == before  # type: ignore[union-attr]


async def test_a_batch_sends_one_member_message_per_account_before_the_leads_are_written(
    harness: Harness,
) -> None:
    """Three colleagues scored in one micro-batch: their account gets one message with the
    three changes in the order they were made, sent before any of the three leads is written
    (so a crash in between scores them again and sends the changes again)."""
    processor = harness.processor
    leads = ("lead-1", "lead-2", "lead-3")
    messages = []
    for offset, lead in enumerate(leads, start=100):
        event = buyer_events(lead)[0]
        message = harness.ctx.to_message(key=lead.encode(), value=codec.encode(event))
        message.topic, message.offset = INTERNAL, offset
        messages.append(faust.Event(processor.app, message.key, message.value, {}, message))
    written: list[tuple[str, int]] = []
    store_lead = processor.store_lead

    def recording_store(lead_id: str, record: Any, due: Any) -> None:
        written.append((lead_id, len(harness.sent["internal"])))
        store_lead(lead_id, record, due)

    processor.store_lead = recording_store  # type: ignore[method-assign]
    await processor.handle_batch(messages)
    sent = [codec.decode_internal(v) for _, v in harness.sent["internal"] if v is not None]
    assert len(sent) == 1 and isinstance(sent[0], AccountMembers)
    assert sent[0].account_id == "acmecorp.com"
    assert [(c.lead_id, c.version) for c in sent[0].changes] == [
        ("lead-1", 100),
        ("lead-2", 101),
        ("lead-3", 102),
    ]
    assert written == [(lead, 1) for lead in leads]  # every write after the message
    while harness.pending:  # the broker brings the message back to the account's partition
        key, value, partition = harness.pending.pop(0)
        await harness.put(INTERNAL, key, value, partition)
    assert account_scores(harness)["acmecorp.com"].members == 3


async def test_an_account_member_message_of_an_earlier_release_is_applied(
    harness: Harness,
) -> None:
    """A worker upgraded mid-stream reads the one-change messages the previous release left on
    the internal topic."""
    member = Member(at=T0.timestamp(), fit=12.0, roles=("decision_maker",)).to_dict()
    old = AccountMember(
        account_id="acmecorp.com", lead_id="lead-9", member=member, version=5, occurred_at=T0
    )
    await harness.put(INTERNAL, "acmecorp.com", codec.encode(old))
    score = account_scores(harness)["acmecorp.com"]
    assert (score.members, score.roles, score.strongest_member) == (
        1,
        ("decision_maker",),
        "lead-9",
    )


async def test_the_timer_demotes_a_quiet_account(harness: Harness) -> None:
    processor = harness.processor
    for lead, title in (("lead-1", "CEO"), ("lead-2", "Software Engineer")):
        traits = Traits(
            email=f"{lead}@initech.io", job_title=title, company_size=300, industry="saas"
        )
        await harness.event(ev("profile_updated", 0, lead, traits=traits, anonymous_id=None))
        await harness.event(ev("demo_requested", 1, lead))
        await harness.event(ev("webinar_attended", 2, lead))
        await harness.event(ev("trial_requested", 3, lead))
    assert account_changes(harness)[-1].to_stage is AccountStage.MQA
    due = processor.schedule.due_time(processor.partition_of("initech.io"), "c:initech.io")
    assert due is not None and due == int(due)
    tick = proc.Tick(key="initech.io", kind="account", at=datetime.fromtimestamp(due, UTC))
    await harness.put(INTERNAL, "initech.io", codec.encode(tick))
    last = account_changes(harness)[-1]
    assert (last.from_stage, last.to_stage) == (AccountStage.MQA, AccountStage.ENGAGED)
    assert last.occurred_at == datetime.fromtimestamp(due, UTC)
    assert last.triggering_lead_id is None


async def test_accounts_off_sends_no_account_work(tmp_path: Path) -> None:
    processor = make_processor(tmp_path, default_models(), accounts_enabled=False)
    assert processor.accounts is None
    async with processor.agent.test_context() as ctx:
        harness = Harness(processor, ctx)
        for event in buyer_events("lead-1"):
            await harness.event(event)
        assert not harness.sent["account_scores"]
        assert not any(
            isinstance(codec.decode_internal(v), AccountMembers | AccountMember)
            for _, v in harness.sent["internal"]
            if v is not None
        )


def leads_of(processor: proc.LeadProcessor, partition: int, count: int) -> list[str]:
    """``count`` lead ids whose records go to ``partition``."""
    found = (f"lead-{n}" for n in range(1000))
    return [lead for lead in found if processor.partition_of(lead) == partition][:count]


def internal_sent(harness: Harness) -> list[Any]:
    return [codec.decode_internal(v) for _, v, _ in harness.pending]


async def test_a_batch_passes_each_partitions_lead_events_on_in_one_record(
    harness: Harness,
) -> None:
    """A batch's plain lead events go to their partition of the internal topic in one events
    record, as the bytes they were read as; an identify (or anything else sent to the
    partition) goes after the events read before it, so the partition keeps the batch's order."""
    processor = harness.processor
    first, second = leads_of(processor, 0, 2)
    other = leads_of(processor, 1, 1)[0]
    read = [
        ev("page_viewed", 1, first),
        ev("email_opened", 2, second),
        ev("page_viewed", 3, other),
        make_event("identify", event_id="identify-4", lead_id=first, anonymous_id="anon-4"),
        ev("page_viewed", 5, first),
    ]
    values = [codec.encode(e).replace(b",", b", ") for e in read]  # spaced as some producers do
    batch = []
    for offset, (event, value) in enumerate(zip(read, values, strict=True)):
        message = harness.ctx.to_message(key=b"producer-key", value=value)
        message.topic, message.offset = topic_for(event), offset
        batch.append(faust.Event(processor.app, message.key, message.value, {}, message))
    await processor.handle_batch(batch)
    by_partition: dict[int | None, list[Any]] = defaultdict(list)
    for (_, value, partition), decoded in zip(harness.pending, internal_sent(harness), strict=True):
        by_partition[partition].append(decoded)
        if isinstance(decoded, Events):
            assert values[read.index(decoded.events[0])] in value  # copied, not encoded again
    assert by_partition[0] == [Events(events=read[:2]), read[3], Events(events=[read[4]])]
    assert by_partition[1] == [Events(events=[read[2]])]
    while harness.pending:  # the broker brings them back, each to its partition
        key, value, partition = harness.pending.pop(0)
        await harness.put(INTERNAL, key, value, partition)
    latest = {(s.lead_id, s.model): s.last_event_id for s in harness.scores()}
    assert latest[(first, "b2b")] == "page_viewed-5-" + first
    assert latest[(second, "b2b")] == "email_opened-2-" + second
    assert latest[(other, "b2b")] == "page_viewed-3-" + other


async def test_an_events_record_is_scored_lead_by_lead_in_its_order(harness: Harness) -> None:
    """Several leads of one partition in one record: each lead's events applied in the record's
    order (as the offline reference applies them), the record's offset remembered by each, so
    the record read again changes nothing."""
    processor = harness.processor
    first, second = leads_of(processor, 1, 2)
    events = [*buyer_events(first)[:3], *buyer_events(second)[:2], *buyer_events(first)[3:]]
    record = codec.encode_events([codec.encode(e) for e in events])
    offset = harness.ctx.sent_offset
    await harness.put(INTERNAL, first, record, 1)
    models = processor.engine.models  # type: ignore[attr-defined]
    for lead in (first, second):
        mine = [e for e in events if e.lead_id == lead]
        assert_same_scores(harness.state(lead), offline(mine, models, lead), AT)
        stored = processor.load_lead(lead)
        assert stored is not None and stored.applied == offset
    latest = {(s.lead_id, s.model): s.last_event_id for s in harness.scores()}
    assert latest[(first, "b2b")] == events[-1].event_id
    assert latest[(second, "b2b")] == events[4].event_id
    sent = len(harness.sent["scores"])
    harness.ctx.sent_offset = offset  # the same record again, at its offset
    await harness.put(INTERNAL, first, record, 1)
    assert len(harness.sent["scores"]) == sent


async def test_a_refused_event_of_an_events_record_is_dead_lettered_alone(
    harness: Harness,
) -> None:
    processor = harness.processor
    first, second = leads_of(processor, 0, 2)
    stray = leads_of(processor, 1, 1)[0]
    broken = b'{"type":"page_viewed","event_id":"x1","lead_id":"%s"}' % first.encode()
    kept = [ev("page_viewed", 1, first), ev("email_opened", 2, second), ev("page_viewed", 3, stray)]
    values = [codec.encode(kept[0]), broken, codec.encode(kept[1]), codec.encode(kept[2])]
    await harness.put(INTERNAL, first, codec.encode_events(values), 0)
    letters = [codec.decode_dead_letter(v) for _, v in harness.sent["dead_letters"] if v]
    assert len(letters) == 1
    assert letters[0].error_kind == ErrorKind.SCHEMA_VIOLATION
    assert letters[0].field == "occurred_at"
    assert orjson.loads(letters[0].original) == orjson.loads(broken)
    assert letters[0].source_topic == INTERNAL
    latest = {(s.lead_id, s.model): s.last_event_id for s in harness.scores()}
    # the lead of another partition is passed on to its own and scored there
    assert {lead for lead, _ in latest} == {first, second, stray}
    assert latest[(first, "b2b")] == kept[0].event_id
