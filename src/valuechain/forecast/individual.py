"""Churners as the sum of calibrated individual probabilities, with an exact interval.

At an origin ``o`` (a decision time of the schedule), the customers active at ``o`` are the
frame's rows with ``decision_time == o``; their label is whether they churn within the label
horizon. A candidate model is trained on the rows whose labels had matured by ``o``
(``t + horizon <= o``, so nothing after the origin is read), on the earlier 80 % of that
span; the later 20 % calibrates it (:func:`valuechain.models.fit_calibrator`). The forecast
of the number of churners is ``Σ p_i`` over the customers active at ``o``, with the exact
Poisson-binomial interval of :mod:`valuechain.forecast.poisson_binomial` (customers
independent given their probabilities).

``balanced=True`` trains on every positive and as many randomly drawn negatives: a common
practice for rare outcomes that leaves the *ranking* intact but inflates every probability.
The uncalibrated sum is then far too high; the calibration on the (natural-rate) later
rows brings it back. :class:`IndividualForecast` keeps both sums and the ranking quality
(ROC AUC) of the scores at the origin, so the two can be shown side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError
from valuechain.evaluate import roc_auc
from valuechain.evaluate.splits import split_validation
from valuechain.forecast.poisson_binomial import poisson_binomial_interval
from valuechain.models import FeatureSet, fit_calibrator, make_candidate

__all__ = ["IndividualForecast", "individual_forecast"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class IndividualForecast:
    """The sum of probabilities at one origin, calibrated and raw, with intervals.

    Attributes
    ----------
    origin : datetime
        The decision time scored.
    customers : int
        Customers active at the origin (rows scored).
    expected, low, high : float
        Sum of calibrated probabilities and its exact Poisson-binomial ``level`` interval.
    raw_expected, raw_low, raw_high : float
        The same for the uncalibrated scores.
    actual : float
        Churners among them (NaN when the labels are not known).
    auc : float
        ROC AUC of the scores at the origin (NaN without both classes or labels).
    train_rows, calibration_rows : int
        Mature rows the model was fitted and calibrated on.
    calibration : str
        The calibration method chosen.
    """

    origin: datetime
    customers: int
    expected: float
    low: float
    high: float
    raw_expected: float
    raw_low: float
    raw_high: float
    actual: float
    auc: float
    train_rows: int
    calibration_rows: int
    calibration: str

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, float) and not np.isfinite(value):
                out[key] = None
            else:
                out[key] = value
        return out


def _balance(rows: npt.NDArray[np.int64], y: F64, seed: int) -> npt.NDArray[np.int64]:
    positives = rows[y[rows] > 0]
    negatives = rows[y[rows] <= 0]
    if len(positives) == 0 or len(negatives) <= len(positives):
        return rows
    keep = np.random.default_rng(seed).choice(negatives, len(positives), replace=False)
    return np.sort(np.concatenate([positives, keep]))


def individual_forecast(
    frame: pd.DataFrame,
    *,
    time_column: str,
    label: str,
    features: Sequence[str],
    horizon: timedelta,
    origin: Any,
    candidate: str = "logistic",
    train_window: timedelta | None = None,
    level: float = 0.9,
    balanced: bool = False,
    seed: int = 0,
    labels_known: bool = True,
    score: pd.DataFrame | None = None,
) -> IndividualForecast:
    """Forecast the churners among the customers active at ``origin``.

    Parameters
    ----------
    frame : DataFrame
        The point-in-time frame (``valuechain build``): one row per customer and decision
        time, the features, and the label.
    time_column, label : str
        The decision time and label columns.
    features : sequence of str
        Feature columns the candidate uses.
    horizon : timedelta
        The label horizon: a row's label is known ``horizon`` after its decision time.
    origin : datetime-like
        The decision time to forecast (rows at exactly this time are scored).
    candidate : str, default "logistic"
        A built-in candidate (:data:`valuechain.models.CANDIDATES`).
    train_window : timedelta, optional
        Train only on mature rows of this span before the origin (default: all).
    level : float, default 0.9
        Coverage of the Poisson-binomial intervals.
    balanced : bool, default False
        Train on all positives and as many random negatives (see the module docstring).
    seed : int, default 0
        Seed of the candidate, the calibration folds and the negative sample.
    labels_known : bool, default True
        Whether the rows at the origin carry known labels (``actual`` is NaN otherwise).
    score : DataFrame, optional
        The customers to score, when they are not in ``frame`` (the latest decision time,
        whose labels are immature: see :func:`valuechain.forecast.project.live_rows`);
        their labels are not used (``actual`` is NaN).

    Returns
    -------
    IndividualForecast

    Raises
    ------
    DataError
        No row at the origin, or too few mature rows (or no positive) before it.
    """
    at = pd.Timestamp(origin)
    times = pd.to_datetime(frame[time_column])
    y = (pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=np.float64) > 0).astype(
        np.float64)
    target = (times == at).to_numpy()
    if score is not None:
        labels_known = False
    elif not target.any():
        raise DataError(f"origin {at}: no decision point in column {time_column!r} at that "
                        "time; choose origins among the schedule's decision times")
    cutoff = at - pd.Timedelta(horizon)
    mature = (times <= cutoff).to_numpy().copy()
    if train_window is not None:
        mature &= (times > cutoff - pd.Timedelta(train_window)).to_numpy()
    if int(mature.sum()) < 50 or y[mature].sum() < 4:
        raise DataError(
            f"origin {at}: {int(mature.sum())} rows with labels mature by then "
            f"(decision time <= {cutoff}), {int(y[mature].sum())} positive; a model needs more "
            "history: choose a later origin")
    fit_rows, calibration_rows = split_validation(times, mature)
    fit_idx = np.flatnonzero(fit_rows)
    if balanced:
        fit_idx = _balance(fit_idx, y, seed)
    feature_set = FeatureSet.infer(frame, list(features))
    cal_idx = np.flatnonzero(calibration_rows)
    model = make_candidate(candidate, feature_set, seed=seed).fit(
        frame.iloc[fit_idx], y[fit_idx], frame.iloc[cal_idx], y[cal_idx])
    calibrator = fit_calibrator(model.predict(frame.iloc[cal_idx]), y[cal_idx], seed=seed)
    scored = score if score is not None else frame[target]
    raw = np.clip(model.predict(scored), 0.0, 1.0)
    calibrated = calibrator.apply(raw)
    low, high = poisson_binomial_interval(calibrated, level)
    raw_low, raw_high = poisson_binomial_interval(raw, level)
    actual = float(y[target].sum()) if labels_known else float("nan")
    auc = roc_auc(raw, y[target]) if labels_known else float("nan")
    return IndividualForecast(
        origin=at.to_pydatetime(), customers=len(scored),
        expected=float(calibrated.sum()), low=float(low), high=float(high),
        raw_expected=float(raw.sum()), raw_low=float(raw_low), raw_high=float(raw_high),
        actual=actual, auc=float(auc), train_rows=len(fit_idx),
        calibration_rows=len(cal_idx), calibration=calibrator.method)
