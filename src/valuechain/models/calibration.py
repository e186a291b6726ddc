"""Calibration on the validation period: isotonic or sigmoid, chosen without peeking.

:func:`fit_calibrator` maps raw candidate scores to probabilities. It tries each method by
cross-fitting on the validation period (stratified folds: fit on all folds but one, score the
held-out fold, so every validation row is scored by a map that never saw it), keeps the method
with the lowest held-out log loss, and refits that method on the whole validation period. The
choice is therefore not biased towards the more flexible isotonic map.

* ``isotonic``: a non-decreasing step-linear map, stored as threshold arrays and applied with
  ``numpy.interp`` (clipped outside the fitted range, like scikit-learn's
  ``out_of_bounds="clip"``);
* ``sigmoid``: Platt scaling on the logit of the score, ``p = 1 / (1 + exp(-(a logit(s) + b)))``;
* ``identity``: scores unchanged, for the prior (a constant) and for validation periods too
  small to fit anything (the reason is recorded).

Calibrated probabilities are kept within ``[1e-6, 1 - 1e-6]`` so log loss stays finite.

>>> rng = np.random.default_rng(0)
>>> p = rng.uniform(0, 1, 4000)
>>> y = (rng.uniform(0, 1, 4000) < p).astype(int)
>>> calibrator = fit_calibrator(p**3, y)
>>> calibrator.method in ("isotonic", "sigmoid")
True
>>> Calibrator.from_json(calibrator.to_json()) == calibrator
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from valuechain.errors import DataError
from valuechain.models.base import check_labels, require

__all__ = ["EPS", "METHODS", "Calibrator", "fit_calibrator"]

EPS = 1e-6
METHODS = ("isotonic", "sigmoid", "identity")


def _logit(scores: np.ndarray) -> np.ndarray:
    s = np.clip(scores, EPS, 1 - EPS)
    out: np.ndarray = np.log(s) - np.log1p(-s)
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from raw scores to probabilities.

    Attributes
    ----------
    method : {"isotonic", "sigmoid", "identity"}
        The map applied.
    a, b : float
        Sigmoid slope and intercept on the logit of the score.
    x, y : tuple of float
        Isotonic thresholds: scores and the probabilities they map to.
    cv_log_loss : dict
        Held-out (cross-fitted) validation log loss of each method tried.
    raw_log_loss : float or None
        Validation log loss of the raw scores, for comparison.
    n : int
        Validation rows the calibrator was fitted on.
    reason : str
        Why this method (or why no fit happened).

    Examples
    --------
    >>> Calibrator(method="sigmoid", a=1.0, b=0.0).apply(np.array([0.2, 0.9])).round(3).tolist()
    [0.2, 0.9]
    >>> Calibrator(method="isotonic", x=(0.0, 1.0), y=(0.1, 0.3)).apply(np.array([0.5, 2.0]))
    array([0.2, 0.3])
    """

    method: str
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    cv_log_loss: dict[str, float] = field(default_factory=dict)
    raw_log_loss: float | None = None
    n: int = 0
    reason: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DataError(f"unknown calibration method '{self.method}'; expected {METHODS}.")
        if self.method == "isotonic" and (len(self.x) == 0 or len(self.x) != len(self.y)):
            raise DataError("an isotonic calibrator needs equally long, non-empty x and y.")

    @classmethod
    def identity(cls, reason: str = "scores used as they are") -> Calibrator:
        """The calibrator that leaves scores unchanged (for the prior).

        >>> Calibrator.identity().apply(np.array([0.1, 0.7])).tolist()
        [0.1, 0.7]
        """
        return cls(method="identity", reason=reason)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for ``scores`` (NaN stays NaN)."""
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "identity":
            same: np.ndarray = np.clip(s, 0.0, 1.0)
            return same
        if self.method == "sigmoid":
            p = _sigmoid(self.a * _logit(s) + self.b)
        else:
            p = np.interp(s, np.asarray(self.x), np.asarray(self.y))
            p[np.isnan(s)] = np.nan
        out: np.ndarray = np.clip(p, EPS, 1 - EPS)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (inverse of :meth:`from_dict`)."""
        data = asdict(self)
        data["x"], data["y"] = list(self.x), list(self.y)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """The calibrator described by :meth:`to_dict`."""
        raw = data.get("raw_log_loss")
        return cls(
            method=str(data["method"]), a=float(data.get("a", 1.0)), b=float(data.get("b", 0.0)),
            x=tuple(float(v) for v in data.get("x", ())),
            y=tuple(float(v) for v in data.get("y", ())),
            cv_log_loss={str(k): float(v) for k, v in data.get("cv_log_loss", {}).items()},
            raw_log_loss=None if raw is None else float(raw), n=int(data.get("n", 0)),
            reason=str(data.get("reason", "")),
        )

    def to_json(self) -> str:
        """The calibrator as JSON text (floats round-trip exactly)."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        """The calibrator stored by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _fit_sigmoid(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood ``(a, b)`` of ``y ~ sigmoid(a logit(s) + b)`` by damped Newton."""
    design = np.column_stack([_logit(scores), np.ones(len(scores))])
    rate = float(np.clip(y.mean(), EPS, 1 - EPS))
    w = np.array([0.0, np.log(rate) - np.log1p(-rate)])

    def loss(w: np.ndarray) -> float:
        z = design @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    current = loss(w)
    for _ in range(100):
        p = _sigmoid(design @ w)
        grad = design.T @ (p - y)
        hess = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-10 and loss(w - t * step) > current + 1e-12:
            t /= 2
        w = w - t * step
        new = loss(w)
        if abs(current - new) <= 1e-12 * max(1.0, abs(current)) or np.max(np.abs(t * step)) < 1e-12:
            current = new
            break
        current = new
    return float(w[0]), float(w[1])


def _fit(method: str, scores: np.ndarray, y: np.ndarray) -> Calibrator:
    if method == "identity":
        return Calibrator.identity()
    if method == "sigmoid":
        a, b = _fit_sigmoid(scores, y)
        return Calibrator(method="sigmoid", a=a, b=b)
    isotonic = require("sklearn.isotonic", "calibration")
    model = isotonic.IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    model.fit(scores, y)
    return Calibrator(method="isotonic", x=tuple(map(float, model.X_thresholds_)),
                      y=tuple(map(float, model.y_thresholds_)))


def _folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Stratified fold number per row (each class spread evenly over the folds)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for label in (0.0, 1.0):
        rows = rng.permutation(np.flatnonzero(y == label))
        fold[rows] = np.arange(len(rows)) % k
    return fold


def fit_calibrator(
    scores_valid: np.ndarray,
    y_valid: np.ndarray,
    *,
    methods: Sequence[str] = ("isotonic", "sigmoid"),
    folds: int = 2,
    seed: int = 0,
) -> Calibrator:
    """Fit the calibrator with the lowest cross-fitted validation log loss.

    Parameters
    ----------
    scores_valid : ndarray
        Raw candidate scores on the validation period.
    y_valid : ndarray
        0/1 labels of the same rows.
    methods : sequence of str
        Methods tried, among ``isotonic``, ``sigmoid`` and ``identity``; ties go to the first.
    folds : int
        Stratified folds used to choose the method (at least 2).
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    Calibrator
        The chosen method refitted on all of the validation period, with the held-out log
        loss of every method tried in ``cv_log_loss``. Constant scores, or fewer positives or
        negatives than folds, give the identity calibrator with the reason.
    """
    s = np.asarray(scores_valid, dtype=np.float64).ravel()
    y = check_labels(y_valid, "y_valid")
    if len(s) != len(y):
        raise DataError(f"scores_valid has {len(s)} values but y_valid has {len(y)} labels.")
    if np.isnan(s).any():
        raise DataError(f"scores_valid has {int(np.isnan(s).sum())} NaN scores; a candidate "
                        "must score every row.")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods or folds < 2:
        raise DataError(f"methods must be a non-empty subset of {METHODS} (got {list(methods)})"
                        f" and folds at least 2 (got {folds}).")
    positives = int(y.sum())
    raw = _log_loss(np.clip(s, 0.0, 1.0), y) if len(y) else None
    if np.unique(s).size < 2:
        return Calibrator(method="identity", raw_log_loss=raw, n=len(y),
                          reason="constant scores: nothing to calibrate")
    if min(positives, len(y) - positives) < folds:
        return Calibrator(method="identity", raw_log_loss=raw, n=len(y),
                          reason=f"validation has {positives} positives and "
                                 f"{len(y) - positives} negatives: too few to calibrate")
    fold = _folds(y, folds, seed)
    cv: dict[str, float] = {}
    for method in methods:
        held_out = np.empty(len(y), dtype=np.float64)
        for k in range(folds):
            fit_rows, test_rows = fold != k, fold == k
            held_out[test_rows] = _fit(method, s[fit_rows], y[fit_rows]).apply(s[test_rows])
        cv[method] = _log_loss(held_out, y)
    chosen = min(methods, key=lambda m: cv[m])
    final = _fit(chosen, s, y)
    reason = (f"lowest {folds}-fold cross-fitted validation log loss "
              + ", ".join(f"{m} {cv[m]:.5f}" for m in methods))
    return Calibrator(method=final.method, a=final.a, b=final.b, x=final.x, y=final.y,
                      cv_log_loss=cv, raw_log_loss=raw, n=len(y), reason=reason)
