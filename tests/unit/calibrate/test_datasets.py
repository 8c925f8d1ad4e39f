"""Calibration on public lead-conversion data in ../shared/datasets (read in place).

Where the data comes from, and how to lay it out: docs/DATASETS.md (found by conftest.py).

The bounds sit a little under the figures in BENCHMARKS.md: the split is seeded, but these
datasets are small. Cross-validation is skipped to keep the tests fast: the shoppers test crosses
the 4 pairs of attributes that cross-validation on the training split chooses (BENCHMARKS.md);
the choice itself is tested in test_interactions.py.
"""

from __future__ import annotations

from pathlib import Path

from stream.calibrate.run import calibrate
from stream.calibrate.scorecard import Options
from stream.calibrate.table import Role, prepare, read_table

BANK = Path("uci-bank-marketing") / "bank-additional-full.csv"
SHOPPERS = Path("uci-online-shoppers-intention") / "online_shoppers_intention.csv"


def test_bank_marketing_without_the_call_duration(datasets: Path) -> None:
    table = prepare(read_table(datasets / BANK), target="y", roles={"duration": Role.IGNORE})
    assert table.positive == "yes"
    result = calibrate(table, options=Options(folds=0, interactions=0), stream_check=0)
    assert result.auc_points >= 0.79  # 0.8125 in BENCHMARKS.md (with a pair of attributes)


def test_online_shoppers_ranked_the_same_offline_and_in_the_stream(datasets: Path) -> None:
    counts = {name: Role.COUNT for name in ("Administrative", "Informational", "ProductRelated")}
    table = prepare(read_table(datasets / SHOPPERS), target="Revenue", roles=counts)
    result = calibrate(table, options=Options(folds=0, interactions=4), stream_check=1500)
    assert result.auc_points >= 0.915  # 0.920 in BENCHMARKS.md
    model = result.models.get("calibrated")
    assert model.engagement  # counts became engagement rules
    assert any(rule.and_ for rule in model.fit)  # and pairs of attributes fit rules with `and`
    assert result.stream_auc is not None
    assert result.stream_rows == 1500
    assert result.stream_differ == 0  # the same totals lead by lead
