"""A small payments project and logged decisions for the KPI and estimate tests.

:func:`payments_project` writes a spec (label: a chargeback reported within the horizon,
costs as the fraud example) and its outcome source; :func:`decisions_table` builds a
decisions table in the format of ``valuechain.monitor.inputs.read_decisions``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from valuechain.spec.loader import LoadedSpec, load_spec

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
#: 2025-08-04 00:00 UTC, a Monday (window starts line up with capacity periods).
T0_US = 1_754_265_600_000_000


def payments_project(folder: Path, chargebacks: pd.DataFrame, *, horizon: str = "10d",
                     available_at: bool = False, reporting_delay: str | None = None,
                     extra_value: dict[str, Any] | None = None) -> LoadedSpec:
    """Write ``valuechain.yaml``, ``transactions.parquet`` (one dummy row) and
    ``chargebacks.parquet`` (``chargeback_id``, ``transaction_id``, ``happened_at``,
    ``reported_at``) into ``folder`` and load the spec."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"transaction_id": [0], "ts": pd.to_datetime([T0_US], unit="us"),
                  "amount": [1.0]}).to_parquet(folder / "transactions.parquet")
    cb = chargebacks.copy()
    for column in ("happened_at", "reported_at"):
        cb[column] = pd.to_datetime(cb[column].astype(np.int64), unit="us")
    cb.to_parquet(folder / "chargebacks.parquet")
    outcome: dict[str, Any] = {"path": "chargebacks.parquet", "role": "outcome",
                               "keys": ["chargeback_id"]}
    if available_at:
        outcome.update(event_time="happened_at", available_at="reported_at")
    else:
        outcome.update(event_time="reported_at")
    if reporting_delay:
        outcome["reporting_delay"] = reporting_delay
    value: dict[str, Any] = {
        "costs": {"false_negative": "amount", "false_positive": "0.1 * amount + 5",
                  "review": "3"},
        "review": {"catch_rate": 0.9, "friction": 0.02},
        **(extra_value or {}),
    }
    spec = {
        "project": {"name": "payments"},
        "decision": {"statement": "approve, review or decline each payment", "owner": "risk",
                     "moment": "checkout", "actions": ["approve", "review", "decline"],
                     "kpi": "chargeback losses per 1,000 USD of approved volume"},
        "decision_points": {"source": "transactions"},
        "sources": {"transactions": {"path": "transactions.parquet", "role": "events",
                                     "keys": ["transaction_id"], "event_time": "ts"},
                    "chargebacks": outcome},
        "label": {"name": "is_fraud", "source": "chargebacks",
                  "keys": {"transaction_id": "transaction_id"}, "horizon": horizon},
        "features": [{"name": "amount", "expr": "amount"}],
        "value": value,
        "monitoring": {"cadence": "1d"},
    }
    (folder / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_spec(folder)


def decisions_table(time_us: np.ndarray, score: np.ndarray, action: np.ndarray,
                    amount: np.ndarray, ids: np.ndarray | None = None) -> pd.DataFrame:
    """A decisions table: the ``read_decisions`` columns for these decisions."""
    n = len(time_us)
    ids = np.arange(1, n + 1) if ids is None else ids
    t = np.asarray(time_us, dtype=np.int64)
    return pd.DataFrame({
        "decision_id": [f"d{i}" for i in ids],
        "key": [str(i) for i in ids],
        "time": pd.to_datetime(t, unit="us", utc=True).astype("datetime64[us, UTC]"),
        "time_us": t,
        "bundle_version": "v1",
        "policy_version": "three_band@test",
        "score": np.asarray(score, dtype=np.float64),
        "policy_action": np.asarray(action, dtype=object),
        "action": np.asarray(action, dtype=object),
        "overflow": False,
        "origin": "score",
        "latency_ms": np.nan,
        "amount": np.asarray(amount, dtype=np.float64),
        "event.transaction_id": np.asarray(ids, dtype=np.int64),
    })


def simulated_log(rng: np.random.Generator, *, days: int, per_day: int,
                  shift: tuple[int, float] | None = None, cluster: int = 1
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Calibrated decisions over ``days`` days from T0 and chargebacks drawn from them.

    Scores are Beta(0.4, 40) (about 1 % positives); actions follow a three-band policy
    (review from 0.05, decline from 0.3); amounts are Gamma(2, 60). Each label is drawn
    from the score — unless ``shift = (day, extra)``: from that day on, web payments (half
    of them, chosen by ``channel``, not seen by the score) are positive with probability
    ``score + extra`` (a new attack the scores do not see). A positive is reported
    1 to 5 days after the payment. ``cluster = k > 1``: runs of ``k`` consecutive payments
    (one card used ``k`` times) share their score and their outcome — each payment is still
    calibrated, but the labels are no longer independent given the scores.
    """
    n = days * per_day
    t = T0_US + np.sort(rng.integers(0, days * DAY_US, n))
    groups = np.arange(n) // cluster
    score = rng.beta(0.4, 40, n) if cluster == 1 else rng.beta(0.4, 40, n)[groups]
    amount = rng.gamma(2.0, 60.0, n).round(2)
    action = np.where(score >= 0.3, "decline", np.where(score >= 0.05, "review", "approve"))
    truth = score.copy()
    if shift is not None:
        day, extra = shift
        web = rng.random(n) < 0.5
        truth = np.where(web & (t >= T0_US + day * DAY_US), np.minimum(score + extra, 1.0),
                         score)
    positive = rng.random(n) < truth if cluster == 1 else rng.random(n)[groups] < truth
    ids = np.arange(1, n + 1)
    reported = t[positive] + rng.integers(DAY_US, 5 * DAY_US, int(positive.sum()))
    chargebacks = pd.DataFrame({"chargeback_id": np.arange(int(positive.sum())),
                                "transaction_id": ids[positive], "happened_at": t[positive],
                                "reported_at": reported})
    return decisions_table(t, score, action, amount, ids), chargebacks
