"""Baselines every model must beat: the base rate, and the rule the business runs today.

* :class:`Prior` scores every row with the positive rate of the training period.
* :class:`Rules` evaluates the spec's ``value.baseline_policy`` (a row-level SQL expression
  over frame columns, through :func:`valuechain.expressions.evaluate`) and maps each output of the rule to the training positive rate among rows
  with that output, so ``rule true`` scores ``P(y | rule true)`` on train. Rules with many
  distinct numeric outputs are mapped by quantile bins instead. Rows where the rule is null
  score the training rate among null rows; outputs never seen in training score the base rate.

>>> frame = pd.DataFrame({"amount": [10.0, 900.0, 20.0, 800.0, None]})
>>> y = np.array([0, 1, 0, 0, 0])
>>> rules = Rules(FeatureSet(("amount",)), expression="amount > 500").fit(frame, y, frame, y)
>>> rules.predict(frame).tolist()
[0.0, 0.5, 0.0, 0.5, 0.0]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from valuechain.errors import DataError, SpecError
from valuechain.expressions import evaluate, parse_expression
from valuechain.models.base import FeatureSet, check_labels, register_candidate
from valuechain.models.persist import read_manifest, write_manifest

__all__ = ["Prior", "Rules"]

FIELD = "value.baseline_policy"


def _base_rate(y: np.ndarray, what: str) -> float:
    arr = check_labels(y, what)
    if arr.size == 0:
        raise DataError(f"{what} is empty: a candidate needs at least one labelled row to fit.")
    return float(arr.mean())


@register_candidate("prior")
class Prior:
    """The base rate of the training period, the same score for every row.

    Examples
    --------
    >>> frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0]})
    >>> Prior(FeatureSet(("amount",))).fit(frame, np.array([0, 1, 0, 0]), frame,
    ...     np.array([0, 0, 0, 1])).predict(frame[:2]).tolist()
    [0.25, 0.25]
    """

    name: str = "prior"

    def __init__(self, features: FeatureSet, *, seed: int = 0) -> None:
        self.features = features
        self.seed = seed
        self.base_rate: float | None = None
        self.n_train = 0

    def fit(
        self, train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame, y_valid: np.ndarray
    ) -> Self:
        """Remember the positive rate of ``y_train`` (``valid`` is not used)."""
        self.base_rate = _base_rate(y_train, "y_train")
        self.n_train = len(y_train)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The base rate for every row."""
        return np.full(len(frame), self._rate(), dtype=np.float64)

    def _rate(self) -> float:
        if self.base_rate is None:
            raise DataError("the prior is not fitted yet: call fit() or load() first.")
        return self.base_rate

    def save(self, directory: Path) -> None:
        """Write ``candidate.json``."""
        write_manifest(directory, self.name, self.features,
                       {"base_rate": self._rate(), "n_train": self.n_train})

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a prior written by :meth:`save`."""
        features, state = read_manifest(directory, "prior")
        out = cls(features)
        out.base_rate = float(state["base_rate"])
        out.n_train = int(state["n_train"])
        return out

    def describe(self) -> dict[str, Any]:
        """Base rate and training size."""
        return {"candidate": self.name, "base_rate": self.base_rate, "n_train": self.n_train,
                "n_features": 0}


@register_candidate("rules")
class Rules:
    """Today's rule (``value.baseline_policy``), mapped to training positive rates.

    Parameters
    ----------
    features : FeatureSet
        Recorded for the bundle; the expression may read any frame column.
    expression : str
        Row-level SQL expression (DuckDB dialect) returning a boolean or a number per row;
        parsed once here (a :class:`~valuechain.errors.SpecError` names the field if invalid).
    max_levels : int
        Rules with at most this many distinct outputs are mapped output by output.
    bins : int
        Otherwise outputs are grouped into up to ``bins`` quantile bins of the training outputs.
    """

    name: str = "rules"

    def __init__(
        self,
        features: FeatureSet,
        *,
        expression: str | None,
        seed: int = 0,
        max_levels: int = 32,
        bins: int = 20,
    ) -> None:
        if expression is None or not expression.strip():
            raise SpecError(
                f"{FIELD} is not set, and the 'rules' baseline needs the rule the business runs "
                "today. Fix: add it to valuechain.yaml as a DuckDB SQL expression over frame "
                "columns (e.g. `value: {baseline_policy: \"amount > 500\"}`), or leave 'rules' "
                "out of the candidates."
            )
        self.features = features
        self.expression = expression.strip()
        self.parsed = parse_expression(self.expression, where=FIELD)  # SpecError if invalid
        self.seed = seed
        self.max_levels = max_levels
        self.bins = bins
        self.mode = "levels"
        self.keys = np.empty(0)  # distinct outputs (levels) or inner bin edges (bins)
        self.rates = np.empty(0)
        self.counts = np.empty(0, dtype=np.int64)
        self.null_rate: float | None = None
        self.base_rate: float | None = None

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        """The rule's raw output per row as float64 (``true`` is 1.0, null is NaN).

        Computed by :func:`valuechain.expressions.evaluate`, the one place spec expressions
        are evaluated over a frame.

        Raises
        ------
        SpecError
            When the expression reads a column the frame lacks (named, with the columns
            that exist) or cannot be computed; the message names ``value.baseline_policy``.
        """
        out = np.array(evaluate(self.parsed, frame, where=FIELD, kind="float"), dtype=np.float64)
        out[~np.isfinite(out)] = np.nan
        return out

    def fit(
        self, train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame, y_valid: np.ndarray
    ) -> Self:
        """Map each rule output seen on ``train`` to its positive rate (``valid`` unused)."""
        y = check_labels(y_train, "y_train")
        self.base_rate = _base_rate(y, "y_train")
        values = self.evaluate(train)
        if len(values) != len(y):
            raise DataError(f"train has {len(values)} rows but y_train has {len(y)} labels.")
        null = np.isnan(values)
        self.null_rate = float(y[null].mean()) if null.any() else self.base_rate
        present, y_present = values[~null], y[~null]
        levels = np.unique(present)
        if len(levels) <= self.max_levels:
            self.mode, self.keys = "levels", levels
            slot = np.searchsorted(levels, present)
            n_slots = len(levels)
        else:
            quantiles = np.quantile(present, np.linspace(0, 1, self.bins + 1)[1:-1])
            self.mode, self.keys = "bins", np.unique(quantiles)
            slot = np.searchsorted(self.keys, present, side="right")
            n_slots = len(self.keys) + 1
        self.counts = np.bincount(slot, minlength=n_slots).astype(np.int64)
        positives = np.bincount(slot, weights=y_present, minlength=n_slots)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.rates = np.where(self.counts > 0, positives / np.maximum(self.counts, 1),
                                  self.base_rate)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Training positive rate of each row's rule output."""
        if self.base_rate is None or self.null_rate is None:
            raise DataError("the rules baseline is not fitted yet: call fit() or load() first.")
        values = self.evaluate(frame)
        out = np.full(len(values), self.base_rate, dtype=np.float64)
        null = np.isnan(values)
        out[null] = self.null_rate
        if self.mode == "levels":
            slot = np.searchsorted(self.keys, values)
            inside = ~null & (slot < len(self.keys))
            match = np.zeros(len(values), dtype=bool)
            match[inside] = self.keys[slot[inside]] == values[inside]
            out[match] = self.rates[slot[match]]
        else:
            slot = np.searchsorted(self.keys, values, side="right")
            out[~null] = self.rates[slot[~null]]
        return out

    def save(self, directory: Path) -> None:
        """Write ``candidate.json`` (expression, outputs and their training rates)."""
        write_manifest(directory, self.name, self.features, {
            "expression": self.expression, "mode": self.mode, "keys": self.keys,
            "rates": self.rates, "counts": self.counts, "null_rate": self.null_rate,
            "base_rate": self.base_rate, "max_levels": self.max_levels, "bins": self.bins,
        })

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a rules baseline written by :meth:`save`."""
        features, state = read_manifest(directory, "rules")
        out = cls(features, expression=state["expression"], max_levels=int(state["max_levels"]),
                  bins=int(state["bins"]))
        out.mode = str(state["mode"])
        out.keys = np.asarray(state["keys"], dtype=np.float64)
        out.rates = np.asarray(state["rates"], dtype=np.float64)
        out.counts = np.asarray(state["counts"], dtype=np.int64)
        out.null_rate = float(state["null_rate"])
        out.base_rate = float(state["base_rate"])
        return out

    def describe(self) -> dict[str, Any]:
        """The expression and the rate per rule output (or per bin)."""
        return {
            "candidate": self.name, "expression": self.expression, "mode": self.mode,
            "outputs": self.keys.tolist(), "rates": self.rates.tolist(),
            "counts": self.counts.tolist(), "null_rate": self.null_rate,
            "base_rate": self.base_rate, "n_features": 0,
        }
