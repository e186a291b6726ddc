"""Calibration: lowers ECE, chooses its method on held-out folds, round-trips through JSON."""

from __future__ import annotations

import numpy as np
import pytest

from valuechain.errors import DataError
from valuechain.models import Calibrator, fit_calibrator
from valuechain.models.calibration import EPS, _fit


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error with equal-width bins on [0, 1]."""
    slot = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        rows = slot == b
        if rows.any():
            total += rows.mean() * abs(p[rows].mean() - y[rows].mean())
    return total


def world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    return p, (rng.uniform(0, 1, n) < p).astype(np.int64)


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


@pytest.mark.parametrize("distort", [lambda p: p**3, lambda p: np.sqrt(p)])
def test_calibration_lowers_ece_on_new_data(distort: object) -> None:
    p_valid, y_valid = world(5000, 1)
    p_test, y_test = world(20000, 2)
    assert callable(distort)
    calibrator = fit_calibrator(distort(p_valid), y_valid)
    before = ece(distort(p_test), y_test)
    after = ece(calibrator.apply(distort(p_test)), y_test)
    assert before > 0.1
    assert after < 0.03 < before
    assert calibrator.method in ("isotonic", "sigmoid")
    assert set(calibrator.cv_log_loss) == {"isotonic", "sigmoid"}
    assert calibrator.method == min(calibrator.cv_log_loss, key=calibrator.cv_log_loss.__getitem__)
    assert calibrator.n == 5000 and calibrator.method in calibrator.reason


def test_sigmoid_wins_when_the_distortion_is_platt_shaped() -> None:
    p, y = world(3000, 3)
    logit = np.log(p) - np.log1p(-p)
    score = 1 / (1 + np.exp(-(0.5 * logit - 1.0)))
    calibrator = fit_calibrator(score, y)
    assert calibrator.method == "sigmoid"
    assert calibrator.a == pytest.approx(2.0, rel=0.15)
    assert calibrator.b == pytest.approx(2.0, rel=0.25)


def test_isotonic_wins_on_a_step_shaped_truth() -> None:
    rng = np.random.default_rng(4)
    score = rng.uniform(0, 1, 6000)
    truth = np.select([score < 0.3, score < 0.35, score < 0.9], [0.02, 0.6, 0.65], 0.99)
    y = (rng.uniform(size=6000) < truth).astype(np.int64)
    assert fit_calibrator(score, y).method == "isotonic"


def test_cross_fitting_does_not_reward_isotonic_overfitting() -> None:
    # scores carry no signal: fitted in-sample, isotonic always looks better than sigmoid ...
    rng = np.random.default_rng(5)
    score = rng.uniform(0, 1, 2000)
    y = (rng.uniform(size=2000) < 0.3).astype(np.int64)
    in_sample = {m: log_loss(_fit(m, score, y).apply(score), y) for m in ("isotonic", "sigmoid")}
    assert in_sample["isotonic"] < in_sample["sigmoid"]
    # ... but on held-out folds it overfits, and the cross-fitted choice sees that
    calibrator = fit_calibrator(score, y)
    assert calibrator.cv_log_loss["isotonic"] > calibrator.cv_log_loss["sigmoid"]
    assert calibrator.method == "sigmoid"


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_json_round_trip_is_exact(method: str) -> None:
    p, y = world(3000, 6)
    calibrator = fit_calibrator(p**2, y, methods=[method])
    assert calibrator.method == method
    again = Calibrator.from_json(calibrator.to_json())
    assert again == calibrator
    grid = np.linspace(-0.5, 1.5, 101)
    np.testing.assert_array_equal(again.apply(grid), calibrator.apply(grid))
    out = calibrator.apply(grid)
    assert np.all((out >= EPS) & (out <= 1 - EPS))
    # isotonic clips outside the fitted range; both maps are non-decreasing
    assert np.all(np.diff(out) >= 0)


def test_identity_for_the_prior_and_for_tiny_validation() -> None:
    constant = fit_calibrator(np.full(100, 0.2), (np.arange(100) < 20).astype(int))
    assert constant.method == "identity" and "constant" in constant.reason
    np.testing.assert_array_equal(constant.apply(np.array([0.2, 0.5])), [0.2, 0.5])
    tiny = fit_calibrator(np.linspace(0, 1, 50), (np.arange(50) == 3).astype(int))
    assert tiny.method == "identity" and "1 positives" in tiny.reason
    assert Calibrator.from_json(Calibrator.identity().to_json()).method == "identity"


def test_identity_can_compete() -> None:
    p, y = world(4000, 7)
    calibrator = fit_calibrator(p, y, methods=["identity", "isotonic", "sigmoid"])
    assert set(calibrator.cv_log_loss) == {"identity", "isotonic", "sigmoid"}
    assert calibrator.raw_log_loss == pytest.approx(calibrator.cv_log_loss["identity"])


def test_bad_inputs_are_data_errors() -> None:
    with pytest.raises(DataError, match="NaN"):
        fit_calibrator(np.array([0.1, np.nan]), np.array([0, 1]))
    with pytest.raises(DataError, match="2 values but y_valid has 3"):
        fit_calibrator(np.array([0.1, 0.2]), np.array([0, 1, 1]))
    with pytest.raises(DataError, match="methods"):
        fit_calibrator(np.array([0.1, 0.2]), np.array([0, 1]), methods=["beta"])
    with pytest.raises(DataError, match="unknown calibration method"):
        Calibrator(method="beta")
