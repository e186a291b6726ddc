"""Clustering checks on known samples: the Hopkins statistic against a hand computation,
uniform and clustered data; bootstrap Jaccard, prediction strength, the choice of k and the
Hungarian matching over time."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from valuechain.errors import DataError
from valuechain.segments import (
    KStability,
    choose_k,
    cluster_jaccard,
    hopkins,
    hopkins_from_distances,
    match_segments,
    prediction_strength,
    stability_by_k,
)


def _blobs(seed: int = 0, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    return np.concatenate([rng.normal(c, 0.4, (n, 3)) for c in centres])


def test_hopkins_hand_computation() -> None:
    # u = (1, 2), w = (1, 1), d = 2: H = (1 + 4) / (1 + 4 + 1 + 1) = 5/7
    h = hopkins_from_distances([1.0, 2.0], [1.0, 1.0], d=2)
    assert h.h == pytest.approx(5 / 7)
    # Beta(2, 2): cdf(x) = 3x^2 - 2x^3, so P(H >= 5/7) = 1 - 3x^2 + 2x^3
    x = 5 / 7
    assert h.p_value == pytest.approx(1 - 3 * x**2 + 2 * x**3)
    # d = 3 raises the distances to the third power: (1 + 8) / (1 + 8 + 1 + 1)
    assert hopkins_from_distances([1.0, 2.0], [1.0, 1.0], d=3).h == pytest.approx(9 / 11)
    # huge d: computed in logs, no overflow
    assert hopkins_from_distances([2.0], [1.0], d=5_000).h == pytest.approx(1.0)
    assert hopkins_from_distances([0.0], [0.0], d=2).h == 0.5


def test_hopkins_matches_a_brute_force_computation() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(size=(400, 3))
    got = hopkins(x, m=40, seed=9, trim=0)
    # redo the draws of hopkins() with the same generator, distances by brute force
    r = np.random.default_rng(9)
    probes = r.uniform(x.min(axis=0), x.max(axis=0), (40, 3))
    picked = r.choice(400, 40, replace=False)
    u = np.sqrt(((probes[:, None, :] - x[None, :, :]) ** 2).sum(-1)).min(axis=1)
    dist = np.sqrt(((x[picked][:, None, :] - x[None, :, :]) ** 2).sum(-1))
    dist[np.arange(40), picked] = np.inf
    w = dist.min(axis=1)
    assert got.h == pytest.approx((u**3).sum() / ((u**3).sum() + (w**3).sum()))
    assert cKDTree(x).query(x[picked], k=2)[0][:, 1] == pytest.approx(w)


@pytest.mark.parametrize("d", [1, 2, 6])
def test_hopkins_on_uniform_data_is_about_one_half(d: int) -> None:
    # (the probes' seed differs from the data's: the same seed would draw the data as probes)
    values = [hopkins(np.random.default_rng(s).uniform(size=(1_500, d)), seed=s + 100)
              for s in range(20)]
    assert abs(np.mean([v.h for v in values]) - 0.5) < 0.04
    assert sum(v.clustered for v in values) <= 2
    # the p-value is (about) uniform under uniformity: few below 0.05
    assert sum(v.p_value < 0.05 for v in values) <= 4


def _distances(x: np.ndarray, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    tree = cKDTree(x)
    u = tree.query(r.uniform(x.min(axis=0), x.max(axis=0), (m, x.shape[1])))[0]
    w = tree.query(x[r.choice(len(x), m, replace=False)], k=2)[0][:, 1]
    return u, w


def test_only_the_power_gives_the_beta_null() -> None:
    """Under uniformity H ~ Beta(m, m) needs u^d, w^d; with d = 1 (the common mistake) the
    spread is far too small, so its p-values are wrong, and clusters read weaker."""
    m, d = 100, 6
    right, wrong = [], []
    for s in range(30):
        x = np.random.default_rng(s).uniform(size=(1_000, d))
        u, w = _distances(x, m, s + 500)
        right.append(hopkins_from_distances(u, w, d).h)
        wrong.append(hopkins_from_distances(u, w, 1).h)
    beta_sd = 1 / (2 * np.sqrt(2 * m + 1))
    assert 0.65 * beta_sd < np.std(right) < 1.5 * beta_sd
    assert np.std(wrong) < 0.5 * beta_sd
    u, w = _distances(_blobs(), m, 1)
    assert hopkins_from_distances(u, w, 3).h > hopkins_from_distances(u, w, 1).h


def test_hopkins_sees_clusters() -> None:
    h = hopkins(_blobs(), seed=0)
    assert h.clustered and h.h > 0.9 and h.p_value < 1e-6 and h.d == 3


def test_hopkins_needs_rows() -> None:
    with pytest.raises(DataError, match="too few"):
        hopkins(np.zeros((5, 2)))


def test_cluster_jaccard_and_matching_by_hand() -> None:
    assert cluster_jaccard(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])).tolist() == [
        pytest.approx(2 / 3), 0.5]
    m = match_segments(np.array([0, 0, 0, 1, 1, 2, 2]), np.array([1, 1, 2, 0, 0, 2, 2]), 3)
    assert m.mapping == (1, 0, 2)
    assert m.kept == pytest.approx(6 / 7)
    assert m.matrix == ((2, 0, 1), (0, 2, 0), (0, 0, 2))


def test_stability_finds_planted_clusters() -> None:
    x = _blobs(1)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    results = stability_by_k(x, range(2, 6), "kmeans", n_boot=8, splits=3, seed=0)
    best = choose_k(results)
    assert best is not None and best.k == 3
    assert best.min_jaccard >= 0.85 and best.prediction_strength >= 0.8
    assert prediction_strength(x, 3, "gmm", splits=2) > 0.95


def test_no_stable_k_on_a_gaussian_lump() -> None:
    x = np.random.default_rng(2).normal(size=(900, 2))
    results = stability_by_k(x, range(3, 6), "gmm", n_boot=6, splits=2, seed=0)
    assert all(not r.stable for r in results)
    assert choose_k(results) is None


def test_choose_k_prefers_separation_among_stable() -> None:
    a = KStability("kmeans", 2, (0.99, 0.99), 0.99, (10, 10), 0.0, 0.5)
    b = KStability("kmeans", 3, (0.5, 0.97, 0.99), 0.6, (5, 5, 10), 0.0, 0.9)
    assert not b.stable and choose_k([a, b]) is a
