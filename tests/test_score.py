"""``valuechain score``: the service's decisions for a whole batch, logged, with top-N lists."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.data.sources import us_to_datetime
from valuechain.errors import DataError
from valuechain.registry import Registry, default_registry
from valuechain.serve.decider import Decider, time_us
from valuechain.serve.features import OnlineFeatures
from valuechain.serve.log import DecisionLog
from valuechain.serve.score import score_file
from valuechain.serve.state import MemoryState
from valuechain.spec.loader import load_spec

from .serve_world import packaged_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaged_project(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def events(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tx = pd.read_parquet(project / "data" / "transactions.parquet").tail(1500)
    path = tmp_path_factory.mktemp("score") / "events.parquet"
    tx.sample(frac=1.0, random_state=1).to_parquet(path)  # shuffled: score sorts by time
    return path


def test_score_equals_the_service_one_event_at_a_time(project: Path, events: Path,
                                                      tmp_path: Path) -> None:
    result = score_file(project, events, out=tmp_path / "out.parquet", top=5,
                        log_path=tmp_path / "log.sqlite", chunk=400)
    assert result.rows == 1500 and result.rows_per_second > 0
    got = pd.read_parquet(result.out)
    assert got["ts"].is_monotonic_increasing and len(got) == 1500
    # the reference: the service's decide(), one event at a time, on the same warm state
    loaded = load_spec(project)
    bundle = Registry(default_registry(loaded)).load()
    online = OnlineFeatures(bundle.plan(project), MemoryState())
    ordered = pd.read_parquet(events).sort_values(["ts", "transaction_id"], kind="stable")
    first = time_us(ordered["ts"].iloc[0])
    online.warm(us_to_datetime(first - 1, online.aware))
    with DecisionLog(tmp_path / "ref.sqlite") as log:
        decider = Decider(bundle, online, log)
        ref = [decider.decide({str(k): v for k, v in r.items()})
               for r in ordered.to_dict("records")]
    assert got["score"].tolist() == [d.score for d in ref]
    assert got["action"].tolist() == [d.action for d in ref]
    assert got["overflow"].tolist() == [d.overflow for d in ref]
    assert json.loads(got["reasons"].iloc[0])[0]["feature"] == ref[0].reasons[0].feature
    assert "feature.cust_count_1d" in got.columns
    with DecisionLog(tmp_path / "log.sqlite") as log:
        logged = log.read()
    assert len(logged) == 1500 and set(logged["origin"]) == {"score"}
    assert logged["decision_id"].tolist() == got["decision_id"].tolist()
    top = pd.read_csv(result.top_path)  # type: ignore[arg-type]
    assert top.groupby("period_start")["rank"].max().max() <= 5
    best = got.loc[got["score"].idxmax()]
    assert best["decision_id"] in set(top["decision_id"])


def test_score_cli_csv_and_errors(project: Path, events: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "d.csv"
    res = runner.invoke(app, ["score", "--spec", str(project), "--input", str(events),
                              "--out", str(out), "--no-log", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout.strip().splitlines()[-1])
    assert payload["rows"] == 1500 and payload["log"] is None
    assert len(pd.read_csv(out)) == 1500
    res = runner.invoke(app, ["score", "--spec", str(project), "--input",
                              str(tmp_path / "missing.parquet")])
    assert res.exit_code == 2 and "missing.parquet" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="transaction_id"):
        score_file(project, bad, log=False)
