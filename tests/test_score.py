"""``valuechain score``: the service's decisions for a whole batch, logged, with top-N lists.

The vectorised batch path (offline engine features) must give exactly what the online path
gives: the features of ``valuechain parity``'s replay (outcomes and dimension versions applied
as they become known) to 1e-9, the same scores to 1e-9 and the same actions, with ties,
outcomes reported during the batch and dimension updates in the scored period.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.errors import DataError
from valuechain.registry import Registry, default_registry
from valuechain.serve.batch import PlainRecord, _reasons
from valuechain.serve.decider import time_us
from valuechain.serve.log import DecisionLog, DecisionRecord
from valuechain.serve.parity import parity, replay_online, values_agree
from valuechain.serve.score import score_file
from valuechain.spec.loader import load_spec

from .serve_world import event, packaged_project

DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaged_project(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def world(project: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A copy of the packaged project whose last 3 days have many tied payments and
    dimension updates; returns the folder and the scored period ``(since, until]`` in µs."""
    folder = tmp_path_factory.mktemp("world") / "fraud"
    shutil.copytree(project, folder)
    data = folder / "data"
    tx = pd.read_parquet(data / "transactions.parquet")
    until = time_us(tx["ts"].max())
    since = until - 3 * DAY_US
    recent = tx[tx["ts"] > pd.Timestamp(since, unit="us")]
    # ties: copies of recent payments at the same second, same customer and terminal
    twins = recent.sample(n=min(120, len(recent)), random_state=3).copy()
    twins["transaction_id"] = np.arange(len(twins)) + int(tx["transaction_id"].max()) + 1
    twins["amount"] = twins["amount"] * 1.5
    pd.concat([tx, twins], ignore_index=True).to_parquet(data / "transactions.parquet")
    # dimension updates inside the period for customers who pay in it
    profiles = pd.read_parquet(data / "customer_profiles.parquet")
    who = recent["customer_id"].drop_duplicates().head(40)
    latest = profiles.sort_values("valid_from").groupby("customer_id").tail(1)
    bumped = latest[latest["customer_id"].isin(who)].copy()
    bumped["valid_from"] = pd.Timestamp(since + DAY_US, unit="us")
    bumped["risk_tier"] = "high"
    pd.concat([profiles, bumped], ignore_index=True).to_parquet(
        data / "customer_profiles.parquet")
    return folder, since, until


def _us(times: pd.Series) -> pd.Series:
    return pd.to_datetime(times).astype("datetime64[us]").astype("int64")


def _period_events(folder: Path, since: int, until: int) -> pd.DataFrame:
    tx = pd.read_parquet(folder / "data" / "transactions.parquet")
    t = _us(tx["ts"])
    return tx[(t > since) & (t <= until)].sample(frac=1.0, random_state=1)  # shuffled


def _logged(path: Path) -> pd.DataFrame:
    with DecisionLog(path) as log:
        return log.read()


@pytest.mark.slow
def test_batch_equals_the_online_replay_with_ties_outcomes_and_dimension_updates(
        world: tuple[Path, int, int], tmp_path: Path) -> None:
    folder, since, until = world
    events = _period_events(folder, since, until)
    assert _us(events["ts"]).duplicated().sum() >= 100  # ties
    chargebacks = pd.read_parquet(folder / "data" / "chargebacks.parquet")
    reported = _us(chargebacks["reported_at"])
    assert ((reported > since) & (reported <= until)).sum() > 0  # outcomes known mid-batch
    events.to_parquet(tmp_path / "events.parquet")

    batch = score_file(folder, tmp_path / "events.parquet", out=tmp_path / "batch.parquet",
                       log_path=tmp_path / "batch.sqlite", chunk=97)
    assert batch.mode == "batch" and batch.rows == len(events)
    ref = score_file(folder, events, out=tmp_path / "online.parquet",
                     log_path=tmp_path / "online.sqlite", online=True, chunk=97)
    got, want = _logged(tmp_path / "batch.sqlite"), _logged(tmp_path / "online.sqlite")

    # decision order, keys and actions: identical; scores to 1e-9
    assert got["key"].tolist() == want["key"].tolist()
    assert got["decision_id"].tolist() == want["decision_id"].tolist()  # stable ids
    assert got["time_us"].is_monotonic_increasing
    assert got["action"].tolist() == want["action"].tolist()
    assert got["policy_action"].tolist() == want["policy_action"].tolist()
    assert got["overflow"].tolist() == want["overflow"].tolist()
    assert np.abs(got["score"].to_numpy() - want["score"].to_numpy()).max() <= 1e-9
    assert got["event"].tolist() == want["event"].tolist()  # the normalised events
    assert (got["bundle_version"] == want["bundle_version"]).all()
    assert (got["policy_version"] == want["policy_version"]).all()

    # every feature against valuechain parity's replay (outcomes interleaved by availability)
    loaded = load_spec(folder)
    bundle = Registry(default_registry(loaded)).load()
    replay = replay_online(bundle.plan(folder), since, until).features
    assert set(replay) == set(got["key"])
    compared = 0
    for key, logged, online_logged in zip(got["key"], got["features"], want["features"],
                                          strict=True):
        for name, value in replay[key].items():
            for other in (logged[name], online_logged[name]):
                same, diff = values_agree(other, value, 1e-9)
                assert same, (key, name, other, value, diff)
                compared += 1
    assert compared == 2 * len(got) * len(bundle.feature_names)
    online_scores = bundle.score([replay[k] for k in got["key"]])
    assert np.abs(online_scores - got["score"].to_numpy()).max() <= 1e-9
    # the reasons name the same features, with the same contributions
    for a, b in zip(got["reasons"], want["reasons"], strict=True):
        assert [r["feature"] for r in a] == [r["feature"] for r in b]
        assert np.allclose([r["contribution"] for r in a], [r["contribution"] for r in b],
                           rtol=0, atol=1e-9)
    # and parity itself is exact on the same period
    assert parity(loaded, since=pd.Timestamp(since, unit="us").to_pydatetime(),
                  until=pd.Timestamp(until, unit="us").to_pydatetime()).exact
    # outcome-derived features did move during the period (the test exercises them)
    rates = got["features"].map(lambda f: f["terminal_fraud_rate_30d"])
    assert rates.notna().any() and rates.fillna(0).gt(0).any()
    assert batch.history_rows > 0 and ref.history_rows > 0


def _review_events() -> list[dict[str, Any]]:
    """Payments after the world's data, not in its sources: 5 in the review band on one day
    (two of them tied at 14:00:00), 2 approvals, 3 review-band payments the next day."""
    day2 = "2025-09-30"
    rows = [event(1, review=True, minute=0), event(2, review=True, minute=0),
            event(3, minute=5), event(4, review=True, minute=10),
            event(5, review=True, minute=20), event(6, minute=25),
            event(7, review=True, minute=30),
            event(8, review=True, day=day2, minute=1), event(9, review=True, day=day2,
                                                              minute=2),
            event(10, review=True, day=day2, minute=3)]
    return rows


@pytest.mark.slow
def test_capacity_overflows_in_decision_order_like_the_service(project: Path,
                                                               tmp_path: Path) -> None:
    events = pd.DataFrame(_review_events()).sample(frac=1.0, random_state=2)
    events["ts"] = pd.to_datetime(events["ts"])
    path = tmp_path / "events.csv"
    events.to_csv(path, index=False)  # CSV input: times as text
    batch = score_file(project, path, out=tmp_path / "b.parquet", capacity_limit=2,
                       log_path=tmp_path / "b.sqlite", reasons="flagged")
    online = score_file(project, path, out=tmp_path / "o.parquet", capacity_limit=2,
                        log_path=tmp_path / "o.sqlite", online=True)
    got, want = pd.read_parquet(batch.out), pd.read_parquet(online.out)
    assert got["transaction_id"].tolist() == [50_000_000 + i for i in range(1, 11)]
    assert got["policy_action"].tolist() == want["policy_action"].tolist()
    assert got["action"].tolist() == want["action"].tolist()
    assert np.abs(got["score"] - want["score"]).max() <= 1e-9
    review = got["policy_action"] == "review"
    assert review.sum() == 8  # the scenario: 5 + 3 review-band payments (fresh ids)
    day = got["ts"].dt.date
    for _, group in got[review].groupby(day[review]):
        # first come, first served: the first 2 of each day keep their place
        assert group["action"].tolist()[:2] == ["review", "review"]
        assert set(group["action"].iloc[2:]) == {"approve"}
        assert group["overflow"].tolist() == [False, False] + [True] * (len(group) - 2)
    assert batch.overflow == online.overflow == 4
    logged = _logged(tmp_path / "b.sqlite")
    note = logged.loc[logged["overflow"], "capacity_note"].iloc[0]
    assert "capacity 2 per 1d is full" in note
    assert note == _logged(tmp_path / "o.sqlite").loc[logged["overflow"].to_numpy(),
                                                      "capacity_note"].iloc[0]
    # flagged reasons: only decisions not approved carry them
    has = logged["reasons"].map(len) > 0
    assert (has == (logged["action"] != "approve")).all()


@pytest.mark.slow
def test_log_rows_top_lists_and_progress(project: Path, tmp_path: Path) -> None:
    tx = pd.read_parquet(project / "data" / "transactions.parquet").tail(1500)
    seen: list[tuple[str, float]] = []
    result = score_file(project, tx, out=tmp_path / "out.parquet", top=5,
                        log_path=tmp_path / "log.sqlite", chunk=400,
                        progress=lambda stage, done: seen.append((stage, done)))
    got = pd.read_parquet(result.out)
    assert got["ts"].is_monotonic_increasing and len(got) == 1500
    logged = _logged(tmp_path / "log.sqlite")
    assert len(logged) == 1500 and set(logged["origin"]) == {"score"}
    assert logged["decision_id"].tolist() == got["decision_id"].tolist()
    assert logged["key"].tolist() == got["transaction_id"].astype(str).tolist()
    assert logged["features"].iloc[0]["cust_count_1d"] == got["feature.cust_count_1d"].iloc[0]
    assert logged["event"].iloc[0]["transaction_id"] == got["transaction_id"].iloc[0]
    assert all(len(r) == 3 for r in logged["reasons"])
    # batch records serialise exactly as the log's own DecisionRecord.row does
    for r in logged.head(50).to_dict("records"):
        fields = {k: r[k] for k in ("decision_id", "time_us", "key", "bundle_version",
                                    "policy_version", "features", "score", "policy_action",
                                    "action", "overflow", "capacity_note", "reasons",
                                    "latency_us", "origin")}
        fields["event"] = {**r["event"], "ts": pd.Timestamp(r["event"]["ts"]).to_pydatetime()}
        fields["created_at_us"] = 1_700_000_000_000_000
        assert PlainRecord(**fields).row(7) == DecisionRecord(**fields).row(7)
    # progress: increasing, ending at 1.0, counting events
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert any(stage == "1,500 of 1,500 events" for stage, _ in seen)
    top = pd.read_csv(result.top_path)  # type: ignore[arg-type]
    assert top.groupby("period_start")["rank"].max().max() <= 5
    assert got.loc[got["score"].idxmax(), "decision_id"] in set(top["decision_id"])


@pytest.mark.slow
def test_score_cli_csv_parquet_and_errors(project: Path, tmp_path: Path) -> None:
    tx = pd.read_parquet(project / "data" / "transactions.parquet").tail(300)
    events = tmp_path / "events.parquet"
    tx.to_parquet(events)
    runner = CliRunner()
    for out in (tmp_path / "d.csv", tmp_path / "d.parquet"):
        res = runner.invoke(app, ["score", "--spec", str(project), "--input", str(events),
                                  "--out", str(out), "--no-log", "--reasons", "none",
                                  "--json"])
        assert res.exit_code == 0, res.output
        payload = json.loads(res.stdout.strip().splitlines()[-1])
        assert payload["rows"] == 300 and payload["log"] is None
        assert payload["mode"] == "batch"
        read = pd.read_csv(out) if out.suffix == ".csv" else pd.read_parquet(out)
        assert len(read) == 300 and (read["reasons"] == "[]").all()
    res = runner.invoke(app, ["score", "--spec", str(project), "--input",
                              str(tmp_path / "missing.parquet")])
    assert res.exit_code == 2 and "missing.parquet" in res.output
    bad = tmp_path / "bad.csv"
    tx.drop(columns=["amount"]).to_csv(bad, index=False)
    res = runner.invoke(app, ["score", "--spec", str(project), "--input", str(bad),
                              "--no-log"])
    assert res.exit_code == 2 and "bad.csv" in res.output and "'amount'" in res.output
    assert "Traceback" not in res.output
    typo = tmp_path / "typo.csv"
    tx.assign(amount=["12.5"] * 299 + ["twelve"]).to_csv(typo, index=False)
    res = runner.invoke(app, ["score", "--spec", str(project), "--input", str(typo),
                              "--no-log"])
    assert res.exit_code == 2, res.output
    assert "typo.csv" in res.output and "'amount'" in res.output and "twelve" in res.output
    with pytest.raises(DataError, match="transaction_id"):
        score_file(project, tx.drop(columns=["transaction_id"]), log=False)


def test_plain_records_serialise_like_the_log() -> None:
    from datetime import datetime

    fields: dict[str, Any] = dict(
        decision_id="d1", time_us=1_735_689_600_000_000, key="t1", bundle_version="v1",
        policy_version="three_band@0",
        event={"transaction_id": 7, "ts": datetime(2025, 1, 1, 12, 0, 1), "amount": None,
               "channel": "web"},
        features={"amount": 12.5, "n": 3, "tier": "low", "ok": True, "rate": None},
        score=0.25, policy_action="review", action="approve", overflow=True,
        capacity_note="full", reasons=[{"feature": "n", "value": 3, "contribution": -0.5}],
        latency_us={"features": 4, "model": 9, "policy": 0}, origin="score",
        created_at_us=1_735_689_600_123_456)
    assert PlainRecord(**fields).row(3) == DecisionRecord(**fields).row(3)


def test_reasons_are_the_largest_absolute_contributions_ties_in_feature_order() -> None:
    names = ["a", "b", "c", "d"]
    values = [{"a": 1, "b": 2.5, "c": "x", "d": None}, {"a": 0, "b": 0, "c": "y", "d": 1}]
    contribs = np.array([[0.1, -0.7, 0.7, 0.05], [np.nan] * 4])
    got = _reasons(names, values, contribs, 3)
    assert got[0] == [{"feature": "b", "value": 2.5, "contribution": -0.7},
                      {"feature": "c", "value": "x", "contribution": 0.7},
                      {"feature": "a", "value": 1, "contribution": 0.1}]
    assert got[1] == []  # NaN row: a decision without reasons (--reasons flagged)
    assert _reasons(names, values, None, 3) == [[], []]
