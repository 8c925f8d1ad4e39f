"""A table of past leads: reading it, inferring each column's role, cleaning messy values.

One row per lead; one column says whether the lead converted (the target). Every other column
gets a role, inferred and overridable:

- `numeric`: an attribute with many numeric values (age, company size): binned into ranges;
- `categorical`: text, booleans and numbers with at most 10 distinct values (codes);
- `count`: how often the lead did something (non-negative integers; inferred from names such as
  `visits`, `page_views`, `num_calls` when the values look like counts: not one per row, a median
  of at most 1,000): becomes engagement rules;
- `id`: the lead's id (kept to name the lead, not a feature): named like one (`lead_id`, `Lead
  Number`) with mostly distinct values, unique text, or whole numbers with one value per row that
  run in order, sit densely in a range or are far larger than any count (a record number is not
  how often a lead did something); `target`; `ignore`.

Cleaning (`values`, shared with the mapping of rows to events): text is stripped and
placeholders (`Select`, `n/a`, `unknown`, `-`, `?`, `null`, ...) become missing; columns with one
value, and columns identical to an earlier one, are dropped; a column that alone separates
converters almost perfectly (its single-column AUC at least `leak_auc`) was most likely filled
after the fact and is excluded unless forced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from stream.calibrate.values import (
    MAX_TEXT,
    PLACEHOLDERS,
    as_list,
    category,
    count,
    is_missing,
    number,
    text,
)
from stream.errors import LeadstreamError
from stream.scoring.spec import suggest

__all__ = [
    "MAX_TEXT",
    "PLACEHOLDERS",
    "CalibrationError",
    "Column",
    "Role",
    "Table",
    "column_keys",
    "column_numbers",
    "infer_role",
    "parse_target",
    "prepare",
    "read_table",
]


class CalibrationError(LeadstreamError):
    """History that cannot be calibrated on: a missing target, one class only, an unreadable
    file."""


class Role(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    COUNT = "count"
    TARGET = "target"
    ID = "id"
    IGNORE = "ignore"


FEATURE_ROLES = frozenset({Role.NUMERIC, Role.CATEGORICAL, Role.COUNT})

_TRUE = frozenset({"yes", "y", "true", "t", "1", "1.0", "converted", "won", "positive"})
_FALSE = frozenset({"no", "n", "false", "f", "0", "0.0", "not converted", "lost", "negative"})
_ID_NAME = re.compile(
    r"(?i)^(id|uuid|guid|key|ref)$|[_\s.-](id|uuid|guid|key|ref|no|nr|num|number)$|#|"
    r"^(lead|customer|user|client|prospect|contact|account|record)_?(id|no|nr|num|number|key)$"
)
_COUNT_NAME = re.compile(
    r"(?i)(^|[_\s.-])(n|num|number|count|cnt|visits?|views?|page_?views|clicks?|opens?|"
    r"downloads?|sessions?|calls?|times|events|actions)([_\s.-]|$)|"
    r"(count|visits|views|clicks|opens|downloads|sessions)$|^(num|n)[A-Z_]"
)
MAX_CODE_VALUES = 10
"""Integer columns with at most this many distinct values are codes (categorical)."""
MAX_COUNT_MEDIAN = 1000
"""A column named like a count whose median is above this is not taken for one."""
HUGE_ID = 100_000
"""Whole numbers, one per row, whose median is at least this are record numbers."""


@dataclass(frozen=True)
class Column:
    """A column of the table and what calibration does with it."""

    name: str
    role: Role
    reason: str
    """Why it has this role (`inferred: text`, `--role`, `constant`, `leak: AUC 0.99 alone`)."""
    key: str = ""
    """Its name as a profile attribute: `custom.<key>` (dots and spaces become `_`)."""
    auc: float | None = None
    """The AUC of the column alone (0.5 = no signal), for features."""


@dataclass
class Table:
    """A cleaned table: features, the target and the lead ids, and what was done to it."""

    frame: Any
    """The feature columns (a pandas DataFrame, cleaned)."""
    target: Any
    """Converted or not per row (a numpy bool array)."""
    ids: list[str]
    columns: list[Column]
    target_name: str
    positive: str
    notes: list[str] = field(default_factory=list)
    raw: Any = None
    """The rows as read (a pandas DataFrame, rows without a target value left out): what the
    stream check maps to events, as `leadstream score` maps a file."""

    @property
    def features(self) -> list[Column]:
        return [c for c in self.columns if c.role in FEATURE_ROLES]

    @property
    def excluded(self) -> list[Column]:
        """Columns that are not features, but for the target and the id."""
        return [c for c in self.columns if c.role == Role.IGNORE]


def read_table(path: str | Path, *, sep: str | None = None) -> Any:
    """A CSV (separator sniffed from the header: `,` `;` tab or `|`) or Parquet file."""
    p = Path(path)
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            try:
                return pd.read_parquet(p)
            except ImportError as exc:
                from stream.calibrate import INSTALL_HINT  # noqa: PLC0415

                raise CalibrationError(
                    f"{p}: reading Parquet needs pyarrow ({INSTALL_HINT})"
                ) from exc
        if sep is None:
            with p.open(encoding="utf-8", errors="replace") as handle:
                header = handle.readline()
            sep = max((",", ";", "\t", "|"), key=header.count)
        return pd.read_csv(p, sep=sep, low_memory=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CalibrationError(f"{p}: cannot read the table: {exc}") from exc


def column_numbers(series: Any) -> Any | None:
    """The column as floats (NaN where missing or not a number) when it is numeric, or when at
    least 95% of its present values are numbers; None for booleans and text."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return None
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.astype("float64").to_numpy(copy=True)
        values[~np.isfinite(values)] = np.nan
        return values
    cells = as_list(series)
    present = sum(not is_missing(v) for v in cells)
    if not present:
        return None
    numbers = np.array([number(v) for v in cells], dtype="float64")
    if int((~np.isnan(numbers)).sum()) < 0.95 * present:
        return None
    return numbers


def parse_target(series: Any, positive: str | None, *, both: bool = True) -> tuple[Any, str]:
    """Converted or not per row (None where missing), and the value that means converted.

    With `both` (for fitting) the rows must hold both outcomes; without (for scoring a file)
    one outcome will do when it reads as yes or no (or `positive` is given)."""
    values = [text(v) for v in as_list(series)]
    present = sorted({v for v in values if v is not None})
    if len(present) < 2 and (both or (positive is None and not present)):
        raise CalibrationError(f"target {series.name!r}: every row has the same outcome")
    if positive is None:
        folded = {v.casefold() for v in present}
        if len(present) == 2 and folded <= _TRUE | _FALSE and folded & _TRUE:
            positive = next(v for v in present if v.casefold() in _TRUE)
        elif len(present) == 1 and folded <= _TRUE | _FALSE:
            positive = present[0] if folded <= _TRUE else "\0converted"
        elif len(present) == 2:
            raise CalibrationError(
                f"target {series.name!r}: which of {present[0]!r} and {present[1]!r} means "
                "converted? give --positive VALUE"
            )
        else:
            shown = ", ".join(repr(v) for v in present[:6])
            raise CalibrationError(
                f"target {series.name!r} has {len(present)} values ({shown}); "
                "give --positive VALUE for the converted one"
            )
    wanted = positive.casefold()
    label = pd.Series(
        [None if v is None else v.casefold() == wanted for v in values],
        index=series.index,
        dtype="object",
    )
    return label, positive


def _single_auc(values: Any, target: Any) -> float:
    """How well the column alone ranks converters (0.5 = not at all, 1 = perfectly)."""
    if pd.api.types.is_float_dtype(values):
        filled = values.fillna(values.median() if values.notna().any() else 0.0)
        scores = filled.to_numpy()
    else:
        keys = pd.Series(
            ["\0missing" if is_missing(v) else str(v).casefold() for v in as_list(values)],
            dtype="object",
        )
        rates = pd.Series(target).groupby(keys.to_numpy()).mean()
        scores = keys.map(rates).to_numpy(dtype="float64")
    if len(set(target.tolist())) < 2:
        return 0.5
    a = float(roc_auc_score(target, scores))
    return max(a, 1.0 - a)


def _dates(texts: list[str | None]) -> bool:
    """Whether (a sample of) the text column is dates or times."""
    sample = pd.Series([v for v in texts if v is not None][:200], dtype="object")
    if sample.empty or not sample.str.contains(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}").all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.95)


def _record_number(name: str, present: Any, rows: int) -> str | None:  # noqa: PLR0911
    """Why whole numbers are a record number rather than an attribute or a count (None: they
    are not): one value per row and named like an id, in order, dense, or huge."""
    n = len(present)
    if n <= 20 or n < 0.5 * rows or not bool(np.all(np.mod(present, 1) == 0)):
        return None
    distinct = len(np.unique(present))
    if distinct < 0.95 * n:
        return None
    if _ID_NAME.search(name):
        return "named like an id, one value per row"
    steps = np.diff(present)
    if bool(np.all(steps > 0)) or bool(np.all(steps < 0)):
        return "whole numbers, one per row, in order"
    if float(np.median(present)) >= HUGE_ID:
        return f"whole numbers, one per row, median {np.median(present):.0f}"
    if float(present.max() - present.min()) + 1 <= 2 * distinct:
        return "whole numbers, one per row, filling their range"
    return None


def infer_role(name: str, series: Any, numbers: Any | None, rows: int) -> tuple[Role, str]:  # noqa: PLR0911
    """A column's role and why, from its name and values (see the module's docstring)."""
    if numbers is None:
        texts = [text(v) for v in as_list(series)]
        distinct = len({v for v in texts if v is not None})
        if (_ID_NAME.search(name) and distinct >= 0.5 * rows) or (
            rows > 20 and distinct >= 0.95 * rows
        ):
            return Role.ID, "inferred: an identifier"
        if _dates(texts):
            return Role.IGNORE, "inferred: a date (not an attribute of the lead)"
        if distinct > max(100, rows // 2):
            return Role.IGNORE, f"inferred: free text ({distinct} distinct values)"
        return Role.CATEGORICAL, "inferred: text"
    present = numbers[~np.isnan(numbers)]
    record = _record_number(name, present, rows)
    if record is not None:
        return Role.ID, f"inferred: an identifier ({record})"
    distinct = len(np.unique(present))
    if _ID_NAME.search(name) and distinct >= 0.5 * rows:
        return Role.ID, "inferred: an identifier (named like one)"
    integral = bool(np.all(np.mod(present, 1) == 0))
    if integral and bool((present >= 0).all()) and _COUNT_NAME.search(name):
        median = float(np.median(present)) if len(present) else 0.0
        if median <= MAX_COUNT_MEDIAN:
            return Role.COUNT, "inferred: a count of an activity (by its name)"
        if distinct <= MAX_CODE_VALUES:
            return Role.CATEGORICAL, f"inferred: {distinct} distinct numbers (codes)"
        return Role.NUMERIC, (
            f"inferred: numbers (named like a count, but a median of {median:.0f} is not how "
            "often a lead does something)"
        )
    if integral and distinct <= MAX_CODE_VALUES:
        return Role.CATEGORICAL, f"inferred: {distinct} distinct numbers (codes)"
    return Role.NUMERIC, "inferred: numbers"


def _key(name: str, used: set[str]) -> str:
    base = re.sub(r"[\s.]+", "_", name.strip())[:120] or "column"
    key, n = base, 2
    while key in used:
        key, n = f"{base}_{n}", n + 1
    used.add(key)
    return key


def column_keys(names: list[str], target: str | None = None) -> dict[str, str]:
    """Every column's name as a profile attribute (`custom.<key>`): dots and spaces become `_`,
    and a key already taken by an earlier column gets `_2`, `_3`, ... The target has none."""
    used: set[str] = set()
    return {name: _key(name, used) for name in names if name != target}


def _feature_values(name: str, role: Role, series: Any, numbers: Any | None) -> Any:
    if role == Role.CATEGORICAL:
        return pd.Series([category(v) for v in as_list(series)], dtype="object")
    if numbers is None:
        raise CalibrationError(f"column {name!r} is not numeric; it cannot be {role}")
    if role == Role.COUNT:
        counts = np.array([count(v) for v in numbers.tolist()], dtype="float64")
        if bool((counts < 0).any()):
            raise CalibrationError(f"column {name!r} has negative values; not a count")
        return pd.Series(counts, dtype="float64")
    return pd.Series(numbers, dtype="float64")


@dataclass
class _Screen:
    """Drops constant and duplicate columns and guards against leakage."""

    y: Any
    leak_auc: float
    force: frozenset[str]
    notes: list[str]
    fingerprints: dict[int, str] = field(default_factory=dict)

    def __call__(self, name: str, values: Any) -> tuple[str | None, float | None]:
        """(why the column is dropped or None, its AUC alone)."""
        if values.nunique(dropna=True) <= 1:
            self.notes.append(f"{name}: a single value, dropped")
            return "dropped: a single value", None
        fingerprint = int(pd.util.hash_pandas_object(values.astype("object"), index=False).sum())
        if fingerprint in self.fingerprints:
            original = self.fingerprints[fingerprint]
            self.notes.append(f"{name}: a copy of {original}, dropped")
            return f"dropped: a copy of {original}", None
        self.fingerprints[fingerprint] = name
        alone = _single_auc(values, self.y)
        if alone >= self.leak_auc and name not in self.force:
            self.notes.append(
                f"{name}: ranks converters on its own with AUC {alone:.3f} (at least "
                f"{self.leak_auc:g}), most likely filled after the outcome; excluded "
                f"(--force {name} keeps it)"
            )
            return f"excluded: likely leakage (AUC {alone:.3f} alone; --force keeps it)", alone
        return None, alone


def prepare(
    frame: Any,
    *,
    target: str,
    positive: str | None = None,
    roles: dict[str, Role] | None = None,
    leak_auc: float = 0.95,
    force: frozenset[str] = frozenset(),
) -> Table:
    """Clean the table and give every column a role (see the module's docstring)."""
    roles = dict(roles or {})
    names = ", ".join(map(str, frame.columns))
    present = list(map(str, frame.columns))
    unknown = sorted({*roles, *force} - set(present))
    if unknown:
        named = ", ".join(f"{name!r}{suggest(name, present)}" for name in unknown)
        raise CalibrationError(f"no column {named} (columns: {names})")
    if target not in frame.columns:
        raise CalibrationError(
            f"no target column {target!r}{suggest(target, present)} (columns: {names})"
        )
    notes: list[str] = []
    label, positive = parse_target(frame[target], positive)
    keep = label.notna().to_numpy()
    if not keep.all():
        notes.append(f"{int((~keep).sum())} rows without a target value dropped")
    frame = frame.loc[keep].reset_index(drop=True)
    y = label[keep].to_numpy(dtype=bool)
    if y.all() or not y.any():
        raise CalibrationError(f"target {target!r}: every row has the same outcome")
    rows = len(frame)
    columns: list[Column] = [Column(target, Role.TARGET, "--target")]
    cleaned: dict[str, Any] = {}
    ids: list[str] = [str(i + 1) for i in range(rows)]
    screen = _Screen(y, leak_auc, force, notes)
    keys = column_keys(list(map(str, frame.columns)), target)
    for name in map(str, frame.columns):
        if name == target:
            continue
        raw = frame[name]
        numbers = column_numbers(raw)
        role, reason = (
            (roles[name], "given") if name in roles else infer_role(name, raw, numbers, rows)
        )
        if role == Role.ID:
            ids = [str(i + 1) if v is None else v for i, v in enumerate(map(category, raw))]
            columns.append(Column(name, role, reason))
            continue
        if role in (Role.IGNORE, Role.TARGET):
            columns.append(Column(name, Role.IGNORE, reason))
            continue
        values = _feature_values(name, role, raw, numbers)
        dropped, alone = screen(name, values)
        if dropped is not None:
            columns.append(Column(name, Role.IGNORE, dropped, auc=alone))
            continue
        cleaned[name] = values
        columns.append(Column(name, role, reason, key=keys[name], auc=alone))
    features = pd.DataFrame(cleaned, index=range(rows))
    if features.empty:
        raise CalibrationError("no feature columns left after cleaning")
    return Table(features, y, ids, columns, str(target), positive, notes, raw=frame)
