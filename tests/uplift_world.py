"""A small churn project with the outreach history declared as `treatment:` (uplift tests)."""

from __future__ import annotations

from pathlib import Path

import yaml

from valuechain.demo.churn import generate_churn, outreach_capacity

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "churn" / "valuechain.yaml"
TREATMENT = {"source": "outreach", "key": "customer_id", "time": "week", "column": "group",
             "treated": "treated", "control": "control"}


def churn_project(root: Path, *, customers: int = 2000, seed: int = 4) -> Path:
    """Generate a world into ``root/data`` and write the example spec (capacity matching the
    world's outreach history, the `treatment:` block added); returns the spec path."""
    generate_churn(root / "data", customers=customers, months=18, seed=seed)
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["value"]["capacity"]["review"]["limit"] = outreach_capacity(customers)
    spec["treatment"] = TREATMENT
    spec["split"]["min_positives"] = 5
    path = root / "valuechain.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
