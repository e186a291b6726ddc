"""The sliding kernels against brute force over random monotone ranges (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valuechain.data.engines.sliding import (
    range_std,
    sliding_distinct,
    sliding_extreme,
)
from valuechain.errors import EngineError


@st.composite
def ranges(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 40))
    codes = np.array(draw(st.lists(st.integers(-1, 5), min_size=n, max_size=n)), dtype=np.int64)
    q = draw(st.integers(0, 30))
    lo = np.sort(np.array(draw(st.lists(st.integers(0, n), min_size=q, max_size=q)),
                          dtype=np.int64))
    grow = np.array(draw(st.lists(st.integers(0, 6), min_size=q, max_size=q)), dtype=np.int64)
    hi = np.maximum.accumulate(np.minimum(lo + grow, n)) if q else lo.copy()
    return codes, lo, np.maximum(hi, lo)


@settings(max_examples=300, deadline=None)
@given(ranges())
def test_sliding_kernels_equal_brute_force(case: tuple[np.ndarray, np.ndarray, np.ndarray]
                                           ) -> None:
    codes, lo, hi = case
    members = [[c for c in codes[a:b] if c >= 0] for a, b in zip(lo, hi, strict=True)]
    assert sliding_extreme(codes, lo, hi, True).tolist() == [max(m, default=-1) for m in members]
    assert sliding_extreme(codes, lo, hi, False).tolist() == [min(m, default=-1)
                                                              for m in members]
    assert sliding_distinct(codes, lo, hi, 6).tolist() == [len(set(m)) for m in members]
    values = codes.astype(float) * 1.5
    got = range_std(values, codes >= 0, lo, hi)
    for g, m in zip(got, members, strict=True):
        want = float(np.std(np.array(m) * 1.5, ddof=1)) if len(m) >= 2 else np.nan
        assert (np.isnan(g) and np.isnan(want)) or abs(g - want) <= 1e-12 * (1 + abs(want))


def test_ranges_that_go_back_are_refused() -> None:
    with pytest.raises(EngineError, match="non-decreasing"):
        sliding_distinct(np.array([0, 1]), np.array([1, 0]), np.array([2, 2]), 2)
