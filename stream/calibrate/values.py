"""One cell of a table as calibration reads it: missing, a number, a count or a category.

Training (`table.prepare`) and the mapping of a row to the events the stream sees
(`rows.lead_events`, used by the stream check and by `leadstream score`) read every cell through
these functions, so a value means the same on both sides whatever pandas made of the cell: a
blank text cell is `NaN` with pandas 3 and `None` or `NaN` with pandas 2, a nullable column
holds `pd.NA`, a date column `NaT`; all of them, blanks and placeholders such as `n/a` are
missing, and a missing attribute is sent to the stream as the text `(missing)` when the model
has a bin for it.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MAX_TEXT",
    "MISSING",
    "PLACEHOLDERS",
    "category",
    "count",
    "is_missing",
    "number",
    "text",
]

MISSING = "(missing)"
"""The value a missing attribute is sent as, for features with a bin for missing values."""

PLACEHOLDERS = frozenset(
    {"", "select", "--select--", "-- select --", "please select", "n/a", "na", "nan", "none",
     "null", "nil", "-", "--", "?", "#n/a", "undefined", "not specified", "unknown",
     "not given", "not provided", MISSING}
)  # fmt: skip
"""Values that mean "nobody filled this in" (compared case-insensitively after stripping)."""

MAX_TEXT = 256
"""Categories are cut to this many characters (profile attributes hold at most 4,096)."""

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def is_missing(value: object) -> bool:
    """None, NaN, NaT, pandas' NA, or text that is blank or a placeholder."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().casefold() in PLACEHOLDERS
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array: not one missing value
        return False


def number(value: object) -> float:
    """The cell as a number; NaN when it is missing, infinite or not a number."""
    if isinstance(value, bool | np.bool_) or is_missing(value):
        return math.nan
    if isinstance(value, str):
        stripped = value.strip()
        if not _NUMBER.fullmatch(stripped):
            return math.nan
        x = float(stripped)
    elif isinstance(value, int | float | np.integer | np.floating):
        x = float(value)
    else:
        return math.nan
    return x if math.isfinite(x) else math.nan


def count(value: object) -> float:
    """How often a lead did something: a whole number of times, 0 when missing (a fraction is
    cut: 2.5 visits are 2). Negative counts stay negative (training refuses them)."""
    x = number(value)
    return 0.0 if math.isnan(x) else float(math.floor(x)) if x >= 0 else x


def category(value: object) -> str | None:
    """The cell as a category: stripped text, `true`/`false`, `3` (not `3.0`); None when
    missing."""
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value).strip()[:MAX_TEXT]


def text(value: object) -> str | None:
    """Stripped text, None when missing (for role inference and free text)."""
    return None if is_missing(value) else str(value).strip()


def as_list(series: Any) -> list[object]:
    """A pandas column's cells as Python objects, whatever its dtype."""
    return list(series.astype("object").tolist())
