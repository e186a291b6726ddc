"""Uplift: the treatment block, the point-in-time join of the assignment, the learners."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from valuechain.errors import ArtifactError, DataError, SpecError
from valuechain.models import FeatureSet
from valuechain.spec.loader import load_spec
from valuechain.spec.models import Treatment
from valuechain.uplift import UpliftModel, fit_learner, join_assignment, load_uplift
from valuechain.uplift.assign import assignment_for
from valuechain.uplift.learners import save_learner, transformed_label

T0 = pd.Timestamp("2024-01-01")
T1 = pd.Timestamp("2024-01-08")


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [1, 2, 3, 4, 1, 2],
                         "decision_time": [T0, T0, T0, T0, T1, T1],
                         "x": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})


def _history() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [1, 2, 3, 4, 2, 5, 6],
        "week": [T0, T0, T0, T0, T1, T1, T1],
        "group": ["treated", "control", "treated", "treated", "control", "treated",
                  "treated"],
        "decile": [1, 1, 2, 2, 1, 1, 1]})


def test_join_matches_key_and_decision_time_only() -> None:
    a = join_assignment(_frame(), _history(), key="customer_id", time="week", column="group",
                        time_column="decision_time")
    # customer 1 at T1 has no listing at T1 (its T0 listing never joins a T1 row)
    assert list(zip(a.frame["customer_id"], a.frame["decision_time"], strict=True)) == [
        (1, T0), (2, T0), (3, T0), (4, T0), (2, T1)]
    assert a.frame["treated"].tolist() == [1, 0, 1, 1, 0]
    # propensity = treated share of the whole cell of the history (week T1: 2 of 3)
    assert a.frame["propensity"].tolist() == pytest.approx([0.75] * 4 + [2 / 3])
    assert a.unmatched_source == 2 and a.dropped_single_group == 0


def test_join_strata_and_single_group_cells() -> None:
    a = join_assignment(_frame(), _history(), key="customer_id", time="week", column="group",
                        time_column="decision_time", strata=["decile"])
    # week T0 decile 2 holds only treated rows: no contrast, dropped
    assert a.frame["customer_id"].tolist() == [1, 2, 2]
    assert a.frame["propensity"].tolist() == pytest.approx([0.5, 0.5, 2 / 3])
    assert a.dropped_single_group == 2


def test_join_time_zone_aware_history_matches_naive_frame() -> None:
    h = _history().assign(week=lambda d: d["week"].dt.tz_localize("UTC"))
    a = join_assignment(_frame(), h, key="customer_id", time="week", column="group",
                        time_column="decision_time")
    assert a.rows == 5


@pytest.mark.parametrize(("history", "message"), [
    (_history().assign(group=["treated", None, "treated", "treated", "control", "treated",
                              "treated"]), "missing on 1 of 7"),
    (_history().assign(group=["called"] * 7), "holds values ['called']"),
    (pd.concat([_history(), _history().iloc[:1]]), "repeat a (key, time) pair"),
])
def test_join_refuses_bad_assignments(history: pd.DataFrame, message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        join_assignment(_frame(), history, key="customer_id", time="week", column="group",
                        time_column="decision_time")


def test_join_refuses_a_key_missing_from_the_frame() -> None:
    with pytest.raises(DataError, match="'account' is not a column of the built frame"):
        join_assignment(_frame(), _history().rename(columns={"customer_id": "account"}),
                        key="account", time="week", column="group", time_column="decision_time")


def _spec(tmp_path: Path, treatment: dict[str, object] | None) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    _history().to_parquet(data / "outreach.parquet")
    pd.DataFrame({"customer_id": [1], "ts": [T0], "y": [0]}).to_parquet(
        data / "events.parquet")
    spec = {
        "project": {"name": "t"},
        "decision": {"statement": "s", "owner": "o", "moment": "m", "actions": ["a", "b"]},
        "decision_points": {"source": "events"},
        "sources": {"events": {"path": "data/events.parquet", "keys": ["customer_id"],
                               "event_time": "ts"},
                    "outreach": {"path": "data/outreach.parquet",
                                 "keys": ["customer_id", "week"], "event_time": "week"}},
        "label": {"column": "y", "horizon": "7d"},
        "features": [{"name": "x", "expr": "1"}],
    }
    if treatment is not None:
        spec["treatment"] = treatment
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "valuechain.yaml"


BLOCK = {"source": "outreach", "key": "customer_id", "time": "week", "column": "group",
         "treated": "treated", "control": "control"}


def test_spec_treatment_block_joins_through_the_source(tmp_path: Path) -> None:
    loaded = load_spec(_spec(tmp_path, {**BLOCK, "strata": ["decile"]}))
    assert isinstance(loaded.spec.treatment, Treatment)
    a = assignment_for(loaded, _frame(), "decision_time")
    assert a.frame["customer_id"].tolist() == [1, 2, 2]


@pytest.mark.parametrize(("block", "error", "message"), [
    (None, SpecError, "no `treatment:` block"),
    ({**BLOCK, "source": "calls"}, SpecError, "source 'calls' is not declared"),
    ({**BLOCK, "column": "arm"}, DataError, "column 'arm' is not in source 'outreach'"),
    ({**BLOCK, "strata": ["risk"]}, DataError, "column 'risk' is not in source"),
])
def test_spec_treatment_errors_name_the_field(tmp_path: Path, block: dict[str, object] | None,
                                              error: type[Exception], message: str) -> None:
    loaded = load_spec(_spec(tmp_path, block))
    with pytest.raises(error, match=message):
        assignment_for(loaded, _frame(), "decision_time")


def test_spec_treatment_needs_two_distinct_groups(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="`treated` and `control` are both"):
        load_spec(_spec(tmp_path, {**BLOCK, "control": "treated"}))


def test_no_match_is_refused_clearly(tmp_path: Path) -> None:
    loaded = load_spec(_spec(tmp_path, BLOCK))
    late = _frame().assign(decision_time=pd.Timestamp("2030-01-07"))
    with pytest.raises(DataError, match="none of the 7 rows of source 'outreach' matches"):
        assignment_for(loaded, late, "decision_time")


def test_transformed_label_by_hand() -> None:
    z, w = transformed_label([1, 0, 1, 0], [1, 1, 0, 0], [0.8, 0.8, 0.8, 0.8])
    assert z.tolist() == [0, 1, 1, 0]
    assert w.tolist() == pytest.approx([0.625, 0.625, 2.5, 2.5])
    # weighted, each group weighs half the rows
    assert w[:2].sum() == pytest.approx(w[2:].sum() * 0.25)  # 2 treated x 0.625 vs 2 x 2.5
    with pytest.raises(DataError, match="strictly between 0 and 1"):
        transformed_label([1], [1], [1.0])


def _world(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Uplift grows with x: effect 0.3 x; control churn 0.2 + 0.2 x; 80 % treated."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.uniform(size=n), "noise": rng.normal(size=n),
                          "plan": rng.choice(["a", "b"], n)})
    t = (rng.uniform(size=n) < 0.8).astype(int)
    effect = 0.3 * frame["x"].to_numpy()
    p0 = 0.2 + 0.2 * frame["x"].to_numpy()
    y = (rng.uniform(size=n) < np.where(t == 1, p0 - effect, p0)).astype(int)
    return frame, y, t, effect


@pytest.mark.parametrize(("learner", "base"), [
    ("two_model", "logistic"), ("class_transformation", "logistic"),
    ("class_transformation", "lightgbm")])
def test_learners_recover_the_effect_and_round_trip(tmp_path: Path, learner: str,
                                                    base: str) -> None:
    frame, y, t, _ = _world(6000, 1)
    valid, yv, tv, _ = _world(2000, 2)
    features = FeatureSet.infer(frame, ["x", "noise", "plan"])
    model = fit_learner(learner, features, frame, y, t, np.full(len(y), 0.8), valid, yv, tv,
                        np.full(len(yv), 0.8), base=base)
    assert isinstance(model, UpliftModel)
    assert model.learner == learner and model.features == ["x", "noise", "plan"]
    test, _, _, true = _world(2000, 3)
    got = model.predict(test)
    assert np.corrcoef(got, true)[0, 1] > 0.5
    assert abs(got.mean() - true.mean()) < 0.05
    save_learner(model, tmp_path / "model")
    again = load_uplift(tmp_path)  # a run folder: the chosen learner is in model/
    np.testing.assert_allclose(again.predict(test), got)
    assert again.learner == learner


def test_two_model_needs_both_classes_per_group() -> None:
    frame, y, t, _ = _world(200, 1)
    y = np.where(t == 0, 0, y)
    with pytest.raises(DataError, match="the control group has"):
        fit_learner("two_model", FeatureSet(("x",)), frame, y, t, np.full(200, 0.8), frame, y,
                    t, np.full(200, 0.8), base="logistic")


def test_load_uplift_missing_and_damaged(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no uplift model here"):
        load_uplift(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "uplift_model.json").write_text("{not json")
    with pytest.raises(ArtifactError):
        load_uplift(tmp_path)
    (tmp_path / "model" / "uplift_model.json").write_text('{"format_version": 1}')
    with pytest.raises(ArtifactError, match="lacks"):
        load_uplift(tmp_path)
