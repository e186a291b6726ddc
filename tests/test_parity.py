"""Parity of the online features with the offline build: the fraud example and the CLI."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.online_world import make_world
from tests.redis_server import redis_url
from valuechain.cli import app
from valuechain.serve.parity import parity, values_agree
from valuechain.serve.redis_state import RedisState
from valuechain.spec import load_spec

__all__ = ["redis_url"]


@pytest.mark.slow
def test_parity_exact_on_the_fraud_example(fraud_project: Path) -> None:
    """examples/fraud over a generated 20k world: the last 10 days replayed (warm-up to
    their start) give every feature of every decision exactly."""
    result = parity(load_spec(fraud_project), since=datetime(2025, 9, 18))
    assert result.decisions > 500
    assert [f.name for f in result.features if f.differing] == []
    assert result.exact
    assert result.warm.rows["transactions"] > 1000  # the 30-day windows were warmed
    assert result.warm.rows["chargebacks"] > 0


@pytest.mark.slow
def test_parity_exact_on_the_fraud_example_with_redis(fraud_project: Path,
                                                      redis_url: str) -> None:
    state = RedisState(redis_url, namespace="parity")
    result = parity(load_spec(fraud_project), since=datetime(2025, 9, 24), state=state)
    assert result.exact and result.decisions > 200
    state.clear()


def test_scores_compared_when_a_scorer_is_given(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    def scorer(features: pd.DataFrame) -> np.ndarray:
        x = features["c_sum_3d"].astype(float) + 10 * features["t_fraud_rate_8d"].fillna(0)
        return np.asarray(1 / (1 + np.exp(-x / 100)))

    world = make_world(tmp_path, charged_twice=False, payments=200)
    result = parity(load_spec(world), since=datetime(2025, 3, 12), scorer=scorer)
    score = result.features[-1]
    assert score.name == "(score)" and score.compared == result.decisions > 50
    assert score.exact and result.exact


def test_values_agree() -> None:
    assert values_agree(1e12 + 0.0001, 1e12)[0]  # relative for large sums
    assert not values_agree(1.0, 1.0 + 1e-6)[0]
    assert values_agree(float("nan"), None) == (True, 0.0)
    assert not values_agree("low", None)[0]
    assert values_agree(True, 1)[0] and not values_agree("1", 1)[0]


def test_cli_exact_and_not_exact(tmp_path: Path) -> None:
    runner = CliRunner()
    exact = make_world(tmp_path / "exact", charged_twice=False)
    out = runner.invoke(app, ["parity", "--spec", str(exact), "--since", "2025-03-08",
                              "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["exact"] and report["decisions"] > 100
    assert {f["name"] for f in report["features"]} >= {"c_count_1d", "tier",
                                                      "t_fraud_rate_8d"}
    shown = runner.invoke(app, ["parity", "--spec", str(exact), "--since", "2025-03-15"])
    assert shown.exit_code == 0 and "exact" in shown.output

    # an amount label with two chargebacks reported at different times: the build counts
    # the sum once the last is reported, the online path each as it is reported (documented)
    differ = make_world(tmp_path / "differ", charged_twice=True)
    spec = yaml.safe_load((differ / "valuechain.yaml").read_text())
    spec["label"] = {"name": "loss", "kind": "amount", "column": "amount",
                     "source": "chargebacks", "keys": {"payment_id": "payment_id"},
                     "horizon": "10d"}
    (differ / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    out = runner.invoke(app, ["parity", "--spec", str(differ), "--since", "2025-02-01",
                              "--json"])
    assert out.exit_code == 1
    report = json.loads(out.output)
    bad = [f for f in report["features"] if f["differing"]]
    assert bad and all(f["examples"] for f in bad)
    assert {"decision_id", "online", "offline"} <= set(bad[0]["examples"][0])


def test_cli_with_redis_state(tmp_path: Path, redis_url: str) -> None:
    import redis

    world = make_world(tmp_path, charged_twice=False, payments=200)
    out = CliRunner().invoke(app, ["parity", "--spec", str(world), "--since", "2025-03-14",
                                   "--state", redis_url, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["exact"]
    assert not list(redis.Redis.from_url(redis_url).scan_iter("valuechain-parity-*"))
    bad = CliRunner().invoke(app, ["parity", "--spec", str(world), "--state", "postgres://x"])
    assert bad.exit_code == 2 and "--state" in bad.output


def test_cli_refuses_a_time_of_the_wrong_kind(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    out = CliRunner().invoke(app, ["parity", "--spec", str(world), "--since",
                                   "2025-03-08T00:00:00+00:00"])
    assert out.exit_code == 2
    assert "naive" in out.output and "Traceback" not in out.output
    out = CliRunner().invoke(app, ["parity", "--spec", str(world), "--since", "soon"])
    assert out.exit_code == 2 and "--since" in out.output


@pytest.mark.slow
def test_parity_exact_on_the_handbook_example(tmp_path: Path) -> None:
    """examples/fraud-handbook (column label, terminal risk with a 7-day lag, isodow/hour
    expressions) over the handbook's transactions at one terminal in 32 (all their rows),
    the last 10 days replayed."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from tests.conftest import ROOT, SHARED_DATA

    data = SHARED_DATA / "fraud_handbook" / "transactions.parquet"
    if not data.exists():
        pytest.skip(f"{data} is not present")
    table = pq.read_table(data)
    table = table.filter(pc.equal(pc.bit_wise_and(table.column("TERMINAL_ID"), 31), 0))
    (tmp_path / "data").mkdir()
    pq.write_table(table, tmp_path / "data" / "transactions.parquet")
    spec = yaml.safe_load((ROOT / "examples" / "fraud-handbook" / "valuechain.yaml")
                          .read_text())
    spec["sources"]["transactions"]["path"] = "data/transactions.parquet"
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = parity(load_spec(tmp_path), since=datetime(2018, 9, 20))
    assert result.decisions > 1500
    assert [f.name for f in result.features if f.differing] == []
    assert result.exact
