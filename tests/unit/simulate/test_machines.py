"""Machines in front of people's mail: privacy-proxy opens and link scanners, with ground truth."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import datetime
from functools import cache
from pathlib import Path

import pytest

from schemas.adapters import machine
from schemas.codec import encode
from schemas.events import EmailClicked, EmailDelivered, EmailOpened
from stream.cli import build_parser
from stream.simulate.report import machine_counts
from stream.simulate.sinks import (
    event_truth_path_for,
    read_event_truth,
    read_truth,
    write_event_truth,
    write_truth,
)
from stream.simulate.traffic import (
    GATEWAYS,
    LINK_SCANNER,
    PRIVACY_PROXY,
    WEB_SCRAPER,
    SimConfig,
    Simulation,
    generate,
    marked_at_ingest,
)

MACHINES = SimConfig(seed=3, leads=400, machine_open_rate=0.4, scanner_rate=0.2)


@cache
def simulate(config: SimConfig = MACHINES) -> Simulation:
    return generate(config)


def deliveries(sim: Simulation) -> dict[str, float]:
    """When each message was delivered (epoch seconds), by message id."""
    return {
        e.message_id: e.occurred_at.timestamp()
        for e in sim.events
        if isinstance(e, EmailDelivered) and e.message_id is not None
    }


def mail_by_maker(sim: Simulation, maker: str) -> list[EmailOpened | EmailClicked]:
    return [
        e
        for i, e in enumerate(sim.events)
        if sim.maker(i) == maker and isinstance(e, EmailOpened | EmailClicked)
    ]


def delivered_messages(sim: Simulation) -> dict[str, list[str]]:
    """Each lead's delivered messages, in order."""
    out: dict[str, list[str]] = defaultdict(list)
    for e in sim.events:
        if isinstance(e, EmailDelivered) and e.message_id is not None:
            out[sim.person_of(e)].append(e.message_id)
    return out


# --------------------------------------------------------------------------------- rates


def test_defaults_keep_the_traffic_as_it_was() -> None:
    config = SimConfig()
    assert (config.machine_open_rate, config.scanner_rate) == (0.43, 0.0)
    assert (config.proxy_flag_rate, config.scanner_flag_rate) == (0.6, 0.4)
    args = build_parser().parse_args(["simulate", "--report"])
    assert args.machine_open_rate == config.machine_open_rate
    assert args.scanner_rate == config.scanner_rate
    assert args.proxy_flag_rate == config.proxy_flag_rate
    assert args.scanner_flag_rate == config.scanner_flag_rate
    counts = machine_counts(simulate(SimConfig(seed=42, leads=300)))
    # What the simulator made before the rate was an option: 30% of recipients proxied.
    assert counts.proxy_share == pytest.approx(0.43, abs=0.02)
    assert counts.proxied / counts.recipients == pytest.approx(0.3, abs=0.08)
    assert counts.scanned == 0
    # The email-scanner-bot persona still scans its mailbox.
    assert counts.scanner_clicks > 0


@pytest.mark.parametrize(("open_rate", "scanner_rate"), [(0.4, 0.2), (0.15, 0.5), (0.7, 0.05)])
def test_machine_rates_are_respected(open_rate: float, scanner_rate: float) -> None:
    config = SimConfig(seed=11, leads=400, machine_open_rate=open_rate, scanner_rate=scanner_rate)
    counts = machine_counts(generate(config))
    assert counts.proxy_share == pytest.approx(open_rate, abs=0.02)
    assert counts.scanned == round(scanner_rate * counts.recipients)


def test_zero_rates_put_no_machine_in_front_of_people() -> None:
    sim = simulate(MACHINES.without_machines())
    assert not mail_by_maker(sim, PRIVACY_PROXY)
    assert not any(t.privacy_proxy or t.link_scanner for t in sim.truth.values())
    scanned = {sim.person_of(e) for e in mail_by_maker(sim, LINK_SCANNER)}
    assert {sim.truth[lead].persona for lead in scanned} == {"email_scanner_bot"}


def test_people_do_the_same_things_whatever_the_machine_rates() -> None:
    with_machines, clean = simulate(), simulate(MACHINES.without_machines())

    def people(sim: Simulation) -> list[bytes]:
        return [encode(e) for i, e in enumerate(sim.events) if sim.maker(i) is None]

    assert people(with_machines) == people(clean)
    assert {k: (t.persona, t.converted) for k, t in with_machines.truth.items()} == {
        k: (t.persona, t.converted) for k, t in clean.truth.items()
    }
    assert len(with_machines.events) > len(clean.events)


def test_machines_hit_converters_and_the_rest_alike() -> None:
    sim = simulate(SimConfig(seed=4, leads=600, machine_open_rate=0.6, scanner_rate=0.4))
    delivered = {sim.person_of(e) for e in sim.events if e.type == "email_delivered"}
    people = [
        sim.truth[lead] for lead in delivered if sim.truth[lead].persona != "email_scanner_bot"
    ]
    converted = sum(t.converted for t in people) / len(people)
    for chosen in ([t for t in people if t.privacy_proxy], [t for t in people if t.link_scanner]):
        assert 0 < sum(t.converted for t in chosen) < len(chosen)
        assert sum(t.converted for t in chosen) / len(chosen) == pytest.approx(converted, abs=0.1)


# --------------------------------------------------------------------------- ground truth


def test_a_proxy_opens_every_message_a_proxied_recipient_gets() -> None:
    sim = simulate()
    opens = mail_by_maker(sim, PRIVACY_PROXY)
    by_message = Counter(e.message_id for e in opens)
    inboxes = delivered_messages(sim)
    for lead, truth in sim.truth.items():
        messages = inboxes.get(lead, [])
        if truth.privacy_proxy:
            assert messages
            # one open per message (a message delivered just before the end may lose its open)
            assert all(by_message[m] == 1 for m in messages[:-1])
            assert by_message[messages[-1]] <= 1
        else:
            assert not any(by_message[m] for m in messages)
    assert all(isinstance(e, EmailOpened) and e.user_agent == "Mozilla/5.0" for e in opens)


def test_proxy_opens_land_seconds_to_minutes_after_delivery_some_within_a_second() -> None:
    sim = simulate()
    delivered = deliveries(sim)
    delays = sorted(
        e.occurred_at.timestamp() - delivered[str(e.message_id)]
        for e in mail_by_maker(sim, PRIVACY_PROXY)
    )
    assert delays[0] >= 0.2
    assert delays[-1] <= 8 * 3600
    within_1_5s = sum(1 for d in delays if d <= 1.5) / len(delays)
    assert within_1_5s == pytest.approx(0.30, abs=0.06)
    assert 1.5 < delays[len(delays) // 2] < 600  # the median: seconds to minutes


def test_a_scanner_opens_every_message_and_clicks_every_link_within_seconds() -> None:
    sim = simulate()
    delivered = deliveries(sim)
    by_message: dict[str, list[EmailOpened | EmailClicked]] = defaultdict(list)
    for event in mail_by_maker(sim, LINK_SCANNER):
        by_message[str(event.message_id)].append(event)
    links_by_campaign: dict[str | None, set[str]] = {}
    scanned_leads = set()
    for message, events in by_message.items():
        opens = [e for e in events if isinstance(e, EmailOpened)]
        clicks = [e for e in events if isinstance(e, EmailClicked)]
        assert len(opens) == 1
        assert 8 <= len(clicks) <= 22
        urls = {e.url for e in clicks}
        assert len(urls) == len(clicks)  # every link once
        campaign = events[0].campaign_id
        assert links_by_campaign.setdefault(campaign, urls) == urls  # the same for everyone
        times = [e.occurred_at.timestamp() for e in events]
        assert times == sorted(times)
        assert 0.2 <= times[0] - delivered[message] <= 5.0
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.049 < gap < 0.601 for gap in gaps)  # a second link within ~2 s
        assert len({e.user_agent for e in events}) == 1  # one scan, one user agent
        scanned_leads.add(sim.person_of(events[0]))
    for lead in scanned_leads:
        truth = sim.truth[lead]
        assert truth.link_scanner is not None or truth.persona == "email_scanner_bot"
    people = [lead for lead, t in sim.truth.items() if t.link_scanner is not None]
    assert people
    inboxes = delivered_messages(sim)
    for lead in people:  # every delivered message of a scanned recipient is scanned
        assert all(message in by_message for message in inboxes[lead][:-1])


def test_machine_is_set_only_where_ingest_would_set_it() -> None:
    sim = simulate(SimConfig(seed=3, leads=600, machine_open_rate=0.4, scanner_rate=0.3))
    gateways = {g.name: g for g in GATEWAYS}
    flagged: Counter[str] = Counter()
    total: Counter[str] = Counter()
    reasons: dict[str, set[str]] = defaultdict(set)
    for i, event in enumerate(sim.events):
        if not isinstance(event, EmailOpened | EmailClicked):
            assert event.machine is None
            continue
        maker = sim.maker(i)
        flag = event.machine_open if isinstance(event, EmailOpened) else event.machine_click
        if maker is None:  # a person's open or click: nothing marks it
            assert not marked_at_ingest(event)
            assert event.user_agent is not None
            continue
        total[maker] += 1
        flagged[maker] += flag
        if flag:
            name = "sg_machine_open" if isinstance(event, EmailOpened) else "machine_click"
            assert event.machine == f"vendor flag: {name}"
            continue
        if maker == PRIVACY_PROXY:
            assert event.machine is None  # a bare user agent from an unlisted address
            continue
        gateway = sim.truth[sim.person_of(event)].link_scanner
        reasons[gateway or "persona"].add(str(event.machine))
        if gateway is not None:
            assert event.user_agent in gateways[gateway].agents
        assert event.machine == machine.classify(user_agent=event.user_agent) or (
            str(event.machine).startswith("address of ")
        )
    assert reasons["microsoft"] == {"address of Microsoft Exchange Online Protection"}
    assert reasons["barracuda"] == {"address of Barracuda Email Security Service"}
    assert all(r.startswith("user agent: ") for r in reasons["self-announcing"])
    assert reasons["sandbox"] == {"None"}  # only its timing gives it away
    assert reasons["persona"] == {"user agent: a scanner"}
    assert flagged[PRIVACY_PROXY] / total[PRIVACY_PROXY] == pytest.approx(0.6, abs=0.06)
    assert flagged[LINK_SCANNER] / total[LINK_SCANNER] == pytest.approx(0.4, abs=0.1)


@pytest.mark.parametrize("flag_rate", [0.0, 1.0])
def test_flag_rates_set_how_much_the_platform_flags(flag_rate: float) -> None:
    config = SimConfig(
        seed=9,
        leads=150,
        machine_open_rate=0.4,
        scanner_rate=0.3,
        proxy_flag_rate=flag_rate,
        scanner_flag_rate=flag_rate,
    )
    counts = machine_counts(generate(config))
    assert counts.precision == 1.0
    if flag_rate:
        assert counts.marked == counts.machine_events
        assert counts.recall == 1.0
    else:
        assert counts.marked_proxy == 0
        assert "vendor flag" not in counts.reasons
        assert 0 < counts.scanner_recall < 1


def test_scraper_page_views_are_known_to_be_a_machines() -> None:
    sim = simulate()
    scraped = {sim.person_of(e) for i, e in enumerate(sim.events) if sim.maker(i) == WEB_SCRAPER}
    assert scraped
    assert {sim.truth[lead].persona for lead in scraped} == {"web_scraper_bot"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"machine_open_rate": 1.0},
        {"machine_open_rate": -0.1},
        {"scanner_rate": 1.5},
        {"proxy_flag_rate": -0.1},
        {"scanner_flag_rate": 2.0},
    ],
)
def test_invalid_machine_rates_are_refused(overrides: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SimConfig(**overrides)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- truth files


def test_truth_files_carry_the_machines(tmp_path: Path) -> None:
    sim = simulate(SimConfig(seed=7, leads=80, machine_open_rate=0.4, scanner_rate=0.3))
    path = tmp_path / "traffic.truth.csv"
    write_truth(sim.truth, path)
    assert read_truth(path) == sim.truth
    assert any(t.privacy_proxy for t in sim.truth.values())
    assert any(t.link_scanner for t in sim.truth.values())

    events = event_truth_path_for(path)
    assert events.name == "traffic.truth.events.csv"
    rows = read_event_truth(events) if write_event_truth(sim, events) else []
    made = Counter(row["made_by"] for row in rows)
    counts = machine_counts(sim)
    assert made[PRIVACY_PROXY] == counts.proxy_opens
    assert made[LINK_SCANNER] == counts.scanner_opens + counts.scanner_clicks
    assert made["person"] == counts.marked - counts.marked_proxy - counts.marked_scanner == 0
    assert made[WEB_SCRAPER] > 0
    assert sum(1 for row in rows if row["machine"]) == counts.marked
    by_id = {e.event_id: e for e in sim.events}
    for row in rows:
        event = by_id[row["event_id"]]
        assert row["type"] == event.type
        assert row["lead_id"] == sim.person_of(event)
        assert row["machine"] == (event.machine or "")
        assert datetime.fromisoformat(row["occurred_at"]) == event.occurred_at


def test_an_older_truth_file_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "old.truth.csv"
    path.write_text("lead_id,persona,converted\nlead-1,ideal_buyer,1\n")
    truth = read_truth(path)["lead-1"]
    assert truth == ("ideal_buyer", True, False, None)
