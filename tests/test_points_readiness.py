"""A batch decision (scheduled decision points) needs no latency budget; the static
`unversioned_dimension` check also runs for scheduled points (t = the decision time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from valuechain.audit.static import static_findings
from valuechain.data.sources import Catalog
from valuechain.demo.churn import generate_churn, outreach_capacity
from valuechain.spec import load_spec
from valuechain.spec.readiness import readiness

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn" / "valuechain.yaml"
CUSTOMERS = 1_500


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("churn") / "data"
    generate_churn(out, customers=CUSTOMERS, months=8, seed=3, truth=False)
    return out


def _project(data: Path, root: Path, edit: Any = None) -> Path:
    root.mkdir(parents=True)
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["value"]["capacity"]["review"]["limit"] = outreach_capacity(CUSTOMERS)
    if edit is not None:
        edit(spec)
    (root / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (root / "data").symlink_to(data, target_is_directory=True)
    return root


def _parity_item(root: Path) -> Any:
    return {c.item: c for c in readiness(load_spec(root).spec)}["training_inference_parity"]


def test_batch_decision_needs_no_latency_budget(data: Path, tmp_path: Path) -> None:
    def no_budget(spec: dict[str, Any]) -> None:
        spec["decision"].pop("latency_budget_ms", None)

    item = _parity_item(_project(data, tmp_path / "batch", no_budget))
    assert item.passed, item.reason
    assert "batch decision on a schedule, every 1w" in item.reason
    assert "no millisecond latency budget needed" in item.reason

    def events(spec: dict[str, Any]) -> None:  # one decision per usage event: online
        no_budget(spec)
        spec["decision_points"] = {"source": "usage_events"}

    item = _parity_item(_project(data, tmp_path / "online", events))
    assert not item.passed and "no latency budget" in item.reason


def test_unversioned_lookup_is_flagged_for_scheduled_points(data: Path,
                                                            tmp_path: Path) -> None:
    """`subscriptions` read as a latest-value table (no valid_from): its `cancelled_at` is
    later than the Monday for every customer-Monday before a cancel."""
    def latest_value(spec: dict[str, Any]) -> None:
        spec["sources"]["subscriptions"].pop("valid_from")

    root = _project(data, tmp_path / "naive", latest_value)
    loaded = load_spec(root)
    found = {f.id: f for f in static_findings(loaded, Catalog(loaded))}
    finding = found["unversioned_dimension:billing"]
    assert finding.severity == "critical"
    assert finding.evidence["time_column"] == "cancelled_at"
    assert 0.01 <= finding.evidence["share"] < 0.5
    # the example itself (versioned sources) has no such finding
    clean = load_spec(_project(data, tmp_path / "clean"))
    assert not [f for f in static_findings(clean, Catalog(clean))
                if f.check == "unversioned_dimension"]
