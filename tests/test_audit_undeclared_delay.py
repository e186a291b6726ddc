"""The audit warns when a source read at its event time carries a later time nobody declared.

A small fraud world gets extra time columns: chargebacks *opened* (by the card holder) days
before the merchant hears of them (*reported*), and payments *settled* two days after the
checkout. Read at the earlier time without ``available_at`` or ``reporting_delay``, the
audit names the source, the later column(s), the median and p95 delay and the spec fix; it is
a warning that ``audit.accept`` can accept. An earlier column, a later one in a minority of
rows, or a declared delay, stays silent.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from valuechain.audit.findings import AuditResult, Finding
from valuechain.audit.static import static_findings
from valuechain.data.sources import Catalog
from valuechain.spec import load_spec

from .conftest import ROOT

DAY_US = 86_400 * 1_000_000


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3,000-payment fraud world; chargebacks gain `opened_at` 1-29 days before the report,
    payments gain `settled_at` (2 days after, in 80 % of rows) and `created_at` (1 s before)."""
    from valuechain.demo.fraud import generate_fraud

    data = tmp_path_factory.mktemp("delay") / "data"
    generate_fraud(data, rows=3_000, seed=11)
    rng = np.random.default_rng(0)
    cb = pq.read_table(data / "chargebacks.parquet")
    reported = cb.column("reported_at").cast(pa.int64()).to_numpy()
    opened = reported - rng.integers(1, 30, len(reported)) * DAY_US
    cb = cb.append_column("opened_at", pa.array(opened, pa.int64()).cast(pa.timestamp("us")))
    pq.write_table(cb, data / "chargebacks.parquet")
    tx = pq.read_table(data / "transactions.parquet")
    ts = tx.column("ts").cast(pa.int64()).to_numpy()
    settled = np.where(rng.random(len(ts)) < 0.8, ts + 2 * DAY_US, ts - DAY_US)
    rare = np.where(rng.random(len(ts)) < 0.3, ts + DAY_US, ts - DAY_US)
    for name, values in (("settled_at", settled), ("created_at", ts - 1_000_000),
                         ("refunded_at", rare)):
        tx = tx.append_column(name, pa.array(values, pa.int64()).cast(pa.timestamp("us")))
    pq.write_table(tx, data / "transactions.parquet")
    return data


def _findings(world: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]
              ) -> tuple[list[Finding], AuditResult]:
    spec = yaml.safe_load((ROOT / "examples" / "fraud" / "valuechain.yaml").read_text())
    edit(spec)
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (tmp_path / "data").symlink_to(world)
    loaded = load_spec(tmp_path)
    found = [f for f in static_findings(loaded, Catalog(loaded))
             if f.check == "undeclared_delay"]
    return found, AuditResult.of(found, loaded.spec.audit.accept)


def _opened(spec: dict[str, Any]) -> None:
    spec["sources"]["chargebacks"]["event_time"] = "opened_at"


def test_the_demo_spec_declares_nothing_it_should(world: Path, tmp_path: Path) -> None:
    """Payments carry `settled_at` (later in 80 % of rows): a warning on the decision source;
    `created_at` (earlier) and `refunded_at` (later in 30 %) are not named."""
    found, _ = _findings(world, tmp_path, lambda spec: None)
    assert [f.id for f in found] == ["undeclared_delay:transactions"]
    finding = found[0]
    assert finding.severity == "warning"
    assert finding.evidence["later_columns"] == ["settled_at"]
    assert finding.evidence["median_delay"] == "2.0 days"
    assert 0.75 < finding.evidence["share_later"] < 0.85
    assert "amount" in finding.features
    assert "`reporting_delay: 2d`" in finding.fix and "`event_time: settled_at`" in finding.fix
    assert "audit.accept" in finding.fix


def test_an_outcome_read_when_opened_not_when_reported(world: Path, tmp_path: Path) -> None:
    found, _ = _findings(world, tmp_path, _opened)
    by_id = {f.id: f for f in found}
    finding = by_id["undeclared_delay:chargebacks"]
    assert finding.evidence["source"] == "chargebacks"
    assert finding.evidence["event_time"] == "opened_at"
    assert finding.evidence["later_columns"] == ["reported_at"]
    assert finding.evidence["share_later"] == 1.0
    median = finding.evidence["median_delay_seconds"] / 86_400
    p95 = finding.evidence["p95_delay_seconds"] / 86_400
    assert 10 <= median <= 20 and 25 <= p95 < 30
    # the outcome-derived features and the label read the chargebacks
    assert {"terminal_fraud_rate_30d", "terminal_fraud_rate_7d", "is_fraud"} <= set(
        finding.features)
    text = finding.explanation + " " + finding.fix
    for needle in ("'chargebacks'", "'reported_at'", "'opened_at'", "median", "p95",
                   "`available_at: reported_at`", "is only an attribute of the event"):
        assert needle in text, text
    assert f"`reporting_delay: {-(-int(finding.evidence['p95_delay_seconds']) // 86_400)}d`" \
        in text


@pytest.mark.parametrize("declare", [
    lambda s: s["sources"]["chargebacks"].update(available_at="reported_at"),
    lambda s: s["sources"]["chargebacks"].update(reporting_delay="30d"),
], ids=["available_at", "reporting_delay"])
def test_a_declared_delay_is_silent(declare: Callable[[dict[str, Any]], None], world: Path,
                                    tmp_path: Path) -> None:
    def edit(spec: dict[str, Any]) -> None:
        _opened(spec)
        declare(spec)
        spec["sources"]["transactions"]["reporting_delay"] = "2d"

    found, _ = _findings(world, tmp_path, edit)
    assert found == []


def test_the_warning_can_be_accepted(world: Path, tmp_path: Path) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["audit"] = {"accept": [{"id": "undeclared_delay:transactions", "by": "risk team",
                                     "reason": "settled_at is a bank date, not when we know"}]}

    _, result = _findings(world, tmp_path, edit)
    finding = result.get("undeclared_delay:transactions")
    assert finding is not None and finding.accepted and finding.accepted_by == "risk team"
    assert result.critical == 0 and result.exit_code == 0


def test_the_audit_command_explains_it(world: Path, tmp_path: Path) -> None:
    """End to end: `valuechain audit --explain ID` prints the finding and the payments whose
    `settled_at` is furthest after their checkout."""
    import json

    from typer.testing import CliRunner

    from valuechain.cli import app

    shutil.copy(ROOT / "examples" / "fraud" / "valuechain.yaml", tmp_path / "valuechain.yaml")
    (tmp_path / "data").symlink_to(world)
    result = CliRunner().invoke(app, ["audit", "--spec", str(tmp_path), "--json", "--explain",
                                      "undeclared_delay:transactions"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["finding"]["severity"] == "warning"
    assert "settled_at" in out["finding"]["explanation"]
    rows = out["rows"]
    assert 0 < len(rows) <= 20
    assert set(rows[0]) == {"transaction_id", "ts", "settled_at", "delay"}
    assert all(r["settled_at"] > r["ts"] for r in rows)
