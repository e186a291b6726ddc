"""Uplift learners: the effect of the action on the label, learned from a randomized history.

Every learner predicts, per row, ``p(label | no action) - p(label | action)``: the absolute
reduction of the probability of the outcome that the action buys (positive = the action
prevents the outcome; negative = it provokes it). With a churn label that is the drop in
the 30-day cancel probability a call achieves, so the expected value of a call is
``predict(frame) * value_of_customer - cost_of_call``.

==========================  =====================================================================
learner                     how
==========================  =====================================================================
``two_model`` (T-learner)   one classifier on the treated rows, one on the control rows;
                            effect = control score - treated score
``class_transformation``    one classifier of the transformed label ``z = 1`` when (treated, no
                            outcome) or (control, outcome), with the treated rows weighted
                            ``1 / (2 e)`` and the control rows ``1 / (2 (1 - e))``, ``e`` the
                            known propensity (the treated share of the row's randomization
                            cell). Then ``P(z | x) = (1 + effect) / 2`` (Jaskowski and
                            Jaroszewicz 2012, with Athey and Imbens' propensity weighting), so
                            effect = ``2 P(z | x) - 1``
==========================  =====================================================================

The classifiers are the repository's candidates (:mod:`valuechain.models`: ``lightgbm`` with
early stopping on the validation rows, or ``logistic``); scores are not calibrated (the two
models of a T-learner are fitted on the same kind of rows, and a class transformation's
score is a probability by construction). A learner persists as a folder: ``uplift_model.json``
plus one candidate folder per classifier (JSON and LightGBM text, never pickle);
:func:`load_uplift` reads it back.

>>> rng = np.random.default_rng(0)
>>> n = 4000
>>> frame = pd.DataFrame({"x": rng.uniform(size=n)})
>>> t = rng.integers(0, 2, n)
>>> p0 = 0.2 + 0.2 * frame["x"].to_numpy()          # churn without a call
>>> y = (rng.uniform(size=n) < np.where(t == 1, p0 - 0.2 * frame["x"], p0)).astype(int)
>>> model = fit_learner("two_model", FeatureSet(("x",)), frame, y, t, np.full(n, 0.5),
...                     frame, y, t, np.full(n, 0.5), base="logistic")
>>> effect = model.predict(pd.DataFrame({"x": [0.0, 1.0]}))
>>> bool(effect[1] > effect[0])
True
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.artifacts import open_artifact
from valuechain.errors import ArtifactError, DataError
from valuechain.io import write_json
from valuechain.models import Candidate, FeatureSet, LightGBM, load_candidate, make_candidate
from valuechain.models.base import check_labels

__all__ = [
    "BASES",
    "LEARNERS",
    "MODEL_FILE",
    "ClassTransformation",
    "TwoModel",
    "UpliftModel",
    "fit_learner",
    "load_uplift",
]

F64 = npt.NDArray[np.float64]
#: The file naming a saved learner (in the learner's folder).
MODEL_FILE: Final = "uplift_model.json"
FORMAT_VERSION: Final = 1
#: Learners by name.
LEARNERS: Final = ("two_model", "class_transformation")
#: Classifiers a learner can be built on.
BASES: Final = ("lightgbm", "logistic")
#: LightGBM settings for a history of a few thousand listings: shallow trees, a faster rate
#: and early stopping after 30 rounds (the fraud defaults take minutes here and overfit);
#: one thread: on a few thousand rows OpenMP threads only wait for each other (on a busy
#: 2-core host a round took 0.2 s with two threads).
LIGHTGBM_OPTIONS: Final[dict[str, Any]] = {
    "params": {"learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 50, "num_threads": 1},
    "num_boost_round": 300, "early_stopping_rounds": 30}
#: Where ``valuechain uplift`` keeps the chosen learner inside a run folder.
CHOSEN: Final = "model"


@runtime_checkable
class UpliftModel(Protocol):
    """What LISTS (and any consumer) needs: the learner's name, its features, its effect."""

    learner: str
    features: list[str]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """``p(label | no action) - p(label | action)`` per row (positive: the action helps)."""
        ...


def _weighted_logistic(features: FeatureSet, seed: int, train: pd.DataFrame, y: F64,
                       w: F64) -> Candidate:
    """The logistic candidate fitted with row weights (its pipeline refitted with them)."""
    model = make_candidate("logistic", features, seed=seed)
    model.fit(train, y, train, y)  # builds the pipeline for the columns present
    pipe = model.pipeline  # type: ignore[attr-defined]
    present = [c for c in features.columns if train[c].notna().any()]
    numeric = [c for c in features.numeric if c in present]
    categorical = [c for c in features.categorical if c in present]
    pipe.fit(model.design(train, numeric, categorical),  # type: ignore[attr-defined]
             y.astype(np.int64), model__sample_weight=w)
    model.state = model._read_pipeline(numeric, categorical)  # type: ignore[attr-defined]
    return model


def _options(base: str) -> dict[str, Any]:
    return dict(LIGHTGBM_OPTIONS) if base == "lightgbm" else {}


class TwoModel:
    """T-learner: a classifier per group; effect = control score - treated score."""

    learner = "two_model"

    def __init__(self, base: str, feature_set: FeatureSet, control: Candidate,
                 treated: Candidate) -> None:
        self.base, self.feature_set = base, feature_set
        self.features = list(feature_set.columns)
        self.control, self.treated = control, treated

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """``p(label | control) - p(label | treated)`` per row."""
        out: F64 = np.asarray(self.control.predict(frame), dtype=np.float64) - np.asarray(
            self.treated.predict(frame), dtype=np.float64)
        return out

    def parts(self) -> dict[str, Candidate]:
        return {"control": self.control, "treated": self.treated}


class ClassTransformation:
    """Class transformation with the known propensity: effect = ``2 P(z | x) - 1``."""

    learner = "class_transformation"

    def __init__(self, base: str, feature_set: FeatureSet, model: Candidate) -> None:
        self.base, self.feature_set = base, feature_set
        self.features = list(feature_set.columns)
        self.model = model

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """``2 P(z = 1 | x) - 1`` per row."""
        out: F64 = 2.0 * np.asarray(self.model.predict(frame), dtype=np.float64) - 1.0
        return out

    def parts(self) -> dict[str, Candidate]:
        return {"transformed": self.model}


def transformed_label(y: npt.ArrayLike, treated: npt.ArrayLike, propensity: npt.ArrayLike
                      ) -> tuple[F64, F64]:
    """The class-transformation label and weights.

    ``z = 1`` for (treated, no outcome) and (control, outcome); weights ``1 / (2 e)`` for
    treated rows and ``1 / (2 (1 - e))`` for control rows, so both groups weigh as if half
    the rows had been treated.

    >>> z, w = transformed_label([1, 0, 1, 0], [1, 1, 0, 0], [0.8, 0.8, 0.8, 0.8])
    >>> z.tolist(), [round(float(x), 3) for x in w]
    ([0.0, 1.0, 1.0, 0.0], [0.625, 0.625, 2.5, 2.5])
    """
    yy = np.asarray(y, dtype=np.float64)
    t = np.asarray(treated, dtype=np.float64)
    e = np.asarray(propensity, dtype=np.float64)
    if np.any((e <= 0) | (e >= 1)):
        raise DataError("a propensity must lie strictly between 0 and 1 (cells with only "
                        "treated or only control rows carry no contrast; drop them).")
    z = np.where(t == 1, 1.0 - yy, yy)
    w = np.where(t == 1, 1.0 / (2.0 * e), 1.0 / (2.0 * (1.0 - e)))
    return z, w


def fit_learner(
    name: str,
    features: FeatureSet,
    train: pd.DataFrame,
    y: npt.ArrayLike,
    treated: npt.ArrayLike,
    propensity: npt.ArrayLike,
    valid: pd.DataFrame,
    y_valid: npt.ArrayLike,
    treated_valid: npt.ArrayLike,
    propensity_valid: npt.ArrayLike,
    *,
    base: str = "lightgbm",
    seed: int = 0,
) -> TwoModel | ClassTransformation:
    """Fit learner ``name`` (:data:`LEARNERS`) over classifier ``base`` (:data:`BASES`).

    ``valid`` only steers fitting (LightGBM's early stopping). Raises :class:`DataError`
    for an unknown learner or base, or when a group has no rows or one class only.
    """
    if name not in LEARNERS:
        raise DataError(f"learner {name!r} is unknown; known: {', '.join(LEARNERS)}.")
    if base not in BASES:
        raise DataError(f"base {base!r} is unknown; known: {', '.join(BASES)}.")
    yy = check_labels(np.asarray(y), "y")
    yv = check_labels(np.asarray(y_valid), "y_valid")
    t = np.asarray(treated, dtype=np.float64)
    tv = np.asarray(treated_valid, dtype=np.float64)
    if name == "two_model":
        parts: dict[str, Candidate] = {}
        for group, flag in (("control", 0.0), ("treated", 1.0)):
            rows, rows_v = t == flag, tv == flag
            if len(np.unique(yy[rows])) < 2 or len(np.unique(yv[rows_v])) < 2:
                raise DataError(
                    f"the {group} group has {int(rows.sum()):,} training and "
                    f"{int(rows_v.sum()):,} validation rows with "
                    f"{int(yy[rows].sum()):,} / {int(yv[rows_v].sum()):,} outcomes: a "
                    "two-model learner needs both classes in each. Fix: use more weeks of "
                    "history (a longer training period).")
            model = make_candidate(base, features, seed=seed, **_options(base))
            parts[group] = model.fit(train[rows], yy[rows], valid[rows_v], yv[rows_v])
        return TwoModel(base, features, parts["control"], parts["treated"])
    z, w = transformed_label(yy, t, propensity)
    zv, wv = transformed_label(yv, tv, propensity_valid)
    if base == "lightgbm":
        fitted: Candidate = LightGBM(features, seed=seed, **LIGHTGBM_OPTIONS).fit(
            train, z, valid, zv, sample_weight=w, valid_weight=wv)
    else:
        fitted = _weighted_logistic(features, seed, train, z, w)
    return ClassTransformation(base, features, fitted)


def save_learner(model: TwoModel | ClassTransformation, directory: Path,
                 facts: dict[str, Any] | None = None) -> None:
    """Write the learner into ``directory`` (``uplift_model.json`` + candidate folders)."""
    directory.mkdir(parents=True, exist_ok=True)
    for part, candidate in model.parts().items():
        candidate.save(directory / part)
    write_json(directory / MODEL_FILE, {
        "learner": model.learner, "base": model.base, "format_version": FORMAT_VERSION,
        "features": model.feature_set.to_dict(), "parts": sorted(model.parts()),
        **(facts or {})})


def _damaged(path: Path, problem: str) -> ArtifactError:
    return ArtifactError(f"{path}: {problem}. Fix: run `valuechain uplift --spec DIR` to "
                         "write the uplift model anew.")


def load_uplift(run_dir: Path) -> TwoModel | ClassTransformation:
    """The uplift model saved in ``run_dir``.

    ``run_dir`` is a run of ``valuechain uplift`` (``<workspace>/uplift/<run_id>/``, whose
    chosen learner is in ``model/``), ``<workspace>/uplift`` itself (its ``latest`` run) or
    a learner folder (holding ``uplift_model.json``).

    Raises
    ------
    ArtifactError
        When the folder, ``uplift_model.json`` or a classifier is missing or damaged.
    """
    run_dir = Path(run_dir)
    if (run_dir / "latest").is_file():
        name = open_artifact(run_dir / "latest", "text", rebuild="valuechain uplift",
                             what="the pointer to the latest uplift run").strip()
        run_dir = run_dir / name
    folder = run_dir if (run_dir / MODEL_FILE).is_file() else run_dir / CHOSEN
    path = folder / MODEL_FILE
    if not path.is_file():
        raise _damaged(path, "no uplift model here (the file is missing)")
    data = open_artifact(path, "json", expect=dict, rebuild="valuechain uplift --spec DIR",
                         what="the saved uplift model")
    if data.get("format_version") != FORMAT_VERSION:
        raise _damaged(path, f"format_version {data.get('format_version')!r}, this valuechain "
                             f"reads {FORMAT_VERSION}")
    try:
        features = FeatureSet.from_dict(data["features"])
        learner, base = str(data["learner"]), str(data["base"])
    except (KeyError, TypeError) as err:
        raise _damaged(path, f"it lacks {err}") from None
    if learner == "two_model":
        return TwoModel(base, features, load_candidate(folder / "control"),
                        load_candidate(folder / "treated"))
    if learner == "class_transformation":
        return ClassTransformation(base, features, load_candidate(folder / "transformed"))
    raise _damaged(path, f"learner {learner!r} is unknown (known: {', '.join(LEARNERS)})")


def publish(tmp: Path, final: Path) -> None:
    """Move a finished temporary run folder into place (replacing nothing)."""
    import os

    os.replace(tmp, final)


def temp_run(root: Path) -> Path:
    """A fresh temporary folder inside ``root`` for a run being written."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))


def discard(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
