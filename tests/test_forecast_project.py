"""valuechain forecast on a small churn world: the three ways, the backtest, the artifacts."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from valuechain import api
from valuechain.cli import app
from valuechain.demo.churn import generate_churn, outreach_capacity
from valuechain.errors import SpecError
from valuechain.forecast.individual import individual_forecast
from valuechain.forecast.project import churn_series, forecast_project, read_forecast

CUSTOMERS = 2_000
SEED = 11
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn" / "valuechain.yaml"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("forecast-churn")
    generate_churn(root / "data", customers=CUSTOMERS, months=18, seed=SEED, truth=False)
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["value"]["capacity"]["review"]["limit"] = outreach_capacity(CUSTOMERS)
    # a light feature set keeps the build quick; the forecast reads whatever the frame has
    keep = {"sessions_14d", "sessions_prior_28d", "tickets_28d", "failed_payments_28d",
            "tenure_days", "plan", "billing"}
    spec["features"] = [f for f in spec["features"] if f["name"] in keep]
    spec["value"]["baseline_policy"] = "tickets_28d + failed_payments_28d > 0"
    spec["forecast"] = {"origins": 3, "methods": ["individual", "seasonal_naive", "ets"],
                        "horizon": "14d", "train_window": "91d",
                        # payments as a purchase log: exercises the BG/NBD path end to end
                        "purchases": {"source": "payments", "customer": "customer_id",
                                      "time": "ts"}}
    (root / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    api.build(root)
    return root


@pytest.fixture(scope="module")
def frame(project: Path) -> pd.DataFrame:
    return pd.read_parquet(project / ".valuechain" / "build" / "frame.parquet")


FEATURES = ["sessions_14d", "sessions_prior_28d", "tickets_28d", "failed_payments_28d",
            "tenure_days", "plan", "billing"]


def test_forecast_project_three_ways_with_backtest_and_artifacts(project: Path,
                                                                  frame: pd.DataFrame) -> None:
    result = forecast_project(api.load_spec(project))
    s = result.settings
    assert s["horizon_periods"] == 2 and s["period"] == "1w" and len(s["origins"]) == 3
    # the series is the label summed per decision time
    series = result.series.set_index("time")
    by_time = frame.groupby("decision_time")["cancels_30d"].sum()
    assert (series.loc[by_time.index, "churners"] == by_time).all()
    assert (series["known_at"] - series.index == pd.Timedelta(days=30)).all()
    # pending: schedule times after the last mature one, never scored
    pending = series[series["churners"].isna()]
    assert len(pending) >= 4 and pending.index.min() > by_time.index.max()
    latest = result.points[result.points["origin"] == pd.Timestamp(s["latest_origin"])]
    assert latest["actual"].isna().all()
    assert set(latest["method"]) == {"seasonal_naive", "ets", "individual", "individual_raw"}
    now = result.individual[-1]  # the customers active at the latest scheduled time
    assert now.origin == pd.Timestamp(s["latest_origin"]) and np.isnan(now.actual)
    assert now.customers > 0 and now.low <= now.expected <= now.high
    # the three ways side by side, scored on the mature origins
    m = result.metrics.set_index(["method", "step"])
    assert {"individual", "individual_raw", "seasonal_naive", "ets"} <= set(
        result.metrics["method"])
    assert m.loc[("individual", 1), "n"] == 3 and m.loc[("ets", 1), "n"] == 3
    for one in result.individual[:-1]:
        assert one.low <= one.expected <= one.high
        assert abs(one.expected - one.actual) < 0.5 * one.actual  # same order as the truth
        assert one.auc > 0.5
    # artifacts
    data, points = read_forecast(project / ".valuechain")  # type: ignore[misc]
    assert data["settings"]["origins"] == s["origins"] and len(points) == len(result.points)
    assert json.dumps(data)  # plain JSON
    assert result.purchases is not None and "bgnbd" in set(result.purchases.metrics["method"])
    assert data["purchases"]["origins"] == [o.isoformat() for o in result.purchases.origins]


def test_balanced_training_ranks_well_but_inflates_totals_calibration_fixes_them(
    frame: pd.DataFrame,
) -> None:
    origin = sorted(frame["decision_time"].unique())[-4]
    common = dict(time_column="decision_time", label="cancels_30d", features=FEATURES,
                  horizon=timedelta(days=30), origin=origin, train_window=timedelta(days=182))
    balanced = individual_forecast(frame, balanced=True, **common)  # type: ignore[arg-type]
    plain = individual_forecast(frame, **common)  # type: ignore[arg-type]
    assert balanced.auc > 0.55 and abs(balanced.auc - plain.auc) < 0.05  # ranks as well
    assert balanced.raw_expected > 4 * balanced.actual  # totals far too high
    assert not balanced.raw_low <= balanced.actual <= balanced.raw_high
    assert abs(balanced.expected - balanced.actual) < 0.5 * balanced.actual  # calibrated


def test_individual_forecast_never_reads_after_its_origin(frame: pd.DataFrame) -> None:
    times = sorted(frame["decision_time"].unique())
    origin = pd.Timestamp(times[-6])
    common = dict(time_column="decision_time", label="cancels_30d", features=FEATURES,
                  horizon=timedelta(days=30), origin=origin, train_window=timedelta(days=91))
    before = individual_forecast(frame, **common)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    noisy = frame.copy()
    # every label not known at the origin, and every feature row after it, is scrambled
    unknown = (noisy["decision_time"] + pd.Timedelta(days=30)) > origin
    noisy.loc[unknown, "cancels_30d"] = rng.integers(0, 2, int(unknown.sum())).astype("int8")
    later = noisy["decision_time"] > origin
    noisy.loc[later, "sessions_14d"] = rng.integers(0, 500, int(later.sum())).astype(noisy["sessions_14d"].dtype)
    after = individual_forecast(noisy, **common)  # type: ignore[arg-type]
    assert (after.expected, after.low, after.high, after.raw_expected) == (
        before.expected, before.low, before.high, before.raw_expected)


def test_churn_series_pending_rows_and_errors(project: Path) -> None:
    f = pd.DataFrame({"t": pd.to_datetime(["2025-01-06", "2025-01-13"]), "y": [1, 0]})
    s = churn_series(f, time_column="t", label="y", horizon=timedelta(days=30),
                     every=timedelta(days=7), until="2025-01-20")
    assert s["churners"].isna().tolist() == [False, False, True]
    with pytest.raises(SpecError, match="unknown method"):
        forecast_project(api.load_spec(project), methods=["prophet"], write=False)


def test_cli_json_and_user_mistakes_exit_2(project: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["forecast", "--spec", str(project), "--methods",
                              "seasonal_naive", "--origins", "2", "--horizon", "1m", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["settings"]["horizon_periods"] == 4 and data["settings"]["methods"] == [
        "seasonal_naive"]
    bad = runner.invoke(app, ["forecast", "--spec", str(project), "--horizon", "3x"])
    assert bad.exit_code == 2 and "--horizon" in bad.output
    bad = runner.invoke(app, ["forecast", "--spec", str(project), "--origins", "500",
                              "--methods", "seasonal_naive"])
    assert bad.exit_code == 2 and "origins" in bad.output


def test_report_section_draws_forecast_and_backtest_only_when_present(project: Path,
                                                                      tmp_path: Path) -> None:
    from valuechain.report.sections_forecast import forecast_section

    loaded = api.load_spec(project)
    assert forecast_section(loaded, tmp_path) is None  # no forecast yet: no card
    forecast_project(loaded, methods=["seasonal_naive", "individual"], origins=2, live=False)
    section = forecast_section(loaded, project / ".valuechain")
    assert section is not None and section.status == "ok"
    html = str(section.html)
    assert 'data-key="forecast-backtest"' in html and "<svg" in html
    assert "pending" in html and "seasonal_naive" in html and "individual_raw" in html
    assert 'data-key="forecast-purchases"' in html and "bgnbd" in html


def test_live_rows_equal_the_built_frame_at_a_mature_time(project: Path,
                                                          frame: pd.DataFrame) -> None:
    from valuechain.forecast.project import live_rows

    loaded = api.load_spec(project)
    manifest = json.loads((project / ".valuechain" / "build" / "manifest.json").read_text())
    at = pd.Timestamp(sorted(frame["decision_time"].unique())[-3])
    rows = live_rows(loaded, at.to_pydatetime(),
                     pd.Timestamp(manifest["as_of"]).to_pydatetime())
    want = frame[frame["decision_time"] == at].sort_values("customer_id")
    got = rows.sort_values("customer_id")
    assert len(got) == len(want) > 0
    for column in FEATURES:
        a, b = want[column].to_numpy(), got[column].to_numpy()
        if a.dtype.kind in "fi":
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-9)
        else:
            assert (a == b).all(), column


def test_spec_forecast_block_defaults_and_mistakes(tmp_path: Path) -> None:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["forecast"] = {"horizon": "28d", "methods": ["ets", "individual"]}
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    block = api.load_spec(tmp_path).spec.forecast
    assert block is not None and block.horizon == timedelta(days=28)
    assert block.origins == 8 and block.level == 0.9 and block.methods == ["ets", "individual"]
    spec["forecast"] = {"methods": ["prophet"]}
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SpecError, match=r"forecast\.methods"):
        api.load_spec(tmp_path)


def test_event_decision_points_are_refused_with_the_fix() -> None:
    fraud = Path(__file__).resolve().parents[1] / "examples" / "fraud"
    with pytest.raises(SpecError, match="schedule"):
        forecast_project(api.load_spec(fraud), write=False)


def test_purchases_block_reads_the_source_and_adds_bgnbd(project: Path) -> None:
    from valuechain.forecast.project import _purchases
    from valuechain.spec.models import Forecast

    loaded = api.load_spec(project)
    config = Forecast.model_validate({"origins": 2, "purchases": {
        "source": "payments", "customer": "customer_id", "time": "ts"}})
    pays = pd.read_parquet(project / "data" / "payments.parquet")
    as_of = pd.Timestamp(pays["ts"].max())
    got = _purchases(loaded, config, as_of, timedelta(days=7), 2, 52, ["seasonal_naive"])
    assert set(got.metrics["method"]) == {"bgnbd", "seasonal_naive"}
    assert len(got.origins) == 2 and got.latest_origin > got.origins[-1]
    days = pd.DataFrame({"c": pays["customer_id"], "d": pays["ts"].dt.normalize()})
    days = days.drop_duplicates()
    # repeat purchases: customer-days after each customer's first (pending periods unknown)
    assert 0 < got.series["repeats"].sum() <= len(days) - days["c"].nunique()
    bad = Forecast.model_validate({"purchases": {"source": "payments",
                                                 "customer": "customer_id", "time": "when"}})
    with pytest.raises(SpecError, match="when"):
        _purchases(loaded, bad, as_of, timedelta(days=7), 2, 52, [])
