"""Gradient boosting with LightGBM: early stopping on validation, native categorical splits.

The frame becomes one float64 matrix: numeric columns as they are (missing and ±inf as NaN),
categorical columns as integer codes of the levels seen in training (most frequent first, at
most ``max_levels``; missing, rarer and unseen levels become NaN, which LightGBM treats as
missing). Boosting runs with the train API and stops when the validation metric has not
improved for ``early_stopping_rounds`` rounds; only the trees up to the best iteration are
kept. The model is saved in LightGBM's own text format (``model.txt``) beside
``candidate.json`` (the levels of each categorical column), and loaded with
``lightgbm.Booster(model_file=...)``: no pickle.

>>> rng = np.random.default_rng(0)
>>> frame = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
>>> y = (frame["x"] + rng.normal(size=2000) > 1).astype(int).to_numpy()
>>> model = LightGBM(FeatureSet(("x",), ("c",))).fit(frame[:1500], y[:1500],
...                                                 frame[1500:], y[1500:])
>>> scores = model.predict(pd.DataFrame({"x": [-2.0, 3.0], "c": ["a", "never seen"]}))
>>> bool(scores[0] < scores[1])
True
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from valuechain.errors import ArtifactError, DataError, ModelError
from valuechain.models.base import (
    FeatureSet,
    check_labels,
    numeric_matrix,
    register_candidate,
    require,
    text_matrix,
)
from valuechain.models.persist import read_manifest, write_manifest
from valuechain.threads import threads

__all__ = ["DEFAULT_PARAMS", "LightGBM"]

MODEL_FILE = "model.txt"

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}
"""LightGBM parameters for tabular fraud-like data; ``params=`` overrides any of them."""

_METRICS = {"binary_logloss": ["binary_logloss", "auc"], "auc": ["auc", "binary_logloss"]}


def _safe_names(columns: tuple[str, ...]) -> list[str]:
    """Feature names LightGBM accepts (no JSON special characters), unique."""
    out: list[str] = []
    for j, name in enumerate(columns):
        safe = re.sub(r"[^A-Za-z0-9_]", "_", name) or f"f{j}"
        out.append(safe if safe not in out else f"{safe}_{j}")
    return out


class _FastRow:
    """LightGBM's single-row prediction (``LGBM_BoosterPredictForMatSingleRowFast``).

    Holds a ``FastConfig`` made by ``LGBM_BoosterPredictForMatSingleRowFastInit`` for one
    prediction type (probability, or ``pred_contrib``), freed when this object goes, on its
    own copy of the booster (the same trees, from its text): LightGBM's single-row call holds
    its booster's lock exclusively, so with one shared booster a score would wait for a
    TreeSHAP call running on another thread.
    """

    def __init__(self, booster: Any, *, contrib: bool, ncol: int, threads: int) -> None:
        import ctypes
        import weakref

        import lightgbm as lgb
        from lightgbm.basic import _LIB, _safe_call  # type: ignore[attr-defined]

        iteration = int(booster.best_iteration)
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=-1))

        self._ctypes, self._lib, self._safe_call = ctypes, _LIB, _safe_call
        self.width = ncol + 1 if contrib else 1
        handle = ctypes.c_void_p()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(3 if contrib else 0),  # C_API_PREDICT_CONTRIB/NORMAL
            ctypes.c_int(0), ctypes.c_int(iteration),
            ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
            ctypes.c_int32(ncol), ctypes.c_char_p(f"num_threads={threads}".encode()),
            ctypes.byref(handle)))
        self._handle = handle
        self._booster = booster  # the config points into the booster: keep it alive
        self._free = weakref.finalize(self, _LIB.LGBM_FastConfigFree, handle)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        ctypes = self._ctypes
        row = np.ascontiguousarray(matrix[0], dtype=np.float64)
        out = np.empty((1, self.width), dtype=np.float64)
        length = ctypes.c_int64(0)
        self._safe_call(self._lib.LGBM_BoosterPredictForMatSingleRowFast(
            self._handle, ctypes.c_void_p(row.ctypes.data), ctypes.byref(length),
            ctypes.c_void_p(out.ctypes.data)))
        if length.value != self.width:
            raise ModelError("unexpected prediction length")  # -> the general path
        return out if self.width > 1 else out[:, 0]


@register_candidate("lightgbm")
class LightGBM:
    """LightGBM binary classifier with early stopping and categorical support.

    Parameters
    ----------
    features : FeatureSet
        Numeric and categorical columns.
    seed : int
        Seeds bagging and feature sampling; with ``deterministic=True`` a fit is reproducible.
    params : dict, optional
        Overrides of :data:`DEFAULT_PARAMS`.
    num_boost_round : int
        Upper bound on boosting rounds.
    early_stopping_rounds : int
        Stop after this many rounds without improvement of the validation metric.
    early_stopping_metric : {"binary_logloss", "auc"}
        The validation metric that stops boosting (the other one is recorded).
    max_levels : int
        Most frequent training levels kept per categorical column; the rest score as missing.
    """

    name: str = "lightgbm"

    def __init__(
        self,
        features: FeatureSet,
        *,
        seed: int = 0,
        params: dict[str, Any] | None = None,
        num_boost_round: int = 2000,
        early_stopping_rounds: int = 100,
        early_stopping_metric: str = "binary_logloss",
        max_levels: int = 5000,
    ) -> None:
        if early_stopping_metric not in _METRICS:
            raise DataError(
                f"early_stopping_metric '{early_stopping_metric}' is not one of {list(_METRICS)}."
            )
        self.features = features
        self.seed = seed
        self.params: dict[str, Any] = {**DEFAULT_PARAMS, "num_threads": threads(),
                                       **(params or {}), "seed": seed}
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.early_stopping_metric = early_stopping_metric
        self.max_levels = max_levels
        self.levels: dict[str, list[str]] = {}
        self.booster: Any = None
        self.best_iteration = 0
        self.best_score: dict[str, float] = {}
        self.n_train = 0
        self._predictor: tuple[tuple[int, int], Any] | None = None  # (booster id, threads)
        self._codes: dict[str, tuple[list[str], dict[str, float]]] = {}
        self._fast: dict[bool, tuple[tuple[int, int, int, bool, int], _FastRow | None]] = {}

    def arrays(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``numeric_matrix`` and ``text_matrix`` of the frame's features (what the model reads)."""
        return (numeric_matrix(frame, self.features.numeric),
                text_matrix(frame, self.features.categorical))

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The float64 matrix LightGBM reads: numeric columns, then categorical codes."""
        return self.matrix_arrays(*self.arrays(frame))

    def matrix_arrays(self, numeric: np.ndarray, texts: np.ndarray) -> np.ndarray:
        """:meth:`matrix` of the arrays :meth:`arrays` makes (no pandas)."""
        if not self.features.categorical:
            return numeric
        codes = np.empty(texts.shape, dtype=np.float64)
        for j, name in enumerate(self.features.categorical):
            index = self._level_codes(name)
            codes[:, j] = np.fromiter(  # missing, rare or unseen levels -> NaN
                (index.get(v, np.nan) if isinstance(v, str) else np.nan for v in texts[:, j]),
                dtype=np.float64, count=len(texts))
        return np.hstack([numeric, codes])

    def _learn_levels(self, train: pd.DataFrame) -> None:
        texts = text_matrix(train, self.features.categorical)
        self.levels = {}
        for j, name in enumerate(self.features.categorical):
            counts = pd.Series(texts[:, j], dtype=object).value_counts(dropna=True)
            ranked = sorted(zip(counts.index, counts.to_numpy(), strict=True),
                            key=lambda kv: (-int(kv[1]), str(kv[0])))
            self.levels[name] = [str(level) for level, _ in ranked[: self.max_levels]]

    def fit(
        self, train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame, y_valid: np.ndarray,
        *, sample_weight: np.ndarray | None = None, valid_weight: np.ndarray | None = None,
    ) -> Self:
        """Boost on ``train``, stopping early on ``valid``; keeps trees up to the best round.

        ``sample_weight`` / ``valid_weight`` weigh the rows of each (e.g. inverse propensities
        of an uplift learner); default every row counts once.
        """
        lgb = require("lightgbm", "the lightgbm candidate")
        y = check_labels(y_train, "y_train")
        yv = check_labels(y_valid, "y_valid")
        if len(yv) == 0:
            raise DataError(
                "the validation period is empty, and LightGBM stops early on it. Fix: give the "
                "split a validation period with mature labels."
            )
        self._learn_levels(train)
        names = _safe_names(self.features.columns)
        categorical = list(range(len(self.features.numeric), len(names)))
        dtrain = lgb.Dataset(self.matrix(train), label=y, weight=sample_weight,
                             feature_name=names, categorical_feature=categorical,
                             free_raw_data=True)
        dvalid = lgb.Dataset(self.matrix(valid), label=yv, weight=valid_weight,
                             reference=dtrain)
        params = {**self.params, "metric": _METRICS[self.early_stopping_metric],
                  "first_metric_only": True}
        booster = lgb.train(
            params, dtrain, num_boost_round=self.num_boost_round, valid_sets=[dvalid],
            valid_names=["valid"],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True,
                                          verbose=False)],
        )
        best = int(booster.best_iteration or booster.current_iteration())
        self.best_iteration = best
        self.best_score = {k: float(v) for k, v in booster.best_score.get("valid", {}).items()}
        # keep exactly the trees a reload will have, so predictions match bit for bit
        self.booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        self.n_train = len(y)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class per row."""
        return self.predict_arrays(*self.arrays(frame))

    def _booster(self) -> Any:
        if self.booster is None:
            raise DataError("the LightGBM model is not fitted yet: call fit() or load() first.")
        return self.booster

    def _level_codes(self, name: str) -> dict[str, float]:
        """Level -> code of a categorical column (built once per list of levels)."""
        levels = self.levels[name]
        cached = self._codes.get(name)
        if cached is None or cached[0] is not levels:
            cached = (levels, {level: float(i) for i, level in enumerate(levels)})
            self._codes[name] = cached
        return cached[1]

    def _predict(self, matrix: np.ndarray, *, contrib: bool) -> np.ndarray:
        """``Booster.predict``, with its predictor built once instead of on every call.

        ``Booster.predict`` makes a new ``_InnerPredictor`` per call: most of the cost of
        scoring one live decision. The cached one gives the same numbers (LightGBM's own
        predict path with the same parameters); if LightGBM's private API changes, the public
        call is used. One row (a live decision) goes through LightGBM's single-row C API
        (:meth:`_predict_row`): the same predictor function, without re-parsing parameters
        and re-dispatching per call.
        """
        booster = self._booster()
        threads = int(self.params["num_threads"])
        if matrix.shape[0] == 1:
            row = self._predict_row(matrix, contrib=contrib)
            if row is not None:
                return row
        try:
            from lightgbm.basic import _InnerPredictor

            key = (id(booster), threads)
            if self._predictor is None or self._predictor[0] != key:
                self._predictor = (key, _InnerPredictor.from_booster(
                    booster, {"num_threads": threads}))
            out = self._predictor[1].predict(matrix, num_iteration=booster.best_iteration,
                                             pred_contrib=contrib)
        except (ImportError, AttributeError, TypeError):
            out = booster.predict(matrix, pred_contrib=contrib, num_threads=threads)
        return np.asarray(out, dtype=np.float64)

    def _predict_row(self, matrix: np.ndarray, *, contrib: bool) -> np.ndarray | None:
        """One row through ``LGBM_BoosterPredictForMatSingleRowFast`` (None if unavailable).

        LightGBM's fast single-row API keeps a prepared configuration per prediction type
        (built once here, freed with the model): for one row it computes exactly what
        ``Booster.predict`` computes (the same ``Predictor``; tested bit for bit), in ~15 µs
        instead of ~60 µs for the score. ``ctypes`` releases the GIL during the call.
        """
        booster = self._booster()
        threads = int(self.params["num_threads"])
        ncol = int(matrix.shape[1])
        key = (id(booster), threads, ncol, contrib, int(booster.best_iteration))
        fast: tuple[tuple[int, int, int, bool, int], _FastRow | None] | None = \
            self._fast.get(contrib)
        try:
            if fast is None or fast[0] != key:
                fast = (key, None)
                fast = (key, _FastRow(booster, contrib=contrib, ncol=ncol, threads=threads))
            return None if fast[1] is None else fast[1](matrix)
        except Exception:  # any failure: LightGBM's general path decides
            fast = (key, None)  # not this LightGBM: the general path from now on
            return None
        finally:
            if fast is not None:
                self._fast[contrib] = fast

    def predict_arrays(self, numeric: np.ndarray, texts: np.ndarray) -> np.ndarray:
        """:meth:`predict` of the arrays :meth:`arrays` makes (no pandas)."""
        return self._predict(self.matrix_arrays(numeric, texts), contrib=False)

    def contributions_arrays(self, numeric: np.ndarray, texts: np.ndarray) -> np.ndarray:
        """LightGBM's ``pred_contrib`` (SHAP values of the trees): ``(n, n_features + 1)``,
        the expected value (bias) last; row sums are the raw log-odds."""
        return self._predict(self.matrix_arrays(numeric, texts), contrib=True)

    def save(self, directory: Path) -> None:
        """Write ``model.txt`` (LightGBM text format) and ``candidate.json`` (levels, params)."""
        if self.booster is None:
            raise DataError("the LightGBM model is not fitted yet: nothing to save.")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / MODEL_FILE))
        write_manifest(directory, self.name, self.features, {
            "model_file": MODEL_FILE, "levels": self.levels, "params": self.params,
            "num_boost_round": self.num_boost_round,
            "early_stopping_rounds": self.early_stopping_rounds,
            "early_stopping_metric": self.early_stopping_metric, "max_levels": self.max_levels,
            "best_iteration": self.best_iteration, "best_score": self.best_score,
            "n_train": self.n_train,
        })

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save`."""
        lgb = require("lightgbm", "the lightgbm candidate")
        features, state = read_manifest(directory, "lightgbm")
        params = {k: v for k, v in state["params"].items() if k != "seed"}
        out = cls(
            features, seed=int(state["params"]["seed"]), params=params,
            num_boost_round=int(state["num_boost_round"]),
            early_stopping_rounds=int(state["early_stopping_rounds"]),
            early_stopping_metric=str(state["early_stopping_metric"]),
            max_levels=int(state["max_levels"]),
        )
        out.levels = {k: [str(v) for v in levels] for k, levels in state["levels"].items()}
        model_file = Path(directory) / str(state["model_file"])
        try:
            out.booster = lgb.Booster(model_file=str(model_file))
        except (lgb.basic.LightGBMError, OSError) as err:
            raise ArtifactError(
                f"{model_file}: LightGBM cannot read this saved model ({str(err).strip()}). "
                "Fix: train again (`valuechain train`) to write it anew, or restore the file."
            ) from err
        out.best_iteration = int(state["best_iteration"])
        out.best_score = {k: float(v) for k, v in state["best_score"].items()}
        out.n_train = int(state["n_train"])
        return out

    def describe(self) -> dict[str, Any]:
        """Parameters, best iteration and validation scores, levels and gain importance."""
        importance: dict[str, float] = {}
        if self.booster is not None:
            gains = self.booster.feature_importance(importance_type="gain")
            importance = {name: round(float(g), 6)
                          for name, g in zip(self.features.columns, gains, strict=True)}
        return {
            "candidate": self.name, "params": dict(self.params),
            "n_features": len(self.features.columns),
            "categorical": {k: len(v) for k, v in self.levels.items()},
            "best_iteration": self.best_iteration, "best_score": dict(self.best_score),
            "early_stopping_metric": self.early_stopping_metric,
            "num_boost_round": self.num_boost_round, "n_train": self.n_train,
            "importance_gain": importance,
        }
