"""Block bootstrap: coverage of the truth, paired differences, verdicts, fast paths agree."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from valuechain.evaluate import bootstrap as bs
from valuechain.evaluate.bootstrap import Interval, block_bootstrap, paired_difference, verdict
from valuechain.evaluate.metrics import average_precision, brier, ece, roc_auc


def simulate(rng: np.random.Generator, mu: float, days: int = 40, per_day: int = 50,
             base_rate: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    day = np.repeat(np.arange(days), per_day)
    labels = (rng.random(len(day)) < base_rate).astype(int)
    scores = rng.normal(mu * labels, 1.0)
    return day, scores, labels


def test_intervals_cover_the_true_auc_at_roughly_the_nominal_rate() -> None:
    mu = 1.0
    truth = 0.5 * (1 + math.erf(mu / math.sqrt(2) / math.sqrt(2)))  # Phi(mu / sqrt(2))
    rng = np.random.default_rng(2024)
    covered = 0
    for rep in range(100):
        day, scores, labels = simulate(rng, mu)
        iv = block_bootstrap("roc_auc", day, scores, labels, n_boot=200, seed=rep)
        assert iv.low <= iv.value <= iv.high
        covered += iv.contains(truth)
    assert 85 <= covered <= 99


def test_paired_difference_intervals_cover_the_true_difference() -> None:
    def phi(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    truth = phi(1.0 / math.sqrt(2)) - phi(0.7 / math.sqrt(2))
    rng = np.random.default_rng(7)
    covered = 0
    for rep in range(60):
        day, _, labels = simulate(rng, 0.0)
        shared = rng.normal(0, 1, len(labels))
        a = labels * 1.0 + shared  # both candidates see the same noise: a paired design
        b = labels * 0.7 + shared
        covered += paired_difference("roc_auc", day, a, b, labels, seed=rep).contains(truth)
    assert 50 <= covered <= 60


def test_blocks_are_resampled_whole() -> None:
    day = np.repeat(np.arange(10), np.arange(1, 11))  # block i has i + 1 rows
    seen: list[np.ndarray] = []

    def rows_per_day(days: np.ndarray) -> float:
        counts = np.bincount(days, minlength=10)
        seen.append(counts)
        return float(len(days))

    block_bootstrap(rows_per_day, day, day, n_boot=30)
    for counts in seen:
        assert np.all(counts % np.arange(1, 11) == 0)  # a day is drawn with all its rows or none
        assert counts.sum() > 0
    assert len(seen) == 31  # the full data once, then each resample


def test_fast_paths_equal_the_plain_resampling() -> None:
    rng = np.random.default_rng(5)
    day, scores, labels = simulate(rng, 0.8, days=25, per_day=40)
    probs = 1 / (1 + np.exp(-scores))
    probs = np.round(probs, 2)  # ties
    for name, fn in [("roc_auc", roc_auc), ("average_precision", average_precision),
                     ("brier", brier), ("ece", ece)]:
        fast = block_bootstrap(name, day, probs, labels, n_boot=50, seed=3)
        plain = block_bootstrap(lambda s, y, fn=fn: fn(s, y), day, probs, labels, n_boot=50,
                                seed=3)
        assert fast.value == pytest.approx(plain.value, abs=1e-12)
        assert fast.low == pytest.approx(plain.low, abs=1e-12), name
        assert fast.high == pytest.approx(plain.high, abs=1e-12), name
    sk = block_bootstrap(lambda s, y: roc_auc_score(y, s), day, probs, labels, n_boot=50, seed=3)
    fast = block_bootstrap(roc_auc, day, probs, labels, n_boot=50, seed=3)
    assert (fast.low, fast.high) == pytest.approx((sk.low, sk.high), abs=1e-12)


def test_rank_kernel_equals_the_tie_group_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    for base_rate in (0.05, 0.7):  # positives rarer, then negatives rarer
        day, scores, labels = simulate(rng, 0.6, days=15, per_day=60, base_rate=base_rate)
        scores = np.round(scores, 1)
        kernel = {m: block_bootstrap(m, day, scores, labels, n_boot=40)
                  for m in ("roc_auc", "average_precision")}
        with monkeypatch.context() as patch:
            patch.setattr(bs, "_rank_kernel", lambda *args: None)
            groups = {m: block_bootstrap(m, day, scores, labels, n_boot=40)
                      for m in ("roc_auc", "average_precision")}
        for m in kernel:
            assert kernel[m].low == pytest.approx(groups[m].low, abs=1e-12)
            assert kernel[m].high == pytest.approx(groups[m].high, abs=1e-12)


def test_same_seed_same_interval_and_undefined_metric_gives_nan() -> None:
    rng = np.random.default_rng(1)
    day, scores, labels = simulate(rng, 1.0)
    assert block_bootstrap("roc_auc", day, scores, labels, seed=4) == block_bootstrap(
        "roc_auc", day, scores, labels, seed=4)
    nan = block_bootstrap("roc_auc", day, scores, np.zeros_like(labels))
    assert math.isnan(nan.value) and math.isnan(nan.low) and math.isnan(nan.high)
    assert verdict(nan) == "ties"
    # a few resamples without positives are left out, not fatal
    rare = np.zeros_like(labels)
    rare[day == 0] = labels[day == 0]
    iv = block_bootstrap("roc_auc", day, scores, rare, n_boot=100)
    assert math.isfinite(iv.low) and math.isfinite(iv.high)


def test_verdicts_on_constructed_cases() -> None:
    rng = np.random.default_rng(11)
    day, _, labels = simulate(rng, 0.0)
    good = labels * 2.0 + rng.normal(0, 1, len(labels))
    weak = labels * 0.5 + rng.normal(0, 1, len(labels))
    assert verdict(paired_difference("roc_auc", day, good, weak, labels)) == "beats"
    assert verdict(paired_difference("roc_auc", day, weak, good, labels)) == "loses"
    same = paired_difference("roc_auc", day, good, good.copy(), labels)
    assert same == Interval(0.0, 0.0, 0.0)
    assert verdict(same) == "ties"
    nearly = good + rng.normal(0, 0.05, len(labels))
    assert verdict(paired_difference("roc_auc", day, good, nearly, labels)) == "ties"
    # lower is better for Brier: the calibrated candidate has the smaller loss and beats
    calibrated = np.where(labels == 1, 0.8, 0.2)
    blunt = np.full(len(labels), 0.5)
    diff = paired_difference("brier", day, calibrated, blunt, labels)
    assert diff.high < 0
    assert verdict(diff, higher_is_better=False) == "beats"
    assert verdict(diff, higher_is_better=True) == "loses"
    assert verdict(Interval(0.02, 0.0, 0.04)) == "ties"  # touching 0 is not beating


def test_interval_as_dict() -> None:
    assert Interval(0.8, 0.75, 0.85).as_dict("auc") == {
        "auc": 0.8, "auc_low": 0.75, "auc_high": 0.85}


def test_two_hundred_resamples_of_auc_on_300k_rows_take_a_few_seconds_at_most() -> None:
    rng = np.random.default_rng(0)
    n = 300_000
    day = np.sort(rng.integers(0, 30, n))
    labels = (rng.random(n) < 0.01).astype(int)
    scores = rng.normal(labels * 1.5, 1.0)
    start = time.perf_counter()
    iv = block_bootstrap("roc_auc", day, scores, labels, n_boot=200)
    elapsed = time.perf_counter() - start
    assert iv.low < iv.value < iv.high
    assert elapsed < 5.0, f"{elapsed:.2f} s"


def test_sum_and_ratio_intervals_resample_whole_blocks() -> None:
    rng = np.random.default_rng(5)
    days = np.repeat(np.arange(25), 40)
    values = rng.normal(2.0, 5.0, len(days))
    iv = bs.block_sum_interval(values, days, seed=3)
    per_day = np.bincount(days, weights=values)
    draws = per_day[np.random.default_rng(3).integers(0, 25, size=(bs.N_BOOT, 25))].sum(axis=1)
    assert iv.value == pytest.approx(values.sum())
    assert iv.low == pytest.approx(np.quantile(draws, 0.025))
    assert iv.high == pytest.approx(np.quantile(draws, 0.975))

    hits = (rng.random(len(days)) < 0.3).astype(float)
    taken = (rng.random(len(days)) < 0.5).astype(float)
    ratio = bs.block_ratio_interval(hits * taken, taken, days, seed=3)
    num, den = np.bincount(days, weights=hits * taken), np.bincount(days, weights=taken)
    picks = np.random.default_rng(3).integers(0, 25, size=(bs.N_BOOT, 25))
    ratios = num[picks].sum(axis=1) / den[picks].sum(axis=1)
    assert ratio.value == pytest.approx((hits * taken).sum() / taken.sum())
    assert (ratio.low, ratio.high) == pytest.approx(tuple(np.quantile(ratios, [0.025, 0.975])))
    assert math.isnan(bs.block_ratio_interval(hits, np.zeros(len(days)), days).value)
    with pytest.raises(bs.DataError, match="NaN"):
        bs.block_sum_interval(np.r_[values[:-1], np.nan], days)


def test_one_draw_count_everywhere() -> None:
    import inspect

    for fn in (block_bootstrap, paired_difference, bs.block_sum_interval,
               bs.block_ratio_interval):
        assert inspect.signature(fn).parameters["n_boot"].default == bs.N_BOOT
