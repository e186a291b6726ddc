"""Hot-path shortcuts give exactly what the plain code gives (log JSON, plain values, buckets)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from valuechain.serve.decider import _plain
from valuechain.serve.log import _clean, _dumps, _dumps_clean
from valuechain.serve.state import MemoryState

VALUES = [
    {"amount": 12.5, "n": 3, "ok": True, "who": "c-1", "none": None},
    {"amount": math.nan, "inf": -math.inf, "nested": [1.0, math.inf, {"x": math.nan}]},
    {"np": np.float64(2.5), "np_nan": np.float64("nan"), "i": np.int64(7)},
    {"ts": datetime(2025, 9, 28, 12, 0, tzinfo=UTC), "tuple": (1, 2.0)},
    [{"feature": "a", "value": math.nan, "contribution": -0.25}],
]


@pytest.mark.parametrize("value", VALUES)
def test_log_json_fast_path_equals_the_cleaned_encoding(value: object) -> None:
    assert _dumps_clean(value) == _dumps(_clean(value))


@pytest.mark.parametrize("value", [1, 2.5, math.nan, math.inf, "x", True, None,
                                   np.float64(1.5), np.float64("nan"), np.int32(4),
                                   datetime(2025, 1, 1, tzinfo=UTC)])
def test_plain_values(value: object) -> None:
    out = _plain(value)
    if isinstance(value, datetime):
        assert out == value.isoformat()
    elif isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        assert out is None
    else:
        assert out == value and type(out) in (int, float, str, bool, type(None))


def test_bucket_reads_match_the_order_after_puts_replacements_and_trims() -> None:
    state = MemoryState()
    rng = np.random.default_rng(0)
    expected: dict[str, tuple[int, int]] = {}
    for step in range(400):
        uid = f"u{int(rng.integers(0, 60))}"
        t = int(rng.integers(0, 1000))
        state.write([("b", t, uid, {"step": step})])
        expected[uid] = (t, step)
        if step % 50 == 49:
            cutoff = int(rng.integers(0, 300))
            state.write([], [("b", cutoff)])
            expected = {u: v for u, v in expected.items() if v[0] > cutoff}
    for after in (None, 100, 500, 999):
        got = state.read(["b"], [after])[0]
        want = sorted((t, u, {"step": s}) for u, (t, s) in expected.items()
                      if after is None or t > after)
        assert got == want
