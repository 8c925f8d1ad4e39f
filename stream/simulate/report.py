"""How well scoring models rank simulated converters: `leadstream simulate --report`.

The simulation's valid events are scored offline through the pure core (`stream.scoring`), one
lead at a time in occurrence order; anonymous events count toward the lead they are later
identified as. Each lead's total score under each model is read at the end of simulated time and
compared with the ground truth: the area under the ROC curve (the chance that a random converter
outscores a random non-converter) and, per persona, the mean score and the share of leads that
reached MQL and SQL (or a later stage) at some point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.stages import Stage
from stream.scoring import LeadState, ModelSet, apply_all, score_at
from stream.simulate.traffic import PERSONAS, Simulation

__all__ = ["LeadScore", "ModelReport", "PersonaRow", "Report", "auc", "build_report", "score_leads"]

_MQL_OR_LATER = frozenset(
    {Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER, Stage.EVANGELIST}
)
_SQL_OR_LATER = frozenset({Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER, Stage.EVANGELIST})


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


@dataclass(frozen=True)
class LeadScore:
    """A lead's result under one model at the end of simulated time."""

    total: float
    reached_mql: bool
    reached_sql: bool


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
    personas: tuple[PersonaRow, ...]


@dataclass(frozen=True)
class Report:
    leads: int
    converted: int
    events: int
    models: tuple[ModelReport, ...]

    def render(self) -> str:
        """The report as plain text tables."""
        lines = [
            f"{self.leads} leads, {self.converted} converted, {self.events} valid events; "
            "scores read at the end of simulated time",
            "",
            "model        AUC (converted vs not, total score)",
        ]
        lines += [f"{m.model:12s} {m.auc:.3f}" for m in self.models]
        for m in self.models:
            lines += [
                "",
                f"model {m.model}",
                f"{'persona':20s} {'leads':>6s} {'conv%':>6s} {'mean':>8s} "
                f"{'MQL%':>6s} {'SQL%':>6s}",
            ]
            for row in m.personas:
                conv = 100 * row.converted / row.leads if row.leads else 0.0
                lines.append(
                    f"{row.persona:20s} {row.leads:6d} {conv:6.1f} {row.mean_score:8.1f} "
                    f"{100 * row.mql_share:6.1f} {100 * row.sql_share:6.1f}"
                )
        return "\n".join(lines)


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
            )
        out[lead_id] = scores
    return out


def build_report(simulation: Simulation, models: ModelSet) -> Report:
    """Score the simulation under `models` and compare with its ground truth."""
    scored = score_leads(simulation, models)
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
        reports.append(ModelReport(model_id, auc([r.total for r in results], labels), tuple(rows)))
    return Report(len(leads), sum(labels), len(simulation.events), tuple(reports))
