"""LightGBM's single-row fast path (a live decision) gives the general path's numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from valuechain.models import LightGBM
from valuechain.models.base import FeatureSet

pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def model() -> LightGBM:
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.exponential(size=n),
                          "c": rng.choice(["a", "b", "c"], n)})
    frame.loc[rng.random(n) < 0.1, "z"] = np.nan
    y = ((frame["x"] + (frame["c"] == "b") + rng.normal(size=n)) > 1.2).astype(int).to_numpy()
    return LightGBM(FeatureSet(("x", "z"), ("c",)), params={"num_threads": 1},
                    num_boost_round=60).fit(frame[:2400], y[:2400], frame[2400:], y[2400:])


def test_one_row_matches_the_batch_path_bit_for_bit(model: LightGBM) -> None:
    rng = np.random.default_rng(4)
    rows = pd.DataFrame({"x": rng.normal(size=200), "z": rng.exponential(size=200),
                         "c": rng.choice(["a", "b", "c", "unseen"], 200)})
    rows.loc[::7, "z"] = np.nan
    matrix = model.matrix(rows)
    batch_score = model._predict(matrix, contrib=False)  # many rows: Booster's general path
    batch_contrib = model._predict(matrix, contrib=True)
    for i in range(len(rows)):
        one = model._predict(matrix[i:i + 1], contrib=False)
        assert one.shape == (1,)
        assert one[0] == batch_score[i]
        contrib = model._predict(matrix[i:i + 1], contrib=True)
        assert contrib.shape == (1, 4)  # three features and the bias
        assert np.array_equal(contrib[0], batch_contrib[i])
    # the fast single-row API was used (and is cached per prediction type)
    assert model._fast[False][1] is not None and model._fast[True][1] is not None
    # contributions add up to the raw log-odds of the score
    logit = np.log(batch_score / (1 - batch_score))
    np.testing.assert_allclose(batch_contrib.sum(axis=1), logit, rtol=0, atol=1e-9)


def test_one_row_equals_the_public_booster_predict(model: LightGBM) -> None:
    matrix = model.matrix(pd.DataFrame({"x": [0.3], "z": [np.nan], "c": ["b"]}))
    assert model._predict(matrix, contrib=False)[0] == model.booster.predict(matrix)[0]
    assert np.array_equal(model._predict(matrix, contrib=True),
                          model.booster.predict(matrix, pred_contrib=True))
