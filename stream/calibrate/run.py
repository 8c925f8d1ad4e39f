"""The calibration pipeline: split, fit, choose thresholds, check against the stream, report.

The held-out split is seeded and stratified; `holdout=0` fits on every row (the figures are
then the training leads' and the cross-validated AUC is the honest one). A split that cannot
hold enough converted and other leads on both sides is refused with the share that would.

The stream check scores held-out rows as `leadstream score` scores a file (`score`): each raw
row mapped to events by reading the written model file, every event through the scoring core.
It stops when its time is up, keeping the leads it finished.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from stream.calibrate.export import model_file
from stream.calibrate.score import score_table
from stream.calibrate.scorecard import Options, Progress, Scorecard, fit_scorecard
from stream.calibrate.table import CalibrationError, Table
from stream.scoring import ModelSet, parse_models

__all__ = [
    "MIN_HELD_OUT",
    "STREAM_SECONDS",
    "Calibration",
    "calibrate",
    "check_holdout",
    "grade_cuts",
]

MIN_HELD_OUT = 10
"""The held-out split, and the training split, hold at least this many converted leads and
this many others."""
STREAM_SECONDS = 60.0
"""How long the stream check may take by default."""


@dataclass
class Calibration:
    """Everything a calibration produced: the scorecard, the model file and the evidence."""

    fit_grades: list[float]
    """The cut points of fit grades A, B and C (D below)."""
    engagement_grades: list[float]
    """The cut points of engagement grades 1, 2 and 3 (4 below)."""
    table: Table
    card: Scorecard
    yaml_text: str
    model_id: str
    train: Any
    """Row positions of the training split (numpy array)."""
    test: Any
    """Row positions of the held-out split (empty with a holdout of 0)."""
    test_scores: Any
    """The scorecard's integer totals of the evaluated rows (`evaluated`)."""
    test_probability: Any
    mql_at: float
    sql_at: float
    auc_probability: float
    """AUC of the regression's probabilities on the evaluated rows."""
    auc_points: float
    """AUC of the integer scorecard (what the stream computes) on the evaluated rows."""
    stream_auc: float | None = None
    """AUC of the scores the core gives the evaluated rows' events."""
    stream_rows: int = 0
    """How many evaluated rows the stream check scored."""
    stream_asked: int = 0
    """How many it was to score (more than `stream_rows` when its time ran out)."""
    stream_differ: int = 0
    """Leads whose streamed total differs from the offline scorecard's (0: the same)."""
    stream_seconds: float = 0.0
    stream_offline_auc: float = float("nan")
    """The offline scorecard's AUC on the same leads."""
    current_auc: float | None = None
    """The current model's AUC on the evaluated rows, when one was given to compare with."""
    notes: list[str] = field(default_factory=list)

    @property
    def models(self) -> ModelSet:
        return parse_models(self.yaml_text, source="calibrated model")

    @property
    def held_out(self) -> bool:
        """Whether the figures are on held-out rows (else on the training rows)."""
        return len(self.test) > 0

    @property
    def evaluated(self) -> Any:
        """Row positions the figures are computed on: held out, else the training rows."""
        return self.test if self.held_out else self.train


def _picks(x: Any, candidates: Any, targets: tuple[float, ...]) -> list[float]:
    """Ascending cut points among `candidates` (ascending) whose shares of `x` below them come
    closest to `targets`, one per target, each above the previous."""
    below = np.searchsorted(x, candidates, side="left") / len(x)
    picks: list[float] = []
    start = 0
    for i, target in enumerate(targets):
        stop = len(candidates) - (len(targets) - i)  # leave one candidate per later target
        best = start + int(np.argmin(np.abs(below[start : stop + 1] - target)))
        picks.append(float(candidates[best]))
        start = best + 1
    return picks


def grade_cuts(scores: Any) -> list[float]:
    """The three cut points of a score's four grades (A-D for fit, 1-4 for engagement), in
    descending order, each a score some training lead has: at the training leads' quartiles, as
    near as the scores allow; when a quarter of the leads or more share the lowest score (those
    who did nothing), the lowest grade is theirs and the others split the rest in thirds. With
    fewer than three scores above the lowest, the top grades stay empty."""
    x = np.sort(np.floor(np.asarray(scores, dtype="float64")))
    low = float(x[0])
    candidates = np.unique(x[x > low])
    if len(candidates) < 3:
        cuts = [float(c) for c in candidates]
        while len(cuts) < 3:
            cuts.append((cuts[-1] if cuts else low) + 1)
        return sorted(cuts, reverse=True)
    if np.mean(x == low) >= 0.25:
        rest = x[x > low]
        c3 = float(candidates[0])
        return sorted([c3, *_picks(rest, candidates[1:], (1 / 3, 2 / 3))], reverse=True)
    return sorted(_picks(x, candidates, (0.25, 0.5, 0.75)), reverse=True)


def _top(scores: Any, share: float) -> float:
    """The lowest score of the top `share` of leads (a whole number of points)."""
    return float(np.floor(np.quantile(scores, 1.0 - share)))


def _share_up(x: float) -> float:
    """`x` rounded up to two significant digits (a share to suggest)."""
    scale = 10.0 ** max(0, 1 - math.floor(math.log10(x)))
    return math.ceil(x * scale) / scale


def check_holdout(y: Any, holdout: float) -> None:
    """Raise `CalibrationError` unless a stratified split with this held-out share leaves at
    least `MIN_HELD_OUT` converted and other leads on each side."""
    if not 0 <= holdout < 1:
        raise CalibrationError(
            f"--holdout {holdout:g}: give the share of leads to hold out, from 0 (fit on every "
            "row, no held-out figures) to below 1"
        )
    n = len(y)
    converted = int(np.sum(y))
    classes = {"converted": converted, "not converted": n - converted}
    rarer, fewest = min(classes.items(), key=lambda kv: kv[1])
    needed = 2 * MIN_HELD_OUT if holdout else MIN_HELD_OUT
    if fewest < needed:
        more = f" and {MIN_HELD_OUT} more to hold out (--holdout 0 fits on every row)"
        raise CalibrationError(
            f"only {fewest} leads are {rarer}: at least {MIN_HELD_OUT} are needed to fit"
            + (more if holdout else "")
        )
    if not holdout:
        return
    held = math.ceil(holdout * n)
    held_rarer = math.floor(held * fewest / n)
    if held_rarer < MIN_HELD_OUT:
        least = _share_up(MIN_HELD_OUT / fewest)
        raise CalibrationError(
            f"--holdout {holdout:g} holds out {held} of {n} leads, about {held_rarer} of them "
            f"{rarer}: held-out figures need at least {MIN_HELD_OUT} {rarer} leads; give "
            f"--holdout {least:g} or more, or --holdout 0 to fit on every row"
        )
    if fewest - math.ceil(held * fewest / n) < MIN_HELD_OUT:
        most = math.floor((1 - MIN_HELD_OUT / fewest) * 100) / 100
        raise CalibrationError(
            f"--holdout {holdout:g} leaves fewer than {MIN_HELD_OUT} {rarer} leads to train "
            f"on; give --holdout {most:g} or less"
        )


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
    stream_seconds: float | None = STREAM_SECONDS,
    progress: Progress | None = None,
) -> Calibration:
    """Fit on a seeded stratified split and evaluate on the held-out rows (on the training rows
    with `holdout=0`).

    `stream_check`: how many evaluated rows to score through the core (None: all, 0: none);
    `stream_seconds`: for at most how long (None: no limit).
    """
    options = options or Options()
    y = table.target
    check_holdout(y, holdout)
    positions = np.arange(len(y))
    if holdout:
        train, test = train_test_split(
            positions, test_size=holdout, stratify=y, random_state=options.seed
        )
    else:
        train, test = positions, positions[:0]
    frame = table.frame
    train_frame = frame.iloc[train].reset_index(drop=True)
    card = fit_scorecard(table.features, train_frame, y[train], options, progress=progress)
    train_fit, train_engagement = card.points(train_frame)
    train_total = train_fit + train_engagement
    mql_at = _top(train_total, mql_top)
    sql_at = max(_top(train_total, sql_top), mql_at)
    grades_fit = grade_cuts(train_fit)
    grades_eng = grade_cuts(train_engagement)
    scaling = (
        f"Scaled so that the best possible lead scores {options.scale:g}: " if options.scale else ""
    )
    description = (
        f"Learned from {len(train)} leads ({int(y[train].sum())} converted, target "
        f"{table.target_name} = {table.positive}) by logistic regression on binned features. "
        f"{scaling}{card.pdo:.3g} points double the odds of converting; a total of "
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
    evaluated = test if len(test) else train
    evaluated_frame = frame.iloc[evaluated].reset_index(drop=True)
    scores = card.total(evaluated_frame)
    probability = card.probability(evaluated_frame)
    result = Calibration(
        fit_grades=grades_fit,
        engagement_grades=grades_eng,
        table=table,
        card=card,
        yaml_text=text,
        model_id=model_id,
        train=train,
        test=test,
        test_scores=scores,
        test_probability=probability,
        mql_at=mql_at,
        sql_at=sql_at,
        auc_probability=float(roc_auc_score(y[evaluated], probability)),
        auc_points=float(roc_auc_score(y[evaluated], scores)),
    )
    limit = len(evaluated) if stream_check is None else min(stream_check, len(evaluated))
    if limit:
        _stream_check(result, limit, stream_seconds, progress)
    return result


def _stream_check(
    result: Calibration, limit: int, seconds: float | None, progress: Progress | None
) -> None:
    """Score the first `limit` evaluated rows as `leadstream score` would, and compare."""
    table = result.table
    started = time.monotonic()
    rows = table.raw.iloc[result.evaluated[:limit]].reset_index(drop=True)
    scored = score_table(
        rows,
        result.models,
        result.model_id,
        target=table.target_name,
        positive=table.positive,
        progress=(lambda _, done, total: progress("stream check (leads)", done, total))
        if progress is not None
        else None,
        deadline=started + seconds if seconds else None,
    )
    done = len(scored.leads)
    streamed = scored.totals
    offline = result.test_scores[:done]
    result.stream_rows = done
    result.stream_asked = limit
    result.stream_seconds = time.monotonic() - started
    result.stream_differ = int(np.sum(streamed != offline))
    labels = table.target[result.evaluated][:done]
    if 0 < labels.sum() < len(labels):
        result.stream_auc = float(roc_auc_score(labels, streamed))
        result.stream_offline_auc = float(roc_auc_score(labels, offline))
