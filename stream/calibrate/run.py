"""The calibration pipeline: split, fit, choose thresholds, check against the stream, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from stream.calibrate.export import model_file, replay
from stream.calibrate.scorecard import Options, Scorecard, fit_scorecard
from stream.calibrate.table import Table
from stream.scoring import ModelSet, parse_models

__all__ = ["Calibration", "calibrate"]


@dataclass
class Calibration:
    """Everything a calibration produced: the scorecard, the model file and the evidence."""

    table: Table
    card: Scorecard
    yaml_text: str
    model_id: str
    train: Any
    """Row positions of the training split (numpy array)."""
    test: Any
    test_scores: Any
    """The scorecard's integer totals of the held-out rows."""
    test_probability: Any
    mql_at: float
    sql_at: float
    auc_probability: float
    """Held-out AUC of the regression's probabilities."""
    auc_points: float
    """Held-out AUC of the integer scorecard (what the stream computes)."""
    stream_auc: float | None = None
    """Held-out AUC of the scores the pure core gives the replayed events."""
    stream_rows: int = 0
    stream_offline_auc: float = float("nan")
    """The offline scorecard's AUC on the same replayed leads."""
    current_auc: float | None = None
    """Held-out AUC of the current model's ranking, when one was given to compare with."""
    notes: list[str] = field(default_factory=list)

    @property
    def models(self) -> ModelSet:
        return parse_models(self.yaml_text, source="calibrated model")


def _top(scores: Any, share: float) -> float:
    """The lowest score of the top `share` of leads (a whole number of points)."""
    return float(np.floor(np.quantile(scores, 1.0 - share)))


def calibrate(
    table: Table,
    *,
    options: Options | None = None,
    model_id: str = "calibrated",
    version: str = "1",
    holdout: float = 0.25,
    mql_top: float = 0.2,
    sql_top: float = 0.05,
    stream_check: int | None = None,
) -> Calibration:
    """Fit on a seeded stratified split and evaluate on the held-out rows.

    `stream_check`: how many held-out rows to replay through the pure core (None: all, 0: none).
    """
    options = options or Options()
    positions = np.arange(len(table.target))
    train, test = train_test_split(
        positions, test_size=holdout, stratify=table.target, random_state=options.seed
    )
    frame = table.frame
    y = table.target
    card = fit_scorecard(
        table.features, frame.iloc[train].reset_index(drop=True), y[train], options
    )
    train_frame = frame.iloc[train].reset_index(drop=True)
    test_frame = frame.iloc[test].reset_index(drop=True)
    train_fit, train_engagement = card.points(train_frame)
    train_total = train_fit + train_engagement
    mql_at = _top(train_total, mql_top)
    sql_at = max(_top(train_total, sql_top), mql_at)
    grades_fit = [float(np.floor(np.quantile(train_fit, q))) for q in (0.75, 0.5, 0.25)]
    grades_eng = [float(np.floor(np.quantile(train_engagement, q))) for q in (0.75, 0.5, 0.25)]
    description = (
        f"Learned from {len(train)} leads ({int(y[train].sum())} converted, target "
        f"{table.target_name} = {table.positive}) by logistic regression on binned features. "
        f"{options.pdo:g} points double the odds of converting; a total of "
        f"{card.base_score:.0f} means odds of {options.base_odds:g}:1."
    )
    text = model_file(
        card,
        model_id=model_id,
        version=version,
        description=description,
        mql_at=mql_at,
        sql_at=sql_at,
        fit_grades=grades_fit,
        engagement_grades=grades_eng,
    )
    test_scores = card.total(test_frame)
    probability = card.probability(test_frame)
    result = Calibration(
        table=table,
        card=card,
        yaml_text=text,
        model_id=model_id,
        train=train,
        test=test,
        test_scores=test_scores,
        test_probability=probability,
        mql_at=mql_at,
        sql_at=sql_at,
        auc_probability=float(roc_auc_score(y[test], probability)),
        auc_points=float(roc_auc_score(y[test], test_scores)),
    )
    limit = len(test) if stream_check is None else min(stream_check, len(test))
    if limit:
        rows = test_frame.iloc[:limit].to_dict("records")
        streamed = replay(rows, card.event_features(), result.models, model_id)
        labels = y[test][:limit]
        if 0 < labels.sum() < len(labels):
            result.stream_auc = float(roc_auc_score(labels, streamed))
            result.stream_rows = limit
            result.stream_offline_auc = float(roc_auc_score(labels, test_scores[:limit]))
    return result
