"""Scoring one decision at a time without pandas: the same arithmetic on plain arrays.

The candidates score DataFrames (``numeric_matrix`` / ``text_matrix``, then the model); for a
single online decision that costs milliseconds of pandas overhead per call. :class:`RowScorer`
turns feature mappings (what the online feature path computes for one event) into the very
arrays those functions would make — numbers as float64 with missing and ±inf as NaN; text
levels as ``str`` (``True``/``False`` for booleans), NaN where missing — and applies the
candidate's own arithmetic to them, so a mapping scores bit for bit like a one-row DataFrame
of the same values (tested on every test row of a logistic and a LightGBM bundle).

Supported: the LightGBM and logistic candidates. For any other candidate, or a value that is
not a plain number, boolean, string or missing (e.g. a numeric string that pandas would
coerce), :meth:`RowScorer.frame` builds the DataFrame and the candidate's own path scores it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from valuechain.errors import DataError
from valuechain.models import Calibrator, Candidate, LightGBM, Logistic
from valuechain.models.base import numeric_matrix, text_matrix

__all__ = ["RowScorer"]

Rows = Sequence[Mapping[str, Any]]


class _Slow(Exception):
    """A value the fast path does not convert exactly as pandas would: use the frame path."""


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    if isinstance(value, Real | np.number):
        out = float(value)
        return out if math.isfinite(out) else math.nan
    if value is pd.NA or value is pd.NaT:
        return math.nan
    raise _Slow


def _text(value: Any) -> Any:
    if value is None or value is pd.NA:
        return math.nan
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return math.nan
    if isinstance(value, bool | int | float | np.bool_ | np.number):
        return str(value)
    raise _Slow


class RowScorer:
    """Raw scores, calibrated scores and contributions of feature mappings.

    Parameters
    ----------
    model : Candidate
        The bundle's candidate (fitted, loaded).
    calibrator : Calibrator
        Its calibration map.
    feature_names : tuple of str
        The model's inputs (numeric, then categorical).
    numeric : tuple of str
        The numeric inputs.
    """

    def __init__(self, model: Candidate, calibrator: Calibrator,
                 feature_names: tuple[str, ...], numeric: tuple[str, ...]) -> None:
        self.model = model
        self.calibrator = calibrator
        self.names = feature_names
        self.numeric = numeric
        self.categorical = tuple(c for c in feature_names if c not in set(numeric))
        self.fast = isinstance(model, LightGBM | Logistic)
        self._levels: list[dict[str, int]] = []
        if isinstance(model, LightGBM):
            self._levels = [{level: i for i, level in enumerate(model.levels[name])}
                            for name in self.categorical]
        self._num_at: list[int] = []
        self._cat_at: list[int] = []
        self._onehot: list[tuple[dict[str, int], int]] = []
        self._arrays: dict[str, np.ndarray] = {}
        if isinstance(model, Logistic) and model.state is not None:
            from valuechain.models.logistic import _onehot_index

            num, cat = model.state["numeric"], model.state["categorical"]
            self._num_at = [numeric.index(c) for c in num["columns"]]
            self._cat_at = [self.categorical.index(c) for c in cat["columns"]]
            self._onehot = [_onehot_index(cat["levels"][k], cat["infrequent"][k])
                            for k in range(len(cat["columns"]))]
            self._arrays = {"coef": np.asarray(model.state["coef"], dtype=np.float64)}
            if num["columns"]:
                self._arrays.update(
                    impute=np.asarray(num["impute"], dtype=np.float64),
                    mean=np.asarray(num["mean"]), scale=np.asarray(num["scale"]),
                    indicator=np.asarray(num["indicator"], dtype=np.int64))

    # ------------------------------------------------------------------ inputs
    def frame(self, rows: Rows) -> pd.DataFrame:
        """The rows as the DataFrame the candidate's own path scores."""
        return pd.DataFrame(list(rows), columns=list(self.names))

    def arrays(self, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """``numeric_matrix`` and ``text_matrix`` of the rows, without pandas.

        Raises ``_Slow`` for a value it cannot convert exactly as pandas would.
        """
        missing = [c for c in self.names if any(c not in row for row in rows)]
        if missing:
            raise DataError(f"the features {missing} are missing from the decision's feature "
                            f"values; the bundle's model reads {list(self.names)}.")
        numeric = np.array([[_number(row[c]) for c in self.numeric] for row in rows],
                           dtype=np.float64).reshape(len(rows), len(self.numeric))
        texts = np.empty((len(rows), len(self.categorical)), dtype=object)
        for i, row in enumerate(rows):
            for j, c in enumerate(self.categorical):
                texts[i, j] = _text(row[c])
        return numeric, texts

    def _frame_arrays(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return numeric_matrix(frame, self.numeric), text_matrix(frame, self.categorical)

    def _inputs(self, rows: Rows) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.fast:
            return None
        try:
            return self.arrays(rows)
        except _Slow:
            return None

    # ------------------------------------------------------------------ scoring
    def _lgb_matrix(self, numeric: np.ndarray, texts: np.ndarray) -> np.ndarray:
        codes = np.empty(texts.shape, dtype=np.float64)
        for j, levels in enumerate(self._levels):
            codes[:, j] = [levels.get(v, math.nan) if isinstance(v, str) else math.nan
                           for v in texts[:, j]]
        return np.hstack([numeric, codes]) if self._levels else numeric

    def _logistic_z(self, model: Logistic, numeric: np.ndarray, texts: np.ndarray
                    ) -> np.ndarray:
        """:meth:`Logistic.decision_function`, step for step, on the arrays."""
        state = model.state
        assert state is not None
        a = self._arrays
        coef = a["coef"]
        z = np.full(len(numeric), state["intercept"], dtype=np.float64)
        cat = state["categorical"]
        width = 0
        if self._num_at:
            x = numeric[:, self._num_at]
            missing = np.isnan(x)
            x = np.where(missing, a["impute"], x)
            x = np.hstack([x, missing[:, a["indicator"]].astype(np.float64)])
            x = (x - a["mean"]) / a["scale"]
            width = x.shape[1]
            z += (x * coef[:width]).sum(axis=1)
        for k, j in enumerate(self._cat_at):
            index, n_out = self._onehot[k]
            fill = cat["impute"][k]
            slot = np.fromiter((index.get(v if isinstance(v, str) else fill, -1)
                                for v in texts[:, j]), dtype=np.int64, count=len(texts))
            known = slot >= 0
            z[known] += coef[width + slot[known]]
            width += n_out
        return z

    def raw(self, rows: Rows) -> np.ndarray:
        """The candidate's raw score per row."""
        inputs = self._inputs(rows)
        model = self.model
        if inputs is None:
            return np.asarray(model.predict(self.frame(rows)), dtype=np.float64)
        numeric, texts = inputs
        if isinstance(model, LightGBM):
            assert model.booster is not None
            out = model.booster.predict(self._lgb_matrix(numeric, texts),
                                        num_threads=model.params["num_threads"])
            return np.asarray(out, dtype=np.float64)
        assert isinstance(model, Logistic)
        z = self._logistic_z(model, numeric, texts)
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def score(self, rows: Rows) -> np.ndarray:
        """Calibrated probability per row."""
        return np.asarray(self.calibrator.apply(self.raw(rows)), dtype=np.float64)

    def lightgbm_contributions(self, model: LightGBM, features: pd.DataFrame | Rows
                               ) -> np.ndarray:
        """``pred_contrib`` (bias column last) of a frame or of feature mappings."""
        assert model.booster is not None
        if isinstance(features, pd.DataFrame):
            matrix = model.matrix(features)
        else:
            inputs = self._inputs(features)
            matrix = (model.matrix(self.frame(features)) if inputs is None
                      else self._lgb_matrix(*inputs))
        out = model.booster.predict(matrix, pred_contrib=True,
                                    num_threads=model.params["num_threads"])
        return np.asarray(out, dtype=np.float64)

    def logistic_terms(self, model: Logistic, features: pd.DataFrame | Rows
                       ) -> np.ndarray:
        """Coefficient x standardised input, summed per feature: ``(n, n_features)``."""
        from valuechain.models.logistic import _onehot_index

        if isinstance(features, pd.DataFrame):
            numeric, texts = self._frame_arrays(features)
        else:
            inputs = self._inputs(features)
            numeric, texts = (self._frame_arrays(self.frame(features)) if inputs is None
                              else inputs)
        state = model.state
        out = np.zeros((len(numeric), len(self.names)), dtype=np.float64)
        if state is None:
            return out
        position = {name: j for j, name in enumerate(self.names)}
        coef = np.asarray(state["coef"], dtype=np.float64)
        num, cat = state["numeric"], state["categorical"]
        width = 0
        if num["columns"]:
            x = numeric[:, self._num_at]
            missing = np.isnan(x)
            x = np.where(missing, np.asarray(num["impute"], dtype=np.float64), x)
            x = np.hstack([x, missing[:, num["indicator"]].astype(np.float64)])
            terms = (x - np.asarray(num["mean"])) / np.asarray(num["scale"]) * coef[:x.shape[1]]
            owners = [*num["columns"], *(num["columns"][i] for i in num["indicator"])]
            for k, column in enumerate(owners):
                out[:, position[column]] += terms[:, k]
            width = x.shape[1]
        for k, j in enumerate(self._cat_at):
            index, n_out = _onehot_index(cat["levels"][k], cat["infrequent"][k])
            filled = [cat["impute"][k] if not isinstance(v, str) else v for v in texts[:, j]]
            slot = np.array([index.get(v, math.nan) for v in filled], dtype=np.float64)
            known = ~np.isnan(slot)
            out[known, position[cat["columns"][k]]] += coef[width + slot[known].astype(
                np.int64)]
            width += n_out
        return out
