"""Uplift metrics against hand-computed values, their properties, and the list comparison."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valuechain.errors import DataError
from valuechain.evaluate.bootstrap import block_bootstrap
from valuechain.uplift.compare import compare_lists, ht_terms, top_per_period
from valuechain.uplift.metrics import (
    auuc,
    curve_band,
    gain_curve,
    qini_coefficient,
    qini_curve,
    uplift_at_k,
    uplift_intervals,
)

# ranked: (t=1, y=0), (t=0, y=1), (t=1, y=1), (t=0, y=0)
S = [0.9, 0.8, 0.7, 0.6]
T = [1, 0, 1, 0]
Y = [0, 1, 1, 0]


def test_qini_curve_by_hand() -> None:
    # k=2: n_t=1, n_c=1, y_c=1, y_t=0 -> 1*1/1 - 0 = 1
    # k=3: n_t=2, n_c=1, y_c=1, y_t=1 -> 1*2/1 - 1 = 1
    # k=4: n_t=2, n_c=2, y_c=1, y_t=1 -> 1*2/2 - 1 = 0
    k, q = qini_curve(S, T, Y)
    assert k.tolist() == [0, 1, 2, 3, 4]
    assert q.tolist() == [0, 0, 1, 1, 0]
    # trapezoids over x = k/4 of q/4: 0 + 1/32 + 1/16 + 1/32 = 1/8; random line ends at 0
    assert qini_coefficient(S, T, Y) == pytest.approx(0.125)


def test_gain_curve_and_auuc_by_hand() -> None:
    # k=2: 2 * (1/1 - 0/1) = 2; k=3: 3 * (1/1 - 1/2) = 1.5; k=4: 4 * (1/2 - 1/2) = 0
    _, g = gain_curve(S, T, Y)
    assert g.tolist() == [0, 0, 2, 1.5, 0]
    # area of g/4 over k/4: (0 + 1/2)/2/4 + (1/2 + 3/8)/2/4 + (3/8 + 0)/2/4 = 0.21875
    assert auuc(S, T, Y) == pytest.approx(0.21875)


def test_uplift_at_k_by_hand_and_per_period() -> None:
    assert uplift_at_k(S, T, Y, k=2) == 1.0
    assert uplift_at_k(S, T, Y, k=4) == 0.0
    assert np.isnan(uplift_at_k(S, T, Y, k=1))  # no control row in the top 1
    # two periods, top 1 of each: period a -> (t=1, y=0); period b -> (t=0, y=1)
    assert uplift_at_k([9, 1, 1, 9], [1, 0, 1, 0], [0, 1, 1, 1], k=1,
                       periods=["a", "a", "b", "b"]) == 1.0
    with pytest.raises(DataError, match="`k` must be"):
        uplift_at_k(S, T, Y, k=0)


def test_reversed_ranking_flips_the_qini_sign_and_inputs_are_checked() -> None:
    assert qini_coefficient([-s for s in S], T, Y) < 0 < qini_coefficient(S, T, Y)
    with pytest.raises(DataError, match="0/1"):
        qini_coefficient(S, [2, 0, 1, 0], Y)
    with pytest.raises(DataError, match="same length"):
        qini_coefficient(S, T[:3], Y)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 1), st.integers(0, 1),
                          st.integers(1, 3)), min_size=2, max_size=30))
def test_weights_equal_repeated_rows(rows: list[tuple[float, int, int, int]]) -> None:
    """A row of weight w counts as w copies of it (what the customer bootstrap relies on):
    the curves agree at the end of every row (areas use those points)."""
    rows = [(round(s, 6) + i * 1e-3, t, y, w) for i, (s, t, y, w) in enumerate(rows)]
    s, t, y, w = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    rep = np.repeat(np.arange(len(s)), w.astype(int))
    for curve in (qini_curve, gain_curve):
        k, v = curve(s, t, y, sample_weight=w)
        _, v2 = curve(s[rep], t[rep], y[rep])
        np.testing.assert_allclose(v, v2[k.astype(int)], atol=1e-12)


def _world(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=n)
    t = (rng.uniform(size=n) < 0.8).astype(float)
    y = (rng.uniform(size=n) < np.where(t == 1, 0.3 - 0.25 * x, 0.3)).astype(float)
    customers = rng.integers(0, n // 4, n)  # customers recur about four times
    return x, t, y, customers


def test_informative_ranking_beats_random_with_intervals() -> None:
    x, t, y, customers = _world(8000, 0)
    good = uplift_intervals(x, t, y, customers, k=0.3, n_boot=50)
    noise = uplift_intervals(np.random.default_rng(1).uniform(size=len(x)), t, y, customers,
                             k=0.3, n_boot=50)
    assert good["qini"].low > 0 and good["qini"].low > noise["qini"].high
    assert abs(noise["qini"].value) < 0.01  # random: about 0 (sd 0.003 over 20 rankings)
    assert good["uplift_at_k"].low > noise["uplift_at_k"].value
    assert good["uplift_all"].value == pytest.approx(noise["uplift_all"].value)


def test_curve_band_resamples_customers_and_ends_at_the_total() -> None:
    x, t, y, customers = _world(3000, 2)
    band = curve_band("gain", x, t, y, customers, points=10, n_boot=40)
    assert band.fraction[0] == 0 and band.fraction[-1] == 1
    assert all(lo <= v <= hi for v, lo, hi in zip(band.value, band.low, band.high,
                                                    strict=True))
    total = gain_curve(x, t, y)[1][-1] / len(x)
    assert band.value[-1] == pytest.approx(total)
    # one customer's rows always move together: resampling customers is not resampling rows
    by_customer = block_bootstrap(qini_coefficient, customers, x, t, y, n_boot=40)
    by_row = block_bootstrap(qini_coefficient, np.arange(len(x)), x, t, y, n_boot=40)
    assert by_customer.value == by_row.value
    assert (by_customer.low, by_customer.high) != (by_row.low, by_row.high)


def test_ht_terms_and_compare_lists_by_hand() -> None:
    # rows: (y, t, e) = (1, 0, .5), (0, 1, .5), (1, 1, .5), (0, 0, .5), unassigned row
    y = [1, 0, 1, 0, 1]
    t = [0, 1, 1, 0, 0]
    e = [0.5, 0.5, 0.5, 0.5, 0.5]
    assert ht_terms(y, t, e).tolist() == [2.0, 0.0, -2.0, 0.0, 2.0]
    assigned = np.array([True, True, True, True, False])
    lists = {"risk": np.array([True, True, False, False, True]),
             "uplift": np.array([True, False, True, True, False])}
    out = {o.name: o for o in compare_lists(
        lists, customers=[1, 2, 3, 4, 5], value=[100.0] * 5, cost=[10.0] * 5,
        assigned=assigned, outcome=y, treated=t, propensity=e,
        true_uplift=[0.5, 0.1, 0.2, 0.0, 0.9], n_boot=30)}
    risk, uplift = out["risk"], out["uplift"]
    assert (risk.listed, risk.measured, risk.measured_control) == (3, 2, 1)
    assert risk.saves_measured.value == 2.0  # rows 1, 2: 2 + 0 (row 5 not measurable)
    assert risk.money_measured.value == 2.0 * 100 - 2 * 10
    assert uplift.saves_measured.value == 0.0  # 2 - 2 + 0
    assert risk.true_saves is not None and risk.true_saves.value == pytest.approx(1.5)
    assert uplift.true_saves_measured == pytest.approx(0.7)
    assert uplift.true_saves_vs_risk is not None
    assert uplift.true_saves_vs_risk.value == pytest.approx(0.7 - 1.5)
    assert risk.to_json()["estimate_covers_truth"] is None  # 1 control row: no verdict


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-1, 1)), min_size=1, max_size=60),
       st.integers(0, 10))
def test_lists_never_exceed_the_capacity(rows: list[tuple[int, float]], k: int) -> None:
    periods = np.array([p for p, _ in rows])
    scores = np.array([s for _, s in rows])
    mask = top_per_period(scores, periods, k)
    for p in np.unique(periods):
        in_p = periods == p
        assert mask[in_p].sum() == min(k, in_p.sum())
        if 0 < mask[in_p].sum() < in_p.sum():  # the taken rows score at least the others
            assert scores[in_p & mask].min() >= scores[in_p & ~mask].max()
