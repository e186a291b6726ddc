"""The audit's `duplicates` check on scheduled decision points (issue 12): different
customers with identical quiet histories on the same Monday are not duplicates; the same
customer's decision recorded twice still is."""

from __future__ import annotations

import numpy as np
import pandas as pd

from valuechain.audit.run import audit_frame


def _weekly(customers: int = 150, weeks: int = 20, seed: int = 3) -> pd.DataFrame:
    """Every customer every Monday; most weeks quiet (no purchases: all features 0)."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2025-01-06", periods=weeks, freq="7D")
    frame = pd.DataFrame({"customer_id": np.repeat([f"C{i:04d}" for i in range(customers)],
                                                   weeks),
                          "decision_time": np.tile(t, customers)})
    active = rng.random(len(frame)) < 0.3
    frame["n_28d"] = np.where(active, rng.poisson(2, len(frame)) + 1, 0)
    frame["spend_28d"] = np.where(active, rng.gamma(2, 20, len(frame)).round(2), 0.0)
    frame["label"] = (rng.random(len(frame)) < np.where(active, 0.2, 0.6)).astype(int)
    return frame


def test_identical_quiet_histories_of_different_customers_are_not_duplicates() -> None:
    frame = _weekly()
    alike = int(frame.duplicated(subset=["decision_time", "n_28d", "spend_28d", "label"]).sum())
    assert alike > 500  # the situation seen on the churn world: many look-alike rows
    result, _ = audit_frame(frame, "decision_time", "label", "customer_id")
    assert result.get("duplicates") is None
    assert result.get("entity_time_duplicates") is None
    info = result.get("identical_histories")
    assert info is not None and info.severity == "info"
    assert info.evidence["rows"] == alike


def test_a_customers_decision_recorded_twice_is_still_a_duplicate() -> None:
    frame = _weekly()
    doubled = pd.concat([frame, frame.iloc[[5, 77, 901]]], ignore_index=True)
    result, _ = audit_frame(doubled, "decision_time", "label", "customer_id")
    found = result.get("duplicates")
    assert found is not None and found.severity == "warning"
    assert found.evidence["duplicate_rows"] == 3
    assert "key, time, features, label" in found.explanation
    assert result.get("entity_time_duplicates").evidence["repeated_entity_times"] == 3  # type: ignore[union-attr]


def test_event_decisions_with_two_ids_and_one_content_are_duplicates() -> None:
    # One row per transaction: the key is unique, so identical time, features and label
    # under two ids are one event exported twice, as before.
    frame = _weekly(customers=50, weeks=4).drop(columns="customer_id")
    frame["transaction_id"] = np.arange(len(frame))
    frame["decision_time"] = frame["decision_time"] + pd.to_timedelta(
        np.arange(len(frame)), unit="s")
    copies = frame.iloc[[3, 4]].assign(transaction_id=[10_000, 10_001])
    result, _ = audit_frame(pd.concat([frame, copies], ignore_index=True), "decision_time",
                            "label", "transaction_id")
    found = result.get("duplicates")
    assert found is not None and found.evidence["duplicate_rows"] == 2
    assert result.get("identical_histories") is None
