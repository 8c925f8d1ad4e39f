"""Binning, a regularised logistic regression, and points: an additive scorecard.

Each feature is cut into bins (supervised: the splits of a small decision tree on that feature
alone; or quantiles), made monotone when the conversion rate clearly trends with the value, and
encoded for an L2-regularised logistic regression that gives each bin a weight in log-odds.
Categories are one-hot encoded. The bins of a number or a count are coded cumulatively (one
indicator per step, `x` above the bin's lower bound, a bin's weight the sum of the steps up to
it): the penalty then falls on the steps between neighbouring bins, a fused penalty that pulls
a thin bin towards its neighbours instead of towards 0, so the points follow the value without
jumps that only noise put there (`ordinal`). The standard scorecard scaling turns weights into
integer points:
`points = round(weight · pdo / ln 2)`, so `pdo` points double the odds of converting. With
`scale`, the factor is set instead so that the best possible lead scores `scale` points.

Counts of an activity are monotone by default (`monotone_counts`): their bins are merged until
the close rate rises with the count, and again wherever the fitted weights would fall from one
bin to the next, the fit then redone, so that more of an activity never scores less.

Quantile bins that collapse because one value fills many quantiles (bank marketing's `pdays` is
999 for 96% of the calls) give that value a bin of its own; a column left with a single bin is
dropped, and both are noted. Rare categories are pooled into one bin named by its values.

A missing value is a bin of its own when the training rows have any (`(missing)`). Each
attribute's points are then shifted so that its lowest bin gives 0: every score is at least 0
(counts included, when monotone), and a lead whose attribute is absent or an unseen category
scores as that lowest bin (Leadstream's scores start at 0, so a threshold below 0 would qualify
leads nobody knows anything about). The lowest bin of a count gives 0 as well. The regression's
intercept and the shifts are not rules; they fix the base score instead, the total at which the
odds of converting are `base_odds`:
`base_score = pdo / ln 2 · (ln base_odds - intercept) + shifts`.

Interactions: an additive scorecard cannot say "a high page value counts for more in November".
Pairs of attributes are therefore offered as well, each cut into a few coarse bins (at most
`pair_bins`) and crossed: one indicator per cell with enough rows. The pairs are chosen one at
a time on the training rows: each time the pair whose cells explain most of the current model's
error (the sum over cells of (Σ residual)² / Σ p(1-p), as in the FAST algorithm for GA²M
models), the model then refitted with it, so that a pair saying again what a chosen pair said
(two columns that move together, crossed with the same third) ranks low the next time. How many
pairs to keep is chosen by cross-validation on the training rows (nested: every fold chooses
the pairs on its own training part). A cell becomes a fit rule with `and`: it gives its points
when both attributes fall in the cell's bins. Counts are left out (they are engagement rules).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

from stream.calibrate.table import Column, Role
from stream.calibrate.values import MISSING, is_missing

__all__ = [
    "MISSING",
    "Bin",
    "Feature",
    "Interaction",
    "Options",
    "Progress",
    "Scorecard",
    "fit_scorecard",
]

Progress = Callable[[str, int, int], None]
"""`progress(phase, done, total)`: how far a long phase is."""


@dataclass(frozen=True)
class Options:
    """How to bin, fit and scale."""

    binning: str = "quantile"
    """`quantile` (equal shares of the rows) or `supervised` (decision-tree splits)."""
    max_bins: int = 20
    min_bin_share: float = 0.02
    """A bin holds at least this share of the training rows that have a value."""
    rare_share: float = 0.005
    """Categories rarer than this (and than 20 rows) are pooled into one `other` bin."""
    c: float = 0.1
    """Inverse regularisation strength of the logistic regression."""
    pdo: float = 20.0
    """Points to double the odds."""
    base_odds: float = 1.0
    """The odds at which the base score is reported (1 = a 50% chance)."""
    folds: int = 5
    seed: int = 42
    interactions: int | None = None
    """How many pairs of attributes to cross; None: chosen by cross-validation among
    `INTERACTION_CHOICES` (0 when `folds` < 2)."""
    pair_bins: int = 5
    """At most this many coarse bins per attribute of a pair (numbers; categories keep theirs)."""
    monotone_counts: bool = True
    """Counts of an activity never score less for doing it more: their bins are merged until
    the close rate rises with the count, and again wherever the fitted points would fall."""
    scale: float | None = None
    """Scale the points so that the best possible lead scores this many (e.g. 100), instead of
    `pdo` points per doubling of the odds."""
    ordinal: bool = True
    """Code the bins of numbers and counts cumulatively, so that the penalty is on the steps
    between neighbouring bins (a fused penalty) rather than on each bin's weight."""


@dataclass
class Bin:
    """One bin of a feature: a numeric range (`gt` < x <= `le`) or a set of categories."""

    label: str
    gt: float | None = None
    le: float | None = None
    values: tuple[str, ...] = ()
    rows: int = 0
    converted: int = 0
    weight: float = 0.0
    points: int = 0

    @property
    def rate(self) -> float:
        return self.converted / self.rows if self.rows else 0.0


@dataclass
class Feature:
    """A column and its bins. For a count, bin 0 is the reference (no points). With
    `has_missing`, the last bin holds the missing values."""

    column: Column
    bins: list[Bin]
    monotone: str = ""
    """`increasing`/`decreasing` when the bins were merged to make the rate monotone."""
    has_missing: bool = False
    ordinal: bool = False
    """Ranges coded cumulatively (`x` above bin i's lower bound): each weight is a step from
    one bin to the next, so the regression's penalty pulls neighbouring bins together."""
    _lookup: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._lookup = {v.casefold(): i for i, b in enumerate(self.bins) for v in b.values}

    @property
    def ranges(self) -> list[Bin]:
        """The bins of present values."""
        return self.bins[:-1] if self.has_missing else self.bins

    @property
    def is_count(self) -> bool:
        return self.column.role == Role.COUNT

    @property
    def numeric(self) -> bool:
        return self.column.role in (Role.NUMERIC, Role.COUNT)

    def index(self, values: Any) -> Any:
        """The bin of every value (-1: an unseen category, or missing without a bin)."""
        missing = len(self.bins) - 1 if self.has_missing else -1
        if self.numeric:
            x = np.asarray(values, dtype="float64")
            edges = np.array([b.le for b in self.ranges[:-1]], dtype="float64")
            out = np.searchsorted(edges, x, side="left")
            return np.where(np.isnan(x), missing, out)
        return np.array(
            [missing if is_missing(v) else self._lookup.get(str(v).casefold(), -1) for v in values]
        )

    def encoded_bins(self) -> range:
        """The bins that get an indicator column (all but a count's first, and all but the
        first range of ordinal coding)."""
        return range(1 if self.is_count or self.ordinal else 0, len(self.bins))

    def indicators(self, idx: Any) -> list[Any]:
        """The regression's columns for bin positions `idx`, one per `encoded_bins`."""
        if not self.ordinal:
            return [idx == i for i in self.encoded_bins()]
        ranges = len(self.ranges)
        columns = [(idx >= i) & (idx < ranges) for i in range(1, ranges)]
        if self.has_missing:
            columns.append(idx == ranges)
        return columns

    def bin_weights(self, coefficients: list[float]) -> list[float]:
        """Every bin's weight in log-odds from its `encoded_bins` coefficients."""
        weights = [0.0] * len(self.bins)
        if not self.ordinal:
            for i, w in zip(self.encoded_bins(), coefficients, strict=True):
                weights[i] = w
            return weights
        ranges = len(self.ranges)
        for i in range(1, ranges):
            weights[i] = weights[i - 1] + coefficients[i - 1]
        if self.has_missing:
            weights[ranges] = coefficients[-1]
        return weights


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _uncollapse(x: Any, edges: list[float], options: Options) -> tuple[list[float], str]:
    """When ties collapse the quantile edges into a single bin (one value fills most of the
    quantiles, as 999 does bank marketing's `pdays`), the edges that set apart every value
    holding at least one bin's share of the rows, and a note; else the edges as they are."""
    top = float(np.max(x))
    if any(e < top for e in edges):
        return edges, ""
    distinct, rows = np.unique(x, return_counts=True)
    heavy = [i for i in np.flatnonzero(rows >= len(x) / options.max_bins).tolist() if i > 0]
    if len(distinct) < 2 or not heavy:
        return edges, ""
    shown = ", ".join(
        f"{_fmt(float(distinct[i]))} is the value of {100 * rows[i] / len(x):.1f}%" for i in heavy
    )
    note = f"quantile bins collapsed into one ({shown} of the leads with a value); " + (
        "it gets a bin of its own" if len(heavy) == 1 else "each gets a bin of its own"
    )
    # x <= the next value below: the heavy value starts a bin
    return sorted({*edges, *(float(distinct[i - 1]) for i in heavy)}), note


def _numeric_bins(values: Any, y: Any, options: Options, *, count: bool) -> tuple[list[float], str]:
    """Cut points (x <= edge goes left) for a numeric column's present values, and a note when
    quantile bins collapsed."""
    present = ~np.isnan(values)
    x, t = values[present], y[present]
    min_leaf = max(20, int(options.min_bin_share * len(x)))
    note = ""
    if not len(x):
        return [], note
    if options.binning == "quantile":
        qs = np.quantile(x, np.linspace(0, 1, options.max_bins + 1)[1:-1])
        edges, note = _uncollapse(x, sorted({float(q) for q in qs}), options)
    else:
        if len(set(t.tolist())) < 2 or len(x) < 2 * min_leaf:
            return [], note
        tree = DecisionTreeClassifier(
            max_leaf_nodes=options.max_bins, min_samples_leaf=min_leaf, random_state=options.seed
        )
        tree.fit(x.reshape(-1, 1), t)
        edges = sorted(
            float(v)
            for v, f in zip(tree.tree_.threshold, tree.tree_.feature, strict=True)
            if f >= 0
        )
    if count:  # c <= 2.5 means c < 3: steps at whole counts
        edges = sorted({float(math.floor(e)) for e in edges})
    else:  # as the model file writes them: 119.48, not 119.48000000000002
        edges = sorted({float(f"{e:.6g}") for e in edges})
    top = float(np.max(x))
    return [e for e in edges if e < top], note


def _range_bins(edges: list[float], values: Any, y: Any, *, count: bool) -> list[Bin]:
    bounds = [None, *edges, None]
    bins = []
    for lo, hi in itertools.pairwise(bounds):
        if count:
            first = 0 if lo is None else int(lo) + 1
            label = (
                f">= {first}"
                if hi is None
                else (f"{first}" if int(hi) == first else f"{first}-{int(hi)}")
            )
        elif lo is None:
            label = f"<= {_fmt(hi)}" if hi is not None else "any"
        else:
            label = f"> {_fmt(lo)}" + (f" and <= {_fmt(hi)}" if hi is not None else "")
        bins.append(Bin(label, gt=lo, le=hi))
    _tally(bins, values, y)
    return bins


def _tally(bins: list[Bin], values: Any, y: Any) -> None:
    x = np.asarray(values, dtype="float64")
    edges = np.array([b.le for b in bins[:-1]], dtype="float64")
    idx = np.where(np.isnan(x), -1, np.searchsorted(edges, x, side="left"))
    for i, b in enumerate(bins):
        mask = idx == i
        b.rows, b.converted = int(mask.sum()), int(y[mask].sum())


def _monotone(
    bins: list[Bin], values: Any, y: Any, *, count: bool, increasing: bool = False
) -> tuple[list[Bin], str]:
    """Merge neighbouring bins until the rate is monotone, when it clearly trends (|Spearman|
    of rate against bin order >= 0.8); otherwise leave the bins (a U shape is real). With
    `increasing`, always: until the rate never falls from one bin to the next."""
    if increasing:
        sign = 1
    else:
        if len(bins) < 3:
            return bins, ""
        rates = np.array([b.rate for b in bins])
        order = np.arange(len(bins))
        ranks = np.argsort(np.argsort(rates))
        rho = float(np.corrcoef(order, ranks)[0, 1]) if np.std(ranks) > 0 else 0.0
        if abs(rho) < 0.8:
            return bins, ""
        sign = 1 if rho > 0 else -1
    edges = [b.le for b in bins[:-1] if b.le is not None]
    merged = False
    while True:
        current = _range_bins(edges, values, y, count=count)
        bad = next(
            (
                i
                for i in range(len(current) - 1)
                if sign * (current[i + 1].rate - current[i].rate) < 0
            ),
            None,
        )
        if bad is None:
            return current, ("increasing" if sign > 0 else "decreasing") if merged else ""
        del edges[bad]
        merged = True


def pooled_label(values: list[str], shown: int = 3) -> str:
    """The label of a bin of rare categories, by its values: `other: a, b, c and 4 more`."""
    listed = ", ".join(values[:shown])
    more = len(values) - shown
    return f"other: {listed}" + (f" and {more} more" if more > 0 else "")


def _category_bins(values: Any, y: Any, options: Options) -> list[Bin]:
    present = [not is_missing(v) for v in values]
    keys = [str(v).casefold() for v, known in zip(values, present, strict=True) if known]
    targets = y[np.array(present, dtype=bool)]
    totals: dict[str, list[int]] = {}
    for k, t in zip(keys, targets.tolist(), strict=True):
        entry = totals.setdefault(k, [0, 0])
        entry[0] += 1
        entry[1] += int(t)
    floor = max(20, int(options.rare_share * len(values)))
    bins = [
        Bin(k, values=(k,), rows=n, converted=c)
        for k, (n, c) in sorted(totals.items(), key=lambda kv: -kv[1][0])
        if n >= floor
    ]
    rare = sorted(k for k, (n, _) in totals.items() if n < floor)
    if rare:
        n = sum(totals[k][0] for k in rare)
        c = sum(totals[k][1] for k in rare)
        bins.append(Bin(pooled_label(rare), values=tuple(rare), rows=n, converted=c))
    return bins


def make_feature(
    column: Column, values: Any, y: Any, options: Options, notes: list[str] | None = None
) -> Feature | None:
    """Bin one column on the training rows; None when it has fewer than two bins. What was
    noteworthy (collapsed bins, the column dropped) is added to `notes`."""
    note = ""
    if column.role in (Role.NUMERIC, Role.COUNT):
        x = np.asarray(values, dtype="float64")
        count = column.role == Role.COUNT
        edges, note = _numeric_bins(x, y, options, count=count)
        bins = _range_bins(edges, x, y, count=count)
        bins, monotone = _monotone(
            bins, x, y, count=count, increasing=count and options.monotone_counts
        )
        absent = np.isnan(x)
    else:
        bins, monotone = _category_bins(list(values), y, options), ""
        absent = np.array([is_missing(v) for v in values], dtype=bool)
    if absent.any():
        bins.append(
            Bin(MISSING, values=(MISSING,), rows=int(absent.sum()), converted=int(y[absent].sum()))
        )
    feature = Feature(
        column,
        bins,
        monotone,
        has_missing=bool(absent.any()),
        ordinal=options.ordinal and column.role in (Role.NUMERIC, Role.COUNT),
    )
    if notes is not None and note:
        notes.append(f"{column.name}: {note} ({len(feature.bins)} bins)")
    if len(feature.bins) >= 2:
        return feature
    if notes is not None:
        if column.role == Role.CATEGORICAL:
            why = "its categories are all too rare for a bin of their own"
        elif monotone and column.role == Role.COUNT:
            why = (
                "its close rate does not rise with the count, and more of an activity never "
                "scores less (--no-monotone, or --role COLUMN=numeric, to score it anyway)"
            )
        else:
            why = "every training lead with a value falls in one bin"
        notes.append(f"{column.name}: dropped, {why} (no points to give)")
    return None


INTERACTION_CHOICES = (0, 1, 2, 4, 8)
"""How many pairs cross-validation chooses among."""
MAX_PAIR_CATEGORIES = 12
"""A categorical attribute with more bins than this is not crossed with others."""
MIN_CELL_ROWS = 30
"""A cell of a pair gets an indicator (a weight of its own) with at least this many rows."""


@dataclass
class Interaction:
    """Two attributes crossed: `cells[(i, j)]` is the bin pair (bin i of `a`, bin j of `b`)."""

    a: Feature
    b: Feature
    cells: dict[tuple[int, int], Bin]
    """Every cell of the training rows (those with fewer than `MIN_CELL_ROWS` get no weight)."""
    gain: float = 0.0
    """How much of the additive model's error the cells explain on the training rows."""

    @property
    def name(self) -> str:
        return f"{self.a.column.name} x {self.b.column.name}"

    def index(self, frame: Any) -> Any:
        """Every row's cell as `i * len(b.bins) + j` (-1 when either bin is unknown)."""
        ia = self.a.index(frame[self.a.column.name].to_numpy())
        ib = self.b.index(frame[self.b.column.name].to_numpy())
        return np.where((ia < 0) | (ib < 0), -1, ia * len(self.b.bins) + ib)

    def encoded_cells(self) -> list[tuple[int, int]]:
        return [key for key, cell in self.cells.items() if cell.rows >= MIN_CELL_ROWS]


def _coarse(column: Column, values: Any, y: Any, options: Options) -> Feature | None:
    """An attribute's few bins for crossing (None when it has too many or too few)."""
    coarse = Options(
        binning="supervised",
        max_bins=options.pair_bins,
        min_bin_share=0.05,
        rare_share=options.rare_share,
        seed=options.seed,
    )
    feature = make_feature(column, values, y, coarse)
    if feature is None or len(feature.bins) > MAX_PAIR_CATEGORIES:
        return None
    if feature.numeric and len(feature.ranges) < 2:  # a range needs a bound
        return None
    return feature


def _candidates(columns: list[Column], frame: Any, y: Any, options: Options) -> list[Interaction]:
    """Every pair of attributes that can be crossed (counts are engagement rules, not pairs)."""
    coarse = [
        f
        for c in columns
        if c.role != Role.COUNT
        and (f := _coarse(c, frame[c.name].to_numpy(), y, options)) is not None
    ]
    return [Interaction(a, b, {}) for a, b in itertools.combinations(coarse, 2)]


def _gain(pair: Interaction, cells: Any, residual: Any, hessian: Any) -> float:
    """How much of a model's error the pair's cells explain: the sum over cells with enough
    rows of (sum of residuals)^2 / sum of p(1-p), as in FAST."""
    known = cells >= 0
    size = len(pair.a.bins) * len(pair.b.bins)
    rows = np.bincount(cells[known], minlength=size)
    r = np.bincount(cells[known], residual[known], minlength=size)
    h = np.bincount(cells[known], hessian[known], minlength=size)
    enough = rows >= MIN_CELL_ROWS
    return float((r[enough] ** 2 / np.maximum(h[enough], 1e-12)).sum())


def _tally_cells(pair: Interaction, cells: Any, y: Any) -> None:
    for i, j in itertools.product(range(len(pair.a.bins)), range(len(pair.b.bins))):
        mask = cells == i * len(pair.b.bins) + j
        label = f"{pair.a.bins[i].label} & {pair.b.bins[j].label}"
        pair.cells[(i, j)] = Bin(label, rows=int(mask.sum()), converted=int(y[mask].sum()))


@dataclass
class Scorecard:
    """The fitted scorecard: features with points, the regression, its scaling."""

    features: list[Feature]
    intercept: float
    factor: float
    options: Options
    shift: int = 0
    """Points added to every lead by moving each attribute's lowest bin to 0."""
    cv_auc: tuple[float, float] = (math.nan, math.nan)
    """Mean and standard deviation of the cross-validated AUC on the training split."""
    model: Any = None
    interactions: list[Interaction] = field(default_factory=list)
    """Pairs of attributes crossed; their cells are fit points too."""
    cv_by_interactions: dict[int, float] = field(default_factory=dict)
    """Cross-validated AUC on the training split per number of pairs tried."""
    notes: list[str] = field(default_factory=list)
    """Binning: collapsed quantile bins, columns dropped."""
    warnings: list[str] = field(default_factory=list)
    """Columns whose points run against their close rate."""

    @property
    def pdo(self) -> float:
        """Points to double the odds of converting."""
        return self.factor * math.log(2)

    @property
    def base_score(self) -> float:
        """The total at which the odds of converting are `options.base_odds`."""
        return self.factor * (math.log(self.options.base_odds) - self.intercept) + self.shift

    def event_features(self) -> list[Feature]:
        """The features in the order a lead's events carry them: the crossed attributes first,
        so that they arrive in the same profile event (one holds at most 100 attributes)."""
        crossed = {p.a.column.name for p in self.interactions}
        crossed |= {p.b.column.name for p in self.interactions}
        return sorted(self.features, key=lambda f: f.column.name not in crossed)

    def design(self, frame: Any) -> Any:
        """The bin indicators of every row (the regression's inputs)."""
        blocks = []
        for feature in self.features:
            blocks += feature.indicators(feature.index(frame[feature.column.name].to_numpy()))
        for pair in self.interactions:
            cells = pair.index(frame)
            for i, j in pair.encoded_cells():
                blocks.append(cells == i * len(pair.b.bins) + j)
        return sparse.csr_matrix(np.column_stack(blocks).astype("float64"))

    def points(self, frame: Any) -> tuple[Any, Any]:
        """Every row's (fit, engagement) points: attributes, and counts of activities."""
        fit = np.zeros(len(frame))
        engagement = np.zeros(len(frame))
        for feature in self.features:
            idx = feature.index(frame[feature.column.name].to_numpy())
            table = np.array([b.points for b in feature.bins] + [0], dtype="float64")
            got = table[idx]  # -1 picks the trailing 0
            if feature.is_count:
                engagement += got
            else:
                fit += got
        for pair in self.interactions:
            size = len(pair.a.bins) * len(pair.b.bins)
            table = np.zeros(size + 1)
            for (i, j), cell in pair.cells.items():
                table[i * len(pair.b.bins) + j] = cell.points
            fit += table[pair.index(frame)]  # -1 picks the trailing 0
        return fit, engagement

    def total(self, frame: Any) -> Any:
        fit, engagement = self.points(frame)
        return fit + engagement

    def probability(self, frame: Any) -> Any:
        return self.model.predict_proba(self.design(frame))[:, 1]


def _base(columns: list[Column], frame: Any, y: Any, options: Options) -> Scorecard:
    features = []
    notes: list[str] = []
    for column in columns:
        feature = make_feature(column, frame[column.name].to_numpy(), y, options, notes)
        if feature is not None:
            features.append(feature)
    return Scorecard(features, 0.0, options.pdo / math.log(2), options, notes=notes)


def _regression(options: Options) -> LogisticRegression:
    return LogisticRegression(C=options.c, max_iter=3000)


def _merge_falls(feature: Feature, weights: list[float], frame: Any, y: Any) -> Feature | None:
    """A count's feature with the bins merged where its fitted weights fall from one bin to the
    next (None when they never fall)."""
    steps = feature.bin_weights(weights)[: len(feature.ranges)]  # bin 0 is the reference
    falls = {i for i in range(1, len(steps)) if steps[i] < steps[i - 1] - 1e-9}
    if not falls:
        return None
    edges = [b.le for i, b in enumerate(feature.ranges[:-1], start=1) if i not in falls]
    values = np.asarray(frame[feature.column.name].to_numpy(), dtype="float64")
    bins = _range_bins([e for e in edges if e is not None], values, y, count=True)
    if feature.has_missing:
        bins.append(feature.bins[-1])
    return Feature(
        feature.column,
        bins,
        "increasing",
        has_missing=feature.has_missing,
        ordinal=feature.ordinal,
    )


def _fit(card: Scorecard, frame: Any, y: Any) -> None:
    """Fit the regression. With monotone counts, a count whose fitted points would fall
    somewhere (it moves with other columns) has those bins merged, and the fit is redone."""
    options = card.options
    while True:
        card.model = _regression(options).fit(card.design(frame), y)
        if not options.monotone_counts:
            return
        coefficients = card.model.coef_[0].tolist()
        features, changed, at = [], False, 0
        for feature in card.features:
            size = len(feature.encoded_bins())
            merged = (
                _merge_falls(feature, coefficients[at : at + size], frame, y)
                if feature.is_count
                else None
            )
            at += size
            features.append(merged or feature)
            changed = changed or merged is not None
        if not changed:
            return
        for feature in features:
            note = (
                f"{feature.column.name}: dropped, its fitted points fell as the count rose "
                "however its bins were merged (it moves with other columns, which carry its "
                "effect; --no-monotone to keep it)"
            )
            if len(feature.bins) < 2 and note not in card.notes:
                card.notes.append(note)
        card.features = [f for f in features if len(f.bins) >= 2]


def _with_pairs(
    columns: list[Column],
    frame: Any,
    y: Any,
    options: Options,
    tops: tuple[int, ...],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, Scorecard]:
    """Fitted scorecards with each number of pairs in `tops`, the pairs added one at a time:
    each time the pair whose cells explain most of the current model's error, the model then
    refitted (so a pair that says again what a chosen one said ranks low). `progress(done,
    total)` hears of each pair chosen."""
    card = _base(columns, frame, y, options)
    _fit(card, frame, y)
    cards = {0: card}
    wanted = [top for top in tops if top > 0]
    if not wanted:
        return cards
    binned = [feature.column for feature in card.features]  # a lead's events carry only these
    candidates = _candidates(binned, frame, y, options)
    cells = [pair.index(frame) for pair in candidates]
    chosen: list[int] = []
    current = card
    total = min(max(wanted), len(candidates))
    if progress is not None:
        progress(0, total)
    while len(chosen) < total:
        probability = current.model.predict_proba(current.design(frame))[:, 1]
        residual, hessian = y - probability, probability * (1.0 - probability)
        gains = [
            -1.0 if k in chosen else _gain(pair, cells[k], residual, hessian)
            for k, pair in enumerate(candidates)
        ]
        best = int(np.argmax(gains))
        candidates[best].gain = gains[best]
        _tally_cells(candidates[best], cells[best], y)
        chosen.append(best)
        current = Scorecard(
            card.features,
            0.0,
            card.factor,
            options,
            interactions=[candidates[k] for k in chosen],
            notes=card.notes,
        )
        _fit(current, frame, y)
        cards[len(chosen)] = current
        if progress is not None:
            progress(len(chosen), total)
    return {top: cards[min(top, len(chosen))] for top in (0, *wanted)}


def _cross_validate(
    columns: list[Column],
    frame: Any,
    y: Any,
    options: Options,
    tops: tuple[int, ...],
    *,
    progress: Progress | None = None,
) -> dict[int, tuple[float, float]]:
    """Mean and standard deviation of the AUC per number of pairs, over `options.folds` folds
    of the training rows (bins, pairs and weights all learned within each fold)."""
    folds = StratifiedKFold(options.folds, shuffle=True, random_state=options.seed)
    aucs: dict[int, list[float]] = {top: [] for top in tops}
    if progress is not None:
        progress("cross-validation (folds)", 0, options.folds)
    for n, (train, test) in enumerate(folds.split(np.zeros(len(y)), y), start=1):
        part = frame.iloc[train].reset_index(drop=True)
        held = frame.iloc[test].reset_index(drop=True)
        for top, card in _with_pairs(columns, part, y[train], options, tops).items():
            if top not in aucs:
                continue
            scores = card.model.predict_proba(card.design(held))[:, 1]
            aucs[top].append(float(roc_auc_score(y[test], scores)))
        if progress is not None:
            progress("cross-validation (folds)", n, options.folds)
    return {top: (float(np.mean(v)), float(np.std(v))) for top, v in aucs.items()}


def _phase(progress: Progress | None, phase: str) -> Callable[[int, int], None] | None:
    """`progress` for one phase, as `report(done, total)`."""
    if progress is None:
        return None
    report = progress
    return lambda done, total: report(phase, done, total)


def fit_scorecard(
    columns: list[Column],
    frame: Any,
    y: Any,
    options: Options | None = None,
    *,
    progress: Progress | None = None,
) -> Scorecard:
    """Bin, choose pairs, fit and scale on the training rows `frame`/`y`."""
    options = options or Options()
    cv = options.folds >= 2
    if options.interactions is not None:
        tops: tuple[int, ...] = (options.interactions,)
    else:
        tops = INTERACTION_CHOICES if cv else (0,)
    scores = _cross_validate(columns, frame, y, options, tops, progress=progress) if cv else {}
    # the fewest pairs whose AUC is within a tenth of a point (0.001) of the best
    best = max((mean for mean, _ in scores.values()), default=0.0)
    top = min((t for t, (mean, _) in scores.items() if mean >= best - 0.001), default=tops[0])
    card = _with_pairs(
        columns, frame, y, options, (top,), progress=_phase(progress, "final fit (pairs chosen)")
    )[top]
    if cv:
        card.cv_auc = scores[top]
        card.cv_by_interactions = {t: mean for t, (mean, _) in scores.items()}
    model = card.model
    card.intercept = float(model.intercept_[0])
    if options.scale:
        card.factor = _scale_factor(card, options.scale)
    _to_points(card)
    card.warnings = contradictions(card, frame, y)
    return card


def _best_total(card: Scorecard) -> float:
    """The total of the best possible lead, with the points as they stand."""
    best = sum(max(b.points for b in f.bins) for f in card.features)
    return float(best + sum(max(c.points for c in p.cells.values()) for p in card.interactions))


def _scale_factor(card: Scorecard, scale: float) -> float:
    """Points per unit of log-odds such that the best possible lead scores `scale` (rounding
    may leave it a little below, never above)."""
    weights = iter(card.model.coef_[0].tolist())
    span = 0.0
    for feature in card.features:
        w = feature.bin_weights([next(weights) for _ in feature.encoded_bins()])
        span += max(w) - (0.0 if feature.is_count else min(w))
    for pair in card.interactions:
        cells = [next(weights) for _ in pair.encoded_cells()]
        span += max([0.0, *cells]) - min([0.0, *cells])
    factor = scale / span if span > 0 else 1.0
    for _ in range(20):  # rounding can add a point here and there: shrink until it fits
        card.factor = factor
        _to_points(card)
        best = _best_total(card)
        if best <= scale:
            break
        factor *= (scale - 0.5) / best
    return factor


def _to_points(card: Scorecard) -> None:
    """The regression's weights as integer points, each attribute's lowest bin at 0."""
    card.shift = 0
    weights = iter(card.model.coef_[0].tolist())
    for feature in card.features:
        coefficients = [next(weights) for _ in feature.encoded_bins()]
        for b, weight in zip(feature.bins, feature.bin_weights(coefficients), strict=True):
            b.weight = weight
            b.points = round(weight * card.factor)
        if not feature.is_count:
            lowest = min(b.points for b in feature.bins)
            for b in feature.bins:
                b.points -= lowest
            card.shift -= lowest
    for pair in card.interactions:
        for cell in pair.cells.values():  # a cell without a weight of its own is worth 0
            cell.points = 0
        for key in pair.encoded_cells():
            cell = pair.cells[key]
            cell.weight = next(weights)
            cell.points = round(cell.weight * card.factor)
        # the lowest cell gives 0 (a cell without a weight of its own is worth 0 before this)
        lowest = min([0, *(cell.points for cell in pair.cells.values())])
        for cell in pair.cells.values():
            cell.points -= lowest
        card.shift -= lowest


def _points_of(feature: Feature, frame: Any) -> Any:
    table = np.array([b.points for b in feature.bins] + [0], dtype="float64")
    return table[feature.index(frame[feature.column.name].to_numpy())]


def contradictions(card: Scorecard, frame: Any, y: Any) -> list[str]:
    """Columns whose points run against their close rate on the training rows: the leads the
    column gives more points to convert less (their points correlate negatively with
    converting, beyond chance). The regression did that because the column moves with others
    that carry its effect; the warning names them."""
    points = {f.column.name: _points_of(f, frame) for f in card.features}
    outcome = y.astype("float64")
    warnings = []
    for feature in card.features:
        mine = points[feature.column.name]
        if np.std(mine) == 0:
            continue
        r = float(np.corrcoef(mine, outcome)[0, 1])
        if r * math.sqrt(len(outcome)) > -3.0:  # not clearly negative
            continue
        big = [b for b in feature.bins if b.rows >= 30] or feature.bins
        against = [(a, b) for a in big for b in big if a.rate > b.rate and a.points < b.points]
        best, worst = max(  # the pair furthest apart in both rate and points
            against or [(max(big, key=lambda b: b.rate), min(big, key=lambda b: b.rate))],
            key=lambda pair: (pair[0].rate - pair[1].rate) * (pair[1].points - pair[0].points),
        )
        moves = sorted(
            (
                (abs(float(np.corrcoef(mine, other)[0, 1])), name)
                for name, other in points.items()
                if name != feature.column.name and np.std(other) > 0
            ),
            reverse=True,
        )
        carriers = [name for r_other, name in moves[:2] if r_other >= 0.3]
        warnings.append(
            f"{feature.column.name}: its points run against its close rate: "
            f"bin {best.label!r} converts {100 * best.rate:.1f}% and gets {best.points:+d}, "
            f"bin {worst.label!r} converts {100 * worst.rate:.1f}% and gets {worst.points:+d}"
            + (
                f" (it moves with {' and '.join(carriers)}, which "
                + ("carry" if len(carriers) > 1 else "carries")
                + " its effect)"
                if carriers
                else ""
            )
            + f"; consider --exclude {feature.column.name}"
        )
    return warnings
