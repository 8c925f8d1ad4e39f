"""How well scoring models rank simulated converters: `leadstream simulate --report`.

The simulation's valid events are scored offline through the pure core (`stream.scoring`), one
lead at a time in occurrence order; anonymous events count toward the lead they are later
identified as. Each lead's total score under each model is read at the end of simulated time and
compared with the ground truth: the area under the ROC curve (the chance that a random converter
outscores a random non-converter) and, per persona, the mean score and the share of leads that
reached MQL and SQL (or a later stage) at some point.

Machines in front of people's mail (privacy proxies, link scanners; see
`stream.simulate.traffic`) are measured three ways, so what they cost and what classifying them
wins back read off one report:

- clean: the same seed with no privacy proxy and no link scanner (the same people doing the same
  things; the email-scanner-bot persona stays);
- classified: the traffic with machines, under the models as they are (events marked as a
  machine's never score);
- not classified: the same traffic under the same models with `spam.ignore_machine_events:
  false` (every machine-made open and click scores as a person's).

Accounts: when the model file has an `accounts:` section, the leads are rolled up to their
accounts through the core (`stream.scoring.account_history`) and each account's score at the end
is compared with whether the account bought (one of its buying group converted): the account
AUC, and per account stage how many accounts reached it and how many of those bought.

And the marking at ingest (the events' `machine` field and the sources' machine flags) is
compared with the ground truth (`Simulation.made_by`): how many machine-made opens and clicks
there were, how many were marked, precision and recall; and, per model, how many leads' totals
the machines moved by a point or more against the clean traffic (what is left for a judgement
downstream of ingest to catch).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from schemas.stages import AccountStage, Stage
from stream.scoring import LeadState, ModelSet, ScoringModel, apply_all, score_at
from stream.scoring.account_history import score_accounts
from stream.scoring.accounts import rules_of
from stream.simulate.traffic import (
    LINK_SCANNER,
    PERSONAS,
    PRIVACY_PROXY,
    Simulation,
    generate,
    marked_at_ingest,
)

__all__ = [
    "AccountReport",
    "LeadScore",
    "MachineCounts",
    "ModelReport",
    "PersonaRow",
    "Report",
    "auc",
    "build_report",
    "machine_counts",
    "marked_at_ingest",
    "score_leads",
    "scoring_machine_events",
]

_MQL_OR_LATER = frozenset(
    {Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER, Stage.EVANGELIST}
)
_SQL_OR_LATER = frozenset({Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER, Stage.EVANGELIST})
_MAIL_ENGAGEMENT = frozenset({"email_opened", "email_clicked"})
_SCANNER_BOT = "email_scanner_bot"


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney U; ties count half); NaN without both
    classes."""
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    positives = sum(1 for label in labels if label)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return float("nan")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mid_rank = (i + j) / 2 + 1  # ranks are 1-based; tied scores share the mean rank
        rank_sum += mid_rank * sum(1 for k in order[i : j + 1] if labels[k])
        i = j + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _reason_kind(reason: str | None) -> str:
    """`vendor flag`, `address`, `user agent` or the reason itself (a marked event without a
    reason carries only the source's flag)."""
    if reason is None or reason.startswith("vendor flag"):
        return "vendor flag"
    if reason.startswith("address of"):
        return "address"
    if "user agent" in reason:
        return "user agent"
    return reason


def _delta(value: float) -> str:
    """A signed difference to three places, without a negative zero."""
    return f"{round(value, 3) + 0.0:+.3f}"


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


@dataclass(frozen=True)
class MachineCounts:
    """Email opens and clicks by who made them, and what ingest marked."""

    people_opens: int
    people_clicks: int
    proxy_opens: int
    scanner_opens: int
    scanner_clicks: int
    """Link scanners' opens and clicks (the email-scanner-bot persona's included)."""
    marked: int
    """Opens and clicks marked as a machine's at ingest (`marked_at_ingest`)."""
    marked_proxy: int
    marked_scanner: int
    reasons: dict[str, int]
    """Marked events by the kind of reason: `vendor flag`, `address`, `user agent`, ..."""
    recipients: int
    """Leads the campaign was delivered to (the email-scanner-bot persona aside)."""
    proxied: int
    """Recipients whose mail goes through a privacy proxy."""
    scanned: int
    """Recipients behind a link-scanning gateway."""

    @property
    def machine_events(self) -> int:
        return self.proxy_opens + self.scanner_opens + self.scanner_clicks

    @property
    def proxy_share(self) -> float:
        """Share of the opens of people's mail a privacy proxy made (`machine_open_rate`)."""
        return _ratio(self.proxy_opens, self.proxy_opens + self.people_opens)

    @property
    def scanned_share(self) -> float:
        """Share of the recipients behind a link scanner (`scanner_rate`)."""
        return _ratio(self.scanned, self.recipients)

    @property
    def precision(self) -> float:
        """Of the events marked at ingest, the share a machine made."""
        return _ratio(self.marked_proxy + self.marked_scanner, self.marked)

    @property
    def recall(self) -> float:
        """Of the events a machine made, the share marked at ingest."""
        return _ratio(self.marked_proxy + self.marked_scanner, self.machine_events)

    @property
    def proxy_recall(self) -> float:
        return _ratio(self.marked_proxy, self.proxy_opens)

    @property
    def scanner_recall(self) -> float:
        return _ratio(self.marked_scanner, self.scanner_opens + self.scanner_clicks)


def machine_counts(simulation: Simulation) -> MachineCounts:
    """Count the simulation's email opens and clicks by maker and by marking at ingest."""
    made: Counter[tuple[str, str | None]] = Counter()
    marked: Counter[str | None] = Counter()
    reasons: Counter[str] = Counter()
    recipients: set[str] = set()
    for index, event in enumerate(simulation.events):
        if event.type == "email_delivered":
            recipients.add(simulation.person_of(event))
        if event.type not in _MAIL_ENGAGEMENT:
            continue
        maker = simulation.maker(index)
        made[event.type, maker] += 1
        if marked_at_ingest(event):
            marked[maker] += 1
            reasons[_reason_kind(event.machine)] += 1
    truth = simulation.truth
    people = {lead for lead in recipients if truth[lead].persona != _SCANNER_BOT}
    return MachineCounts(
        people_opens=made["email_opened", None],
        people_clicks=made["email_clicked", None],
        proxy_opens=made["email_opened", PRIVACY_PROXY],
        scanner_opens=made["email_opened", LINK_SCANNER],
        scanner_clicks=made["email_clicked", LINK_SCANNER],
        marked=sum(marked.values()),
        marked_proxy=marked[PRIVACY_PROXY],
        marked_scanner=marked[LINK_SCANNER],
        reasons=dict(reasons.most_common()),
        recipients=len(people),
        proxied=sum(1 for lead in people if truth[lead].privacy_proxy),
        scanned=sum(1 for lead in people if truth[lead].link_scanner is not None),
    )


def scoring_machine_events(models: ModelSet) -> ModelSet:
    """The same models with `spam.ignore_machine_events: false`: every open and click marked
    as a machine's scores as a person's."""
    changed = []
    for model in models.models:
        fields = {name: getattr(model, name) for name in type(model).model_fields}
        # Re-validated (and compiled) like a parsed model; half-lives are read back from text.
        fields["decay"] = {
            group: None if half_life is None else f"{half_life:.9f}s"
            for group, half_life in model.decay.items()
        }
        fields["spam"] = model.spam.model_copy(update={"ignore_machine_events": False})
        changed.append(ScoringModel.model_validate(fields))
    return ModelSet(models=tuple(changed))


@dataclass(frozen=True)
class LeadScore:
    """A lead's result under one model at the end of simulated time."""

    total: float
    reached_mql: bool
    reached_sql: bool
    not_scored: int = 0
    """Events the model did not score because a machine made them (marked, or by timing)."""


@dataclass(frozen=True)
class PersonaRow:
    persona: str
    leads: int
    converted: int
    mean_score: float
    mql_share: float
    sql_share: float


@dataclass(frozen=True)
class ModelReport:
    model: str
    auc: float
    """On the simulated traffic, under the model as it is (machine-marked events skipped when
    it says so, the default)."""
    personas: tuple[PersonaRow, ...]
    auc_unclassified: float = math.nan
    """The same traffic with `spam.ignore_machine_events: false`."""
    auc_clean: float = math.nan
    """The same seed without privacy proxies and link scanners, under the model as it is."""
    moved: int = 0
    """Leads whose total the machines moved by a point or more against the clean traffic,
    under the model as it is."""
    moved_unclassified: int = 0
    """The same, with `spam.ignore_machine_events: false`."""
    not_scored: int = 0
    """Events the model did not score as a person's: marked at ingest or judged by their
    timing (`spam.machine_timing`)."""


@dataclass(frozen=True)
class AccountReport:
    """How the account scores rank the accounts that bought."""

    model: str
    accounts: int
    bought: int
    auc: float
    """Bought vs not, by account score at the end of simulated time."""
    stages: tuple[tuple[str, int, int], ...]
    """Per account stage: the accounts in it at the end, and how many of them bought."""

    def lines(self) -> list[str]:
        out = [
            "",
            f"accounts: {self.accounts} buying groups, {self.bought} bought; account AUC "
            f"(bought vs not, account score under {self.model}): {self.auc:.3f}",
            f"{'account stage':20s} {'accounts':>8s} {'bought%':>8s}",
        ]
        for stage, n, bought in self.stages:
            share = 100 * bought / n if n else 0.0
            out.append(f"{stage:20s} {n:8d} {share:8.1f}")
        return out


def account_report(simulation: Simulation, models: ModelSet) -> AccountReport | None:
    """The account AUC and stages (`None` without an accounts section or buying groups)."""
    if models.accounts is None or not simulation.accounts:
        return None
    end = simulation.config.end
    scored = score_accounts(simulation.events, models, until=end)
    rules = rules_of(models)
    names = sorted(simulation.accounts)
    scores, stages = [], []
    for name in names:
        state = scored.accounts.get(name)
        scores.append(state.view(rules, end.timestamp()).score if state is not None else 0.0)
        stages.append(state.stage.value if state is not None else "none")
    labels = [simulation.accounts[name].bought for name in names]
    order = [stage.value for stage in AccountStage]
    counted = Counter(stages)
    rows = tuple(
        (
            stage,
            counted[stage],
            sum(1 for s, b in zip(stages, labels, strict=True) if s == stage and b),
        )
        for stage in order
        if counted[stage]
    )
    return AccountReport(models.accounts.model, len(names), sum(labels), auc(scores, labels), rows)


@dataclass(frozen=True)
class Report:
    leads: int
    converted: int
    events: int
    models: tuple[ModelReport, ...]
    machines: MachineCounts | None = None
    accounts: AccountReport | None = None

    def render(self) -> str:
        """The report as plain text tables."""
        lines = [
            f"{self.leads} leads, {self.converted} converted, {self.events} valid events; "
            "scores read at the end of simulated time",
        ]
        if self.machines is not None:
            lines += self._machine_lines(self.machines)
        lines += [
            "",
            "model        AUC (converted vs not, total score)",
            f"{'':12s} {'clean':>6s}  {'machines, classified':>20s}  "
            f"{'machines, not classified':>24s}",
        ]
        for m in self.models:
            classified = _delta(m.auc - m.auc_clean)
            unclassified = _delta(m.auc_unclassified - m.auc_clean)
            lines.append(
                f"{m.model:12s} {m.auc_clean:6.3f}  {m.auc:13.3f} {classified:>6s}  "
                f"{m.auc_unclassified:17.3f} {unclassified:>6s}"
            )
        lines += [
            "clean: the same seed without privacy proxies and link scanners; classified: the",
            "models as they are (events marked as a machine's, or told by their timing, do not",
            "score); not classified: spam.ignore_machine_events false (they score as a person's)",
            "",
            "model        leads whose total the machines moved by a point or more",
            f"{'':12s} {'classified':>10s}  {'not classified':>14s}",
        ]
        lines += [f"{m.model:12s} {m.moved:10d}  {m.moved_unclassified:14d}" for m in self.models]
        lines += [
            "",
            "model        events not scored as a person's (marked at ingest or told by timing)",
        ]
        lines += [f"{m.model:12s} {m.not_scored:10d}" for m in self.models]
        for m in self.models:
            lines += [
                "",
                f"model {m.model} (machines, classified)",
                f"{'persona':20s} {'leads':>6s} {'conv%':>6s} {'mean':>8s} "
                f"{'MQL%':>6s} {'SQL%':>6s}",
            ]
            for row in m.personas:
                conv = 100 * row.converted / row.leads if row.leads else 0.0
                lines.append(
                    f"{row.persona:20s} {row.leads:6d} {conv:6.1f} {row.mean_score:8.1f} "
                    f"{100 * row.mql_share:6.1f} {100 * row.sql_share:6.1f}"
                )
        if self.accounts is not None:
            lines += self.accounts.lines()
        return "\n".join(lines)

    def _machine_lines(self, m: MachineCounts) -> list[str]:
        reasons = ", ".join(f"{kind} {n}" for kind, n in m.reasons.items()) or "none"
        return [
            f"machines on people's mail: privacy proxies made {100 * m.proxy_share:.1f}% of "
            f"their opens ({m.proxied} of {m.recipients} recipients proxied); link scanners "
            f"in front of {100 * m.scanned_share:.1f}% of them ({m.scanned})",
            f"email opens and clicks: {m.people_opens + m.people_clicks} by people, "
            f"{m.machine_events} by machines ({m.proxy_opens} privacy-proxy opens, "
            f"{m.scanner_opens} scanner opens, {m.scanner_clicks} scanner clicks; the "
            "email-scanner-bot persona's included)",
            f"marked at ingest: {m.marked} ({reasons}); precision {m.precision:.3f}, recall "
            f"{m.recall:.3f} (privacy-proxy opens {m.proxy_recall:.3f}, link scanners "
            f"{m.scanner_recall:.3f})",
        ]


def score_leads(simulation: Simulation, models: ModelSet) -> dict[str, dict[str, LeadScore]]:
    """Every lead's score under every model at the end of simulated time."""
    end = simulation.config.end
    out: dict[str, dict[str, LeadScore]] = {}
    for lead_id, events in simulation.events_by_lead().items():
        state: LeadState | None = None
        for event in events:
            state = apply_all(state, event, models=models, lead_id=lead_id).state
        scores: dict[str, LeadScore] = {}
        for model_id in models.ids:
            model_state = state.models.get(model_id) if state is not None else None
            if model_state is None:
                scores[model_id] = LeadScore(0.0, reached_mql=False, reached_sql=False)
                continue
            stages = {entry.to_stage for entry in model_state.history} | {model_state.stage}
            scores[model_id] = LeadScore(
                score_at(model_state, end).total,
                reached_mql=bool(stages & _MQL_OR_LATER),
                reached_sql=bool(stages & _SQL_OR_LATER),
                not_scored=model_state.machine[0] if model_state.machine is not None else 0,
            )
        out[lead_id] = scores
    return out


def _auc(simulation: Simulation, scored: dict[str, dict[str, LeadScore]], model_id: str) -> float:
    leads = list(simulation.truth)
    return auc(
        [scored[lead][model_id].total for lead in leads],
        [simulation.truth[lead].converted for lead in leads],
    )


def _moved(
    scored: dict[str, dict[str, LeadScore]],
    clean: dict[str, dict[str, LeadScore]],
    model_id: str,
) -> int:
    """Leads (of both) whose total differs by a point or more."""
    return sum(
        1
        for lead, scores in scored.items()
        if lead in clean and abs(scores[model_id].total - clean[lead][model_id].total) >= 1.0
    )


def build_report(
    simulation: Simulation, models: ModelSet, *, clean: Simulation | None = None
) -> Report:
    """Score the simulation under `models` and compare with its ground truth.

    `clean` is the same traffic without machines in front of people's mail: by default the
    same configuration with both machine rates at 0 (the simulation itself when they are).
    """
    if clean is None:
        config = simulation.config
        clean = generate(config.without_machines()) if config.has_machines else simulation
    scored = score_leads(simulation, models)
    unclassified = score_leads(simulation, scoring_machine_events(models))
    clean_scored = scored if clean is simulation else score_leads(clean, models)
    leads = list(simulation.truth)
    labels = [simulation.truth[lead].converted for lead in leads]
    reports = []
    for model_id in models.ids:
        results = [scored[lead][model_id] for lead in leads]
        rows = []
        for persona in PERSONAS:
            mine = [
                (r, t)
                for r, t in zip(results, (simulation.truth[lead] for lead in leads), strict=True)
                if t.persona == persona
            ]
            if not mine:
                continue
            n = len(mine)
            rows.append(
                PersonaRow(
                    persona=persona,
                    leads=n,
                    converted=sum(1 for _, t in mine if t.converted),
                    mean_score=sum(r.total for r, _ in mine) / n,
                    mql_share=sum(1 for r, _ in mine if r.reached_mql) / n,
                    sql_share=sum(1 for r, _ in mine if r.reached_sql) / n,
                )
            )
        reports.append(
            ModelReport(
                model_id,
                auc([r.total for r in results], labels),
                tuple(rows),
                auc_unclassified=_auc(simulation, unclassified, model_id),
                auc_clean=_auc(clean, clean_scored, model_id),
                moved=_moved(scored, clean_scored, model_id),
                moved_unclassified=_moved(unclassified, clean_scored, model_id),
                not_scored=sum(r.not_scored for r in results),
            )
        )
    return Report(
        len(leads),
        sum(labels),
        len(simulation.events),
        tuple(reports),
        machines=machine_counts(simulation),
        accounts=account_report(simulation, models),
    )
