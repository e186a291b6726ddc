"""A one-source project for data-validation tests: orders of customers in a CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HEADER = "order_id,customer,ts,amount,y"


def orders_project(folder: Path, rows: list[str], features: list[dict[str, Any]], *,
                   name: str = "orders", extra: str = "") -> Path:
    """Write ``orders.csv`` (``HEADER``, then ``rows`` and the raw text ``extra``) and a spec
    deciding each order, label column ``y`` within 1h, with ``features``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orders.csv").write_text("\n".join([HEADER, *rows]) + "\n" + extra)
    spec = {
        "project": {"name": name},
        "decision": {"statement": "s", "owner": "o", "moment": "m", "actions": ["a", "b"]},
        "decision_points": {"source": "orders"},
        "sources": {"orders": {"path": "orders.csv", "keys": ["order_id"], "event_time": "ts"}},
        "label": {"column": "y", "horizon": "1h"},
        "features": features,
    }
    (folder / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    return folder
