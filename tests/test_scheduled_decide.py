"""train + decide on scheduled decision points: one row per customer per Monday, many weeks.

Each customer appears once a week, so a customer key alone names many decisions. The run
must price exactly the frame's validation and test rows: before decisions had one identity,
decide joined scores back to the frame on the customer key and priced every score against
every week of its customer (millions of rows instead of thousands), with no warning.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from valuechain.decide import decide_project
from valuechain.spec import load_spec
from valuechain.train import train_project

DAY_US = 86_400_000_000
START_US = 1_735_689_600_000_000  # 2025-01-01 00:00 UTC


def weekly_world(root: Path, customers: int = 1200, days: int = 280, seed: int = 11) -> None:
    """Orders and incidents of ``customers`` over ``days``; busy customers have more incidents."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.2, 0.35, customers)  # orders per day
    risk = rng.random(customers) < 0.25
    ids, times, amounts = [], [], []
    for c in range(customers):
        n = rng.poisson(rate[c] * days)
        ids += [c] * n
        times += list(np.sort(rng.integers(0, days * DAY_US, n)))
        amounts += list(rng.gamma(2.0, 30.0, n))
    orders = pd.DataFrame({"order_id": np.arange(len(ids)), "customer": ids,
                           "ts": START_US + np.asarray(times, dtype=np.int64),
                           "amount": amounts}).sort_values(["ts", "order_id"])
    n_inc = rng.poisson(np.where(risk, 6.0, 0.6))
    inc_c = np.repeat(np.arange(customers), n_inc)
    inc_t = START_US + rng.integers(0, days * DAY_US, len(inc_c))
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "order_id": pa.array(orders["order_id"].to_numpy()),
        "customer": pa.array([f"C{c}" for c in orders["customer"]]),
        "ts": pa.array(orders["ts"].to_numpy(), pa.timestamp("us")),
        "amount": pa.array(orders["amount"].to_numpy()),
        "risky": pa.array(risk[orders["customer"].to_numpy()].astype(np.int64)),
    }), root / "orders.parquet")
    pq.write_table(pa.table({
        "incident_id": pa.array(np.arange(len(inc_c))),
        "customer": pa.array([f"C{c}" for c in inc_c]),
        "reported_at": pa.array(inc_t, pa.timestamp("us")),
    }), root / "incidents.parquet")


SPEC = {
    "version": 1,
    "project": {"name": "weekly-care"},
    "decision": {"statement": "Each Monday, call a customer likely to have an incident.",
                 "owner": "care team", "moment": "Monday 00:00",
                 "actions": ["approve", "review", "decline"]},
    "decision_points": {"schedule": {"every": "7d", "start": "2025-01-06T00:00:00",
                                     "population": "orders", "key": "customer",
                                     "active_within": "28d"}},
    "sources": {
        "orders": {"path": "data/orders.parquet", "keys": ["order_id"], "event_time": "ts"},
        "incidents": {"path": "data/incidents.parquet", "keys": ["incident_id"],
                      "event_time": "reported_at", "role": "outcome"},
    },
    "label": {"name": "incident", "source": "incidents", "keys": {"customer": "customer"},
              "horizon": "7d"},
    "features": [
        {"name": "orders_14d", "aggregate": "count", "key": "customer", "window": "14d",
         "source": "orders"},
        {"name": "spend_28d", "aggregate": "sum", "of": "amount", "key": "customer",
         "window": "28d", "source": "orders"},
        {"name": "risky_28d", "aggregate": "max", "of": "risky", "key": "customer",
         "window": "28d", "source": "orders"},
    ],
    "split": {"min_positives": 10},
    "value": {"costs": {"false_negative": "80", "false_positive": "4 + 0.01 * spend_28d",
                        "review": "2"},
              "capacity": {"review": {"limit": 40, "per": "7d"}},
              "baseline_policy": "orders_14d > 8"},
}


@pytest.fixture(scope="module")
def weekly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("weekly")
    weekly_world(project / "data")
    (project / "valuechain.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return project


def test_train_and_decide_price_exactly_the_frames_rows(weekly: Path) -> None:
    loaded = load_spec(weekly)
    run = train_project(loaded, candidates=["prior", "rules", "logistic"])
    run_dir = Path(run.run_dir)
    frame = pd.read_parquet(loaded.workspace / "build" / "frame.parquet")
    # Many weeks per customer: the customer key alone does not name a decision.
    assert frame["customer"].duplicated().sum() > 10 * frame["customer"].nunique()
    predictions = {role: pd.read_parquet(run_dir / f"predictions_{role}.parquet")
                   for role in ("validation", "test")}
    for role, table in predictions.items():
        assert table.columns[0] == "decision_id"
        assert table["decision_id"].is_unique
        assert len(table) == run.splits[role]["rows"]
        # <customer>@<Monday, ISO seconds>, one per row of the frame's period
        expected = table["customer"] + "@" + pd.to_datetime(table["decision_time"]).map(
            lambda t: t.isoformat(timespec="seconds"))
        assert (table["decision_id"] == expected).all()
        assert {"cost_false_negative", "cost_false_positive", "cost_review", "rule"} <= set(
            table.columns)
    start, end = (pd.Timestamp(run.splits["test"][k]) for k in ("start", "end"))
    in_test = frame["decision_time"].between(start, end)
    assert in_test.sum() == len(predictions["test"])

    result = decide_project(loaded)
    out = result.to_json()
    for role in ("validation", "test"):
        assert out[role]["decisions"] == len(predictions[role]) == run.splits[role]["rows"]
        assert out[role]["positives"] == predictions[role]["label"].sum()
        weeks = pd.to_datetime(predictions[role]["decision_time"]).nunique()
        assert out[role]["capacity"]["periods"] == weeks
        assert out[role]["capacity"]["max_used"] <= 40
    for baseline in out["baselines"].values():
        assert baseline["decisions"] == len(predictions["test"])
    written = json.loads((loaded.workspace / "decide.json").read_text())
    assert written["test"]["decisions"] == len(predictions["test"])
