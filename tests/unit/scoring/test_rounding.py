"""Published points are rounded to 4 decimals by `_round4`, which must give exactly what
`round(value, 4)` gives: the same float, the sign of a zero included."""

from __future__ import annotations

import math
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.scoring.engine import _round4


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _same(value: float) -> None:
    assert _bits(_round4(value)) == _bits(round(value, 4)), value


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(-1e5, 1e5),
        st.floats(-2.0, 2.0),
        st.floats(-1e-3, 1e-3),
        st.floats(allow_nan=False, allow_infinity=True),
    )
)
def test_any_float_rounds_as_round_does(value: float) -> None:
    _same(value)


@settings(max_examples=2000, deadline=None)
@given(st.integers(-(10**9), 10**9), st.sampled_from([0.5, 0.49999, 0.50001, 0.0, 0.99999]))
def test_values_next_to_halves_and_wholes_round_as_round_does(whole: int, offset: float) -> None:
    """Near `(k + 0.5) / 1e4` (where the binary value decides which way a tie goes) and near whole
    ten-thousandths."""
    for value in ((whole + offset) / 10_000, math.nextafter((whole + offset) / 10_000, math.inf)):
        _same(value)
        _same(-value)


@pytest.mark.parametrize(
    "value",
    [
        0.0,
        -0.0,
        0.00005,
        -0.00005,
        0.00004999,
        -0.00004999,
        -0.00015,
        0.00015,
        1.00005,
        2.675,
        -2.675,
        99_999.99995,
        -99_999.99995,
        100_000.00005,
        1e9,
        -1e9,
        math.nan,
    ],
)
def test_edge_values(value: float) -> None:
    if math.isnan(value):
        assert math.isnan(_round4(value))
    else:
        _same(value)


def test_many_scores_of_the_usual_size() -> None:
    rnd = random.Random(4)
    for _ in range(200_000):
        _same(rnd.uniform(-200.0, 200.0))
        _same(rnd.uniform(-1.0, 1.0) * 10 ** rnd.randint(-6, 5))
