"""The candidate interface, the feature set it reads and the registry of candidates by name.

A candidate is a scorer fitted on a training period (with a validation period for early
stopping), returning raw scores in ``[0, 1]``. The decision and the calibration are wrappers
around it, never part of it. Every candidate persists itself without pickle, so a bundle can
be loaded by a later library version or inspected by hand.

>>> frame = pd.DataFrame({"amount": [1.0, None], "channel": ["web", "pos"]})
>>> FeatureSet.infer(frame, ["amount", "channel"])
FeatureSet(numeric=('amount',), categorical=('channel',))
>>> sorted(CANDIDATES)
['lightgbm', 'logistic', 'prior', 'rules']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import pandas as pd

from valuechain.errors import DataError, ModelError

__all__ = [
    "CANDIDATES",
    "LOADERS",
    "Candidate",
    "FeatureSet",
    "check_labels",
    "make_candidate",
    "numeric_matrix",
    "register_candidate",
    "require",
    "text_matrix",
]


@dataclass(frozen=True)
class FeatureSet:
    """Which frame columns are features, and which of them are categorical.

    Parameters
    ----------
    numeric : tuple of str
        Columns read as float64; missing and infinite values become NaN.
    categorical : tuple of str
        Columns read as text levels; missing values stay missing, levels unseen at fit time
        are handled by each candidate.

    Examples
    --------
    >>> fs = FeatureSet(numeric=("amount",), categorical=("channel",))
    >>> fs.columns
    ('amount', 'channel')
    >>> FeatureSet.from_dict(fs.to_dict()) == fs
    True
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise DataError(
                f"features {sorted(both)} are listed as both numeric and categorical; "
                "list each feature once."
            )

    @property
    def columns(self) -> tuple[str, ...]:
        """All feature columns: numeric first, then categorical."""
        return self.numeric + self.categorical

    @classmethod
    def infer(cls, frame: pd.DataFrame, features: Sequence[str]) -> FeatureSet:
        """Split ``features`` by dtype: strings, booleans and ``category`` are categorical.

        Numbers (including nullable integers and all-missing columns) are numeric. Dates and
        other types raise :class:`~valuechain.errors.DataError` naming the column and the fix.

        Examples
        --------
        >>> frame = pd.DataFrame({"n": [1, 2], "flag": [True, False], "when": pd.to_datetime(
        ...     ["2024-01-01", "2024-01-02"])})
        >>> FeatureSet.infer(frame, ["n", "flag"])
        FeatureSet(numeric=('n',), categorical=('flag',))
        >>> FeatureSet.infer(frame, ["when"])
        Traceback (most recent call last):
        ...
        valuechain.errors.DataError: feature 'when' has type datetime64[...]...
        """
        _check_columns(frame, features)
        numeric: list[str] = []
        categorical: list[str] = []
        for name in features:
            series = frame[name]
            kind = pd.api.types.infer_dtype(series, skipna=True)
            if isinstance(series.dtype, pd.CategoricalDtype) or kind in _TEXT_KINDS:
                categorical.append(name)
            elif kind in _NUMBER_KINDS:
                numeric.append(name)
            else:
                raise DataError(
                    f"feature '{name}' has type {series.dtype} ({kind}), which a model cannot "
                    "read. Expected numbers, text, booleans or a category. Fix: derive a number "
                    "in the feature's expression (e.g. the hour of a timestamp, or the days "
                    "since it)."
                )
        return cls(tuple(numeric), tuple(categorical))

    def to_dict(self) -> dict[str, list[str]]:
        """A JSON-ready dict (inverse of :meth:`from_dict`)."""
        return {"numeric": list(self.numeric), "categorical": list(self.categorical)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSet:
        """The feature set written by :meth:`to_dict`."""
        return cls(tuple(data["numeric"]), tuple(data.get("categorical", ())))


_TEXT_KINDS = {"string", "boolean", "mixed", "bytes", "categorical"}
_NUMBER_KINDS = {"integer", "floating", "mixed-integer-float", "decimal", "empty"}


@runtime_checkable
class Candidate(Protocol):
    """A scorer: fitted on train (validation for early stopping), persisted without pickle."""

    name: str

    def fit(
        self, train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame, y_valid: np.ndarray
    ) -> Candidate:
        """Fit on ``train``; ``valid`` may only steer fitting (early stopping). Returns self."""
        ...

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw scores in ``[0, 1]``, one per row of ``frame``."""
        ...

    def save(self, directory: Path) -> None:
        """Write the fitted candidate to ``directory`` (JSON and text files, no pickle)."""
        ...

    @classmethod
    def load(cls, directory: Path) -> Candidate:
        """Read a candidate written by :meth:`save`."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts: parameters, number of features, best iteration, ..."""
        ...


CANDIDATES: dict[str, Callable[..., Candidate]] = {}
"""Candidate factories by name: ``factory(features, *, seed=0, **options)``."""

LOADERS: dict[str, Callable[[Path], Candidate]] = {}
"""``load(directory)`` by candidate name, used by :func:`valuechain.models.load_candidate`."""

C = TypeVar("C", bound=type)


def register_candidate(name: str) -> Callable[[C], C]:
    """Class decorator: register a candidate class under ``name`` (factory and loader)."""

    def decorate(cls: C) -> C:
        CANDIDATES[name] = cls
        LOADERS[name] = cls.load  # type: ignore[attr-defined]
        return cls

    return decorate


def make_candidate(
    name: str,
    features: FeatureSet,
    *,
    seed: int = 0,
    rules: str | None = None,
    **options: Any,
) -> Candidate:
    """A new, unfitted candidate registered under ``name``.

    Parameters
    ----------
    name : str
        One of :data:`CANDIDATES` (``prior``, ``rules``, ``logistic``, ``lightgbm``).
    features : FeatureSet
        The feature columns the candidate reads (``rules`` reads any frame column).
    seed : int
        Seed for every random choice, so a fit is reproducible.
    rules : str, optional
        The ``rules`` candidate's DuckDB SQL expression (the spec's ``value.baseline_policy``).
    **options
        Passed to the candidate's constructor (e.g. ``class_weight="balanced"``).

    Examples
    --------
    >>> make_candidate("prior", FeatureSet(("amount",))).name
    'prior'
    >>> make_candidate("forest", FeatureSet(("amount",)))
    Traceback (most recent call last):
    ...
    valuechain.errors.ModelError: unknown candidate 'forest'. Expected one of [...]...
    """
    try:
        factory = CANDIDATES[name]
    except KeyError:
        raise ModelError(
            f"unknown candidate '{name}'. Expected one of {sorted(CANDIDATES)}; a model of "
            "your own goes in as an estimator (valuechain.models.as_candidate, or "
            "`estimators=` of valuechain.train)."
        ) from None
    if name == "rules":
        options["expression"] = rules
    return factory(features, seed=seed, **options)


def require(module: str, candidate: str) -> ModuleType:
    """Import a package a candidate (or a check) needs, or say how to repair the install.

    scikit-learn and LightGBM are dependencies of valuechain, so this fails only in a broken
    environment; the message says which package and how to reinstall it.

    >>> require("numpy", "prior").__name__
    'numpy'
    >>> require("no_such_package_xyz", "the leakage audit")
    Traceback (most recent call last):
    ...
    valuechain.errors.ModelError: the leakage audit needs the package 'no_such_package_xyz'...
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = module.split(".")[0]
        raise ModelError(
            f"{candidate} needs the package '{package}', which cannot be imported ({err}). "
            f"valuechain depends on it: reinstall it into this environment, e.g. "
            f"`pip install --force-reinstall valuechain` (or `pip install {package}`)."
        ) from None


def _check_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"feature columns {missing} are not in the frame (it has {len(frame.columns)} "
            f"columns: {list(frame.columns)[:20]}). Fix: build the frame with these features "
            "or score with the feature set the model was fitted on."
        )


def numeric_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The columns as a float64 matrix (rows x columns); missing and ±inf become NaN.

    >>> numeric_matrix(pd.DataFrame({"a": [1, None], "b": [float("inf"), 2.0]}), ["a", "b"])
    array([[ 1., nan],
           [nan,  2.]])
    """
    _check_columns(frame, columns)
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        series = frame[name]
        try:
            out[:, j] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            out[:, j] = pd.to_numeric(series, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
    out[~np.isfinite(out)] = np.nan
    return out


def text_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The columns as an object matrix of ``str`` levels, ``nan`` where missing.

    Booleans become ``'True'``/``'False'``; categories become the text of their values.

    >>> text_matrix(pd.DataFrame({"c": ["a", None], "b": [True, False]}), ["c", "b"])
    array([['a', 'True'],
           [nan, 'False']], dtype=object)
    """
    _check_columns(frame, columns)
    out = np.empty((len(frame), len(columns)), dtype=object)
    for j, name in enumerate(columns):
        series = frame[name]
        if isinstance(series.dtype, pd.CategoricalDtype):
            levels = np.asarray([str(v) for v in series.cat.categories] + [np.nan], dtype=object)
            out[:, j] = levels[series.cat.codes.to_numpy()]  # code -1 -> nan
        elif pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
            out[:, j] = series.to_numpy(dtype=object, na_value=np.nan)
        else:
            mask = pd.isna(series).to_numpy()
            col = series.to_numpy(dtype=object)
            col = np.asarray([v if isinstance(v, str) else str(v) for v in col], dtype=object)
            col[mask] = np.nan
            out[:, j] = col
    return out


def check_labels(y: np.ndarray, what: str) -> np.ndarray:
    """``y`` as a float64 0/1 vector, or a :class:`DataError` saying what is wrong.

    >>> check_labels(np.array([0, 1, True]), "y_train")
    array([0., 1., 1.])
    """
    arr = np.asarray(y, dtype=np.float64).ravel()
    bad = ~np.isin(arr, (0.0, 1.0))
    if bad.any():
        raise DataError(
            f"{what} must be 0/1 labels; found {int(bad.sum())} other values "
            f"(e.g. {arr[bad][:3].tolist()}). Fix: train only on mature rows with a binary label."
        )
    return arr
