"""The churn demo world: determinism, documented rates, the outreach history's stratified
control, the true call effects, the planted leaks, and the example spec on a small world."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from valuechain import api
from valuechain.cli import app
from valuechain.demo.churn import (
    RESPONSE_TYPES,
    TABLES,
    ChurnWorld,
    generate_churn,
    outreach_capacity,
    simulate_churn,
)
from valuechain.errors import ValuechainError

CUSTOMERS = 1_500
SEED = 11
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn" / "valuechain.yaml"


@pytest.fixture(scope="module")
def world() -> ChurnWorld:
    return simulate_churn(customers=CUSTOMERS, months=18, seed=SEED)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("churn") / "data"
    generate_churn(out, customers=CUSTOMERS, months=18, seed=SEED)
    return out


def _frames(world: ChurnWorld) -> dict[str, pd.DataFrame]:
    return {name: world.tables[name].to_pandas() for name in TABLES}


def test_same_seed_same_world_other_seed_differs(world: ChurnWorld) -> None:
    again = simulate_churn(customers=CUSTOMERS, months=18, seed=SEED)
    for name in TABLES:
        assert world.tables[name].equals(again.tables[name]), name
    assert world.uplift.equals(again.uplift)
    other = simulate_churn(customers=CUSTOMERS, months=18, seed=SEED + 1)
    assert not other.tables["subscriptions"].equals(world.tables["subscriptions"])


def test_written_files_match_the_world_and_truth_is_apart(world: ChurnWorld, data: Path) -> None:
    for name in TABLES:
        assert pq.read_table(data / f"{name}.parquet").equals(world.tables[name]), name
    assert sorted(p.name for p in (data / "truth").iterdir()) == ["customers.parquet",
                                                                  "segments.parquet",
                                                                  "uplift.parquet"]
    assert not list(data.glob(".*tmp*"))


def test_rows_and_rates_in_documented_ranges(world: ChurnWorld) -> None:
    f = _frames(world)
    subs = f["subscriptions"]
    assert len(f["customers"]) == len(subs) == CUSTOMERS
    assert subs["customer_id"].is_unique
    assert 0.30 <= subs["cancelled_at"].notna().mean() <= 0.50
    assert 0.025 <= world.uplift.column("cancelled_30d").to_numpy().mean() <= 0.05
    annual = (subs["billing"] == "annual").mean()
    assert 0.18 <= annual <= 0.32
    shares = subs["plan"].value_counts(normalize=True)
    assert abs(shares["basic"] - 0.45) < 0.05 and abs(shares["premium"] - 0.20) < 0.05
    # payments: about 3 % of first attempts fail (4.5 % on basic), 45 % of retries fail
    pay = f["payments"]
    first = pay[pay["attempt"] == 1]
    assert 0.02 <= first["failed"].mean() <= 0.05
    assert 0.3 <= pay.loc[pay["attempt"] == 2, "failed"].mean() <= 0.6
    # no activity after the cancel, none before the start
    ends = subs.set_index("customer_id")["cancelled_at"]
    starts = subs.set_index("customer_id")["started_at"]
    for name, col in (("usage_events", "ts"), ("support_tickets", "opened_at"),
                      ("payments", "ts")):
        events = f[name]
        end = events["customer_id"].map(ends)
        assert not (events[col] >= end).any(), name
        assert not (events[col] < events["customer_id"].map(starts)).any(), name
    # the plan history starts at the subscription start and never changes after the cancel
    plans = f["plan_changes"]
    first_row = plans.groupby("customer_id")["valid_from"].min()
    assert (first_row == starts.loc[first_row.index]).all()
    assert 0.1 <= plans["customer_id"].duplicated().sum() / CUSTOMERS <= 0.3


def test_cancels_follow_declining_usage_for_many(world: ChurnWorld) -> None:
    f = _frames(world)
    subs = f["subscriptions"].dropna(subset=["cancelled_at"])
    subs = subs[subs["cancelled_at"] > world.first_monday + pd.Timedelta(weeks=12)]
    use = f["usage_events"].merge(subs[["customer_id", "cancelled_at"]], on="customer_id")
    before = (use["cancelled_at"] - use["ts"]).dt.total_seconds() / 86_400
    last = use[before <= 28].groupby("customer_id").size()
    earlier = use[(before > 56) & (before <= 84)].groupby("customer_id").size()
    both = pd.concat([last, earlier], axis=1).fillna(0)
    both.columns = ["last", "earlier"]
    both = both[both["earlier"] > 0]
    assert (both["last"] < both["earlier"]).mean() >= 0.6


def test_outreach_lists_capacity_active_customers_with_stratified_control(
        world: ChurnWorld) -> None:
    f = _frames(world)
    out = f["outreach"]
    capacity = outreach_capacity(CUSTOMERS)
    assert world.capacity == capacity == 30
    assert (out.groupby("week").size() == capacity).all()
    assert out["week"].min() == world.first_monday + pd.Timedelta(weeks=8)
    assert (out["week"].dt.day_of_week == 0).all()
    # a listed customer is not listed again for 5 weeks (the control stays uncalled 30 days)
    gaps = out.sort_values("week").groupby("customer_id")["week"].diff().dropna()
    assert (gaps >= pd.Timedelta(weeks=5)).all()
    # every listed customer is active at the Monday (in the weekly snapshot)
    snap = f["active_subscribers"].rename(columns={"snapshot_at": "week"})
    assert len(out.merge(snap, on=["customer_id", "week"])) == len(out)
    # round(20 %) of each week's list held out, spread evenly over the deciles (3 each here)
    control = out["group"] == "control"
    assert (control.groupby(out["week"]).sum() == 6).all()
    per = control.groupby([out["week"], out["risk_decile"]]).sum()
    assert per.isin([0, 1]).all()
    share = control.groupby(out["risk_decile"]).mean()
    assert np.allclose(share, 0.2, atol=0.06), share
    # the list is ranked by the rule; deciles follow the rank
    assert (out.groupby("week")["rule_score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    assert (out["called_at"].notna() == (out["group"] == "treated")).all()
    called = out.dropna(subset=["called_at"])
    assert ((called["called_at"] - called["week"]) < pd.Timedelta(days=5)).all()


def test_control_assignment_is_random_not_by_rank(world: ChurnWorld) -> None:
    out = world.tables["outreach"].to_pandas()
    control_rank = out.loc[out["group"] == "control", "rank"].mean()
    assert abs(control_rank - out["rank"].mean()) < 2.0


def test_true_effects_have_the_documented_mix(world: ChurnWorld) -> None:
    truth = world.truth.to_pandas()
    shares = truth["response_type"].value_counts(normalize=True)
    for name, p in zip(RESPONSE_TYPES, (0.45, 0.30, 0.20, 0.05), strict=True):
        assert abs(shares[name] - p) < 0.04, name
    mult = truth.groupby("response_type")["call_multiplier"].unique()
    assert [float(mult[n][0]) for n in RESPONSE_TYPES] == [1.0, 0.4, 1.0, 2.0]
    up = world.uplift.to_pandas().merge(truth, on="customer_id")
    by = up.groupby("response_type")["uplift"]
    assert (by.min()["persuadable"] > 0) and (by.max()["sleeping_dog"] < 0)
    assert np.allclose(up.loc[up["call_multiplier"] == 1.0, "uplift"], 0.0)
    assert ((up["p_cancel_30d"] > 0) & (up["p_cancel_30d"] < 1)).all()
    # lost causes are the riskiest, sure things the safest
    risk = up.groupby("response_type")["p_cancel_30d"].mean()
    assert risk["lost_cause"] > risk["persuadable"] > risk["sure_thing"]


def test_randomized_history_measures_the_true_effect() -> None:
    """Control minus treated 30-day cancel rate over matured listings agrees with the mean
    true uplift of the listed customers (99 % normal interval; 10,000 customers)."""
    world = simulate_churn(customers=10_000, months=18, seed=5)
    out = world.tables["outreach"].to_pandas().merge(
        world.tables["subscriptions"].to_pandas()[["customer_id", "cancelled_at"]],
        on="customer_id")
    horizon = pd.Timedelta(days=30)
    out = out[out["week"] + horizon <= world.as_of]
    out["c30"] = (out["cancelled_at"] > out["week"]) & (out["cancelled_at"] <= out["week"]
                                                        + horizon)
    rate = out.groupby("group")["c30"].agg(["mean", "size"])
    observed = rate.loc["control", "mean"] - rate.loc["treated", "mean"]
    se = float(np.sqrt((rate["mean"] * (1 - rate["mean"]) / rate["size"]).sum()))
    up = out.merge(world.uplift.to_pandas().rename(columns={"decision_time": "week"}),
                   on=["customer_id", "week"])
    assert len(up) == len(out)
    true = up["uplift"].mean()
    assert 0.005 < true < 0.05
    assert abs(observed - true) < 2.58 * se, (observed, true, se)


def test_planted_leaks_exist(world: ChurnWorld) -> None:
    f = _frames(world)
    subs = f["subscriptions"]
    req = f["cancellation_requests"].merge(subs[["customer_id", "cancelled_at"]],
                                           on="customer_id")
    ahead = (req["cancelled_at"] - req["requested_at"]).dt.total_seconds() / 86_400
    cancelled = subs["cancelled_at"].notna()
    with_request = req.dropna(subset=["cancelled_at"])["customer_id"].nunique()
    assert 0.85 <= with_request / cancelled.sum() <= 0.95
    assert ahead.dropna().between(0, 28).all()
    status = f["customers"].set_index("customer_id")["status"]
    assert ((status.loc[subs["customer_id"]] == "cancelled").to_numpy()
            == cancelled.to_numpy()).all()


def _project(data: Path, root: Path, edit: Any = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["value"]["capacity"]["review"]["limit"] = outreach_capacity(CUSTOMERS)
    if edit is not None:
        edit(spec)
    (root / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (root / "data").symlink_to(data, target_is_directory=True)
    return root


def test_example_spec_checks_builds_and_uses_no_leaky_source(data: Path, tmp_path: Path) -> None:
    root = _project(data, tmp_path / "example")
    checked = api.check(root)
    assert checked.passed, [c for c in checked.data_checks if not c.passed]
    loaded = api.load_spec(root)
    leaky = {"cancellation_requests", "customers"}
    for feature in loaded.spec.features:
        source = getattr(feature, "source", None) or getattr(
            getattr(feature, "lookup", None), "source", None)
        column = getattr(getattr(feature, "lookup", None), "column", None)
        assert source != "cancellation_requests" and column != "status", feature.name
        assert source not in leaky or column == "acquisition_channel"
    built = api.build(root)
    frame = pd.read_parquet(built.frame)
    # one decision per customer active at each Monday from the schedule's start
    snap = pd.read_parquet(data / "active_subscribers.parquet")
    snap = snap[snap["snapshot_at"] >= pd.Timestamp("2024-02-26")]
    assert len(frame) + built.rows.immature == len(snap)
    assert 0.025 <= built.rows.positive / built.rows.mature <= 0.05
    assert (frame["decision_time"].dt.day_of_week == 0).all()
    # the population is the subscriptions active at t (active_from / active_until): exactly
    # the customers of the weekly snapshot; tenure is t - started_at in days
    assert set(zip(frame["customer_id"], frame["decision_time"], strict=True)) <= set(
        zip(snap["customer_id"], snap["snapshot_at"], strict=True))
    subs = pd.read_parquet(data / "subscriptions.parquet").set_index("customer_id")
    started = frame["customer_id"].map(subs["started_at"])
    tenure = (frame["decision_time"] - started).dt.total_seconds() / 86_400
    assert (frame["tenure_days"] - tenure).abs().max() < 1e-9
    assert frame["days_since_session"].between(0, 90).all()


def test_naive_spec_with_the_leaks_is_flagged_critical(data: Path, tmp_path: Path) -> None:
    def naive(spec: dict[str, Any]) -> None:
        spec["sources"]["cancellation_requests"]["role"] = "events"  # not declared post-outcome
        spec["features"].append({"name": "cancel_requests_28d", "aggregate": "count",
                                 "source": "cancellation_requests", "key": "customer_id",
                                 "window": "28d"})
        spec["features"].append({"name": "status", "lookup": {
            "source": "customers", "key": "customer_id", "column": "status"}})

    root = _project(data, tmp_path / "naive", naive)
    result = api.audit(root)
    critical = {name for f in result.findings if f.severity == "critical"
                for name in f.features}
    found = [(f.id, f.severity) for f in result.findings]
    # the requests: rows with any request are ~96 % positive (post_outcome_signature); the
    # status at the export: alone ranks the test period with AUC ~0.96 (single_feature_power)
    assert "cancel_requests_28d" in critical, found
    assert "status" in critical, found
    assert result.critical >= 1


def test_cli_generates_with_json_and_refuses_bad_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["generate", "churn", "--out", str(tmp_path / "w"), "--customers",
                             "600", "--months", "5", "--seed", "3", "--no-truth", "--json"])
    assert ok.exit_code == 0, ok.output
    payload = json.loads(ok.output)
    assert payload["rows"]["customers"] == 600 and payload["capacity"] == 12
    assert not (tmp_path / "w" / "truth").exists()
    for args, flag in ((["--customers", "10"], "--customers"), (["--months", "2"], "--months"),
                       (["--start", "soon"], "--start")):
        bad = runner.invoke(app, ["generate", "churn", "--out", str(tmp_path / "x"), *args])
        assert bad.exit_code == 2, bad.output
        assert flag in bad.output and "Traceback" not in bad.output
    shutil.rmtree(tmp_path / "w")


def test_library_refuses_bad_arguments() -> None:
    with pytest.raises(ValuechainError, match="`customers`"):
        simulate_churn(customers=100)
    with pytest.raises(ValuechainError, match="tz-naive"):
        simulate_churn(customers=600, months=5, start="2024-01-01T00:00:00+02:00")
