"""Bring your own model: any scikit-learn compatible classifier as a candidate.

:func:`as_candidate` wraps a classifier (a ``LogisticRegression``, a ``Pipeline`` with a
``ColumnTransformer``, a LightGBM ``LGBMClassifier``, ...) into the
:class:`~valuechain.models.Candidate` interface, so it is trained, calibrated, evaluated and
priced beside the built-in candidates:

* ``fit`` clones the estimator (the one passed in is never changed, fitted or not) and fits
  the clone on the training rows only. Its input is a ``pandas.DataFrame`` of the feature
  set's columns: numeric columns as ``float64`` (missing and ±inf as NaN), categorical
  columns as ``category`` with the levels seen in training (an unseen level is missing).
  ``random_state`` parameters left at ``None`` (also inside a pipeline) are set to ``seed``.
  The validation period is not used: early stopping, if any, is the estimator's business.
* ``predict`` returns ``predict_proba(X)[:, k]`` where ``classes_[k] == 1``.
* ``save`` / ``load`` persist the fitted estimator beside ``candidate.json``, which records
  the file's SHA-256 (``load`` refuses a file whose checksum differs) and the library
  versions. The format is `skops <https://skops.readthedocs.io>`_ (``estimator.skops``: no
  pickle, no code run on load; the types it must trust are recorded at save time and only
  those are trusted on load) when the estimator round-trips through it: ``save`` reloads the
  file and checks that it scores a sample of the training rows bit for bit. Otherwise (a
  lambda in a ``FunctionTransformer``, a type skops does not know) it falls back to joblib
  (``estimator.joblib``, a pickle), which is **not portable** (it loads only with compatible
  library versions and, like any pickle, only from a trusted source) and says so with a
  :class:`NotPortableWarning`, never silently. ``describe()["persistence"]`` tells which.
  (The built-in candidates are saved as JSON and text instead.)

Nothing is registered globally: the candidate's name is chosen by the caller and must not be
a built-in candidate's name.

>>> import numpy as np, pandas as pd
>>> from sklearn.linear_model import LogisticRegression
>>> rng = np.random.default_rng(0)
>>> frame = pd.DataFrame({"amount": rng.exponential(100, 2000)})
>>> y = (rng.uniform(size=2000) < frame["amount"] / 800).astype(int).to_numpy()
>>> mine = as_candidate("my_logreg", LogisticRegression(), FeatureSet(("amount",)))
>>> scores = mine.fit(frame, y, frame, y).predict(frame)
>>> bool(scores.min() >= 0 and scores.max() <= 1), mine.describe()["estimator"]
(True, 'sklearn.linear_model._logistic.LogisticRegression')
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
import warnings
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from valuechain.errors import ArtifactError, DataError, ModelError
from valuechain.models.base import (
    CANDIDATES,
    FeatureSet,
    check_labels,
    numeric_matrix,
    require,
    text_matrix,
)
from valuechain.models.persist import MANIFEST, read_json, read_manifest, write_manifest

__all__ = ["ADAPTER", "EstimatorCandidate", "NotPortableWarning", "as_candidate"]

log = logging.getLogger(__name__)

ADAPTER = "sklearn"
"""The ``state.adapter`` value in ``candidate.json`` that marks a wrapped estimator."""

SKOPS_FILE = "estimator.skops"
JOBLIB_FILE = "estimator.joblib"
VERIFY_ROWS = 256
"""Training rows kept after ``fit`` to check that a saved estimator scores them identically."""
SKOPS_NOTE = (
    "saved with skops (no pickle; only the types recorded in `trusted` are trusted on load). "
    "It loads with versions of the libraries in `versions` compatible with the estimator's "
    "fitted attributes; the checksum is verified before loading."
)
NOT_PORTABLE = (
    "not portable: the estimator is saved with joblib (pickle). It loads only with compatible "
    "versions of the libraries recorded in `versions`, and only files from a trusted source "
    "may be loaded (unpickling runs code). The checksum is verified before loading."
)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_LIBRARIES = ("scikit-learn", "lightgbm", "numpy", "pandas", "skops", "joblib")


class NotPortableWarning(UserWarning):
    """A wrapped estimator was saved as a pickle: it loads only with compatible versions."""


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in _LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _class_path(estimator: Any) -> str:
    cls = type(estimator)
    return f"{cls.__module__}.{cls.__qualname__}"


def _plain(value: Any) -> Any:
    """A parameter value as JSON: numbers, strings, booleans and None as is, else its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(
            v is None or isinstance(v, bool | int | float | str) for v in value):
        return list(value)
    return repr(value)[:200]


def _named_columns(estimator: Any) -> set[str]:
    """Column names a (possibly nested) ColumnTransformer selects by name."""
    found: set[str] = set()
    transformers = getattr(estimator, "transformers", None)
    if isinstance(transformers, list):
        for item in transformers:
            if isinstance(item, tuple) and len(item) == 3:
                columns = item[2]
                if isinstance(columns, str):
                    found.add(columns)
                elif isinstance(columns, list | tuple) and all(
                        isinstance(c, str) for c in columns):
                    found.update(columns)
                found |= _named_columns(item[1])
    for _, step in getattr(estimator, "steps", None) or []:
        found |= _named_columns(step)
    return found


class EstimatorCandidate:
    """A scikit-learn compatible classifier as a :class:`~valuechain.models.Candidate`.

    Made by :func:`as_candidate` (which checks the estimator); see the module docstring for
    how it fits, predicts and persists.

    Attributes
    ----------
    name : str
        The candidate's name, chosen by the caller.
    estimator : object
        The estimator as given (never fitted here).
    fitted : object or None
        The fitted clone, after :meth:`fit` or :meth:`load`.
    """

    def __init__(self, name: str, estimator: Any, features: FeatureSet, *, seed: int = 0
                 ) -> None:
        self.name = name
        self.estimator = estimator
        self.features = features
        self.seed = seed
        self.fitted: Any = None
        self.levels: dict[str, list[str]] = {}
        self.positive_index = 1
        self.n_train = 0
        self.saved: dict[str, Any] = {}
        self.sample: pd.DataFrame | None = None  # training rows to verify a saved file with
        self._trusted: list[str] = []  # the types skops must trust to load the saved file

    # ----------------------------------------------------------------------------- the input
    def design(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The DataFrame the estimator sees: numeric float64, categorical ``category``."""
        numeric = numeric_matrix(frame, self.features.numeric)
        texts = text_matrix(frame, self.features.categorical)
        cols: dict[str, Any] = {}
        for j, name in enumerate(self.features.numeric):
            cols[name] = pd.Series(numeric[:, j], dtype=np.float64, copy=False)
        for j, name in enumerate(self.features.categorical):
            levels = self.levels.get(name, [])
            values = pd.Series(texts[:, j], dtype=object)
            values[~values.isin(levels)] = np.nan  # unseen in training: missing
            cols[name] = pd.Series(pd.Categorical(values, categories=levels))
        return pd.DataFrame(cols, columns=list(self.features.columns))

    def _learn_levels(self, train: pd.DataFrame) -> None:
        texts = text_matrix(train, self.features.categorical)
        self.levels = {
            name: sorted({str(v) for v in texts[:, j] if isinstance(v, str)})
            for j, name in enumerate(self.features.categorical)
        }

    # ------------------------------------------------------------------------------ fitting
    def _seeded_clone(self) -> Any:
        base = require("sklearn.base", f"candidate '{self.name}'")
        try:
            clone = base.clone(self.estimator)
        except Exception as err:  # the estimator's own code: map what it raises
            raise ModelError(
                f"candidate '{self.name}': scikit-learn cannot clone the "
                f"{_class_path(self.estimator)} given ({err}). Fix: pass an estimator that "
                "follows the scikit-learn API (get_params/set_params)."
            ) from err
        params = clone.get_params(deep=True)
        unset = {k: self.seed for k, v in params.items()
                 if (k == "random_state" or k.endswith("__random_state")) and v is None}
        if unset:
            clone.set_params(**unset)
        return clone

    def fit(
        self, train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame, y_valid: np.ndarray
    ) -> Self:
        """Fit a clone of the estimator on ``train`` (``valid`` is not used). Returns self."""
        y = check_labels(y_train, "y_train").astype(np.int64)
        if len(np.unique(y)) < 2:
            raise DataError(
                f"y_train has only one class ({len(y)} rows): candidate '{self.name}' needs "
                "both positives and negatives. Fix: widen the training period."
            )
        self._learn_levels(train)
        x = self.design(train)
        model = self._seeded_clone()
        try:
            model.fit(x, y)
        except Exception as err:  # the estimator's own code: map what it raises
            raise ModelError(
                f"candidate '{self.name}' ({_class_path(self.estimator)}) failed to fit on "
                f"{len(x):,} training rows x {x.shape[1]} features: {err}\nIt receives a "
                f"DataFrame with numeric columns {list(self.features.numeric)} (float64, NaN "
                f"where missing) and categorical columns {list(self.features.categorical)} "
                "(pandas category). Fix: make the estimator accept them (e.g. a Pipeline with "
                "an imputer and a OneHotEncoder in a ColumnTransformer)."
            ) from err
        classes = [int(c) if isinstance(c, int | np.integer) else c
                   for c in getattr(model, "classes_", [])]
        if 1 not in classes:
            raise ModelError(
                f"candidate '{self.name}': the fitted estimator's classes_ are {classes}, "
                "without the positive class 1. Fix: pass a binary classifier."
            )
        self.positive_index = classes.index(1)
        self.fitted = model
        self.n_train = len(y)
        self.sample = x.iloc[np.linspace(0, len(x) - 1, min(VERIFY_ROWS, len(x))).astype(int)]
        return self

    # ---------------------------------------------------------------------------- predicting
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """``predict_proba[:, 1]`` of the fitted estimator, one score per row of ``frame``."""
        if self.fitted is None:
            raise ModelError(f"candidate '{self.name}' is not fitted yet: call fit() or "
                             "load() first.")
        x = self.design(frame)
        try:
            proba = np.asarray(self.fitted.predict_proba(x), dtype=np.float64)
        except Exception as err:  # the estimator's own code: map what it raises
            raise ModelError(
                f"candidate '{self.name}' ({_class_path(self.estimator)}) failed to score "
                f"{len(x):,} rows: {err}"
            ) from err
        if proba.ndim != 2 or proba.shape[0] != len(x):
            raise ModelError(
                f"candidate '{self.name}': predict_proba returned shape {proba.shape} for "
                f"{len(x)} rows; expected ({len(x)}, 2)."
            )
        out = proba[:, self.positive_index]
        bad = ~np.isfinite(out) | (out < 0) | (out > 1)
        if bad.any():
            raise ModelError(
                f"candidate '{self.name}': predict_proba gave {int(bad.sum())} values outside "
                f"[0, 1] or not finite (e.g. {out[bad][:3].tolist()}). Fix the estimator."
            )
        return np.ascontiguousarray(out)

    # --------------------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        """Write the fitted estimator (skops, else joblib) and ``candidate.json``.

        Warns with :class:`NotPortableWarning` when it had to fall back to joblib (pickle).
        """
        if self.fitted is None:
            raise ModelError(f"candidate '{self.name}' is not fitted yet: nothing to save.")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        why_not = self._save_skops(directory / SKOPS_FILE)
        if why_not is None:
            self.saved = {"persistence": "skops", "model_file": SKOPS_FILE,
                          "trusted": self._trusted, "portable": True, "note": SKOPS_NOTE}
        else:
            (directory / SKOPS_FILE).unlink(missing_ok=True)
            self._save_joblib(directory / JOBLIB_FILE)
            self.saved = {"persistence": "joblib", "model_file": JOBLIB_FILE,
                          "portable": False, "note": NOT_PORTABLE, "skops_failed": why_not}
        path = directory / self.saved["model_file"]
        self.saved.update(sha256=_sha256(path), versions=_versions())
        write_manifest(directory, self.name, self.features, {
            "adapter": ADAPTER, "estimator": _class_path(self.estimator),
            "params": self._params(), "seed": self.seed, "levels": self.levels,
            "positive_index": self.positive_index, "n_train": self.n_train, **self.saved,
        })
        if why_not is not None:
            warnings.warn(NotPortableWarning(
                f"candidate '{self.name}' saved to {path} with joblib because skops could not "
                f"round-trip it ({why_not}): {NOT_PORTABLE}"), stacklevel=2)

    def _save_skops(self, path: Path) -> str | None:
        """Dump with skops, reload, compare scores; the reason it failed, or None."""
        try:
            sio = importlib.import_module("skops.io")
        except ImportError as err:
            return f"skops is not installed ({err})"
        try:
            sio.dump(self.fitted, path)
            self._trusted = sorted(str(t) for t in sio.get_untrusted_types(file=path))
            back = sio.load(path, trusted=self._trusted)
        except Exception as err:  # skops runs the estimator's own (de)serialisation code
            log.debug("skops cannot persist %s", self.name, exc_info=True)
            return f"{type(err).__name__}: {str(err)[:200]}"
        if self.sample is not None:
            try:
                same = np.array_equal(np.asarray(back.predict_proba(self.sample)),
                                      np.asarray(self.fitted.predict_proba(self.sample)),
                                      equal_nan=True)
            except Exception as err:  # the reloaded estimator's own code
                return f"the reloaded estimator cannot score ({type(err).__name__}: {err})"
            if not same:
                return "the reloaded estimator scores the training sample differently"
        return None

    def _save_joblib(self, path: Path) -> None:
        joblib = require("joblib", f"saving candidate '{self.name}'")
        try:
            joblib.dump(self.fitted, path)
        except Exception as err:  # pickling runs the estimator's own code
            raise ModelError(
                f"candidate '{self.name}': cannot save the fitted "
                f"{_class_path(self.estimator)} to {path} ({err}). Fix: avoid lambdas and "
                "local functions in the estimator (joblib must pickle it)."
            ) from err

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a candidate written by :meth:`save`, after checking the file's SHA-256."""
        directory = Path(directory)
        features, state = read_manifest(directory)
        if state.get("adapter") != ADAPTER:
            raise ArtifactError(
                f"{directory / 'candidate.json'} does not hold a wrapped estimator. Fix: load "
                "it with valuechain.models.load_candidate(), which picks the right class."
            )
        name = str(read_json(directory / MANIFEST).get("candidate"))
        path = directory / str(state["model_file"])
        if not path.is_file():
            raise ArtifactError(f"{path}: missing; candidate '{name}' cannot be loaded. Fix: "
                                "train again, or restore the file.")
        found = _sha256(path)
        if found != state["sha256"]:
            raise ArtifactError(
                f"{path}: SHA-256 {found} differs from the {state['sha256']} recorded when it "
                "was saved; refusing to load it. Fix: train again, or restore the file."
            )
        recorded = dict(state.get("versions", {}))
        persistence = state.get("persistence", "joblib")
        moved = {k: f"{v} -> {_versions().get(k)}" for k, v in recorded.items()
                 if _versions().get(k) != v}
        if moved and persistence == "joblib":
            warnings.warn(NotPortableWarning(
                f"candidate '{name}' was saved with {recorded}; these differ now: {moved}. "
                f"{NOT_PORTABLE}"), stacklevel=2)
        try:
            if persistence == "skops":
                sio = require("skops.io", f"loading candidate '{name}'")
                fitted = sio.load(path, trusted=[str(t) for t in state.get("trusted", [])])
            else:
                fitted = require("joblib", f"loading candidate '{name}'").load(path)
        except ModelError:
            raise
        except Exception as err:  # loading runs library code
            raise ArtifactError(
                f"{path}: cannot load the saved estimator ({type(err).__name__}: {err}). It "
                f"was saved with {recorded}. Fix: install those versions, or train again."
            ) from err
        out = cls(name, fitted, features, seed=int(state.get("seed", 0)))
        out.fitted = fitted
        out.levels = {k: [str(v) for v in levels] for k, levels in state["levels"].items()}
        out.positive_index = int(state["positive_index"])
        out.n_train = int(state["n_train"])
        out.saved = {k: state[k] for k in ("persistence", "model_file", "sha256", "versions",
                                           "trusted", "portable", "note", "skops_failed")
                     if k in state}
        return out

    def _params(self) -> dict[str, Any]:
        try:
            params = self.estimator.get_params(deep=False)
        except Exception:  # describe() must not fail on an odd estimator
            return {}
        return {str(k): _plain(v) for k, v in params.items()}

    def describe(self) -> dict[str, Any]:
        """The estimator's class and parameters, features, training size; once saved or
        loaded, how it is persisted (``persistence``, ``portable``, ``note``, ``sha256``)."""
        return {
            "candidate": self.name, "adapter": ADAPTER,
            "estimator": _class_path(self.estimator), "params": self._params(),
            "seed": self.seed, "n_features": len(self.features.columns),
            "categorical": {k: len(v) for k, v in self.levels.items()},
            "n_train": self.n_train,
            **{k: v for k, v in self.saved.items()
               if k in ("persistence", "portable", "note", "sha256", "versions",
                        "skops_failed")},
        }


def as_candidate(name: str, estimator: Any, features: FeatureSet, *, seed: int = 0
                 ) -> EstimatorCandidate:
    """Wrap a scikit-learn compatible classifier as a candidate named ``name``.

    Parameters
    ----------
    name : str
        The candidate's name in runs, metrics and reports (letters, digits, ``_ . -``; not
        a built-in candidate's name such as ``lightgbm``).
    estimator : object
        A classifier with ``fit`` and ``predict_proba`` (fitted or not: it is cloned and the
        clone is fitted on the training rows).
    features : FeatureSet
        The frame's feature columns the estimator receives.
    seed : int
        Given to every ``random_state`` parameter left at ``None``.

    Returns
    -------
    EstimatorCandidate

    Raises
    ------
    ModelError
        When the name clashes or is unusable, the estimator has no ``predict_proba``, or it
        was fitted on (or its ColumnTransformer names) columns that are not the features.

    Examples
    --------
    >>> from sklearn.svm import LinearSVC
    >>> as_candidate("svm", LinearSVC(), FeatureSet(("amount",)))
    Traceback (most recent call last):
    ...
    valuechain.errors.ModelError: candidate 'svm': LinearSVC has no predict_proba...
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelError(
            f"candidate name {name!r} is not usable: expected 1-64 letters, digits, '_', '.' "
            "or '-' (it names a folder of the run), e.g. 'my_lgbm'."
        )
    if name in CANDIDATES:
        raise ModelError(
            f"candidate name '{name}' is a built-in candidate ({sorted(CANDIDATES)}). Fix: "
            f"give your estimator another name, e.g. 'my_{name}'."
        )
    if isinstance(estimator, type):
        raise ModelError(
            f"candidate '{name}': got the class {estimator.__name__}, not an estimator. Fix: "
            f"pass an instance, e.g. {estimator.__name__}()."
        )
    if not hasattr(estimator, "fit") or not hasattr(estimator, "get_params"):
        raise ModelError(
            f"candidate '{name}': {type(estimator).__name__} is not a scikit-learn compatible "
            "estimator (it needs fit, get_params and predict_proba)."
        )
    if not hasattr(estimator, "predict_proba"):
        raise ModelError(
            f"candidate '{name}': {type(estimator).__name__} has no predict_proba, and a "
            "candidate must give a score per row. Fix: use a probabilistic classifier, or "
            "wrap it, e.g. sklearn.calibration.CalibratedClassifierCV(estimator)."
        )
    columns = list(features.columns)
    seen = getattr(estimator, "feature_names_in_", None)
    if seen is not None and [str(c) for c in seen] != columns:
        raise ModelError(
            f"candidate '{name}': the estimator was fitted on columns {[str(c) for c in seen]}"
            f", but the frame's features are {columns}. It is refitted on the features, so "
            "its preprocessing must be written for them. Fix: pass an estimator built for "
            "these columns (or unfitted), or choose the features in the spec."
        )
    n_in = getattr(estimator, "n_features_in_", None)
    if seen is None and n_in is not None and int(n_in) != len(columns):
        raise ModelError(
            f"candidate '{name}': the estimator was fitted on {int(n_in)} columns, but the "
            f"frame has {len(columns)} features {columns}. Fix: pass an estimator built for "
            "these columns (or unfitted)."
        )
    named = _named_columns(estimator)
    missing = sorted(named - set(columns))
    if missing:
        raise ModelError(
            f"candidate '{name}': its ColumnTransformer selects columns {missing}, which are "
            f"not features of the frame ({columns}). Fix: select feature columns only."
        )
    return EstimatorCandidate(name, estimator, features, seed=seed)
