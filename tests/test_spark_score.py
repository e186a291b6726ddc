"""Batch scoring on Spark gives the single-machine path's decisions on the same rows: the
actions, scores, top-N lists, the per-decision reasons (all, flagged, none), the stable
decision ids and the decision log; scoring the same batch again logs nothing twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.data.engines.spark import SparkConfig
from valuechain.policy.capacity import PERIOD_ANCHOR_US, capacity_period
from valuechain.registry import Registry, default_registry
from valuechain.serve.decider import time_us
from valuechain.serve.log import DecisionLog
from valuechain.serve.score import ScoreResult, score_file
from valuechain.serve.spark_score import _scorer, score_spark
from valuechain.spec.loader import load_spec

from .serve_world import packaged_project

DAY_US = 86_400_000_000
SPARK = SparkConfig.model_validate({"type": "spark", "master": "local[2]",
                                    "shuffle_partitions": 2})


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The packaged fraud project and its last 3 days of payments as a batch."""
    project = packaged_project(tmp_path_factory.getbasetemp())
    tx = pd.read_parquet(project / "data" / "transactions.parquet")
    until = time_us(tx["ts"].max())
    batch = tx[tx["ts"] > pd.Timestamp(until - 3 * DAY_US, unit="us")]
    path = tmp_path_factory.mktemp("batch") / "batch.parquet"
    batch.to_parquet(path)
    return project, path


def _logged(path: Path) -> pd.DataFrame:
    with DecisionLog(path) as log:
        return log.read()


@pytest.fixture(scope="module")
def single(events: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[ScoreResult, pd.DataFrame, Path]:
    """``valuechain score`` on one machine: every decision's reasons, logged, a lowered
    capacity (some decisions overflow). Scored twice into the same log: the second run
    appends nothing (stable ids, a repeated id is skipped) and gives the same ids."""
    project, batch = events
    folder = tmp_path_factory.mktemp("single")
    one = score_file(project, batch, out=folder / "one.parquet", log_path=folder / "one.sqlite",
                     reasons="all", top=20, capacity_limit=1)
    assert one.logged == one.rows
    again = score_file(project, batch, out=folder / "again.parquet",
                       log_path=folder / "one.sqlite", reasons="none", capacity_limit=1)
    assert again.logged == 0 and len(_logged(folder / "one.sqlite")) == one.rows
    first = pd.read_parquet(one.out)
    assert pd.read_parquet(again.out)["decision_id"].tolist() == first["decision_id"].tolist()
    return one, first, folder / "one.sqlite"


def _close(x: Any, y: Any) -> bool:
    """Equal, numbers to 1e-9 (the engines' feature values agree to 1e-9, not always to
    the last digit)."""
    if isinstance(x, int | float) and isinstance(y, int | float):
        return abs(float(x) - float(y)) <= 1e-9
    return bool(x == y)


def _same_reasons(got: list[Any], want: list[Any]) -> bool:
    """Reasons lists equal: features and order; values and contributions to 1e-9."""
    return [r["feature"] for r in got] == [r["feature"] for r in want] and all(
        _close(a[k], b[k]) for a, b in zip(got, want, strict=True)
        for k in ("value", "contribution"))


def _flagged(reasons: pd.Series, actions: pd.Series) -> list[Any]:
    """The single machine's reasons of the decisions ``--reasons flagged`` keeps."""
    return [json.loads(r) if a != "approve" else [] for r, a in zip(reasons, actions,
                                                                    strict=True)]


def test_spark_scoring_gives_the_single_machine_decisions_reasons_and_log(
        events: tuple[Path, Path], single: tuple[ScoreResult, pd.DataFrame, Path],
        tmp_path: Path) -> None:
    project, batch = events
    one, a, one_log = single  # a: decision order
    many = score_spark(project, batch, out=tmp_path / "spark", top=20, engine=SPARK,
                       capacity_limit=1, reasons="flagged", log_path=tmp_path / "spark.sqlite",
                       chunk=97)
    assert many.rows == one.rows > 500
    b = pq.read_table(many.out).to_pandas()
    assert list(b.columns) == list(a.columns)  # the single-machine file's columns
    assert b["transaction_id"].tolist() == a["transaction_id"].tolist()  # decision order
    assert b["decision_id"].tolist() == a["decision_id"].tolist()  # stable ids
    assert (a["score"] - b["score"]).abs().max() <= 1e-12
    assert a["action"].tolist() == b["action"].tolist()
    assert a["policy_action"].tolist() == b["policy_action"].tolist()
    assert a["overflow"].tolist() == b["overflow"].tolist()
    assert many.actions == one.actions and many.overflow == one.overflow
    assert one.overflow > 0, "the lowered capacity must make some decisions overflow"
    features = [c for c in a.columns if c.startswith("feature.")]
    assert features and all((a[c].astype(float) - b[c].astype(float)).abs().max() <= 1e-9
                            for c in features if a[c].dtype.kind in "fiub")
    # reasons (flagged): the single machine's for the decisions not approved -- including
    # none for those the overflow rule turned from review into approve -- and only those
    want = _flagged(a["reasons"], a["action"])
    got = [json.loads(r) for r in b["reasons"]]
    assert all(_same_reasons(g, w) for g, w in zip(got, want, strict=True))
    turned = (a["policy_action"] != "approve") & (a["action"] == "approve")
    assert turned.any() and (b.loc[turned, "reasons"] == "[]").all()
    assert sum(len(g) == 3 for g in got) == (a["action"] != "approve").sum() > 0

    # the decision log: the single machine's rows, ids, actions, scores, events and notes
    assert many.logged == many.rows and many.log_path == tmp_path / "spark.sqlite"
    x, y = _logged(one_log), _logged(tmp_path / "spark.sqlite")
    assert y["decision_id"].tolist() == x["decision_id"].tolist() == a["decision_id"].tolist()
    for column in ("key", "time_us", "action", "policy_action", "overflow", "capacity_note",
                   "event", "bundle_version", "policy_version", "origin"):
        assert y[column].tolist() == x[column].tolist(), column
    assert np.abs(y["score"].to_numpy() - x["score"].to_numpy()).max() <= 1e-12
    assert y["seq"].is_monotonic_increasing
    assert all(_same_reasons(g, w) for g, w in zip(y["reasons"], want, strict=True))
    assert all(_close(f[k], e[k]) for f, e in zip(y["features"], x["features"], strict=True)
               for k in e)
    assert x["capacity_note"].notna().sum() == one.overflow

    # the review lists: the 20 highest scores of each day (capacity per 1d), ties in
    # decision order, computed here from the single-machine decisions. (score_file's own
    # top list puts every row in one period under pandas 3: requested a fix.)
    assert many.top_path is not None
    t_us = a["ts"].astype("datetime64[us, UTC]").astype("int64")
    day = PERIOD_ANCHOR_US + capacity_period(t_us.to_numpy(), DAY_US) * DAY_US
    ranked = a.assign(day=day, rank=a.assign(day=day).groupby("day")[
        "score"].rank(method="first", ascending=False).astype(int))
    chosen = ranked[ranked["rank"] <= 20].sort_values(["day", "rank"])
    top = pd.read_csv(many.top_path)
    assert top["rank"].tolist() == chosen["rank"].tolist()
    assert top["transaction_id"].tolist() == chosen["transaction_id"].tolist()
    starts = pd.to_datetime(top["period_start"]).astype("datetime64[us, UTC]").astype("int64")
    assert starts.tolist() == chosen["day"].tolist() and top["period_start"].nunique() >= 3


def test_score_spark_command_again_into_the_same_log(
        events: tuple[Path, Path], single: tuple[ScoreResult, pd.DataFrame, Path],
        tmp_path: Path) -> None:
    """The same batch scored on Spark into the log the single machine wrote: every
    decision is already there (same ids): nothing appended, the log unchanged; the
    decisions carry every reason, equal to the single machine's."""
    project, batch = events
    one, a, one_log = single
    before = _logged(one_log)
    result = CliRunner().invoke(app, [
        "score", "--engine", "spark", "--spec", str(project), "-i", str(batch), "--out",
        str(tmp_path / "d"), "--capacity-limit", "1", "--log", str(one_log), "--reasons",
        "all", "--chunk", "200", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["engine"] == "spark" and payload["rows"] == one.rows
    assert payload["logged"] == 0 and payload["log"] == str(one_log)
    after = _logged(one_log)
    pd.testing.assert_frame_equal(after, before)
    b = pq.read_table(tmp_path / "d").to_pandas()
    assert b["decision_id"].tolist() == a["decision_id"].tolist()
    assert all(_same_reasons(json.loads(g), json.loads(w))
               for g, w in zip(b["reasons"], a["reasons"], strict=True))
    assert (b["reasons"].map(lambda r: len(json.loads(r))) == 3).all()

    bad = CliRunner().invoke(app, ["score", "--engine", "spark", "--spec", str(project),
                                   "-i", str(batch), "--master", "nowhere"])
    assert bad.exit_code == 2 and "master 'nowhere'" in bad.output
    online = CliRunner().invoke(app, ["score", "--engine", "spark", "--spec", str(project),
                                      "-i", str(batch), "--online"])
    assert online.exit_code == 2 and "--online: not available with `--engine spark`" in \
        online.output and "Traceback" not in online.output


def test_partition_scorer_without_reasons_gives_the_same_ids_and_scores(
        events: tuple[Path, Path], single: tuple[ScoreResult, pd.DataFrame, Path]) -> None:
    """``--reasons none``: the per-partition function (run here on Arrow batches as Spark
    hands them) computes no contributions, and gives the single machine's scores, policy
    actions and ids."""
    from valuechain.serve.decider import Decider
    from valuechain.serve.features import OnlineFeatures
    from valuechain.serve.state import MemoryState

    project, _ = events
    _, a, _ = single
    loaded = load_spec(project)
    registry = Path(default_registry(loaded)).resolve()
    bundle = Registry(registry).load()
    online = OnlineFeatures(bundle.plan(loaded.root), MemoryState())
    decider = Decider(bundle, online, None, origin="score", capacity_limit=1)
    names = list(bundle.feature_names)
    frame = a.rename(columns={f"feature.{c}": c for c in names})
    table = pa.table({"transaction_id": frame["transaction_id"],
                      **{c: frame[c] for c in names},
                      "__t": frame["ts"].astype("datetime64[us, UTC]").astype("int64"),
                      "__i": np.arange(len(frame), dtype=np.int64)})
    assert decider.id_scope is not None
    run = _scorer(str(registry), bundle.version, names, ["transaction_id"], decider.id_scope,
                  "none", decider.lowest_action, 3)
    out = pa.Table.from_batches(list(run(iter(table.to_batches(max_chunksize=300))))
                                ).to_pandas()
    assert out["decision_id"].tolist() == a["decision_id"].tolist()
    assert (out["reasons"] == "[]").all()
    assert np.abs(out["score"].to_numpy() - a["score"].to_numpy()).max() <= 1e-12
    assert out["policy_action"].tolist() == a["policy_action"].tolist()
