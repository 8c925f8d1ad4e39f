"""How well scores rank outcomes, as tables: AUC, KS, conversion by decile and by stage.

Shared by the calibration report and `leadstream score`; a table is a `Section`, rendered as
plain text, Markdown or HTML.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from schemas.stages import Stage

__all__ = [
    "Section",
    "auc",
    "by_stage",
    "deciles",
    "html_sections",
    "ks_statistic",
    "markdown_sections",
    "pct",
    "text_sections",
]


@dataclass(frozen=True)
class Section:
    """A titled table (or a list of lines when `header` is empty)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def pct(x: float) -> str:
    """A share as a percentage; `-` when there is nothing to take a share of (NaN)."""
    return "-" if math.isnan(x) else f"{100 * x:.1f}%"


def auc(labels: Any, scores: Any) -> float:
    """The AUC of `scores` for `labels` (NaN with only one class)."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return math.nan
    return float(roc_auc_score(labels, np.asarray(scores, dtype="float64")))


def ks_statistic(scores: Any, labels: Any) -> float:
    """The largest gap between the score distributions of converters and the others."""
    scores = np.asarray(scores, dtype="float64")
    labels = np.asarray(labels, dtype=bool)
    grid = np.unique(scores)
    pos = np.sort(scores[labels])
    neg = np.sort(scores[~labels])
    if not len(pos) or not len(neg):
        return math.nan
    cdf_pos = np.searchsorted(pos, grid, side="right") / len(pos)
    cdf_neg = np.searchsorted(neg, grid, side="right") / len(neg)
    return float(np.max(np.abs(cdf_pos - cdf_neg)))


def deciles(scores: Any, labels: Any, title: str) -> Section:
    """Conversion and lift per tenth of the leads, highest scores first."""
    scores = np.asarray(scores, dtype="float64")
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    groups = np.array_split(order, 10)
    base = labels.mean() if len(labels) else math.nan
    total_pos = labels.sum()
    captured = 0
    rows = []
    for i, group in enumerate(groups, start=1):
        if not len(group):
            continue
        conv = int(labels[group].sum())
        captured += conv
        rate = conv / len(group)
        rows.append(
            (
                str(i),
                f"{scores[group].min():.0f} to {scores[group].max():.0f}",
                str(len(group)),
                str(conv),
                pct(rate),
                f"{rate / base:.2f}" if base else "-",
                pct(captured / total_pos) if total_pos else "-",
            )
        )
    header = ("decile", "points", "leads", "converted", "rate", "lift",
              "cumulative share of converters")  # fmt: skip
    return Section(title, header, tuple(rows))


def by_stage(stages: Sequence[str], labels: Any, title: str) -> Section:
    """Conversion per lifecycle stage, in the funnel's order."""
    labels = np.asarray(labels, dtype=bool)
    base = labels.mean() if len(labels) else math.nan
    names = np.asarray(stages, dtype=object)
    order = {stage.value: n for n, stage in enumerate(Stage)}
    rows = []
    for stage in sorted(set(stages), key=lambda s: (order.get(s, len(order)), s)):
        mask = names == stage
        rate = float(labels[mask].mean())
        rows.append(
            (stage, str(int(mask.sum())), pct(mask.mean()), str(int(labels[mask].sum())),
             pct(rate), f"{rate / base:.2f}" if base else "-")
        )  # fmt: skip
    return Section(title, ("stage", "leads", "share", "converted", "rate", "lift"), tuple(rows))


def text_sections(sections: Sequence[Section]) -> str:
    out: list[str] = []
    for section in sections:
        out += [section.title, "-" * len(section.title)]
        if not section.header:
            out += [row[0] for row in section.rows]
        else:
            table = [section.header, *section.rows]
            widths = [max(len(r[i]) for r in table) for i in range(len(section.header))]
            out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                    for r in table]  # fmt: skip
        out.append("")
    return "\n".join(out)


def markdown_sections(sections: Sequence[Section]) -> list[str]:
    out: list[str] = []
    for section in sections:
        out += [f"## {section.title}", ""]
        if not section.header:
            out += [f"- {row[0]}" for row in section.rows]
        else:
            out.append("| " + " | ".join(section.header) + " |")
            out.append("|" + " --- |" * len(section.header))
            out += [
                "| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in section.rows
            ]
        out.append("")
    return out


def html_sections(sections: Sequence[Section]) -> list[str]:
    out: list[str] = []
    for section in sections:
        out.append(f"<h2>{html.escape(section.title)}</h2>")
        if not section.header:
            out.append("<ul>" + "".join(f"<li>{html.escape(r[0])}</li>" for r in section.rows))
            out.append("</ul>")
            continue
        out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in section.header))
        for row in section.rows:
            out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        out.append("</table>")
    return out
