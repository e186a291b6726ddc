"""Drift measures against hand-computed values and their properties; drift signals per window."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from valuechain.errors import DataError
from valuechain.monitor.drift import (
    EPS,
    bin_edges,
    drift_ranking,
    drift_signals,
    js,
    ks,
    ks_statistic,
    psi,
    psi_from_counts,
)
from valuechain.monitor.inputs import Reference
from valuechain.monitor.kpis import SIGNAL_COLUMNS
from valuechain.policy.capacity import PERIOD_ANCHOR_US

DAY = 86_400_000_000

# ----------------------------------------------------------------------------- by hand


def test_psi_on_reference_quantile_bins_by_hand() -> None:
    # bins=2 over [1, 2, 3, 4]: edge at 2 -> (-inf, 2] holds 1, 2; (2, inf) holds 3, 4.
    # current [1, 1, 2, 4]: shares .75 / .25 against .5 / .5.
    expected = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert psi([1, 2, 3, 4], [1, 1, 2, 4], bins=2) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.274653, abs=1e-6)


def test_an_empty_bin_gets_the_epsilon_share() -> None:
    # reference [0, 0, 1, 1] (edge 0), current all 0: shares (1, 0) against (.5, .5);
    # the empty bin counts as 1e-4.
    expected = (1 - 0.5) * math.log(1 / 0.5) + (EPS - 0.5) * math.log(EPS / 0.5)
    assert psi([0, 0, 1, 1], [0, 0, 0, 0], bins=2) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(4.604319, abs=1e-6)
    assert EPS == 1e-4


def test_missing_values_are_a_bin_of_their_own() -> None:
    # one numeric bin + the null bin: (.75, .25) -> (.25, .75)
    expected = 2 * 0.5 * math.log(3)
    assert psi([1, 2, 3, np.nan], [1, np.nan, np.nan, None], bins=1) == pytest.approx(expected)
    assert psi([1.0, 2.0, None], [1.0, 2.0, None], bins=2) == 0.0


def test_categorical_psi_and_unseen_categories_by_hand() -> None:
    # a: .5 / .5; b vanished (.5 -> eps); c new (eps -> .5)
    expected = 2 * (0.5 - EPS) * math.log(0.5 / EPS)
    got = psi(["a", "b"], ["a", "c"], categorical=True)
    assert got == pytest.approx(expected, abs=1e-12)
    assert psi(["x", None, "x", None], ["x", "x", None, None], categorical=True) == 0.0


def test_psi_from_counts_by_hand_and_bad_shapes() -> None:
    expected = 0.3 * math.log(0.8 / 0.5) + (-0.3) * math.log(0.2 / 0.5)
    assert psi_from_counts([50, 50], [80, 20]) == pytest.approx(expected, abs=1e-12)
    assert psi_from_counts([0.5, 0.5], [0.8, 0.2]) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(psi_from_counts([0, 0], [1, 2]))
    # a per-side epsilon: reference empty bin 0.01, current empty bin 0.02
    got = psi_from_counts([0, 10, 10], [10, 10, 0], eps=(0.01, 0.02))
    by_hand = (0.5 - 0.01) * math.log(0.5 / 0.01) + 0 + (0.02 - 0.5) * math.log(0.02 / 0.5)
    assert got == pytest.approx(by_hand, abs=1e-12)
    with pytest.raises(DataError, match="same bins"):
        psi_from_counts([1, 2], [1, 2, 3])


def test_numeric_measures_refuse_text_and_read_series_as_floats() -> None:
    with pytest.raises(DataError, match="expected numbers"):
        psi(["a", "b"], ["a", "a"])
    with pytest.raises(DataError, match="expected numbers"):
        ks(pd.Series(["a"]), pd.Series(["b"]))
    ref = pd.Series([1, 2, 3, 4], dtype="Int64")
    assert psi(ref, pd.Series([1.0, 1.0, 2.0, None])) == psi([1, 2, 3, 4], [1, 1, 2, np.nan])


def test_psi_on_given_edges() -> None:
    # edges [2.5]: reference 2 | 2, current 4 | 0 -> (1 - .5) ln 2 + (eps - .5) ln(eps / .5)
    expected = 0.5 * math.log(2) + (EPS - 0.5) * math.log(EPS / 0.5)
    assert psi([1, 2, 3, 4], [1, 1, 2, 2], bins=[2.5]) == pytest.approx(expected, abs=1e-12)


def test_bin_edges_are_reference_quantile_values() -> None:
    assert bin_edges(np.arange(1, 9), 4).tolist() == [2.0, 4.0, 6.0]
    assert bin_edges([0, 0, 0, 1], 4).tolist() == [0.0]
    assert bin_edges([np.nan, np.nan], 4).tolist() == []
    with pytest.raises(DataError, match="bins"):
        bin_edges([1, 2], 0)


def test_ks_by_hand_and_as_scipy() -> None:
    stat, p = ks([1, 2, 3], [2, 3, 4])
    assert stat == pytest.approx(1 / 3)
    assert p == pytest.approx(ks_2samp([1, 2, 3], [2, 3, 4]).pvalue)
    assert ks([1, 2, np.nan], [1, 2]) == ks([1, 2], [1, 2])
    assert all(math.isnan(v) for v in ks([np.nan], [1.0]))


def test_js_by_hand_is_the_base_2_distance() -> None:
    # p = (.5, .5), q = (1, 0), m = (.75, .25)
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = 1.0 * math.log2(1 / 0.75)
    expected = math.sqrt((kl_p + kl_q) / 2)
    assert js(["a", "a", "b", "b"], ["a"] * 4) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.557923, abs=1e-6)
    assert js(["a"], ["b"]) == 1.0
    assert js(["a", None], ["a", None]) == 0.0
    assert js([None, None], ["a", "a"]) == 1.0  # missing is a category


# ----------------------------------------------------------------------------- properties

ints = st.lists(st.integers(-1000, 1000), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(ints, ints, st.integers(1, 12))
def test_psi_is_non_negative_zero_on_itself_and_monotone_invariant(
        ref: list[int], cur: list[int], bins: int) -> None:
    r, c = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    value = psi(r, c, bins=bins)
    assert value >= 0.0
    assert psi(r, r, bins=bins) == 0.0
    assert psi(r, r[::-1].copy(), bins=bins) == 0.0
    for f in (lambda x: np.exp(x / 100.0), lambda x: x**3 + 2 * x, lambda x: 7 * x - 3):
        assert psi(f(r), f(c), bins=bins) == pytest.approx(value, rel=1e-9, abs=1e-12)


@pytest.mark.filterwarnings("ignore:ks_2samp")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80),
       st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80))
def test_ks_statistic_matches_scipy(ref: list[float], cur: list[float]) -> None:
    expected = ks_2samp(ref, cur)
    stat, p = ks(ref, cur)
    assert stat == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, abs=1e-12)
    assert ks_statistic(np.sort(ref), np.sort(cur)) == pytest.approx(expected.statistic,
                                                                     abs=1e-12)


cats = st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(cats, cats)
def test_js_is_a_symmetric_base_2_distance_in_0_1(ref: list[str | None],
                                                   cur: list[str | None]) -> None:
    value = js(ref, cur)
    assert 0.0 <= value <= 1.0 + 1e-12
    assert value == pytest.approx(js(cur, ref), abs=1e-12)
    assert js(ref, list(reversed(ref))) == pytest.approx(0.0, abs=1e-7)
    levels = sorted({str(v) for v in ref + cur})
    p = np.array([sum(str(v) == lv for v in ref) for lv in levels], dtype=float)
    q = np.array([sum(str(v) == lv for v in cur) for lv in levels], dtype=float)
    assert value == pytest.approx(float(jensenshannon(p, q, base=2)), abs=1e-9)


# ----------------------------------------------------------------------------- per window


def _reference(n: int = 4000, seed: int = 0) -> Reference:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "decision_id": [f"r{i}" for i in range(n)],
        "time": pd.Series(np.full(n, PERIOD_ANCHOR_US).astype("datetime64[us]")
                          ).dt.tz_localize("UTC"),
        "amount": rng.lognormal(3, 1, n),
        "tier": pd.array(rng.choice(["low", "high"], n, p=[0.8, 0.2]), dtype="str"),
        "score": rng.beta(1, 30, n), "label": np.zeros(n), "action": "approve"})
    return Reference(frame=frame, bundle_version="v1", period="test")


def _decisions(days: int, per_day: int, seed: int = 1, shift_from: int | None = None
               ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(days), per_day)
    n = len(day)
    amount = rng.lognormal(3, 1, n)
    tier = rng.choice(["low", "high"], n, p=[0.8, 0.2]).astype(object)
    if shift_from is not None:
        late = day >= shift_from
        amount[late] = rng.lognormal(4, 1, late.sum())
        tier[late] = rng.choice(["low", "high", "new"], late.sum(), p=[0.3, 0.5, 0.2])
    amount[::97] = np.nan
    start = PERIOD_ANCHOR_US + 20_000 * DAY
    return pd.DataFrame({"time_us": start + day * DAY + rng.integers(0, DAY, n),
                         "amount": amount, "tier": pd.array(tier, dtype="str"),
                         "score": rng.beta(1, 30, n)})


def test_drift_signals_flag_the_shifted_windows_only() -> None:
    ref = _reference()
    decisions = _decisions(days=6, per_day=2000, shift_from=4)
    signals = drift_signals(decisions, ref, window_us=DAY, importance={"amount": 0.7,
                                                                       "tier": 0.3})
    assert list(signals.columns) == list(SIGNAL_COLUMNS)
    assert str(signals["window"].dtype) == "datetime64[us, UTC]"
    assert set(signals["section"]) == {"drift"}
    assert set(signals["metric"]) == {"psi", "ks", "js", "score_psi", "score_ks",
                                      "weighted_psi"}
    amount = signals[(signals.metric == "psi") & (signals.subject == "amount")]["value"]
    # 1 % of missing amounts the reference never had weigh ~0.05 (the null bin); no alarm
    assert (amount.iloc[:4] < 0.1).all() and (amount.iloc[4:] > 0.5).all()
    tier = signals[(signals.metric == "js") & (signals.subject == "tier")]["value"]
    assert (tier.iloc[:4] < 0.05).all() and (tier.iloc[4:] > 0.3).all()
    score = signals[signals.metric == "score_psi"]["value"]
    assert (score < 0.05).all()
    ks_rows = signals[(signals.metric == "ks") & (signals.subject == "amount")]
    # KS counts the non-missing values; PSI every row (missing is a bin)
    assert (ks_rows["n"] < 2000).all() and (amount.index.size == 6)
    weighted = signals[signals.metric == "weighted_psi"]["value"].to_numpy()
    psi_tier = signals[(signals.metric == "psi") & (signals.subject == "tier")]["value"]
    np.testing.assert_allclose(weighted, 0.7 * amount.to_numpy() + 0.3 * psi_tier.to_numpy())
    # the per-window values are the functions' values on the window's rows
    day5 = decisions[decisions.time_us >= decisions.time_us.min() // DAY * DAY + 5 * DAY]
    day5 = day5[(day5.time_us - PERIOD_ANCHOR_US) // DAY == (
        decisions.time_us.max() - PERIOD_ANCHOR_US) // DAY]
    assert amount.iloc[-1] == pytest.approx(psi(ref.frame["amount"], day5["amount"]))
    assert tier.iloc[-1] == pytest.approx(js(ref.frame["tier"], day5["tier"]))
    assert ks_rows["value"].iloc[-1] == pytest.approx(ks(ref.frame["amount"],
                                                         day5["amount"])[0])


def test_small_windows_are_insufficient_and_ranking_weighs_importance() -> None:
    ref = _reference()
    decisions = _decisions(days=3, per_day=300, shift_from=1)
    signals = drift_signals(decisions, ref, window_us=DAY, min_samples=500)
    assert set(signals["status"]) == {"insufficient"}
    signals = drift_signals(decisions, ref, window_us=DAY, min_samples=100)
    assert set(signals["status"]) == {"ok"}
    ranking = drift_ranking(signals, {"amount": 0.01, "tier": 0.99})
    assert ranking["feature"].tolist() == ["tier", "amount"]
    assert ranking["rank"].tolist() == [1, 2]
    last = signals[(signals.metric == "psi") & (signals.subject == "tier")]["value"].iloc[-1]
    assert ranking["weighted"].iloc[0] == pytest.approx(0.99 * last)
    assert ranking["measure"].tolist() == ["js", "ks"]
