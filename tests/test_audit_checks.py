"""Each audit check on a minimal frame that triggers it, and on one that does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from valuechain.audit import audit_frame, audit_project
from valuechain.audit.empirical import AuditFrame, empirical_findings
from valuechain.audit.static import static_findings
from valuechain.cli import app
from valuechain.data.sources import Catalog
from valuechain.spec import load_spec

from .conftest import SHARED_DATA

N = 20_000


def _frame(seed: int = 0, **extra: Any) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = pd.Timestamp("2025-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 180 * 86400, N)),
                                                     unit="s")
    signal = rng.normal(size=N)
    y = (rng.random(N) < 1 / (1 + np.exp(-(signal * 1.2 - 4)))).astype(int)
    frame = pd.DataFrame({"id": np.arange(N), "t": t, "y": y, "signal": signal,
                          "noise": rng.normal(size=N)})
    for name, make in extra.items():
        frame[name] = make(frame, rng)
    return frame


def _ids(frame: pd.DataFrame, severity: str = "critical") -> set[str]:
    result, _ = audit_frame(frame, "t", "y", "id")
    return {f.id for f in result.findings if f.severity == severity}


def test_honest_frame_has_no_critical_finding() -> None:
    assert _ids(_frame()) == set()


def test_single_feature_power() -> None:
    leak = _frame(copy=lambda f, rng: f["y"] + rng.normal(scale=0.3, size=N))
    assert "single_feature_power:copy" in _ids(leak)


def test_post_outcome_signature() -> None:
    def status(f: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
        closed = (f["y"] == 1) & (rng.random(N) < 0.9)
        return pd.Series(np.where(closed, "charged_back", "settled"))

    def channel(f: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
        return pd.Series(rng.choice(["web", "app", "pos"], N))

    assert "post_outcome_signature:status" in _ids(_frame(status=status))
    assert not any(i.startswith("post_outcome") for i in _ids(_frame(channel=channel)))


def test_missingness_that_reveals_the_outcome() -> None:
    def reason(f: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
        return pd.Series(np.where(f["y"] == 1, rng.choice(["a", "b", "c", "d", "e"], N), None))

    found = _ids(_frame(reason=reason))
    assert "post_outcome_signature:reason" in found


def test_later_values() -> None:
    later = _frame(seen=lambda f, rng: f["t"] + pd.to_timedelta(
        rng.integers(-3600, 60, N), unit="s"))
    earlier = _frame(seen=lambda f, rng: f["t"] - pd.Timedelta(hours=1))
    assert "later_values:seen" in _ids(later)
    assert "later_values:seen" not in _ids(earlier)


def test_identifiers() -> None:
    assert "identifier:row_number" in _ids(_frame(row_number=lambda f, rng: np.arange(N) * 7))
    assert "identifier:n_items" not in _ids(_frame(
        n_items=lambda f, rng: rng.integers(1, 5, N)))


def test_temporal_honesty_gap() -> None:
    # Campaigns: each runs for a few days and is all fraud or all genuine. A random split
    # sees every campaign on both sides; a split by time meets new campaigns.
    def campaign(f: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
        return pd.Series((f["t"] - f["t"].min()).dt.days // 3).astype(str)

    frame = _frame(campaign=campaign)
    bad = {c for c in frame["campaign"].unique() if int(c) % 5 == 0}
    frame["y"] = frame["campaign"].isin(bad).astype(int) & (np.arange(N) % 2 == 0)
    result, _ = audit_frame(frame.drop(columns=["signal"]), "t", "y", "id")
    honesty = result.get("temporal_honesty")
    assert honesty is not None and honesty.severity == "warning"
    assert honesty.evidence["gap"] >= 0.03
    calm, _ = audit_frame(_frame(), "t", "y", "id")
    assert calm.get("temporal_honesty").severity == "info"  # type: ignore[union-attr]


def test_split_hygiene_duplicates_and_label_overlap() -> None:
    frame = _frame()
    doubled = pd.concat([frame, frame.iloc[:500]], ignore_index=True)
    result, _ = audit_frame(doubled, "t", "y")
    assert result.get("duplicates") is not None
    assert result.get("duplicates").evidence["duplicate_rows"] == 500  # type: ignore[union-attr]
    assert audit_frame(frame, "t", "y")[0].get("duplicates") is None
    data = AuditFrame.prepare(frame, "t", "y", ["signal"])
    day = 86_400_000_000
    start = int(data.t.min())
    tight = [("train", start, start + 60 * day), ("test", start + 65 * day, start + 90 * day)]
    found, _ = empirical_findings(data, periods=tight, horizon_us=30 * day)
    assert any(f.id == "label_overlap:train->test" and f.severity == "critical" for f in found)
    wide = [("train", start, start + 60 * day), ("test", start + 95 * day, start + 120 * day)]
    found, _ = empirical_findings(data, periods=wide, horizon_us=30 * day)
    assert not any(f.id.startswith("label_overlap") for f in found)


def _project(tmp_path: Path, features: list[dict[str, Any]], **source: Any) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    base = 1_735_689_600_000_000
    ts = [base + i * 3_600_000_000 for i in range(8)]
    pq.write_table(pa.table({
        "order_id": list(range(8)), "ts": pa.array(ts, pa.timestamp("us")),
        "customer": [1, 2, 1, 2, 1, 2, 1, 2], "y": [0, 1, 0, 0, 1, 0, 0, 1],
        "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    }), tmp_path / "orders.parquet")
    pq.write_table(pa.table({"customer": [1, 2], "tier": ["a", "b"],
                             "changed_at": pa.array([base, base + 5 * 3_600_000_000],
                                                    pa.timestamp("us"))}),
                   tmp_path / "profiles.parquet")
    pq.write_table(pa.table({"customer": [1, 2], "region": ["n", "s"]}),
                   tmp_path / "regions.parquet")
    spec = {
        "project": {"name": "p"},
        "decision": {"statement": "s", "owner": "o", "moment": "m", "actions": ["a", "b"]},
        "decision_points": {"source": "orders"},
        "sources": {
            "orders": {"path": "orders.parquet", "keys": ["order_id"], "event_time": "ts",
                       **source},
            "profiles": {"path": "profiles.parquet", "keys": ["customer"], "role": "dimension"},
            "regions": {"path": "regions.parquet", "keys": ["customer"], "role": "dimension"},
        },
        "label": {"column": "y", "horizon": "1h"},
        "features": features,
    }
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def _static(path: Path) -> dict[str, str]:
    loaded = load_spec(path)
    return {f.id: f.severity for f in static_findings(loaded, Catalog(loaded))}


def test_static_label_copy(tmp_path: Path) -> None:
    leaky = _static(_project(tmp_path / "a", [{"name": "y_again", "expr": "y * 2"}]))
    assert leaky == {"label_copy:y_again": "critical"}
    assert _static(_project(tmp_path / "b", [{"name": "amount", "expr": "amount * 2"}])) == {}


def test_static_lag_shorter_than_reporting_delay(tmp_path: Path) -> None:
    feature = {"name": "n", "aggregate": "count", "key": "customer", "window": "1d"}
    short = _static(_project(tmp_path / "a", [feature], reporting_delay="1h"))
    assert short == {"lag_shorter_than_delay:n": "critical"}
    assert _static(_project(tmp_path / "b", [{**feature, "lag": "1h"}],
                            reporting_delay="1h")) == {}


def test_static_identifier(tmp_path: Path) -> None:
    assert _static(_project(tmp_path / "a", [{"name": "oid", "expr": "order_id"}])) == {
        "identifier:oid": "critical"}
    assert _static(_project(tmp_path / "b", [{"name": "amt", "expr": "amount"}])) == {}


def test_static_dimensions_without_history(tmp_path: Path) -> None:
    tier = {"name": "tier", "lookup": {"source": "profiles", "key": "customer",
                                       "column": "tier"}}
    region = {"name": "region", "lookup": {"source": "regions", "key": "customer",
                                           "column": "region"}}
    found = _static(_project(tmp_path / "a", [tier, region]))
    # profiles.changed_at is later than some decisions; regions has no time at all.
    assert found == {"unversioned_dimension:tier": "critical", "static_lookup:region": "warning"}


def test_cli_audit_flat_frame_json_and_exit_code(tmp_path: Path) -> None:
    frame = _frame(copy=lambda f, rng: f["y"] + rng.normal(scale=0.2, size=N))
    path = tmp_path / "flat.parquet"
    frame.to_parquet(path)
    result = CliRunner().invoke(app, ["audit", "--frame", str(path), "--time-col", "t",
                                      "--label-col", "y", "--key-col", "id", "--json"])
    assert result.exit_code == 1, result.output
    import json

    out = json.loads(result.output)
    assert out["critical"] >= 1
    finding = next(f for f in out["findings"] if f["id"] == "single_feature_power:copy")
    assert finding["severity"] == "critical" and finding["features"] == ["copy"]
    assert finding["evidence"]["auc_alone"] > 0.95 and finding["fix"]
    explained = CliRunner().invoke(app, ["audit", "--frame", str(path), "--time-col", "t",
                                         "--label-col", "y", "--explain",
                                         "single_feature_power:copy"])
    assert "copy" in explained.output
    missing = CliRunner().invoke(app, ["audit", "--frame", str(path), "--time-col", "when",
                                       "--label-col", "y"])
    assert missing.exit_code == 2 and "`--time-col` 'when' is not a column" in missing.output


def _handbook_spec(tmp_path: Path) -> Path:
    data = SHARED_DATA / "fraud_handbook" / "transactions.parquet"
    if not data.exists():
        pytest.skip(f"{data} is not present")
    from .conftest import ROOT

    spec = yaml.safe_load((ROOT / "examples" / "fraud-handbook" / "valuechain.yaml").read_text())
    spec["sources"]["transactions"]["path"] = str(data)
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tmp_path


@pytest.mark.slow
def test_handbook_features_have_no_critical_finding_and_a_noisy_copy_does(
        tmp_path: Path) -> None:
    loaded = load_spec(_handbook_spec(tmp_path))
    result, data = audit_project(loaded)
    assert result.critical == 0, [f.id for f in result.findings if f.severity == "critical"]
    flat = data.frame.drop(columns=["CUSTOMER_ID", "TERMINAL_ID"]).copy()
    rng = np.random.default_rng(1)
    flat["ANALYST_SCORE"] = flat["TX_FRAUD"] + rng.normal(scale=0.3, size=len(flat))
    leaky, _ = audit_frame(flat, "TX_DATETIME", "TX_FRAUD", "TRANSACTION_ID")
    critical = {f.id for f in leaky.findings if f.severity == "critical"}
    assert critical == {"single_feature_power:ANALYST_SCORE"}


def test_id_names_and_string_literals() -> None:
    from valuechain.audit.static import ID_NAME, _columns_in

    for name in ("id", "customer_id", "TRANSACTION_ID", "customerId", "ID", "order_key"):
        assert ID_NAME.search(name), name
    for name in ("is_paid", "VALID", "valid", "paid_amount", "width"):
        assert not ID_NAME.search(name), name
    assert _columns_in("channel = 'y' AND amount > 1") == {"channel", "amount"}
    assert _columns_in("\"is_fraud\" + 0 > 'is_fraud'") == {"is_fraud"}


def test_critical_power_needs_certainty() -> None:
    from valuechain.audit.empirical import auc_standard_error

    # Few positives: a high AUC is not yet sure; many positives: it is.
    assert 0.947 - 1.2816 * auc_standard_error(0.947, 33, 2800) < 0.95
    assert 0.99 - 1.2816 * auc_standard_error(0.99, 2000, 200_000) > 0.95
