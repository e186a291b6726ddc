"""The audit tells its progress per step: each feature, then each probe model."""

from __future__ import annotations

import numpy as np
import pandas as pd

import valuechain as vc


def test_audit_progress_names_each_feature_and_never_goes_back() -> None:
    rng = np.random.default_rng(0)
    n = 4_000
    y = rng.random(n) < 0.1
    table = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=n, freq="h"),
                          "y": y.astype(int), "a": rng.normal(y, 1.0), "b": rng.normal(size=n)})
    seen: list[tuple[str, float]] = []
    vc.audit(frame=table, time_col="t", label_col="y",
             progress=lambda step, done: seen.append((step, done)))
    steps = [step for step, _ in seen]
    assert steps[:2] == ["feature 1/2: a", "feature 2/2: b"]
    assert "probe model, split by time" in steps and "probe model, random split" in steps
    fractions = [done for _, done in seen]
    assert fractions == sorted(fractions) and fractions[0] >= 0 and fractions[-1] <= 1
