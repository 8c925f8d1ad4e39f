"""Calibrate: learn a scoring model's points from labelled history (`leadstream calibrate`).

A table of past leads (CSV or Parquet, one row per lead, a target column saying whether the lead
converted) becomes a Leadstream model file the stream runs unchanged:

    values.py     one cell as training and the stream both read it: missing, number, category
    table.py      read the table, infer each column's role, clean messy values, guard leakage
    scorecard.py  bin the features, fit a regularised logistic regression, scale to points
    export.py     write the model file
    rows.py       a table row as the events the stream sees, read off a model file
    score.py      score a table or an event log through the core as the worker would
    metrics.py    AUC, KS, conversion by decile and by stage, as tables
    report.py     the calibration report: deciles, calibration, points, close rates, warnings
    run.py        the pipeline: a seeded held-out split, thresholds, the stream check
    history.py    from an event log and outcomes: new points for an existing model's rules
    outcomes.py   outcomes read from the CRM feedback in an event history

The `leadstream calibrate` and `leadstream score` commands are `stream.cli.calibrate` and
`stream.cli.score`.

This package uses pandas and scikit-learn (the `calibrate` extra); the scoring core
(`stream.scoring`) never imports it.
"""

from __future__ import annotations

__all__ = ["INSTALL_HINT"]

INSTALL_HINT = "pip install 'leadstream[calibrate]'"
"""What to run when scikit-learn or pandas is missing."""
