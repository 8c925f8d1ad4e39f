"""Held-out AUC of `leadstream calibrate` + `leadstream score` on a 70/30 stratified split.

    python benchmarks/calibration_split.py TABLE --target COLUMN [--seed 42[,7,1]] \
        [-- CALIBRATE ARGS]
    python benchmarks/calibration_split.py TABLE --target COLUMN --each-pair-count \
        [--option max_bins=40 ...] [-- --exclude COLUMNS]

Splits TABLE 70/30 (stratified on the target, seeded), writes both parts to a temporary
folder, fits a model file on the 70% with `leadstream calibrate` (default options, `--holdout 0`
so that every training row is used, and whatever follows `--`), scores the 30% with
`leadstream score`, and prints the AUC `leadstream score` reports next to scikit-learn's
gradient boosting (`HistGradientBoostingClassifier`, native categorical columns, not tuned) on
the same split and the same cleaned columns. With several seeds, a split each and a summary
of them. The figures are printed, never asserted.

`--each-pair-count` fits in process instead (`stream.calibrate.scorecard`, the options of
`Options` with `--option NAME=VALUE`, the roles of `--exclude`/`--role` after `--`): the
cross-validated AUC on the 70% and the held-out AUC of the integer points on the 30% for every
number of pairs cross-validation chooses among, and which it chooses.

`--tuned-reference` prints only the references: the gradient boosting above, and gradient
boosting with the one of `GBM_SETTINGS` that 3-fold cross-validation on the 70% prefers.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from stream.calibrate import scorecard
from stream.calibrate.table import Role, prepare, read_table

LEADSTREAM = str(Path(sys.executable).with_name("leadstream"))


def _roles(extra: list[str]) -> dict[str, Role]:
    """The columns `--exclude` and `--role` of the calibrate arguments leave out or set."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--role", action="append", default=[])
    known, _ = parser.parse_known_args(extra)
    roles = {name: Role.IGNORE for text in known.exclude for name in text.split(",") if name}
    roles |= {item.rpartition("=")[0]: Role(item.rpartition("=")[2]) for item in known.role}
    return roles


GBM_SETTINGS: tuple[dict[str, float], ...] = (
    {"learning_rate": 0.05, "max_iter": 300},  # the untuned reference
    {"learning_rate": 0.02, "max_iter": 600, "max_depth": 3, "min_samples_leaf": 100},
    {"learning_rate": 0.05, "max_iter": 300, "max_leaf_nodes": 8, "min_samples_leaf": 50},
    {"learning_rate": 0.03, "max_iter": 400, "max_depth": 4, "l2_regularization": 1.0},
    {"learning_rate": 0.1, "max_iter": 200, "max_depth": 2},
)
"""What `--tuned-reference` chooses among (by 3-fold cross-validation on the training part)."""


def _gbm_data(
    frame: pd.DataFrame, target: str, roles: dict[str, Role]
) -> tuple[pd.DataFrame, np.ndarray]:
    table = prepare(frame, target=target, roles=roles)
    x, y = table.frame.copy(), table.target
    for column in (c.name for c in table.features if c.role == Role.CATEGORICAL):
        x[column] = pd.Categorical(x[column].astype("object"))
    return x, y


def _gbm_fit_auc(
    x: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray, setting: dict[str, float]
) -> float:
    model = HistGradientBoostingClassifier(
        random_state=0, categorical_features="from_dtype", **setting
    )
    model.fit(x.iloc[train], y[train])
    return float(roc_auc_score(y[test], model.predict_proba(x.iloc[test])[:, 1]))


def _gbm_auc(
    frame: pd.DataFrame, target: str, train: np.ndarray, test: np.ndarray, roles: dict[str, Role]
) -> float:
    x, y = _gbm_data(frame, target, roles)
    return _gbm_fit_auc(x, y, train, test, GBM_SETTINGS[0])


def _tuned_gbm(
    frame: pd.DataFrame, target: str, train: np.ndarray, test: np.ndarray, roles: dict[str, Role]
) -> tuple[float, int, list[float]]:
    """Gradient boosting with the setting of `GBM_SETTINGS` whose mean AUC over 3 folds of the
    training part is the best: its held-out AUC, the setting's index, and every setting's
    cross-validated AUC. The held-out part plays no part in the choice."""
    x, y = _gbm_data(frame, target, roles)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    cv = [
        float(
            np.mean(
                [
                    _gbm_fit_auc(x, y, train[inner], train[outer], setting)
                    for inner, outer in folds.split(train, y[train])
                ]
            )
        )
        for setting in GBM_SETTINGS
    ]
    best = int(np.argmax(cv))
    return _gbm_fit_auc(x, y, train, test, GBM_SETTINGS[best]), best, cv


def _option(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    default = getattr(scorecard.Options(), name)
    if isinstance(default, bool):
        return name, value.lower() in {"1", "true", "yes"}
    if default is None:  # interactions, scale: a number
        return name, float(value) if "." in value else int(value)
    return name, type(default)(value)


def _each_pair_count(
    known: pd.DataFrame,
    target: str,
    *,
    train: np.ndarray,
    test: np.ndarray,
    roles: dict[str, Role],
    options: scorecard.Options,
) -> None:
    """Cross-validated and held-out AUC of the integer points for every number of pairs."""
    fitted = prepare(known.iloc[train].reset_index(drop=True), target=target, roles=roles)
    fixed = {c.name: c.role for c in fitted.columns if c.name != target}
    every = prepare(known, target=target, roles=fixed)  # the training table's roles
    held = every.frame.iloc[test].reset_index(drop=True)
    tops = scorecard.INTERACTION_CHOICES
    columns, frame, y = fitted.features, fitted.frame, fitted.target
    # the steps of fit_scorecard, every pair count kept rather than the chosen one
    cv = scorecard._cross_validate(columns, frame, y, options, tops)  # noqa: SLF001
    best = max(mean for mean, _ in cv.values())
    chosen = min(t for t, (mean, _) in cv.items() if mean >= best - 0.001)
    cards = scorecard._with_pairs(columns, frame, y, options, tops)  # noqa: SLF001
    for top in tops:
        card = cards[top]
        card.intercept = float(card.model.intercept_[0])
        scorecard._to_points(card)  # noqa: SLF001
        auc = roc_auc_score(every.target[test], card.total(held))
        mark = "  (chosen)" if top == chosen else ""
        print(f"  {top} pairs: cross-validated AUC {cv[top][0]:.4f}, held out {auc:.4f}{mark}")
        if top == max(tops):
            print(f"  the pairs in order: {'; '.join(p.name for p in card.interactions)}")


def _seeds(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _through_cli(
    known: pd.DataFrame,
    target: str,
    *,
    train: np.ndarray,
    test: np.ndarray,
    extra: list[str],
) -> tuple[str, str, float, float]:
    """`leadstream calibrate` on the training part, `leadstream score` on the held-out part:
    the AUC score reports, the pairs line of calibrate, and the seconds each took."""
    with tempfile.TemporaryDirectory() as folder:
        train_csv, test_csv = Path(folder) / "train.csv", Path(folder) / "test.csv"
        model = Path(folder) / "model.yaml"
        known.iloc[np.sort(train)].to_csv(train_csv, index=False)
        known.iloc[np.sort(test)].to_csv(test_csv, index=False)
        started = time.monotonic()
        calibrate = [LEADSTREAM, "calibrate", str(train_csv), "--target", target]
        calibrate += ["--holdout", "0", "--stream-check", "0", "--out", str(model), *extra]
        fitted = subprocess.run(calibrate, capture_output=True, text=True, check=False)
        if fitted.returncode:
            sys.exit(f"calibrate failed ({fitted.returncode}):\n{fitted.stderr}")
        fit_seconds = time.monotonic() - started
        started = time.monotonic()
        score = [LEADSTREAM, "score", str(test_csv), "--models", str(model)]
        score += ["--target", target, "--out", str(Path(folder) / "scores.csv")]
        scored = subprocess.run(score, capture_output=True, text=True, check=False)
        if scored.returncode:
            sys.exit(f"score failed ({scored.returncode}):\n{scored.stderr}")
        score_seconds = time.monotonic() - started
    auc = re.search(r"AUC\s+([0-9.]+)", scored.stdout)
    lines = [
        f"  {line}"
        for line in fitted.stdout.splitlines()
        if line.startswith(("cross-validated AUC", "pairs of attributes"))
    ]
    return auc[1] if auc else "?", "\n".join(lines), fit_seconds, score_seconds


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("--target", required=True)
    parser.add_argument(
        "--seed", type=_seeds, default=[42], help="the split's seed, or several: 42,7,1"
    )
    parser.add_argument("--sep")
    parser.add_argument("--each-pair-count", action="store_true")
    parser.add_argument("--option", action="append", default=[], type=_option)
    parser.add_argument(
        "--tuned-reference",
        action="store_true",
        help="only the references: gradient boosting untuned, and tuned on the training part",
    )
    args = parser.parse_args(argv)

    frame = read_table(args.table, sep=args.sep)
    labels = prepare(frame, target=args.target).target  # the rows with a known outcome
    known = frame[frame[args.target].notna()].reset_index(drop=True)
    rows = np.arange(len(known))
    summary = []
    for seed in args.seed:
        train, test = train_test_split(rows, test_size=0.3, stratify=labels, random_state=seed)
        print(f"table {args.table}, target {args.target}, seed {seed}, 70/30 stratified")
        if args.each_pair_count:
            train, test = np.sort(train), np.sort(test)  # the order of the CSV files below
            options = scorecard.Options(**dict(args.option))
            print(f"in process, {' '.join(extra)} {options}")
            _each_pair_count(
                known, args.target, train=train, test=test, roles=_roles(extra), options=options
            )
            continue
        if args.tuned_reference:
            roles = _roles(extra)
            tuned, best, cv = _tuned_gbm(known, args.target, train, test, roles)
            print(f"gradient boosting AUC {_gbm_auc(known, args.target, train, test, roles):.4f}")
            print(f"  cross-validated on the training part: {', '.join(f'{a:.4f}' for a in cv)}")
            print(f"tuned gradient boosting AUC {tuned:.4f} ({GBM_SETTINGS[best]})", flush=True)
            continue
        auc, pairs, fit_seconds, score_seconds = _through_cli(
            known, args.target, train=train, test=test, extra=extra
        )
        gbm = _gbm_auc(known, args.target, train, test, _roles(extra))
        print(f"calibrate {' '.join(extra) or '(default options)'}: {fit_seconds:.1f} s")
        print(pairs)
        print(f"leadstream score AUC {auc} ({score_seconds:.1f} s)")
        print(f"gradient boosting AUC {gbm:.4f}", flush=True)
        summary.append((seed, auc, gbm))
    if len(summary) > 1:
        print("seed  leadstream score  gradient boosting")
        for seed, auc, gbm in summary:
            print(f"{seed:>4}  {auc:>16}  {gbm:>17.4f}")
        scored = [float(auc) for _, auc, _ in summary if auc != "?"]
        if scored:
            gbms = [gbm for *_, gbm in summary]
            print(f"mean  {np.mean(scored):>16.4f}  {np.mean(gbms):>17.4f}")


if __name__ == "__main__":
    main()
