"""``valuechain segment`` on a small churn world: the planted personas are found, stable and
matched to the spec's named segments; the continuum gets "no structure" and quantile bands;
the CLI's JSON, artifacts, report section and user mistakes (exit 2)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.demo.churn import generate_churn
from valuechain.errors import SpecError
from valuechain.report.sections_segments import segments_section
from valuechain.segments import SegmentResult, features_at, match_segments, segment_project
from valuechain.spec import load_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn" / "valuechain.yaml"
ACTIONS = {"creators": {"high": ["editor_28d"], "action": "editor onboarding flow"},
           "collaborators": {"high": ["sharing_28d"], "action": "invite-your-team message"},
           "analysts": {"high": ["reports_28d"], "action": "reports webinar"}}
AREAS = [{"name": f"{area}_28d", "aggregate": "count", "source": "feature_events",
          "key": "customer_id", "window": "28d", "where": f"area = '{area}'"}
         for area in ("editor", "sharing", "reports")]
#: The personas' features are defined for segments only (the model's features stay as they are).
PLANTED: dict[str, Any] = {"features": ["editor_28d", "sharing_28d", "reports_28d"],
                           "define": AREAS, "k": [2, 4], "methods": ["kmeans"],
                           "actions": ACTIONS}
CONTINUOUS = ["mean_seconds_28d", "mean_items_28d"]
CONTINUUM: dict[str, Any] = {"features": CONTINUOUS, "k": [2, 4], "methods": ["kmeans"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("segments-world") / "data"
    generate_churn(out, customers=1_500, months=7, seed=11)
    return out


def _project(root: Path, data: Path, segments: dict[str, Any] | None) -> Path:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["sources"]["feature_events"] = {"path": "data/feature_events.parquet",
                                         "role": "events", "keys": ["event_id"],
                                         "event_time": "ts"}
    if segments is None or "define" not in segments:
        spec["features"].extend(AREAS)
    for name, column in (("mean_seconds_28d", "seconds"), ("mean_items_28d", "items")):
        spec["features"].append({"name": name, "aggregate": "mean", "of": column,
                                 "source": "feature_events", "key": "customer_id",
                                 "window": "28d"})
    spec.pop("split", None)
    if segments is not None:
        spec["segments"] = segments
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "data").exists():
        (root / "data").symlink_to(data)
    (root / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def planted(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SegmentResult]:
    root = _project(tmp_path_factory.mktemp("planted"), data, PLANTED)
    return root, segment_project(load_spec(root), n_boot=6, seed=0)


def test_planted_personas_are_found_stable_and_named(planted: tuple[Path, SegmentResult],
                                                     data: Path) -> None:
    root, result = planted
    assert result.verdict == "segments" and result.k == 3, result.message
    assert "editor_28d" not in {f.name for f in load_spec(root).spec.features}
    assert result.hopkins.clustered
    chosen = next(s for s in result.stability if s.k == 3)
    assert chosen.min_jaccard >= 0.85 and chosen.prediction_strength >= 0.8
    # the segments are the personas
    assigned = pd.read_parquet(result.paths["assignments"])
    truth = pd.read_parquet(data / "truth" / "segments.parquet")
    both = assigned.merge(truth, on="customer_id")
    assert len(both) == result.rows
    assert adjusted_rand_score(both["persona"], both["segment"]) > 0.85
    persona_of = {"creators": "creator", "collaborators": "collaborator",
                  "analysts": "analyst"}
    names = {p.name for p in result.profiles}
    assert names == set(ACTIONS)
    for p in result.profiles:
        members = both[both["segment"] == p.index]
        assert members["persona"].value_counts(normalize=True).iloc[0] > 0.9
        assert members["persona"].mode().iloc[0] == persona_of[p.name]
        assert p.action == ACTIONS[p.name]["action"]
        assert p.trust == "highly stable"
        assert any(w.startswith(f"high {ACTIONS[p.name]['high'][0]}") for w in p.words)
        assert p.rate is not None and p.rate_low is not None and p.rate_high is not None
        assert p.rate_low <= p.rate <= p.rate_high
    assert result.mature
    # stable over time: refit a period later, most customers keep their segment
    assert result.over_time is not None and result.next_time is not None
    assert result.over_time.kept > 0.9 and result.over_time.ari > 0.8
    saved = json.loads(result.paths["json"].read_text())
    assert saved["verdict"] == "segments" and saved["k"] == 3


def test_report_section_shows_the_segments(planted: tuple[Path, SegmentResult]) -> None:
    root, _ = planted
    loaded = load_spec(root)
    section = segments_section(loaded, loaded.workspace)
    assert section is not None and section.status == "ok"
    html = str(section.html)
    assert html.count("chart-heatmap") == 2 and "editor onboarding flow" in html
    assert 'data-key="segments-over-time"' in html


def test_continuum_gets_no_structure_and_bands(data: Path, tmp_path: Path) -> None:
    root = _project(tmp_path / "continuum", data, CONTINUUM)
    runner = CliRunner()
    out = runner.invoke(app, ["segment", "--spec", str(root), "--json", "--n-boot", "4"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert got["verdict"] == "no_structure", got["message"]
    assert not got["hopkins"]["clustered"] and 0.35 < got["hopkins"]["h"] < 0.65
    assert got["message"].startswith("No structure") and "quantile bands" in got["message"]
    bands = got["bands"]
    assert {b["feature"] for b in bands} == set(CONTINUOUS)
    for feature in CONTINUOUS:
        sizes = [b["size"] for b in bands if b["feature"] == feature]
        assert len(sizes) == 3 and sum(sizes) == got["rows"]
        assert max(sizes) - min(sizes) <= 0.05 * got["rows"]
    assert got["profiles"] == [] and got["k"] is None
    loaded = load_spec(root)
    section = segments_section(loaded, loaded.workspace)
    assert section is not None and section.status == "warn"
    assert "Quantile bands instead" in str(section.html)


def test_user_mistakes_exit_2(data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bare = _project(tmp_path / "bare", data, None)
    out = runner.invoke(app, ["segment", "--spec", str(bare)])
    assert out.exit_code == 2 and "segments:" in out.output
    bad = _project(tmp_path / "bad", data, {"features": ["editor_28d", "nope"]})
    out = runner.invoke(app, ["segment", "--spec", str(bad)])
    assert out.exit_code == 2 and "'nope' is not a feature" in out.output
    twice = _project(tmp_path / "twice", data, {**PLANTED, "define": [
        {**AREAS[0], "name": "mean_items_28d"}]})
    out = runner.invoke(app, ["segment", "--spec", str(twice)])
    assert out.exit_code == 2 and "segments.define.0.name" in out.output
    assert "already a feature" in out.output
    good = _project(tmp_path / "good", data, CONTINUUM)
    out = runner.invoke(app, ["segment", "--spec", str(good), "--as-of", "2024-03-05"])
    assert out.exit_code == 2 and "not a decision time" in out.output
    out = runner.invoke(app, ["segment", "--spec", str(good), "--k", "1-3"])
    assert out.exit_code == 2 and "2 <= smallest" in out.output
    out = runner.invoke(app, ["segment", "--spec", str(good), "--methods", "kmeans,dbscan"])
    assert out.exit_code == 2 and "'dbscan' is not a method" in out.output
    with pytest.raises(SpecError, match="k"):
        load_spec(_project(tmp_path / "k", data, {**CONTINUUM, "k": [5, 3]}))


def test_features_at_are_point_in_time(data: Path, tmp_path: Path) -> None:
    """The features at t count exactly the events in (t - 28d, t] of the active customers."""
    root = _project(tmp_path / "pit", data, CONTINUUM)
    t = datetime(2024, 5, 6)
    point = features_at(load_spec(root), t, ["editor_28d", "mean_seconds_28d"])
    events = pd.read_parquet(data / "feature_events.parquet")
    window = events[(events["ts"] > t - timedelta(days=28)) & (events["ts"] <= t)]
    editor = window[window["area"] == "editor"].groupby("customer_id").size()
    seconds = window.groupby("customer_id")["seconds"].mean()
    active = pd.read_parquet(data / "active_subscribers.parquet")
    assert set(point.frame["customer_id"]) == set(
        active.loc[active["snapshot_at"] == t, "customer_id"])
    got = point.frame.set_index("customer_id")
    assert (got["editor_28d"] == editor.reindex(got.index).fillna(0)).all()
    both = got["mean_seconds_28d"].dropna()
    assert np.allclose(both, seconds.reindex(both.index))
    assert got["mean_seconds_28d"].isna().sum() == (~got.index.isin(seconds.index)).sum()
    assert point.mature and point.t == t


def test_default_time_leaves_room_for_the_label_and_the_next_period(
        planted: tuple[Path, SegmentResult], data: Path) -> None:
    _, result = planted
    latest = max(pd.read_parquet(data / "usage_events.parquet")["ts"].max(),
                 pd.read_parquet(data / "feature_events.parquet")["ts"].max())
    assert result.next_time == result.as_of + timedelta(days=28)
    assert result.as_of + timedelta(days=30) <= latest < result.as_of + timedelta(days=37)
    assert result.as_of.weekday() == 0


@given(st.lists(st.integers(0, 3), min_size=1, max_size=40), st.permutations([0, 1, 2, 3]))
@settings(max_examples=60, deadline=None)
def test_matching_undoes_any_relabelling(labels: list[int], perm: list[int]) -> None:
    first = np.array(labels, np.int64)
    second = np.array(perm, np.int64)[first]
    m = match_segments(first, second, 4)
    assert m.kept == 1.0
    assert all(m.mapping[perm[c]] == c for c in set(labels))
