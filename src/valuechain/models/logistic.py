"""Logistic regression: a scikit-learn pipeline to fit, plain NumPy arrays to predict.

Fitting uses scikit-learn: numeric features get median imputation, a missing indicator (for
columns with missing values in training) and standard scaling; categorical features get
most-frequent imputation and a one-hot encoding that groups rare levels (``min_frequency``)
and ignores unseen ones. Columns entirely missing in training are dropped (and reported).

The fitted pipeline is then read into arrays (imputation values, scaler means and scales,
one-hot levels, coefficients, intercept) and every prediction, before and after saving, is
computed from those arrays with NumPy. ``candidate.json`` therefore holds the whole model,
and scoring needs neither scikit-learn nor pickle.

>>> rng = np.random.default_rng(0)
>>> frame = pd.DataFrame({"x": rng.normal(size=400), "c": rng.choice(["a", "b"], 400)})
>>> y = (frame["x"] + rng.normal(size=400) > 0).astype(int).to_numpy()
>>> model = Logistic(FeatureSet(("x",), ("c",))).fit(frame, y, frame, y)
>>> scores = model.predict(pd.DataFrame({"x": [-2.0, 2.0, None], "c": ["a", "zzz", None]}))
>>> bool(scores[0] < 0.5 < scores[1])
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from valuechain.errors import DataError
from valuechain.models.base import (
    FeatureSet,
    check_labels,
    numeric_matrix,
    register_candidate,
    require,
    text_matrix,
)
from valuechain.models.persist import read_manifest, write_manifest

__all__ = ["Logistic"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


@register_candidate("logistic")
class Logistic:
    """Scaled, one-hot encoded logistic regression.

    Parameters
    ----------
    features : FeatureSet
        Numeric and categorical columns.
    seed : int
        Recorded and passed to scikit-learn (the lbfgs fit itself is deterministic).
    C : float
        Inverse L2 regularisation strength.
    class_weight : {None, "balanced"}
        ``"balanced"`` reweights classes by inverse frequency (scores then need calibration).
    min_frequency : int or float
        Categorical levels rarer than this in training share one "infrequent" column.
    max_iter : int
        Iteration limit of the lbfgs solver.
    """

    name: str = "logistic"

    def __init__(
        self,
        features: FeatureSet,
        *,
        seed: int = 0,
        C: float = 1.0,
        class_weight: str | None = None,
        min_frequency: int | float = 20,
        max_iter: int = 5000,
    ) -> None:
        self.features = features
        self.seed = seed
        self.params: dict[str, Any] = {"C": C, "class_weight": class_weight,
                                       "min_frequency": min_frequency, "max_iter": max_iter}
        self.pipeline: Any = None  # the scikit-learn pipeline, only after fit()
        self.state: dict[str, Any] | None = None
        self.n_iter = 0
        self.n_train = 0

    # ----------------------------------------------------------------------------- fitting
    def design(self, frame: pd.DataFrame, numeric: list[str], categorical: list[str]
               ) -> pd.DataFrame:
        """The frame as scikit-learn sees it: float64 numeric, object text (NaN missing)."""
        cols: dict[str, Any] = {}
        nums = numeric_matrix(frame, numeric)
        texts = text_matrix(frame, categorical)
        for j, name in enumerate(numeric):
            cols[name] = pd.Series(nums[:, j], dtype=np.float64, copy=False)
        for j, name in enumerate(categorical):
            cols[name] = pd.Series(texts[:, j], dtype=object)
        return pd.DataFrame(cols, columns=[*numeric, *categorical])

    def fit(
        self, train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame, y_valid: np.ndarray
    ) -> Self:
        """Fit the pipeline on ``train`` (``valid`` is not used) and read it into arrays."""
        compose = require("sklearn.compose", "the logistic candidate")
        impute = require("sklearn.impute", "the logistic candidate")
        linear = require("sklearn.linear_model", "the logistic candidate")
        pipe = require("sklearn.pipeline", "the logistic candidate")
        prep = require("sklearn.preprocessing", "the logistic candidate")
        y = check_labels(y_train, "y_train")
        if len(np.unique(y)) < 2:
            raise DataError(
                f"y_train has only one class ({len(y)} rows): logistic regression needs both "
                "positives and negatives. Fix: widen the training period."
            )
        present = {c for c in self.features.columns if train[c].notna().any()}
        numeric = [c for c in self.features.numeric if c in present]
        categorical = [c for c in self.features.categorical if c in present]
        steps = []
        if numeric:
            steps.append(("num", pipe.Pipeline([
                ("impute", impute.SimpleImputer(strategy="median", add_indicator=True)),
                ("scale", prep.StandardScaler()),
            ]), numeric))
        if categorical:
            steps.append(("cat", pipe.Pipeline([
                ("impute", impute.SimpleImputer(strategy="most_frequent")),
                ("onehot", prep.OneHotEncoder(handle_unknown="ignore",
                                              min_frequency=self.params["min_frequency"])),
            ]), categorical))
        model = linear.LogisticRegression(
            C=self.params["C"], class_weight=self.params["class_weight"],
            max_iter=self.params["max_iter"], random_state=self.seed,
        )
        self.pipeline = pipe.Pipeline([
            ("prep", compose.ColumnTransformer(steps, remainder="drop")), ("model", model),
        ])
        self.pipeline.fit(self.design(train, numeric, categorical), y.astype(np.int64))
        self.state = self._read_pipeline(numeric, categorical)
        self.n_iter = int(np.max(model.n_iter_))
        self.n_train = len(y)
        return self

    def _read_pipeline(self, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
        prep = self.pipeline.named_steps["prep"]
        model = self.pipeline.named_steps["model"]
        state: dict[str, Any] = {
            "coef": model.coef_.ravel().tolist(), "intercept": float(model.intercept_[0]),
            "dropped": [c for c in self.features.columns if c not in {*numeric, *categorical}],
            "numeric": {"columns": numeric}, "categorical": {"columns": categorical},
        }
        if numeric:
            imp = prep.named_transformers_["num"].named_steps["impute"]
            scale = prep.named_transformers_["num"].named_steps["scale"]
            state["numeric"].update(
                impute=imp.statistics_.tolist(),
                indicator=[int(i) for i in imp.indicator_.features_],
                mean=scale.mean_.tolist(), scale=scale.scale_.tolist(),
            )
        if categorical:
            imp = prep.named_transformers_["cat"].named_steps["impute"]
            enc = prep.named_transformers_["cat"].named_steps["onehot"]
            infrequent = enc.infrequent_categories_
            state["categorical"].update(
                impute=[str(v) for v in imp.statistics_],
                levels=[[str(v) for v in levels] for levels in enc.categories_],
                infrequent=[None if inf is None else [str(v) for v in inf] for inf in infrequent],
            )
        return state

    # -------------------------------------------------------------------------- predicting
    def decision_function(self, frame: pd.DataFrame) -> np.ndarray:
        """The linear score (log-odds) per row, computed from the fitted arrays."""
        return self.decision_arrays(*self.arrays(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class per row."""
        return _sigmoid(self.decision_function(frame))

    def arrays(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``numeric_matrix`` and ``text_matrix`` of the frame's features (what the model reads)."""
        return (numeric_matrix(frame, self.features.numeric),
                text_matrix(frame, self.features.categorical))

    def _encoded(self, numeric: np.ndarray, texts: np.ndarray
                 ) -> tuple[np.ndarray | None, list[tuple[np.ndarray, int]]]:
        """Standardised numeric inputs (with missing indicators), and per categorical column
        its one-hot slot per row (-1: an unseen level) and its number of outputs."""
        if self.state is None:
            raise DataError("the logistic model is not fitted yet: call fit() or load() first.")
        num, cat = self.state["numeric"], self.state["categorical"]
        x = None
        if num["columns"]:
            x = numeric[:, [self.features.numeric.index(c) for c in num["columns"]]]
            missing = np.isnan(x)
            x = np.where(missing, np.asarray(num["impute"], dtype=np.float64), x)
            x = np.hstack([x, missing[:, num["indicator"]].astype(np.float64)])
            x = (x - np.asarray(num["mean"])) / np.asarray(num["scale"])
        slots = []
        for k, column in enumerate(cat["columns"]):
            index, n_out = _onehot_index(cat["levels"][k], cat["infrequent"][k])
            fill = cat["impute"][k]
            values = texts[:, self.features.categorical.index(column)]
            slot = np.fromiter(  # a dict lookup per row: as fast for one row as for many
                (index.get(v if isinstance(v, str) else fill, -1) for v in values),
                dtype=np.int64, count=len(values))
            slots.append((slot, n_out))
        return x, slots

    def decision_arrays(self, numeric: np.ndarray, texts: np.ndarray) -> np.ndarray:
        """:meth:`decision_function` of the arrays :meth:`arrays` makes (no pandas)."""
        x, slots = self._encoded(numeric, texts)
        assert self.state is not None
        coef = np.asarray(self.state["coef"], dtype=np.float64)
        z = np.full(len(numeric), self.state["intercept"], dtype=np.float64)
        width = 0
        if x is not None:
            # an elementwise row sum, not BLAS `x @ coef`: a row's score must not depend on
            # how many rows are scored with it (one live checkout == the same row in a batch)
            width = x.shape[1]
            z += (x * coef[:width]).sum(axis=1)
        for slot, n_out in slots:
            known = slot >= 0  # unseen levels contribute nothing
            z[known] += coef[width + slot[known]]
            width += n_out
        return z

    def predict_arrays(self, numeric: np.ndarray, texts: np.ndarray) -> np.ndarray:
        """:meth:`predict` of the arrays :meth:`arrays` makes (no pandas)."""
        return _sigmoid(self.decision_arrays(numeric, texts))

    def contributions_arrays(self, numeric: np.ndarray, texts: np.ndarray) -> np.ndarray:
        """Per feature: coefficient x standardised input, summed over the feature's inputs
        (its missing indicator, its one-hot levels); ``(n, n_features)`` in feature order.
        Row sums plus the intercept are the log-odds (up to rounding)."""
        x, slots = self._encoded(numeric, texts)
        assert self.state is not None
        num, cat = self.state["numeric"], self.state["categorical"]
        coef = np.asarray(self.state["coef"], dtype=np.float64)
        position = {name: j for j, name in enumerate(self.features.columns)}
        out = np.zeros((len(numeric), len(position)), dtype=np.float64)
        width = 0
        if x is not None:
            width = x.shape[1]
            terms = x * coef[:width]
            owners = [*num["columns"], *(num["columns"][i] for i in num["indicator"])]
            for k, column in enumerate(owners):
                out[:, position[column]] += terms[:, k]
        for (slot, n_out), column in zip(slots, cat["columns"], strict=True):
            known = slot >= 0
            out[known, position[column]] += coef[width + slot[known]]
            width += n_out
        return out

    # ------------------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        """Write ``candidate.json`` with every fitted array (no pickle)."""
        if self.state is None:
            raise DataError("the logistic model is not fitted yet: nothing to save.")
        write_manifest(directory, self.name, self.features, {
            "model": self.state, "params": self.params, "seed": self.seed,
            "n_iter": self.n_iter, "n_train": self.n_train,
        })

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save` (scikit-learn is not needed)."""
        features, state = read_manifest(directory, "logistic")
        out = cls(features, seed=int(state["seed"]), **state["params"])
        out.state = state["model"]
        out.n_iter = int(state["n_iter"])
        out.n_train = int(state["n_train"])
        return out

    def input_names(self) -> list[str]:
        """Name of each model input, in coefficient order.

        ``amount``, ``amount__missing`` (indicator), ``channel=web``, ``channel=infrequent``.
        """
        if self.state is None:
            return []
        num, cat = self.state["numeric"], self.state["categorical"]
        names = list(num["columns"])
        names += [f"{num['columns'][i]}__missing" for i in num.get("indicator", [])]
        for j, column in enumerate(cat["columns"]):
            rare = set(cat["infrequent"][j] or ())
            names += [f"{column}={level}" for level in cat["levels"][j] if level not in rare]
            names += [f"{column}=infrequent"] if rare else []
        return names

    def describe(self, top: int = 20) -> dict[str, Any]:
        """Parameters, inputs, dropped columns, solver iterations, largest coefficients."""
        state = self.state or {}
        coef = dict(zip(self.input_names(), state.get("coef", []), strict=True))
        largest = sorted(coef.items(), key=lambda kv: -abs(kv[1]))[:top]
        return {
            "candidate": self.name, "params": dict(self.params), "seed": self.seed,
            "n_features": len(self.features.columns), "n_inputs": len(coef),
            "dropped_all_missing": list(state.get("dropped", [])),
            "n_iter": self.n_iter, "n_train": self.n_train,
            "intercept": state.get("intercept"), "largest_coefficients": dict(largest),
        }


def _onehot_index(levels: list[str], infrequent: list[str] | None) -> tuple[dict[str, int], int]:
    """Level -> output column as OneHotEncoder lays it out (frequent levels, then infrequent)."""
    rare = set(infrequent or ())
    frequent = [level for level in levels if level not in rare]
    index = {level: i for i, level in enumerate(frequent)}
    if rare:
        index.update({level: len(frequent) for level in rare})
    return index, len(frequent) + (1 if rare else 0)
