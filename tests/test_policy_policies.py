"""Policies: apply, policy.yaml round trips, field validation; the cost model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

import valuechain.policy as policy_pkg
from valuechain.errors import ArtifactError, DataError, SpecError
from valuechain.policy import (
    CostModel,
    ThreeBand,
    Threshold,
    TopN,
    apply_with_capacity,
    load_policy,
    policy_from_dict,
)

SCORES = np.array([-math.inf, 0.0, 0.1, 0.2, 0.2, 0.5, 0.79, 0.8, 0.95, 1.0, math.inf])
PERIODS = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])

POLICIES = [
    Threshold(0.5, metadata={"run_id": "20250101-abc", "calibration": "isotonic"}),
    Threshold(0.3, below="pass", at_or_above="review"),
    ThreeBand(review_at=0.2, decline_at=0.8),
    ThreeBand(review_at=-math.inf, decline_at=math.inf, actions=("allow", "check", "block")),
    ThreeBand(review_at=0.5, decline_at=0.5, metadata={"capacity": 150, "nested": {"a": [1]}}),
    TopN(n=2, per="7d"),
    TopN(n=1, per="24h", min_score=0.15, action="contact", other="skip"),
]


def test_public_names_exist() -> None:
    for name in policy_pkg.__all__:
        assert hasattr(policy_pkg, name), name


def test_three_band_bands_are_half_open() -> None:
    policy = ThreeBand(review_at=0.2, decline_at=0.8)
    assert policy.apply(SCORES).tolist() == [
        "approve", "approve", "approve", "review", "review", "review", "review", "decline",
        "decline", "decline", "decline"]
    assert Threshold(0.2).apply([0.19, 0.2]).tolist() == ["approve", "decline"]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"{p.kind}")
def test_round_trip_through_policy_yaml(policy, tmp_path: Path) -> None:
    path = policy.save(tmp_path / "policy.yaml")
    assert path == tmp_path / "policy.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw["version"] == 1 and raw["kind"] == policy.kind
    assert raw["metadata"] == dict(policy.metadata)
    again = load_policy(path)
    assert again == policy
    assert type(policy).load(path) == policy
    assert policy_from_dict(policy.to_dict()) == policy
    assert again.apply(SCORES, PERIODS).tolist() == policy.apply(SCORES, PERIODS).tolist()
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_save_into_a_directory_writes_policy_yaml(tmp_path: Path) -> None:
    path = ThreeBand(0.1, 0.9).save(tmp_path)
    assert path.name == "policy.yaml"
    assert load_policy(tmp_path) == ThreeBand(0.1, 0.9)


def test_top_n_picks_n_per_period_with_ties_by_row_order() -> None:
    s = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.7, 0.7, 0.7])
    periods = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    acts = TopN(n=2, per="1d").apply(s, periods)
    # Period 0: 0.9 then the earlier of the tied 0.5s; period 1: the first two tied 0.7s.
    assert acts.tolist() == ["review", "review", "approve", "approve",
                             "approve", "review", "review", "approve"]
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, 200) / 4
    periods = rng.integers(0, 5, 200)
    for n in (0, 1, 7, 1000):
        acts = TopN(n=n, per="1d").apply(s, periods)
        for p in range(5):
            size = int((periods == p).sum())
            assert int(((periods == p) & (acts == "review")).sum()) == min(n, size)


def test_top_n_honours_min_score() -> None:
    s = np.array([0.9, 0.6, 0.4, 0.3])
    acts = TopN(n=3, per="1d", min_score=0.5).apply(s, np.zeros(4))
    assert acts.tolist() == ["review", "review", "approve", "approve"]
    acts = TopN(n=3, per="1d", min_score=0.6).apply(s, np.zeros(4))
    assert acts.tolist() == ["review", "review", "approve", "approve"]  # at or above


def test_top_n_needs_periods() -> None:
    with pytest.raises(DataError, match="periods"):
        TopN(n=1, per="1d").apply([0.1, 0.2])


def test_roles_follow_band_positions() -> None:
    assert ThreeBand(0.1, 0.2, actions=("a", "b", "c")).roles == {
        "a": "approve", "b": "review", "c": "decline"}
    assert Threshold(0.5).roles == {"approve": "approve", "decline": "decline"}
    assert TopN(n=1, per="1d", action="decline").roles == {"approve": "approve",
                                                           "decline": "decline"}


@pytest.mark.parametrize(("data", "match"), [
    ({"kind": "three_band", "review_at": 0.9, "decline_at": 0.2}, "review_at <= decline_at"),
    ({"kind": "three_band", "review_at": 0.1}, "`decline_at` is missing"),
    ({"kind": "three_band", "review_at": "low", "decline_at": 0.2}, "`review_at`: expected"),
    ({"kind": "three_band", "review_at": 0.1, "decline_at": 0.2, "actions": ["a", "a", "b"]},
     "repeat"),
    ({"kind": "three_band", "review_at": 0.1, "decline_at": 0.2, "actions": ["a", "b"]},
     "three names"),
    ({"kind": "threshold", "threshold": 0.5, "cutoff": 1}, r"unknown fields \['cutoff'\]"),
    ({"kind": "threshold", "threshold": float("nan")}, "NaN"),
    ({"kind": "threshold", "threshold": True}, "expected a number"),
    ({"kind": "top_n", "n": -1, "per": "1d"}, "`n`"),
    ({"kind": "top_n", "n": 5, "per": "1 month"}, "`per`"),
    ({"kind": "top_n", "n": 5}, "`per` is missing"),
    ({"kind": "threshold", "threshold": 0.5, "metadata": [1]}, "`metadata`"),
    ({"kind": "bands", "threshold": 0.5}, "unknown"),
    ({"version": 2, "kind": "threshold", "threshold": 0.5}, "version"),
])
def test_invalid_policies_name_the_field(data: dict[str, object], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        policy_from_dict(data)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("kind: threshold\nthreshold: [1]\n")
    with pytest.raises(ArtifactError, match=str(path)):
        load_policy(path)
    with pytest.raises(ArtifactError, match=r"policy file is missing.*valuechain decide"):
        load_policy(tmp_path / "missing.yaml")
    path.write_text("kind: [unclosed\n")
    with pytest.raises(ArtifactError, match=f"{path}.*valuechain decide --spec"):
        load_policy(path)
    with pytest.raises(SpecError, match="expected 'three_band'"):
        ThreeBand.from_dict(Threshold(0.5).to_dict())


def test_top_n_per_is_canonical() -> None:
    assert TopN(n=1, per="168h").per == "1w"


def test_apply_with_capacity_per_policy_kind() -> None:
    s = np.array([0.6, 0.7, 0.8, 0.9, 0.65])
    periods = np.array([0, 0, 0, 0, 1])
    assert apply_with_capacity(Threshold(0.5, at_or_above="review"), s, periods, 2).tolist() == [
        "approve", "approve", "review", "review", "review"]
    with pytest.raises(SpecError, match="overflow: approve"):
        apply_with_capacity(Threshold(0.5), s, periods, 2, "decline")
    top = TopN(n=3, per="1d")
    assert apply_with_capacity(top, s, periods, 1).tolist() == [
        "approve", "approve", "approve", "review", "review"]
    assert apply_with_capacity(top, s, periods, None).tolist() == top.apply(s, periods).tolist()
    band = ThreeBand(0.5, 0.85)
    assert apply_with_capacity(band, s, periods, 0, "decline").tolist() == [
        "decline", "decline", "decline", "decline", "decline"]
    with pytest.raises(SpecError, match="whole number"):
        apply_with_capacity(band, s, periods, -2)


# ---------------------------------------------------------------- the cost model


def test_cost_model_formulas_and_linearity() -> None:
    costs = CostModel(false_negative=[100.0, 40.0], false_positive=[10.0, 4.0],
                      review=[3.0, 1.0], catch_rate=0.8, friction=0.1)
    realised = costs.action_costs([1, 0])
    assert realised["approve"].tolist() == [100.0, 0.0]
    assert realised["decline"].tolist() == [0.0, 4.0]
    assert realised["review"] == pytest.approx([3.0 + 0.2 * 100, 1.0 + 0.1 * 4])
    p = np.array([0.3, 0.6])
    expected = costs.action_costs(p)
    one, zero = costs.action_costs([1, 1]), costs.action_costs([0, 0])
    for role in ("approve", "review", "decline"):
        assert expected[role] == pytest.approx(p * one[role] + (1 - p) * zero[role])


def test_cost_model_validation() -> None:
    with pytest.raises(SpecError, match="catch_rate"):
        CostModel(false_negative=1.0, false_positive=1.0, catch_rate=1.5)
    with pytest.raises(SpecError, match="different lengths"):
        CostModel(false_negative=[1.0, 2.0], false_positive=[1.0])
    with pytest.raises(DataError, match=r"false_positive.*NaN.*e\.g\. row 1.*never taken as 0"):
        CostModel(false_negative=1.0, false_positive=[1.0, math.nan])
    with pytest.raises(DataError, match=r"review.*1 of 2 values are negative.*row 0"):
        CostModel(false_negative=1.0, false_positive=1.0, review=[-1.0, 2.0])
    with pytest.raises(DataError, match="2 rows"):
        CostModel(false_negative=[1.0, 2.0], false_positive=1.0).action_costs([1, 0, 1])


def test_cost_model_take_and_cost_of() -> None:
    costs = CostModel(false_negative=[1.0, 2.0, 3.0], false_positive=[4.0, 5.0, 6.0])
    part = costs.take(np.array([2, 0]))
    assert part.n_rows == 2
    assert part.action_costs([1, 0])["approve"].tolist() == [3.0, 0.0]
    assert costs.cost_of(["approve", "decline", "review"], [1, 0, 1]).tolist() == [1.0, 5.0, 0.0]
    with pytest.raises(DataError, match="no cost role"):
        costs.cost_of(["approve", "hold", "review"], [1, 0, 1])


def test_capacity_periods_are_the_same_offline_and_online() -> None:
    """train/decide group rows by capacity_period; the service counts from period_start."""
    from datetime import UTC, datetime

    from valuechain.policy import capacity_period
    from valuechain.serve.decider import Capacity

    rng = np.random.default_rng(3)
    times = rng.integers(1_600_000_000_000_000, 1_800_000_000_000_000, 500)
    for per_us in (3_600_000_000, 86_400_000_000, 7 * 86_400_000_000):
        online = Capacity("review", 10, per_us, "approve", "approve", "x")
        codes = capacity_period(times, per_us)
        for t, code in zip(times.tolist(), codes.tolist(), strict=True):
            start = online.period_start(t)
            assert start <= t < start + per_us
            assert capacity_period(start, per_us) == code  # one period, one definition
            day = datetime.fromtimestamp(start / 1e6, UTC)
            assert (day.minute, day.second) == (0, 0)
            if per_us >= 86_400_000_000:
                assert day.hour == 0
            if per_us == 7 * 86_400_000_000:
                assert day.weekday() == 0  # weeks start on Monday
