"""The Framing section asks for a latency budget only where a decision is taken online."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from valuechain.report.sections_spec import framing_section
from valuechain.spec import load_spec

OWNERS = {"product": "p", "data_science": "d", "data_engineering": "e", "ml_engineering": "m",
          "operations": "o"}


def _framing(root: Path, points: dict[str, Any]) -> tuple[str, str]:
    root.mkdir(parents=True)
    spec = {
        "project": {"name": "framing"},
        "decision": {"statement": "s", "owner": "o", "moment": "m", "actions": ["a", "b"],
                     "kpi": "k"},
        "decision_points": points,
        "sources": {"orders": {"path": "orders.parquet", "keys": ["order_id"],
                               "event_time": "ts"},
                    "cancels": {"path": "cancels.parquet", "keys": ["customer_id"],
                                "event_time": "ts", "role": "outcome"}},
        "label": {"source": "cancels", "horizon": "7d"} if "schedule" in points
        else {"column": "y", "horizon": "7d"},
        "features": [{"name": "amount", "expr": "amount"}],
        "owners": OWNERS,
    }
    (root / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    loaded = load_spec(root)
    section = framing_section(loaded, loaded.workspace)
    assert section is not None
    return str(section.html), section.status


def test_a_batch_decision_on_a_schedule_needs_no_latency_budget(tmp_path: Path) -> None:
    html, status = _framing(tmp_path / "batch", {"schedule": {
        "every": "7d", "start": "2024-01-01T00:00:00", "population": "orders",
        "key": "customer_id"}})
    assert "not needed: a batch decision on a schedule" in html and status == "ok"


def test_an_online_decision_without_a_budget_is_flagged(tmp_path: Path) -> None:
    html, status = _framing(tmp_path / "online", {"source": "orders"})
    assert "decision.latency_budget_ms" in html and status == "warn"
