"""The decisions table (SQLite log, Parquet exports) and the bundle's reference period."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from valuechain.errors import ArtifactError
from valuechain.monitor import inputs
from valuechain.monitor.inputs import BASE_COLUMNS, read_decisions
from valuechain.serve.log import DecisionLog, DecisionRecord

from .conftest import small_fraud_project

T0 = 1_753_833_600_000_000  # 2025-07-30 00:00 UTC


def _records(n: int) -> list[DecisionRecord]:
    out = []
    for i in range(n):
        features = {"amount": 10.0 + i / 3, "count": i, "tier": ["low", "high", None][i % 3],
                    "verified": bool(i % 2), "rate": None if i % 4 == 0 else i / 7}
        event = {"transaction_id": i, "amount": 10.0 + i / 3, "channel": "web",
                 "meta": {"ip": "1.2.3.4"}, "ok": i % 2 == 0}
        out.append(DecisionRecord(
            decision_id=f"d{i:04d}", time_us=T0 + i * 3_600_000_000, key=f"t{i}",
            bundle_version="v1" if i < n // 2 else "v2", policy_version="three_band@abc",
            event=event, features=features, score=float(np.random.default_rng(i).random()),
            policy_action="review" if i % 5 == 0 else "approve",
            action="approve", overflow=i % 5 == 0, latency_us={"features": 1500, "model": 500,
                                                               "policy": 20},
            origin="serve" if i % 3 else "score"))
    return out


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log") / "decisions.sqlite"
    with DecisionLog(path) as writer:
        writer.append_many(_records(60))
    return path


def test_columns_types_and_values_match_the_log(log: Path) -> None:
    table = read_decisions(log)
    features = ["amount", "count", "tier", "verified", "rate"]
    assert list(table.columns) == [*BASE_COLUMNS, "latency_ms", "latency_features_ms",
                                   "latency_model_ms", "latency_policy_ms", *features,
                                   "event.transaction_id", "event.amount", "event.channel",
                                   "event.meta", "event.ok"]
    assert str(table["time"].dtype) == "datetime64[us, UTC]"
    assert table["time_us"].dtype == np.int64 and table["score"].dtype == np.float64
    assert table["overflow"].dtype == bool
    for name in ("amount", "count", "rate", "latency_ms", "event.amount"):
        assert table[name].dtype == np.float64, name
    assert table["event.transaction_id"].dtype == np.int64
    assert table["event.ok"].dtype == bool
    for name in ("decision_id", "key", "tier", "verified", "event.channel", "action"):
        assert pd.api.types.is_string_dtype(table[name].dtype), name
    # the slow path (json.loads row by row) agrees value for value
    slow = DecisionLog(log).read()
    assert table["decision_id"].tolist() == slow["decision_id"].tolist()
    np.testing.assert_array_equal(table["score"].to_numpy(), slow["score"].to_numpy())
    assert table["time_us"].tolist() == slow["time_us"].tolist()
    assert table["overflow"].tolist() == slow["overflow"].tolist()
    for i, row in slow.iterrows():
        f = row["features"]
        assert table.at[i, "amount"] == f["amount"]
        assert table.at[i, "count"] == float(f["count"])
        assert (pd.isna(table.at[i, "tier"]) if f["tier"] is None
                else table.at[i, "tier"] == f["tier"])
        assert table.at[i, "verified"] == str(f["verified"])  # 'True' / 'False', as models
        assert (math.isnan(table.at[i, "rate"]) if f["rate"] is None
                else table.at[i, "rate"] == f["rate"])
        assert table.at[i, "event.transaction_id"] == row["event"]["transaction_id"]
        assert table.at[i, "event.meta"].replace(" ", "") == '{"ip":"1.2.3.4"}'
    batch = table["origin"] == "score"
    assert table.loc[~batch, "latency_ms"].eq(2.02).all()
    assert table.loc[~batch, "latency_features_ms"].eq(1.5).all()
    assert table.loc[batch, ["latency_ms", "latency_model_ms"]].isna().all().all()


def test_since_until_and_origin_filter(log: Path) -> None:
    since = pd.Timestamp(T0 + 10 * 3_600_000_000, unit="us", tz="UTC").to_pydatetime()
    until = pd.Timestamp(T0 + 20 * 3_600_000_000, unit="us").to_pydatetime()  # naive: UTC
    table = read_decisions(log, since=since, until=until)
    assert table["decision_id"].tolist() == [f"d{i:04d}" for i in range(10, 20)]
    served = read_decisions(log, origin="serve")
    assert set(served["origin"]) == {"serve"} and len(served) == 40
    assert read_decisions(log, origin="nobody").empty


def test_chunks_read_in_parallel_give_the_same_table(log: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    whole = read_decisions(log)
    monkeypatch.setattr(inputs, "_CHUNK", 7)
    pd.testing.assert_frame_equal(read_decisions(log), whole)


def test_the_cache_reads_only_the_rows_appended_since(tmp_path: Path) -> None:
    path, cache = tmp_path / "decisions.sqlite", tmp_path / "cache" / "flat.parquet"
    records = _records(90)
    with DecisionLog(path) as writer:
        writer.append_many(records[:60])
    first = read_decisions(path, cache=cache)
    pd.testing.assert_frame_equal(first, read_decisions(path))
    assert cache.is_file()
    with DecisionLog(path) as writer:
        writer.append_many(records[60:])
    # the cached rows are not read again: mark one in the cache to prove it
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(cache)
    assert table.num_rows == 60
    marked = table.to_pandas()
    marked.loc[0, "amount"] = -1.0
    pq.write_table(pa.Table.from_pandas(marked, preserve_index=False).replace_schema_metadata(
        table.schema.metadata), cache)
    both = read_decisions(path, cache=cache)
    assert both.loc[0, "amount"] == -1.0 and len(both) == 90
    fresh = read_decisions(path)
    pd.testing.assert_frame_equal(both.iloc[1:].reset_index(drop=True),
                                  fresh.iloc[1:].reset_index(drop=True))
    marked.loc[0, "amount"] = fresh.loc[0, "amount"]
    pq.write_table(pa.Table.from_pandas(marked, preserve_index=False).replace_schema_metadata(
        table.schema.metadata), cache)
    both = read_decisions(path, cache=cache)
    pd.testing.assert_frame_equal(both, fresh)
    assert len(pd.read_parquet(cache)) == 90
    since = pd.Timestamp(T0 + 70 * 3_600_000_000, unit="us", tz="UTC").to_pydatetime()
    pd.testing.assert_frame_equal(read_decisions(path, cache=cache, origin="serve",
                                                 since=since),
                                  read_decisions(path, origin="serve", since=since))
    # a cache of another log is rebuilt, never mixed in
    other = tmp_path / "other.sqlite"
    with DecisionLog(other) as writer:
        writer.append_many([DecisionRecord.example("x1")])
    assert read_decisions(other, cache=cache)["decision_id"].tolist() == ["x1"]


def test_a_key_with_a_newline_falls_back_to_row_reading(tmp_path: Path) -> None:
    path = tmp_path / "odd.sqlite"
    odd = DecisionRecord.example("d1")
    with DecisionLog(path) as writer:
        writer.append_many([odd, DecisionRecord(**{**odd.__dict__, "decision_id": "d2",
                                                   "key": "line\nbreak\x1f"})])
    table = read_decisions(path)
    assert table["key"].tolist() == ["t1", "line\nbreak\x1f"]
    assert table["amount"].tolist() == [12.5, 12.5]


def test_parquet_exports_read_the_same(log: Path, tmp_path: Path) -> None:
    whole = read_decisions(log)
    exported = DecisionLog(log).export(tmp_path / "export.parquet")
    pd.testing.assert_frame_equal(read_decisions(exported), whole)
    served = read_decisions(exported, origin="serve")
    assert len(served) == 40


def test_a_score_output_parquet_is_accepted(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "transaction_id": [1, 2], "ts": pd.to_datetime([T0, T0 + 1], unit="us", utc=True),
        "decision_id": ["a", "b"], "score": [0.1, 0.9], "action": ["approve", "decline"],
        "policy_action": ["approve", "decline"], "overflow": [False, False],
        "reasons": ["[]", "[]"], "feature.amount": [1.5, 2.5],
        "feature.tier": ["low", None], "feature.verified": [True, False]})
    path = tmp_path / "scored.parquet"
    frame.to_parquet(path)
    table = read_decisions(path)
    assert table["amount"].tolist() == [1.5, 2.5]
    assert table["tier"].iloc[0] == "low" and pd.isna(table["tier"].iloc[1])
    assert table["verified"].tolist() == ["True", "False"]
    assert table["time_us"].tolist() == [T0, T0 + 1]
    assert table["key"].tolist() == ["1", "2"] and set(table["origin"]) == {"score"}
    assert table["latency_ms"].isna().all()
    assert table["event.transaction_id"].tolist() == [1, 2]


def test_missing_damaged_and_empty_logs(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no decision log there"):
        read_decisions(tmp_path / "nope.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ArtifactError, match=r"junk\.sqlite.*damaged"):
        read_decisions(junk)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 nope")
    with pytest.raises(ArtifactError, match=r"bad\.parquet"):
        read_decisions(bad)
    other = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(other)
    with pytest.raises(ArtifactError, match="neither a decision log export"):
        read_decisions(other)
    empty = tmp_path / "empty.sqlite"
    DecisionLog(empty).close()
    table = read_decisions(empty)
    assert table.empty and list(table.columns)[:len(BASE_COLUMNS)] == list(BASE_COLUMNS)


# ----------------------------------------------------------------------------- reference


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A small fraud project, trained (prior, rules, logistic), decided and packaged."""
    from valuechain.decide import decide_project
    from valuechain.registry import package
    from valuechain.spec import load_spec
    from valuechain.train import train_project

    root = small_fraud_project(tmp_path_factory.mktemp("reference"), min_positives=3,
                               rows=40_000, seed=11)
    loaded = load_spec(root)
    train_project(loaded, candidates=["prior", "rules", "logistic"])
    decide_project(loaded)
    result = package(loaded)
    return {"root": root, "result": result}


@pytest.mark.slow
def test_package_stores_a_checksummed_reference(packaged: dict[str, object]) -> None:
    from valuechain.registry import load_bundle, verify_bundle
    from valuechain.registry.pack import REFERENCE

    result = packaged["result"]
    assert REFERENCE in result.files  # type: ignore[attr-defined]
    path = result.path  # type: ignore[attr-defined]
    assert REFERENCE in verify_bundle(path)
    bundle = load_bundle(path)
    ref = inputs.load_reference(bundle, packaged["root"])  # type: ignore[arg-type]
    frame = ref.frame
    assert ref.bundle_version == bundle.version and ref.period.startswith("test 20")
    assert list(frame.columns) == ["decision_id", "time", *bundle.feature_names, "score",
                                   "label", "action"]
    assert ref.features == bundle.feature_names
    assert str(frame["time"].dtype) == "datetime64[us, UTC]"
    assert set(frame["label"].unique()) <= {0.0, 1.0}
    assert set(frame["action"]) <= {"approve", "review", "decline"}
    assert set(frame["verified_phone"].dropna()) <= {"True", "False"}
    # the stored score is the bundle's own score of the stored features
    np.testing.assert_allclose(bundle.score(frame[list(bundle.feature_names)]),
                               frame["score"], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_an_older_bundle_recomputes_its_reference_or_refuses(packaged: dict[str, object],
                                                             tmp_path: Path) -> None:
    from valuechain.registry import load_bundle
    from valuechain.registry.layout import CHECKSUMS
    from valuechain.registry.pack import REFERENCE

    root = Path(str(packaged["root"]))
    result = packaged["result"]
    copy = tmp_path / "project"
    shutil.copytree(root, copy)
    folder = copy / ".valuechain" / "registry" / "bundles" / result.version  # type: ignore[attr-defined]
    for p in [folder, *folder.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    stored = inputs.load_reference(load_bundle(folder), copy).frame
    # make it an older bundle: no reference.parquet, not in checksums.json
    (folder / REFERENCE).unlink()
    sums = yaml.safe_load((folder / CHECKSUMS).read_text())
    del sums["files"][REFERENCE]
    import json

    (folder / CHECKSUMS).write_text(json.dumps(sums))
    old = load_bundle(folder)  # the loader accepts a bundle without it
    rebuilt = inputs.load_reference(old, copy)
    pd.testing.assert_frame_equal(rebuilt.frame, stored)
    # a rebuilt frame (other bytes) is refused, naming the fingerprint
    frame_path = copy / ".valuechain" / "build" / "frame.parquet"
    table = pd.read_parquet(frame_path)
    table.iloc[:-1].to_parquet(frame_path)
    with pytest.raises(ArtifactError, match="not the one it was trained on"):
        inputs.load_reference(old, copy)


@pytest.mark.slow
def test_importance_of_the_bundle_model_and_no_drift_on_its_own_reference(
        packaged: dict[str, object]) -> None:
    from valuechain.monitor.drift import drift_signals, feature_importance
    from valuechain.registry import load_bundle

    bundle = load_bundle(packaged["result"].path)  # type: ignore[attr-defined]
    ref = inputs.load_reference(bundle, packaged["root"])  # type: ignore[arg-type]
    importance = feature_importance(bundle, ref)
    assert list(importance) == list(bundle.feature_names)
    assert sum(importance.values()) == pytest.approx(1.0)
    assert min(importance.values()) >= 0.0 and max(importance.values()) > 0.0
    if bundle.candidate == "logistic":  # mean |contribution| over the reference rows
        sample = ref.frame.iloc[:: max(1, len(ref.frame) // 5000)]
        weights = np.abs(bundle.contributions(sample[list(bundle.feature_names)])).mean(axis=0)
        np.testing.assert_allclose(list(importance.values()), weights / weights.sum())
    decisions = ref.frame.assign(time_us=ref.frame["time"].to_numpy(
        dtype="datetime64[us]").astype(np.int64))
    signals = drift_signals(decisions, ref, window_us=7 * 86_400_000_000,
                            importance=importance, min_samples=1)
    psi_rows = signals[signals["metric"].isin(["psi", "score_psi"])]
    assert psi_rows["value"].max() < 0.1  # a reference week against the whole reference
