"""`simulate --report` with machines: AUC clean, classified and not, and the marking at ingest."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.events import EmailClicked, EmailOpened, EventBase, PageViewed
from stream.cli import main
from stream.model_files import load_default_models
from stream.simulate.report import build_report, scoring_machine_events
from stream.simulate.sinks import read_event_truth, read_jsonl, read_truth
from stream.simulate.traffic import (
    DEFAULT_START,
    LINK_SCANNER,
    LeadTruth,
    SimConfig,
    Simulation,
    generate,
)

CONFIG = SimConfig(seed=1, leads=4, days=10)
SCANNER = "address of Microsoft Exchange Online Protection"


class _Events:
    """Builds a hand-made simulation's events and their makers."""

    def __init__(self) -> None:
        self.events: list[EventBase] = []
        self.made_by: list[str | None] = []

    def add(
        self, day: float, cls: type[EventBase], made_by: str | None = None, **fields: Any
    ) -> None:
        self.events.append(
            cls(
                event_id=str(uuid.UUID(int=len(self.events) + 1, version=4)),
                occurred_at=DEFAULT_START + timedelta(days=day),
                source="web" if cls is PageViewed else "sendgrid",
                **fields,
            )
        )
        self.made_by.append(made_by)

    def simulation(self) -> Simulation:
        order = sorted(range(len(self.events)), key=lambda i: self.events[i].occurred_at)
        truth = {
            "lead-a": LeadTruth("ideal_buyer", True),
            "lead-b": LeadTruth("ideal_buyer", True),
            "lead-c": LeadTruth("researcher", False, link_scanner="microsoft"),
            "lead-d": LeadTruth("researcher", False, link_scanner="microsoft"),
        }
        return Simulation(
            CONFIG,
            [self.events[i] for i in order],
            [],
            [],
            truth,
            made_by=[self.made_by[i] for i in order],
        )


def tiny() -> tuple[Simulation, Simulation]:
    """Two converters who read the pricing page, two others who glance at the home page and
    whose gateway clicks every link; the clean traffic is the people's events alone."""
    people = _Events()
    both = _Events()
    for events in (people, both):
        for lead, path in (("a", "/pricing"), ("b", "/pricing"), ("c", "/"), ("d", "/")):
            events.add(
                5, PageViewed, lead_id=f"lead-{lead}", url=f"https://x.example{path}", path=path
            )
    # A person's open that ingest wrongly marks (a false positive).
    both.add(5.5, EmailOpened, lead_id="lead-a", machine="user agent: a bot", user_agent="bot")
    for lead in ("c", "d"):
        for day in (6, 7, 8):
            for n in range(5):  # a minute apart: no burst
                both.add(
                    day + n / 1440,
                    EmailClicked,
                    made_by=LINK_SCANNER,
                    lead_id=f"lead-{lead}",
                    url=f"https://x.example/l{n}",
                    machine=SCANNER,
                )
    # One scanner click nothing marked.
    both.add(9, EmailClicked, made_by=LINK_SCANNER, lead_id="lead-c", url="https://x.example/l9")
    return both.simulation(), people.simulation()


def test_classification_wins_back_what_machines_cost() -> None:
    sim, clean = tiny()
    report = build_report(sim, load_default_models(), clean=clean)
    for model in report.models:
        assert model.auc_clean == 1.0
        assert model.auc == 1.0  # the marked clicks do not score
        assert model.auc_unclassified == 0.0  # scored as a person's, they outrank the buyers
    m = report.machines
    assert m is not None
    assert m.machine_events == m.scanner_clicks == 31
    assert m.people_opens == 1
    assert m.marked == 31
    assert m.marked_scanner == 30
    assert m.precision == pytest.approx(30 / 31)
    assert m.recall == pytest.approx(30 / 31)
    assert m.reasons == {"address": 30, "user agent": 1}
    assert math.isnan(m.proxy_recall)
    for model in report.models:
        assert model.moved == 1  # the unmarked click moved lead-c
        assert model.moved_unclassified == 2  # the scanned leads (a's open is below a point)
    rendered = report.render()
    for text in (
        "clean",
        "machines, classified",
        "machines, not classified",
        "1.000 +0.000",
        "0.000 -1.000",
        "precision 0.968, recall 0.968",
        "marked at ingest: 31 (address 30, user agent 1)",
        "leads whose total the machines moved by a point or more",
    ):
        assert text in rendered, text


def test_not_classified_is_the_same_model_scoring_machine_events() -> None:
    models = load_default_models()
    changed = scoring_machine_events(models)
    assert changed.ids == models.ids
    for before, after in zip(models.models, changed.models, strict=True):
        assert before.spam.ignore_machine_events
        assert not after.spam.ignore_machine_events
        assert not after.compiled.ignore_machine
        assert before.compiled.ignore_machine
        assert after.decay == before.decay
        assert after.model_dump(exclude={"spam"}) == before.model_dump(exclude={"spam"})


def test_fully_flagged_machines_cost_nothing_once_classified() -> None:
    config = SimConfig(
        seed=5,
        leads=120,
        machine_open_rate=0.5,
        scanner_rate=0.4,
        proxy_flag_rate=1.0,
        scanner_flag_rate=1.0,
    )
    report = build_report(generate(config), load_default_models())
    assert report.machines is not None
    assert report.machines.recall == 1.0
    for model in report.models:
        assert model.auc == model.auc_clean
        assert model.moved == 0
        assert model.moved_unclassified > 0
        assert not math.isnan(model.auc_unclassified)


def test_without_machine_rates_the_clean_traffic_is_the_traffic() -> None:
    config = SimConfig(seed=5, leads=60, machine_open_rate=0.0)
    report = build_report(generate(config), load_default_models())
    assert report.machines is not None
    assert report.machines.proxy_opens == 0
    assert report.machines.scanner_clicks > 0  # the email-scanner-bot persona
    for model in report.models:
        assert model.auc == model.auc_clean


def test_simulate_command_takes_the_machine_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "traffic.jsonl"
    argv = ["simulate", "--leads", "40", "--seed", "7", "--out", str(out), "--report"]
    argv += ["--machine-open-rate", "0.3", "--scanner-rate", "0.25", "--proxy-flag-rate", "0.5"]
    assert main(argv) == 0
    config = SimConfig(
        seed=7, leads=40, machine_open_rate=0.3, scanner_rate=0.25, proxy_flag_rate=0.5
    )
    sim = generate(config)
    assert read_jsonl(out) == sim.deliveries
    assert read_truth(tmp_path / "traffic.truth.csv") == sim.truth
    rows = read_event_truth(tmp_path / "traffic.truth.events.csv")
    assert len(rows) == sum(1 for i in range(len(sim.events)) if sim.maker(i) is not None)
    captured = capsys.readouterr()
    assert "machines, not classified" in captured.out
    assert "marked at ingest" in captured.out
    assert "link scanners in front of 25.0%" in captured.out
    assert "machine-made email opens and clicks" in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--report", "--machine-open-rate", "1"],
        ["simulate", "--report", "--scanner-rate", "1.5"],
        ["simulate", "--report", "--proxy-flag-rate", "-0.5"],
    ],
)
def test_machine_rates_out_of_range_are_usage_errors(argv: list[str]) -> None:
    assert main(argv) == 2
