"""How good a calibration is: held-out AUC, KS, deciles, calibration, points, close rates.

Rendered as plain text for the terminal, or as Markdown or HTML for a file, with two charts
drawn as SVG (no plotting library): conversion rate by score decile, and the calibration curve.
HTML carries them inline; Markdown links to SVG files written next to it (`charts`).
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from stream.calibrate.metrics import (
    Section,
    deciles,
    html_sections,
    ks_statistic,
    markdown_sections,
    pct,
    text_sections,
)
from stream.calibrate.run import Calibration
from stream.calibrate.scorecard import Scorecard
from stream.calibrate.table import Role

__all__ = ["Section", "build_sections", "charts", "columns_section", "ks_statistic", "render"]

_pct = pct


def _which(result: Calibration) -> str:
    return "held-out leads" if result.held_out else "training leads: no held-out split"


def _calibration(probability: Any, labels: Any, which: str) -> Section:
    edges = np.quantile(probability, np.linspace(0, 1, 11))
    idx = np.clip(np.searchsorted(edges[1:-1], probability, side="right"), 0, 9)
    rows = []
    for i in range(10):
        mask = idx == i
        if mask.any():
            rows.append(
                (str(i + 1), str(int(mask.sum())), _pct(probability[mask].mean()),
                 _pct(labels[mask].mean()))
            )  # fmt: skip
    return Section(
        f"Calibration ({which} by predicted probability, tenths)",
        ("group", "leads", "predicted", "observed"),
        tuple(rows),
    )


def _points(result: Calibration) -> Section:
    rows = []
    for feature in result.card.features:
        kind = "engagement" if feature.is_count else "fit"
        for b in feature.bins:
            rows.append(
                (feature.column.name, kind, b.label, str(b.rows), _pct(b.rate), f"{b.points:+d}")
            )
    for pair in result.card.interactions:
        for cell in pair.cells.values():
            rows.append(
                (pair.name, "fit (pair)", cell.label, str(cell.rows), _pct(cell.rate),
                 f"{cell.points:+d}")
            )  # fmt: skip
    return Section(
        "Points per feature (training leads; unseen categories, and missing values without a bin, "
        "score 0)",
        ("feature", "kind", "bin", "leads", "converted", "points"),
        tuple(rows),
    )


def _close_rates(result: Calibration) -> Section:
    frame = result.table.frame
    y = result.table.target
    rows = []
    for column in result.table.features:
        if column.role == Role.CATEGORICAL:
            continue
        values = np.nan_to_num(frame[column.name].to_numpy(dtype="float64"), nan=0.0)
        did = values > 0
        zeros = float((values == 0).mean())
        if column.role != Role.COUNT and (bool((values < 0).any()) or not 0.05 <= zeros <= 0.95):
            continue  # "did X" is a count above zero; attributes only when they look like one
        rate_did = float(y[did].mean()) if did.any() else math.nan
        rate_not = float(y[~did].mean()) if (~did).any() else math.nan
        if math.isnan(rate_did) or math.isnan(rate_not):
            ratio = "- (every lead " + ("did it)" if math.isnan(rate_not) else "had 0)")
        else:
            ratio = f"{rate_did / rate_not:.2f}" if rate_not else "inf"
        rows.append(
            (column.name, str(int(did.sum())), _pct(rate_did), str(int((~did).sum())),
             _pct(rate_not), ratio)
        )  # fmt: skip
    return Section(
        "Per-action close rate (all leads: value above 0 versus 0 or missing)",
        ("action", "leads who did it", "converted", "leads who did not", "converted", "ratio"),
        tuple(rows),
    )


def columns_section(table: Any, card: Scorecard | None = None) -> Section:
    """Every column's role and why (a feature the binning dropped says so)."""
    binned = {f.column.name for f in card.features} if card is not None else None
    rows = []
    for column in table.columns:
        alone = f"{column.auc:.3f}" if column.auc is not None else ""
        role, why = column.role.value, column.reason
        feature = column.role in (Role.NUMERIC, Role.CATEGORICAL, Role.COUNT)
        if binned is not None and feature and column.name not in binned:
            role, why = "ignore", "dropped: a single bin on the training leads"
        rows.append((column.name, role, why, alone))
    return Section("Columns", ("column", "role", "why", "AUC alone"), tuple(rows))


def _pairs(card: Scorecard) -> str:
    tried = card.cv_by_interactions
    how = (
        "chosen by cross-validation: "
        + ", ".join(f"{n} → AUC {auc:.4f}" for n, auc in sorted(tried.items()))
        if len(tried) > 1
        else "as asked"
    )
    names = "; ".join(pair.name for pair in card.interactions)
    return f"pairs of attributes crossed: {len(card.interactions)} ({how})" + (
        f": {names}" if names else ""
    )


def _stream_line(result: Calibration) -> str:
    which = "held-out" if result.held_out else "training"
    done, asked = result.stream_rows, result.stream_asked
    count = f"{done} {which} leads" + (
        f" of {asked} (stopped after {result.stream_seconds:.0f} s)" if done < asked else ""
    )
    same = (
        "the same totals lead by lead"
        if not result.stream_differ
        else f"{result.stream_differ} leads scored differently"
    )
    if result.stream_auc is None:
        return f"stream check ({count} scored through the scoring core): {same}"
    offline = result.stream_offline_auc
    return (
        f"stream AUC ({count} scored event by event through the scoring core, as "
        f"`leadstream score` scores a file): {result.stream_auc:.4f}; offline scorecard on the "
        f"same leads {offline:.4f}, difference {abs(result.stream_auc - offline):.4f}; {same}"
    )


def _grades(
    title: str, names: str, cuts: list[float], points: Any, *, labels: Any, which: str
) -> str:
    """`fit grades: A >= 40 (22.0% of held-out leads, 41.0% converted), ...`."""
    bounds = [math.inf, *cuts, -math.inf]
    parts = []
    for name, high, low in zip(names, bounds, bounds[1:], strict=False):
        inside = (points >= low) & (points < high)
        rule = f">= {low:g}" if low > -math.inf else f"< {cuts[-1]:g}"
        rate = _pct(labels[inside].mean()) if inside.any() else "-"
        parts.append(f"{name} {rule} ({_pct(inside.mean())}, {rate} converted)")
    return f"{title} (share of {which} leads, converted): " + "; ".join(parts)


def _summary(result: Calibration) -> Section:
    y = result.table.target
    test_labels = y[result.evaluated]
    card = result.card
    which = "held-out" if result.held_out else "training (no held-out split)"
    split = (
        f"trained on {len(result.train)}, held out {len(result.test)} "
        f"(stratified, seed {card.options.seed})"
        if result.held_out
        else f"trained on every lead ({len(result.train)}, --holdout 0): the figures below are "
        "the training leads', optimistic; the cross-validated AUC is the one to trust"
    )
    lines = [
        f"{len(y)} leads, {int(y.sum())} converted ({_pct(y.mean())}); target "
        f"{result.table.target_name} = {result.table.positive}",
        split,
        f"{len(card.features)} features, {card.options.binning} bins (at most "
        f"{card.options.max_bins}), L2 logistic regression C={card.options.c:g}",
        f"cross-validated AUC on the training leads ({card.options.folds} folds): "
        f"{card.cv_auc[0]:.4f} ± {card.cv_auc[1]:.4f}"
        if not math.isnan(card.cv_auc[0])
        else "no cross-validation",
        _pairs(card),
        f"{which} AUC: {result.auc_points:.4f} (integer points), "
        f"{result.auc_probability:.4f} (regression)",
        f"{which} KS: {ks_statistic(result.test_scores, test_labels):.3f}",
    ]
    if result.stream_asked:
        lines.append(_stream_line(result))
    if result.current_auc is not None:
        lines.append(f"current model's {which} AUC: {result.current_auc:.4f}")
    scores = result.test_scores
    mql = scores >= result.mql_at
    sql = scores >= result.sql_at
    fit, engagement = card.points(result.table.frame.iloc[result.evaluated])
    scaled = f"the best possible lead scores {card.options.scale:g}; " if card.options.scale else ""
    lines += [
        f"scaling: {scaled}{card.pdo:.3g} points double the odds; a total of "
        f"{card.base_score:.0f} means odds of {card.options.base_odds:g}:1",
        _grades("fit grades", "ABCD", result.fit_grades, fit, labels=test_labels, which=which),
        _grades(
            "engagement grades",
            "1234",
            result.engagement_grades,
            engagement,
            labels=test_labels,
            which=which,
        )
        if any(feature.is_count for feature in card.features)
        else "engagement grades: none to tell apart (no column counts an activity, so every "
        "lead's engagement is 0 and its grade 4; --count COLUMN marks one)",
        f"MQL at {result.mql_at:.0f} points: {_pct(mql.mean())} of {which} leads, "
        f"{_pct(test_labels[mql].mean() if mql.any() else 0)} of them converted",
        f"SQL at {result.sql_at:.0f} points: {_pct(sql.mean())} of {which} leads, "
        f"{_pct(test_labels[sql].mean() if sql.any() else 0)} of them converted",
        *result.table.notes,
        *card.notes,
        *(f"warning: {warning}" for warning in card.warnings),
        *result.notes,
    ]
    return Section("Summary", (), tuple((line,) for line in lines))


_W, _H, _PAD = 420, 260, 40


def _frame(title: str, x_label: str, y_label: str, top: float) -> list[str]:
    return [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' "
        f"font-family='sans-serif' font-size='11'>",
        f"<text x='{_W / 2}' y='14' text-anchor='middle' font-size='13'>"
        f"{html.escape(title)}</text>",
        f"<line x1='{_PAD}' y1='{_H - _PAD}' x2='{_W - 10}' y2='{_H - _PAD}' stroke='black'/>",
        f"<line x1='{_PAD}' y1='24' x2='{_PAD}' y2='{_H - _PAD}' stroke='black'/>",
        f"<text x='{_W / 2}' y='{_H - 8}' text-anchor='middle'>{html.escape(x_label)}</text>",
        f"<text x='12' y='{_H / 2}' transform='rotate(-90 12 {_H / 2})' "
        f"text-anchor='middle'>{html.escape(y_label)}</text>",
        f"<text x='{_PAD - 4}' y='28' text-anchor='end'>{100 * top:.0f}%</text>",
        f"<text x='{_PAD - 4}' y='{_H - _PAD}' text-anchor='end'>0%</text>",
    ]


def _y(value: float, top: float) -> float:
    return _H - _PAD - (_H - _PAD - 24) * (value / top if top else 0.0)


def _deciles_svg(scores: Any, labels: Any) -> str:
    order = np.argsort(-scores, kind="stable")
    rates = [float(labels[g].mean()) for g in np.array_split(order, 10) if len(g)]
    top = max(*rates, 1e-9)
    lines = _frame("Conversion rate by score decile", "decile (1 = highest scores)", "rate", top)
    width = (_W - 10 - _PAD) / len(rates)
    for i, rate in enumerate(rates):
        x = _PAD + i * width + 3
        y = _y(rate, top)
        lines.append(
            f"<rect x='{x:.1f}' y='{y:.1f}' width='{width - 6:.1f}' "
            f"height='{_H - _PAD - y:.1f}' fill='#4a7ab5'/>"
            f"<text x='{x + (width - 6) / 2:.1f}' y='{_H - _PAD + 12}' "
            f"text-anchor='middle'>{i + 1}</text>"
        )
    base = float(labels.mean())
    lines.append(
        f"<line x1='{_PAD}' y1='{_y(base, top):.1f}' x2='{_W - 10}' y2='{_y(base, top):.1f}' "
        f"stroke='#c33' stroke-dasharray='4'/>"
    )
    return "\n".join([*lines, "</svg>"])


def _calibration_svg(probability: Any, labels: Any) -> str:
    edges = np.quantile(probability, np.linspace(0, 1, 11))
    idx = np.clip(np.searchsorted(edges[1:-1], probability, side="right"), 0, 9)
    points = [
        (float(probability[idx == i].mean()), float(labels[idx == i].mean()))
        for i in range(10)
        if (idx == i).any()
    ]
    top = max(*(max(p) for p in points), 1e-9)
    lines = _frame("Calibration", "predicted probability", "observed rate", top)

    def x_of(v: float) -> float:
        return _PAD + (_W - 10 - _PAD) * v / top

    lines.append(
        f"<line x1='{x_of(0):.1f}' y1='{_y(0, top):.1f}' x2='{x_of(top):.1f}' "
        f"y2='{_y(top, top):.1f}' stroke='#999' stroke-dasharray='4'/>"
    )
    path = " ".join(f"{x_of(p):.1f},{_y(o, top):.1f}" for p, o in points)
    lines.append(f"<polyline points='{path}' fill='none' stroke='#4a7ab5' stroke-width='2'/>")
    lines += [
        f"<circle cx='{x_of(p):.1f}' cy='{_y(o, top):.1f}' r='3' fill='#4a7ab5'/>"
        for p, o in points
    ]
    return "\n".join([*lines, "</svg>"])


def charts(result: Calibration) -> dict[str, str]:
    """The report's charts as SVG documents, by name."""
    y = result.table.target[result.evaluated]
    return {
        "deciles": _deciles_svg(result.test_scores, y),
        "calibration": _calibration_svg(result.test_probability, y),
    }


def build_sections(result: Calibration) -> list[Section]:
    y = result.table.target[result.evaluated]
    which = _which(result)
    return [
        _summary(result),
        deciles(result.test_scores, y, f"Conversion by score decile ({which}, highest first)"),
        _calibration(result.test_probability, y, which),
        _close_rates(result),
        _points(result),
        columns_section(result.table, result.card),
    ]


def _markdown(sections: list[Section], images: dict[str, str]) -> str:
    out = ["# Calibration report", ""]
    out += [f"![{name}]({src})" for name, src in images.items()]
    out.append("")
    return "\n".join([*out, *markdown_sections(sections)])


def _html(sections: list[Section], svgs: dict[str, str]) -> str:
    out = [
        "<!doctype html><meta charset='utf-8'><title>Calibration report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style>",
        "<h1>Calibration report</h1>",
        *svgs.values(),
        *html_sections(sections),
    ]
    return "\n".join(out) + "\n"


def render(result: Calibration, fmt: str = "text", *, images: dict[str, str] | None = None) -> str:
    """The report as `text`, `markdown` (linking to `images`: chart name -> file) or `html`
    (charts inline)."""
    sections = build_sections(result)
    if fmt == "markdown":
        return _markdown(sections, images or {})
    if fmt == "html":
        return _html(sections, charts(result))
    return text_sections(sections)
