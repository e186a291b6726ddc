"""Candidates: fit, predict, reproduce, persist without pickle, survive missing and unseen values."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import valuechain.models as models
from valuechain.errors import DataError, SpecError, ValuechainError
from valuechain.models import (
    CANDIDATES,
    Candidate,
    FeatureSet,
    LightGBM,
    Logistic,
    Rules,
    load_candidate,
    make_candidate,
)
from valuechain.models.base import check_labels, text_matrix
from valuechain.threads import threads

RULE = "amount > 150 AND channel = 'web'"
FEATURES = ["amount", "hour", "channel", "segment", "is_new", "noise"]
SEGMENTS = ["a", "b", "c", "d"]


def make_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric (with missing), nullable int, text, category and bool features with signal."""
    rng = np.random.default_rng(seed)
    amount = rng.exponential(100, n)
    hour = rng.integers(0, 24, n)
    channel = rng.choice(["web", "pos", "app", "phone"], n, p=[0.4, 0.4, 0.19, 0.01])
    segment = rng.choice(SEGMENTS, n)
    is_new = rng.uniform(size=n) < 0.3
    logit = (-3.0 + 0.012 * amount + 1.2 * (channel == "web") + 1.0 * is_new
             + 0.8 * (segment == "d") - 0.04 * hour)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    frame = pd.DataFrame({
        "amount": np.where(rng.uniform(size=n) < 0.1, np.nan, amount),
        "hour": pd.array(np.where(rng.uniform(size=n) < 0.05, -1, hour), dtype="Int64"),
        "channel": pd.Series(channel, dtype="str"),
        "segment": pd.Categorical(segment, categories=SEGMENTS),
        "is_new": is_new,
        "noise": rng.normal(size=n),
    })
    frame.loc[frame["hour"] == -1, "hour"] = pd.NA
    frame.loc[rng.uniform(size=n) < 0.05, "channel"] = None
    return frame, y


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    train, valid, test = make_frame(8000, 1), make_frame(3000, 2), make_frame(4000, 3)
    return {"train": train, "valid": valid, "test": test}


@pytest.fixture(scope="module")
def features(data: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> FeatureSet:
    return FeatureSet.infer(data["train"][0], FEATURES)


def fitted(name: str, features: FeatureSet, data: dict[str, tuple[pd.DataFrame, np.ndarray]],
           seed: int = 0) -> Candidate:
    (train, y), (valid, yv) = data["train"], data["valid"]
    return make_candidate(name, features, seed=seed, rules=RULE).fit(train, y, valid, yv)


def odd_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Scoring-time surprises: unseen levels everywhere, a feature missing on every row."""
    out = frame.copy()
    out["channel"] = pd.Series(["never-seen"] * len(out), dtype="str", index=out.index)
    out["segment"] = pd.Categorical(["zz"] * len(out), categories=["zz"])
    out["amount"] = np.nan
    out["hour"] = pd.array([pd.NA] * len(out), dtype="Int64")
    return out


def test_public_names_exist() -> None:
    for name in models.__all__:
        assert hasattr(models, name), name
    assert set(CANDIDATES) == {"prior", "rules", "logistic", "lightgbm"}


def test_feature_set_infers_types(data: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> None:
    fs = FeatureSet.infer(data["train"][0], FEATURES)
    assert fs.numeric == ("amount", "hour", "noise")
    assert fs.categorical == ("channel", "segment", "is_new")
    when = pd.DataFrame({"when": pd.to_datetime(["2024-01-01"])})
    with pytest.raises(DataError, match=r"'when'.*Fix"):
        FeatureSet.infer(when, ["when"])
    with pytest.raises(DataError, match="not in the frame"):
        FeatureSet.infer(when, ["absent"])
    with pytest.raises(ValuechainError, match="both numeric and categorical"):
        FeatureSet(("a",), ("a",))


def test_text_matrix_normalises_levels() -> None:
    frame = pd.DataFrame({"b": [True, False, None], "c": pd.Categorical(["x", None, "y"]),
                          "o": ["p", None, 3]}, )
    out = text_matrix(frame, ["b", "c", "o"])
    assert out[0].tolist() == ["True", "x", "p"]
    assert pd.isna(out[1, 1]) and pd.isna(out[1, 2]) and pd.isna(out[2, 0])
    assert out[2, 2] == "3"


@pytest.mark.parametrize("name", ["rules", "logistic", "lightgbm"])
def test_candidate_beats_prior_auc(name: str, features: FeatureSet,
                                   data: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> None:
    test, y = data["test"]
    prior = fitted("prior", features, data).predict(test)
    scores = fitted(name, features, data).predict(test)
    assert roc_auc_score(y, prior) == 0.5
    floor = 0.6 if name == "rules" else 0.75
    assert roc_auc_score(y, scores) > floor
    assert scores.shape == (len(test),)
    assert np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_same_seed_same_predictions(name: str, features: FeatureSet,
                                    data: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> None:
    test = data["test"][0]
    first = fitted(name, features, data, seed=7).predict(test)
    second = fitted(name, features, data, seed=7).predict(test)
    np.testing.assert_array_equal(first, second)


def test_lightgbm_seed_changes_bagging(features: FeatureSet,
                                       data: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> None:
    test = data["test"][0]
    a = fitted("lightgbm", features, data, seed=1).predict(test)
    b = fitted("lightgbm", features, data, seed=2).predict(test)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_save_load_round_trip(name: str, features: FeatureSet, tmp_path: Path,
                              data: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> None:
    test = data["test"][0]
    model = fitted(name, features, data)
    model.save(tmp_path / name)
    files = sorted(p.name for p in (tmp_path / name).iterdir())
    assert all(f.endswith((".json", ".txt")) for f in files), files
    again = load_candidate(tmp_path / name)
    assert type(again) is type(model) and again.name == name
    np.testing.assert_array_equal(again.predict(test), model.predict(test))
    np.testing.assert_array_equal(again.predict(odd_frame(test)), model.predict(odd_frame(test)))
    assert again.describe()["candidate"] == name
    assert isinstance(again, Candidate)


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_unseen_levels_and_missing_column_score_finite(
    name: str, features: FeatureSet, data: dict[str, tuple[pd.DataFrame, np.ndarray]]
) -> None:
    scores = fitted(name, features, data).predict(odd_frame(data["test"][0]))
    assert np.all(np.isfinite(scores))
    assert np.all((scores >= 0) & (scores <= 1))


def test_missing_feature_column_is_a_data_error(
    features: FeatureSet, data: dict[str, tuple[pd.DataFrame, np.ndarray]]
) -> None:
    model = fitted("logistic", features, data)
    with pytest.raises(DataError, match=r"\['segment'\]"):
        model.predict(data["test"][0].drop(columns=["segment"]))


def test_logistic_numpy_predictor_equals_sklearn(
    features: FeatureSet, data: dict[str, tuple[pd.DataFrame, np.ndarray]]
) -> None:
    (train, y), (valid, yv) = data["train"], data["valid"]
    model = Logistic(features, class_weight="balanced", min_frequency=100)
    model.fit(train, y, valid, yv)
    assert model.state is not None
    infrequent = model.state["categorical"]["infrequent"]
    assert infrequent[0] == ["phone"]  # the rare level is grouped, the encoding is exercised
    for frame in (data["test"][0], odd_frame(data["test"][0])):
        ours = model.predict(frame)
        design = model.design(frame, list(features.numeric), list(features.categorical))
        theirs = model.pipeline.predict_proba(design)[:, 1]
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    names = model.pipeline.named_steps["prep"].get_feature_names_out()
    assert len(names) == len(model.input_names())
    assert "channel=infrequent" in model.input_names() and "amount__missing" in model.input_names()
    assert "channel=web" in model.describe()["largest_coefficients"]


def test_only_numeric_or_only_categorical_features(
    data: dict[str, tuple[pd.DataFrame, np.ndarray]], tmp_path: Path
) -> None:
    test = data["test"][0]
    for i, fs in enumerate([FeatureSet((), ("channel", "segment")), FeatureSet(("amount",))]):
        for name in ("logistic", "lightgbm"):
            model = fitted(name, fs, data)
            model.save(tmp_path / f"{name}{i}")
            again = load_candidate(tmp_path / f"{name}{i}")
            np.testing.assert_array_equal(again.predict(test), model.predict(test))


def test_logistic_drops_columns_missing_in_training(
    features: FeatureSet, data: dict[str, tuple[pd.DataFrame, np.ndarray]]
) -> None:
    (train, y), (valid, yv) = data["train"], data["valid"]
    train = train.assign(noise=np.nan)
    model = Logistic(features).fit(train, y, valid, yv)
    assert model.describe()["dropped_all_missing"] == ["noise"]
    assert np.all(np.isfinite(model.predict(data["test"][0])))
    with pytest.raises(DataError, match="only one class"):
        Logistic(features).fit(train, np.zeros(len(train)), valid, yv)


def test_lightgbm_unseen_level_scores_as_missing(
    features: FeatureSet, data: dict[str, tuple[pd.DataFrame, np.ndarray]]
) -> None:
    model = fitted("lightgbm", features, data)
    assert isinstance(model, LightGBM)
    test = data["test"][0]
    unseen = test.assign(channel=pd.Series(["never-seen"] * len(test), dtype="str",
                                           index=test.index))
    missing = test.assign(channel=pd.Series([None] * len(test), dtype="str", index=test.index))
    np.testing.assert_array_equal(model.predict(unseen), model.predict(missing))
    facts = model.describe()
    assert 0 < facts["best_iteration"] < facts["num_boost_round"]
    assert facts["params"]["deterministic"] is True and facts["params"]["num_threads"] == threads()
    assert model.levels["channel"][:2] in (["web", "pos"], ["pos", "web"])
    assert facts["importance_gain"]["amount"] > facts["importance_gain"]["noise"]


def test_lightgbm_needs_a_validation_period(
    features: FeatureSet, data: dict[str, tuple[pd.DataFrame, np.ndarray]]
) -> None:
    train, y = data["train"]
    with pytest.raises(DataError, match="validation period is empty"):
        LightGBM(features).fit(train, y, train[:0], y[:0])


def test_rules_map_outputs_to_training_rates(
    features: FeatureSet, data: dict[str, tuple[pd.DataFrame, np.ndarray]]
) -> None:
    (train, y), (valid, yv) = data["train"], data["valid"]
    rules = Rules(features, expression="amount > 150").fit(train, y, valid, yv)
    scores = rules.predict(train)
    fired = (train["amount"] > 150).to_numpy()
    null = train["amount"].isna().to_numpy()
    assert np.allclose(scores[fired], y[fired].mean())
    assert np.allclose(scores[~fired & ~null], y[~fired & ~null].mean())
    assert np.allclose(scores[null], y[null].mean())
    assert rules.describe()["outputs"] == [0.0, 1.0]
    # an output the rule never produced in training scores the base rate
    expression = "CASE WHEN amount > 150 THEN 2 WHEN amount >= 0 THEN 1 WHEN amount < 0 THEN 3 END"
    numeric = Rules(features, expression=expression).fit(train, y, valid, yv)
    assert numeric.describe()["outputs"] == [1.0, 2.0]
    assert numeric.predict(pd.DataFrame({"amount": [-5.0]}))[0] == pytest.approx(y.mean())


def test_rules_with_many_outputs_use_quantile_bins(
    features: FeatureSet, data: dict[str, tuple[pd.DataFrame, np.ndarray]]
) -> None:
    (train, y), (valid, yv) = data["train"], data["valid"]
    rules = Rules(features, expression="amount / 10", bins=10).fit(train, y, valid, yv)
    assert rules.mode == "bins" and len(rules.rates) == 10
    assert rules.rates[-1] > rules.rates[0]  # the signal is in amount
    assert abs(int(rules.counts.sum()) - int(train["amount"].notna().sum())) == 0


def test_rules_errors_name_the_spec_field(
    features: FeatureSet, data: dict[str, tuple[pd.DataFrame, np.ndarray]]
) -> None:
    (train, y), (valid, yv) = data["train"], data["valid"]
    with pytest.raises(SpecError, match=r"value\.baseline_policy.*nope(.|\n)*Fix"):
        Rules(features, expression="nope > 3").fit(train, y, valid, yv)
    with pytest.raises(SpecError, match=r"value\.baseline_policy"):
        Rules(features, expression="amount >").fit(train, y, valid, yv)
    with pytest.raises(SpecError, match=r"value\.baseline_policy is not set"):
        make_candidate("rules", features, rules=None)


def test_rules_keep_row_order_on_large_frames() -> None:
    n = 300_000
    frame = pd.DataFrame({"i": np.arange(n, dtype=np.float64)})
    out = Rules(FeatureSet(("i",)), expression="i").evaluate(frame)
    np.testing.assert_array_equal(out, frame["i"].to_numpy())


def test_make_candidate_options_and_errors(features: FeatureSet) -> None:
    model = make_candidate("logistic", features, seed=3, class_weight="balanced")
    assert isinstance(model, Logistic) and model.describe()["params"]["class_weight"] == "balanced"
    with pytest.raises(ValuechainError, match="unknown candidate 'forest'"):
        make_candidate("forest", features)
    with pytest.raises(DataError, match="0/1 labels"):
        check_labels(np.array([0, 2]), "y_train")


def test_load_candidate_reports_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValuechainError, match=r"candidate\.json is missing"):
        load_candidate(tmp_path)


# ------------------------------------------------------------------ bring your own estimator
def _user_pipeline() -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = ["amount", "hour", "noise"]
    categorical = ["channel", "segment", "is_new"]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), categorical),
    ])
    return make_pipeline(prep, LogisticRegression(max_iter=2000))


def _user_estimators() -> dict[str, object]:
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return {
        "my_logreg": make_pipeline(SimpleImputer(), LogisticRegression(max_iter=2000)),
        "my_pipeline": _user_pipeline(),
        "my_lgbm": LGBMClassifier(n_estimators=60, learning_rate=0.1, n_jobs=1, verbose=-1),
        "my_hgb": HistGradientBoostingClassifier(max_iter=50, categorical_features="from_dtype"),
    }


@pytest.mark.parametrize("name", ["my_logreg", "my_pipeline", "my_lgbm", "my_hgb"])
def test_user_estimator_is_a_candidate_that_ranks_and_round_trips(
        name: str, data: dict[str, tuple[pd.DataFrame, np.ndarray]], tmp_path: Path) -> None:
    estimator = _user_estimators()[name]
    train, valid, test = data["train"], data["valid"], data["test"]
    features = FeatureSet.infer(train[0], FEATURES)
    if name == "my_logreg":  # a plain LogisticRegression reads numbers only
        features = FeatureSet(numeric=("amount", "hour", "noise"))
    candidate = models.as_candidate(name, estimator, features, seed=4)
    assert isinstance(candidate, Candidate) and candidate.name == name
    candidate.fit(train[0], train[1], valid[0], valid[1])
    assert not hasattr(estimator, "classes_")  # the estimator given is never fitted
    scores = candidate.predict(test[0])
    assert scores.shape == (len(test[0]),) and scores.dtype == np.float64
    assert 0.0 <= scores.min() <= scores.max() <= 1.0
    assert roc_auc_score(test[1], scores) > 0.65
    unseen = test[0].head(50).assign(channel="never seen", segment=pd.NA)
    assert np.isfinite(candidate.predict(unseen)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", models.NotPortableWarning)  # skops, no pickle
        candidate.save(tmp_path / name)
    assert (tmp_path / name / "estimator.skops").is_file()
    assert not (tmp_path / name / "estimator.joblib").exists()
    again = load_candidate(tmp_path / name)
    assert again.name == name and isinstance(again, models.EstimatorCandidate)
    np.testing.assert_array_equal(again.predict(test[0]), scores)
    described = again.describe()
    assert described["persistence"] == "skops" and described["portable"] is True
    assert len(described["sha256"]) == 64 and "scikit-learn" in described["versions"]


def test_user_estimator_seed_fills_unset_random_state(
        data: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> None:
    from lightgbm import LGBMClassifier

    train, valid = data["train"], data["valid"]
    features = FeatureSet(numeric=("amount", "noise"))
    est = LGBMClassifier(n_estimators=5, subsample=0.5, subsample_freq=1, n_jobs=1, verbose=-1)
    fitted = models.as_candidate("m", est, features, seed=11).fit(train[0], train[1],
                                                                  valid[0], valid[1])
    assert fitted.fitted.random_state == 11 and est.random_state is None
    kept = LGBMClassifier(n_estimators=5, random_state=3, n_jobs=1, verbose=-1)
    assert models.as_candidate("k", kept, features, seed=11).fit(
        train[0], train[1], valid[0], valid[1]).fitted.random_state == 3


def test_user_estimator_errors_name_the_problem(
        data: dict[str, tuple[pd.DataFrame, np.ndarray]], tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    from valuechain.errors import ArtifactError, ModelError

    train, valid = data["train"], data["valid"]
    features = FeatureSet.infer(train[0], FEATURES)
    with pytest.raises(ModelError, match=r"LinearSVC has no predict_proba.*CalibratedClassifierCV"):
        models.as_candidate("svm", LinearSVC(), features)
    with pytest.raises(ModelError, match="is a built-in candidate"):
        models.as_candidate("lightgbm", LogisticRegression(), features)
    with pytest.raises(ModelError, match="not usable"):
        models.as_candidate("../escape", LogisticRegression(), features)
    with pytest.raises(ModelError, match="got the class LogisticRegression"):
        models.as_candidate("cls", LogisticRegression, features)
    other = LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]}), [0, 1])
    with pytest.raises(ModelError, match=r"fitted on columns \['a', 'b'\].*features are"):
        models.as_candidate("other", other, features)
    pipeline = _user_pipeline()
    with pytest.raises(ModelError, match=r"selects columns \['hour', 'is_new', 'noise'\]"):
        models.as_candidate("narrow", pipeline,
                            FeatureSet(numeric=("amount",), categorical=("channel", "segment")))
    plain = models.as_candidate("plain", LogisticRegression(), features)
    with pytest.raises(ModelError, match=r"failed to fit(.|\n)*categorical columns \['channel'"):
        plain.fit(train[0], train[1], valid[0], valid[1])
    with pytest.raises(ModelError, match="not fitted yet"):
        plain.predict(train[0])

    numeric = FeatureSet(numeric=("noise",))
    saved = models.as_candidate("saved", LogisticRegression(), numeric).fit(
        train[0], train[1], valid[0], valid[1])
    saved.save(tmp_path / "saved")
    with (tmp_path / "saved" / "estimator.skops").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ArtifactError, match=r"SHA-256 .* differs.*refusing to load"):
        load_candidate(tmp_path / "saved")


def test_user_estimator_skops_cannot_round_trip_falls_back_to_joblib_loudly(
        data: dict[str, tuple[pd.DataFrame, np.ndarray]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from valuechain.errors import ArtifactError, ModelError

    train, valid, test = data["train"], data["valid"], data["test"]
    features = FeatureSet(numeric=("amount", "noise"))
    lam = make_pipeline(FunctionTransformer(_fill_zero), LogisticRegression())
    fitted = models.as_candidate("lam", lam, features).fit(train[0], train[1], valid[0],
                                                          valid[1])
    real_load = skops.io.load

    def drifting_load(*args: object, **kwargs: object) -> object:
        back = real_load(*args, **kwargs)  # a reload that no longer scores the same
        back.steps[-1][1].intercept_ = back.steps[-1][1].intercept_ + 1.0
        return back

    monkeypatch.setattr(skops.io, "load", drifting_load)
    with pytest.warns(models.NotPortableWarning,
                      match=r"with joblib because skops could not round-trip it \(the "
                            r"reloaded estimator scores the training sample differently"):
        fitted.save(tmp_path / "lam")
    monkeypatch.setattr(skops.io, "load", real_load)
    assert (tmp_path / "lam" / "estimator.joblib").is_file()
    assert not (tmp_path / "lam" / "estimator.skops").exists()
    again = load_candidate(tmp_path / "lam")
    np.testing.assert_array_equal(again.predict(test[0]), fitted.predict(test[0]))
    described = again.describe()
    assert described["persistence"] == "joblib" and described["portable"] is False
    assert "pickle" in described["note"] and described["skops_failed"]
    with (tmp_path / "lam" / "estimator.joblib").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ArtifactError, match=r"SHA-256 .* differs.*refusing to load"):
        load_candidate(tmp_path / "lam")
    local = make_pipeline(FunctionTransformer(lambda f: f.fillna(0.0)), LogisticRegression())
    neither = models.as_candidate("neither", local, features).fit(train[0], train[1],
                                                                  valid[0], valid[1])
    with pytest.raises(ModelError, match=r"cannot save the fitted.*avoid lambdas"):
        neither.save(tmp_path / "neither")


def _fill_zero(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.fillna(0.0)
