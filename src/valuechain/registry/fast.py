"""Scoring one decision at a time without pandas: the same arithmetic on plain arrays.

The candidates score DataFrames (``numeric_matrix`` / ``text_matrix``, then the model); for a
single online decision that costs milliseconds of pandas overhead per call. :class:`RowScorer`
turns feature mappings (what the online feature path computes for one event) into the very
arrays those functions would make — numbers as float64 with missing and ±inf as NaN; text
levels as ``str`` (``True``/``False`` for booleans), NaN where missing — and hands them to
the candidate's own array methods (``predict_arrays``, ``contributions_arrays``: the code its
DataFrame path runs too), so a mapping scores bit for bit like a one-row DataFrame
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

__all__ = ["RowScorer"]

Rows = Sequence[Mapping[str, Any]]


class _Slow(Exception):
    """A value the fast path does not convert exactly as pandas would: use the frame path."""


def _number(value: Any) -> float:
    kind = type(value)
    if kind is float:  # the common cases first (exact types: no ABC checks)
        return value if math.isfinite(value) else math.nan  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
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
    if type(value) is str:
        return value
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
        self._names = frozenset(feature_names)

    # ------------------------------------------------------------------ inputs
    def frame(self, rows: Rows) -> pd.DataFrame:
        """The rows as the DataFrame the candidate's own path scores."""
        return pd.DataFrame(list(rows), columns=list(self.names))

    def arrays(self, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """``numeric_matrix`` and ``text_matrix`` of the rows, without pandas.

        Raises ``_Slow`` for a value it cannot convert exactly as pandas would.
        """
        names = self._names
        missing = [] if all(names <= row.keys() for row in rows) else [
            c for c in self.names if any(c not in row for row in rows)]
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

    def _inputs(self, rows: Rows) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.fast:
            return None
        try:
            return self.arrays(rows)
        except _Slow:
            return None

    def _model_arrays(self, features: pd.DataFrame | Rows) -> tuple[np.ndarray, np.ndarray]:
        """What the (LightGBM or logistic) candidate reads, from a frame or from mappings."""
        model = self.model
        assert isinstance(model, LightGBM | Logistic)
        if isinstance(features, pd.DataFrame):
            return model.arrays(features)
        inputs = self._inputs(features)
        return model.arrays(self.frame(features)) if inputs is None else inputs

    # ------------------------------------------------------------------ scoring
    def raw(self, rows: Rows) -> np.ndarray:
        """The candidate's raw score per row (its own arithmetic, on the arrays)."""
        model = self.model
        if not isinstance(model, LightGBM | Logistic):
            return np.asarray(model.predict(self.frame(rows)), dtype=np.float64)
        return model.predict_arrays(*self._model_arrays(rows))

    def score(self, rows: Rows) -> np.ndarray:
        """Calibrated probability per row."""
        return np.asarray(self.calibrator.apply(self.raw(rows)), dtype=np.float64)

    # ------------------------------------------------------------------ one live decision
    def prepare(self, rows: Rows) -> tuple[np.ndarray, np.ndarray] | None:
        """The arrays the candidate reads for ``rows``, made once for score and reasons.

        None when only the DataFrame path converts the values exactly (or the candidate has
        no array path): use :meth:`score` and :meth:`contributions` then.
        """
        return self._inputs(rows)

    def score_prepared(self, inputs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """:meth:`score` of the arrays :meth:`prepare` made (bit for bit the same)."""
        model = self.model
        assert isinstance(model, LightGBM | Logistic)
        return np.asarray(self.calibrator.apply(model.predict_arrays(*inputs)),
                          dtype=np.float64)

    def reasons_prepared(self, inputs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Per-feature contributions ``(n, n_features)`` of the arrays :meth:`prepare` made:
        what :meth:`Bundle.contributions <valuechain.registry.Bundle.contributions>` gives
        (LightGBM's bias column dropped)."""
        model = self.model
        assert isinstance(model, LightGBM | Logistic)
        values = np.asarray(model.contributions_arrays(*inputs), dtype=np.float64)
        return values[:, :-1] if isinstance(model, LightGBM) else values

    def contributions(self, features: pd.DataFrame | Rows) -> np.ndarray | None:
        """The candidate's ``contributions_arrays`` (None for candidates without them)."""
        model = self.model
        if not isinstance(model, LightGBM | Logistic):
            return None
        return model.contributions_arrays(*self._model_arrays(features))
