"""``valuechain retrain``: the recent-period rule, the comparison, promotion through the gates."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.errors import DataError, SpecError
from valuechain.monitor.retrain import _loss_per_1000, _paired_ratio, promotion, recent_periods
from valuechain.spec.models import Period

ROOT = Path(__file__).resolve().parents[1]
D = timedelta(days=1)


def P(name: str, start: str, end: str) -> Period:
    return Period(name=name, start=datetime.fromisoformat(start),
                  end=datetime.fromisoformat(end))


SPEC = [P("train", "2025-01-01", "2025-03-01"), P("validation", "2025-05-01", "2025-05-16"),
        P("test", "2025-07-15", "2025-07-30")]


# ------------------------------------------------------------------ the recent-period rule
def test_periods_shift_to_the_newest_mature_day_keeping_lengths_and_gaps() -> None:
    # as_of 2025-12-01 06:00, horizon 60 d: newest mature decision 2025-10-02 06:00,
    # so the test period ends 2025-10-02 (whole days after 07-30: 64), all shifted 64 days.
    shifted, offset = recent_periods(SPEC, as_of=datetime(2025, 12, 1, 6), horizon=60 * D)
    assert offset == 64 * D
    assert [(p.name, p.start, p.end) for p in shifted] == [
        (p.name, p.start + 64 * D, p.end + 64 * D) for p in SPEC]
    assert shifted[-1].end == datetime(2025, 10, 2)
    for a, b in zip(SPEC, shifted, strict=True):
        assert b.end - b.start == a.end - a.start
    for k in (1, 2):
        assert shifted[k].start - shifted[k - 1].end == SPEC[k].start - SPEC[k - 1].end


def test_outcome_delay_and_recent_length() -> None:
    # a 10-day reporting delay moves the newest mature day back by 10 days: 54 days
    shifted, offset = recent_periods(SPEC, as_of=datetime(2025, 12, 1, 6), horizon=60 * D,
                                     delay=10 * D)
    assert offset == 54 * D and shifted[-1].end == datetime(2025, 9, 22)
    # recent=30d: the comparison period lasts 30 days, ends the same day; the earlier
    # periods move with its start so the gap before it stays 60 days
    shifted, offset = recent_periods(SPEC, as_of=datetime(2025, 12, 1, 6), horizon=60 * D,
                                     recent=30 * D)
    test = shifted[-1]
    assert (test.start, test.end) == (datetime(2025, 9, 2), datetime(2025, 10, 2))
    assert test.start - shifted[1].end == 60 * D
    assert offset == test.start - SPEC[-1].start == 49 * D


def test_no_new_mature_data_and_bad_inputs_are_refused() -> None:
    with pytest.raises(DataError, match="no decision after the spec's periods has a mature"):
        # the published demo world: as_of 2025-09-28 23:53, newest mature 07-30 23:53 (< 1 day)
        recent_periods(SPEC, as_of=datetime(2025, 9, 28, 23, 53), horizon=60 * D)
    shifted, _ = recent_periods(SPEC, as_of=datetime(2025, 9, 29), horizon=60 * D)
    assert shifted[-1].end == datetime(2025, 7, 31)  # one whole day of new labels
    with pytest.raises(SpecError, match="at least train"):
        recent_periods(SPEC[:1], as_of=datetime(2026, 1, 1), horizon=60 * D)
    with pytest.raises(SpecError, match="at least one day"):
        recent_periods(SPEC, as_of=datetime(2026, 1, 1), horizon=60 * D, recent=D / 2)


def test_aware_as_of_against_naive_periods() -> None:
    from datetime import UTC

    naive, _ = recent_periods(SPEC, as_of=datetime(2025, 12, 1, 6), horizon=60 * D)
    aware, _ = recent_periods(SPEC, as_of=datetime(2025, 12, 1, 6, tzinfo=UTC), horizon=60 * D)
    assert naive == aware


# ------------------------------------------------------------------ the KPI and its interval
def test_loss_per_1000_by_hand() -> None:
    loss = np.array([0.0, 50.0, 0.0, 10.0])
    exposure = np.array([100.0, 50.0, 850.0, 0.0])
    assert _loss_per_1000(loss, np.zeros(4), exposure) == pytest.approx(60.0)
    weights = np.array([2.0, 0.0, 1.0, 1.0])  # a resample: row 1 not drawn, row 0 twice
    assert _loss_per_1000(loss, np.zeros(4), exposure, weights) == pytest.approx(
        1000 * 10 / 1050)


def test_paired_kpi_difference() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    days = np.repeat(np.arange(30), n // 30)
    y = (rng.random(n) < 0.05).astype(float)
    amount = rng.gamma(2.0, 50.0, n)
    same = {"loss": amount * y * 0.5, "exposure": amount}
    iv = _paired_ratio(days, same, same, y, seed=0)
    assert iv.value == 0 and iv.low == 0 and iv.high == 0
    better = {"loss": amount * y * 0.1, "exposure": amount}
    iv = _paired_ratio(days, better, same, y, seed=0)
    expected = 1000 * ((amount * y * 0.1).sum() - (amount * y * 0.5).sum()) / amount.sum()
    assert iv.value == pytest.approx(expected)
    assert iv.low <= iv.value <= iv.high < 0


# ------------------------------------------------------------------ user mistakes (fast)
def test_user_mistakes_exit_2(fraud_project: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    cases = [
        (["retrain", "--spec", str(tmp_path / "nowhere")], "no such spec file"),
        (["retrain", "--spec", str(fraud_project), "--recent", "3mo"], "3mo"),
        (["retrain", "--spec", str(fraud_project), "--as-of", "yesterday"], "ISO 8601"),
        (["retrain", "--spec", str(fraud_project)], "no version is in production"),
    ]
    for args, needle in cases:
        out = runner.invoke(app, [*args, "--json"])
        assert out.exit_code == 2, (args, out.output)
        body = json.loads(out.output.strip().splitlines()[-1])
        assert needle in body["error"], body


# ------------------------------------------------------------------ a small story world
@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The compact story world (campaign at 20x): champion v1 trained as of 2025-06-25, then
    `valuechain retrain --promote` at the end of the data."""
    from valuechain.demo.fraud import COMPACT_STORY as C
    from valuechain.demo.fraud import generate_fraud, ship_as_of, story_spec

    project = tmp_path_factory.mktemp("retrain")
    text = story_spec((ROOT / "examples" / "fraud" / "valuechain.yaml").read_text(),
                      horizon=C["horizon"], periods=C["periods"],
                      min_positives=C["min_positives"])
    (project / "valuechain.yaml").write_text(text)
    start = datetime(2025, 1, 1)
    campaign = (datetime.fromisoformat(C["campaign_start"]) - start).days
    generate_fraud(project / "data", rows=150_000, seed=7, days=C["days"],
                   campaign_days=C["days"] - campaign, campaign_scale=20.0)
    shipped = ship_as_of(project, project, datetime.fromisoformat(C["cut"]))
    assert shipped.promoted and shipped.version == "v1"
    out = CliRunner().invoke(app, ["retrain", "--spec", str(project), "--promote", "--json"])
    assert out.exit_code == 0, out.output
    return {"project": project, "result": json.loads(out.output.strip().splitlines()[-1])}


@pytest.mark.slow
def test_challenger_trains_later_and_is_compared_on_unseen_period(story: dict) -> None:
    from valuechain.registry import Registry

    project, r = Path(story["project"]), story["result"]  # type: ignore[arg-type]
    registry = Registry(project / ".valuechain" / "registry")
    champion_metrics = json.loads((registry.get("v1").path / "metrics.json").read_text())
    champ = {p["name"]: p for p in champion_metrics["splits"]["periods"]}
    chall = {p["name"]: p for p in r["periods"]}
    assert r["champion"] == "v1" and r["challenger"] == "v2"
    # later periods, same lengths, shifted by whole days
    for name in ("train", "validation", "test"):
        a, b = champ[name], chall[name]
        shift = datetime.fromisoformat(b["start"]) - datetime.fromisoformat(a["start"])
        assert shift == timedelta(days=r["offset_days"]) > timedelta(0)
    # the comparison period is the challenger's test, after the champion's validation plus
    # the 30-day embargo, and after the challenger's own validation plus the embargo
    comp = r["comparison"]
    assert comp == chall["test"]
    assert datetime.fromisoformat(comp["start"]) >= (
        datetime.fromisoformat(champ["validation"]["end"]) + timedelta(days=30))
    assert datetime.fromisoformat(comp["start"]) - datetime.fromisoformat(
        chall["validation"]["end"]) >= timedelta(days=30)
    # it ends at the newest mature day: as_of - horizon (no outcome delay declared)
    newest = datetime.fromisoformat(r["as_of"]) - timedelta(days=30)
    end = datetime.fromisoformat(comp["end"])
    assert end <= newest < end + timedelta(days=1)
    # the challenger's run trained on those periods, in its own workspace
    run = json.loads((Path(r["workspace"]) / "runs" / r["run_id"] / "metrics.json").read_text())
    assert run["splits"]["periods"] == r["periods"]
    # the champion's frame and runs are untouched (still as of the cut)
    manifest = json.loads((project / ".valuechain" / "build" / "manifest.json").read_text())
    assert manifest["as_of"].startswith("2025-06-25")
    # the user's spec file was not rewritten
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    assert spec["split"]["periods"][2]["end"] in ("2025-05-26", datetime(2025, 5, 26).date())
    # comparison rows: the frame's mature decisions in the period
    frame = pd.read_parquet(Path(r["workspace"]) / "build" / "frame.parquet",
                            columns=["ts", "is_fraud"])
    inside = (frame["ts"] >= comp["start"]) & (frame["ts"] < comp["end"])
    assert r["rows"] == int(inside.sum()) and r["positives"] == int(
        (frame.loc[inside, "is_fraud"] > 0).sum())
    # every metric has both sides and a paired interval around its difference
    for m in r["metrics"]:
        assert m["champion_low"] <= m["champion"] <= m["champion_high"]
        assert m["challenger_low"] <= m["challenger"] <= m["challenger_high"]
        assert m["difference"] == pytest.approx(m["challenger"] - m["champion"])
        assert m["difference_low"] <= m["difference"] <= m["difference_high"]
        sign = 1 if m["higher_is_better"] else -1
        want = ("challenger" if sign * m["difference_low"] > 0 and sign * m[
            "difference_high"] > 0 else "champion" if sign * m["difference_low"] < 0 and sign * m[
            "difference_high"] < 0 else "tie")
        assert m["better"] == want
    # the challenger saw matured campaign rows: it ranks better and decides more cheaply
    by = {m["metric"]: m for m in r["metrics"]}
    assert by["roc_auc"]["better"] == by["average_precision"]["better"] == "challenger"
    assert r["verdict"] == by["cost_per_1000"]["better"] == "challenger"
    assert by["loss_per_1000"]["better"] == "challenger"  # the KPI recovers
    # --promote: it won and its gates pass, so Registry.promote moved it to production
    assert r["promoted"] and all(g["passed"] for g in r["gates"])
    assert any("promoted v2 to production" in why and "previous: v1" in why
               for why in r["reasons"])
    assert registry.production().version == "v2" and registry.get("v1").stage == "archived"


@pytest.mark.slow
def test_comparison_overlapping_the_champion_fit_is_refused(story: dict) -> None:
    from valuechain.monitor.retrain import retrain

    with pytest.raises(DataError, match="judged on data it was fitted on"):
        retrain(story["project"], recent=timedelta(days=200))


@pytest.mark.slow
def test_promotion_only_through_gates_and_only_for_a_winner(story: dict) -> None:
    from valuechain.registry import Registry, package
    from valuechain.spec import load_spec

    project = Path(story["project"])  # type: ignore[arg-type]
    registry = Registry(project / ".valuechain" / "registry")
    registry.rollback()  # the fixture's --promote put v2 in production; back to v1
    assert registry.production().version == "v1"
    # not requested, or not a winner: nothing moves
    for verdict, promote in (("challenger", False), ("tie", True), ("champion", True)):
        done, why, gates = promotion(registry, "v2", verdict, promote=promote)
        assert not done and registry.production().version == "v1", why
        assert all(g.passed for g in gates)
    assert "does not beat the champion" in promotion(registry, "v2", "tie", promote=True)[1]
    # a winner whose gate fails: the owners gate (a spec copy without an operations owner)
    data = yaml.safe_load((project / "valuechain.yaml").read_text())
    data["owners"]["operations"] = ""
    broken = project / "valuechain-no-owner.yaml"
    broken.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        failing = package(load_spec(broken), registry=registry.root)
    finally:
        broken.unlink()
    assert not {g.name: g.passed for g in failing.gates}["owners"]
    done, why, _ = promotion(registry, failing.version, "challenger", promote=True)
    assert not done and "owners" in why and registry.production().version == "v1"
    # a winner whose gates pass goes to production through Registry.promote
    done, why, gates = promotion(registry, "v2", "challenger", promote=True)
    assert done and registry.production().version == "v2" and "previous: v1" in why
    assert [e["action"] for e in registry.history()][-1] == "promote"
