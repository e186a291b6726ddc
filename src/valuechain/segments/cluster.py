"""Clustering with its checks: tendency (Hopkins), stability (bootstrap Jaccard, prediction
strength), the choice of k, and stability over time (Hungarian matching).

Everything here works on a scaled matrix ``X`` (rows = customers, columns = features) and
is independent of the spec; :mod:`valuechain.segments.project` feeds it the point-in-time
features of a project.

**Hopkins statistic.** ``m`` points ``y_i`` drawn uniformly in the bounding box of the data
and ``m`` data points ``x_i`` sampled without replacement; ``u_i`` is the distance from
``y_i`` to its nearest data point, ``w_i`` the distance from ``x_i`` to its nearest *other*
data point. In ``d`` dimensions

    H = sum(u_i^d) / (sum(u_i^d) + sum(w_i^d))

(the distances raised to the dimension: the volume of the empty ball around a point, which is
exponential under uniformity; many implementations use ``d = 1`` and then report structure
in uniform data). The rows outside the 1st-99th percentiles of any feature are left out
first (outliers stretch the box). Under uniformity ``H ~ Beta(m, m)`` (centred on 0.5); clustered data push
``H`` towards 1. The p-value is ``P(Beta(m, m) >= H)``. Duplicate rows (``w = 0``) count as
structure: count features of quiet customers tie at zero.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> hopkins(rng.uniform(size=(2_000, 2)), seed=1).clustered
False
>>> blobs = np.concatenate([rng.normal(c, 0.05, (500, 2)) for c in (0, 1, 2)])
>>> hopkins(blobs, seed=1).clustered
True

**Stability** (Hennig's *clusterboot*): refit on bootstrap resamples; the Jaccard similarity
of each original cluster with its most similar resample cluster (on the resampled points),
averaged over resamples. Below 0.6 a cluster is not trusted, 0.75 is stable, 0.85 highly
stable. **Prediction strength** (Tibshirani & Walther 2005): fit on one half, fit on the other,
and measure for each cluster of the second half the share of its pairs the first half's model
puts together; the minimum over clusters, averaged over splits; >= 0.8 supports k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from scipy.special import logsumexp
from scipy.stats import beta
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from valuechain.errors import DataError

__all__ = [
    "HIGHLY_STABLE",
    "METHODS",
    "NOT_TRUSTED",
    "PREDICTION_STRENGTH",
    "STABLE",
    "Hopkins",
    "KStability",
    "Method",
    "TimeStability",
    "choose_k",
    "cluster_jaccard",
    "fit_labels",
    "hopkins",
    "hopkins_from_distances",
    "jaccard_stability",
    "match_segments",
    "prediction_strength",
    "stability_by_k",
    "trust",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Method = Literal["kmeans", "gmm"]
METHODS: tuple[Method, ...] = ("kmeans", "gmm")
#: Hennig's thresholds for the mean bootstrap Jaccard of a cluster.
NOT_TRUSTED, STABLE, HIGHLY_STABLE = 0.6, 0.75, 0.85
#: Tibshirani & Walther's threshold for prediction strength.
PREDICTION_STRENGTH = 0.8
#: Hopkins verdict: clustered when p < ALPHA and H >= H_MIN (a large sample makes a tiny,
#: meaningless departure from uniformity significant; H >= 0.7 asks for a real one).
ALPHA, H_MIN = 0.05, 0.7


def trust(jaccard: float) -> str:
    """Hennig's reading of a cluster's mean bootstrap Jaccard, in words.

    >>> [trust(j) for j in (0.9, 0.8, 0.65, 0.4)]
    ['highly stable', 'stable', 'a pattern, membership doubtful', 'not trusted']
    """
    if jaccard >= HIGHLY_STABLE:
        return "highly stable"
    if jaccard >= STABLE:
        return "stable"
    if jaccard >= NOT_TRUSTED:
        return "a pattern, membership doubtful"
    return "not trusted"


@dataclass(frozen=True)
class Hopkins:
    """The Hopkins statistic ``h`` on ``m`` probes in ``d`` dimensions, with its p-value."""

    h: float
    p_value: float
    m: int
    d: int

    @property
    def clustered(self) -> bool:
        """A clustering tendency: ``p_value < 0.05`` and ``h >= 0.7``."""
        return self.p_value < ALPHA and self.h >= H_MIN

    def to_json(self) -> dict[str, Any]:
        return {"h": self.h, "p_value": self.p_value, "m": self.m, "d": self.d,
                "clustered": self.clustered}


def hopkins_from_distances(u: npt.ArrayLike, w: npt.ArrayLike, d: int) -> Hopkins:
    """``H = sum u^d / (sum u^d + sum w^d)`` and ``P(Beta(m, m) >= H)``, ``m = len(u)``.

    ``u``: distances from uniform probes to the nearest data point; ``w``: distances from
    sampled data points to their nearest other data point. Computed in logs (``u^d`` under-
    or overflows for large ``d``).

    >>> hopkins_from_distances([1.0, 2.0], [1.0, 1.0], d=2).h  # (1 + 4) / (1 + 4 + 1 + 1)
    0.7142857142857143
    """
    uu, ww = np.asarray(u, float), np.asarray(w, float)
    if len(uu) != len(ww) or len(uu) == 0 or d < 1:
        raise ValueError("hopkins: u and w need the same positive length and d >= 1")
    with np.errstate(divide="ignore"):
        lu, lw = logsumexp(d * np.log(uu)), logsumexp(d * np.log(ww))
    if np.isneginf(lu) and np.isneginf(lw):
        h = 0.5
    else:
        h = float(1.0 / (1.0 + np.exp(lw - lu))) if not np.isneginf(lu) else 0.0
    m = len(uu)
    return Hopkins(h, float(beta.sf(h, m, m)), m, d)


def hopkins(x: npt.ArrayLike, *, m: int | None = None, seed: int = 0,
            trim: float = 0.01) -> Hopkins:
    """The Hopkins statistic of the rows of ``x`` (see the module docstring).

    ``m`` defaults to 10 % of the rows, between 10 and 500 (the Beta(m, m) law assumes the
    probes are a small share of the data). Rows outside the ``[trim, 1 - trim]`` quantiles
    of any column are left out first: the probes fill the bounding box, and a few outliers
    (a customer's mean over two events) would stretch it into empty space that reads as
    "clustered". ``trim=0`` keeps every row.
    """
    data = np.asarray(x, float)
    if trim > 0:
        lo, hi = np.quantile(data, trim, axis=0), np.quantile(data, 1 - trim, axis=0)
        data = data[((data >= lo) & (data <= hi)).all(axis=1)]
    n, d = data.shape
    if n < 20:
        raise DataError(f"segments: {n} rows are too few for a clustering tendency; at least 20.")
    size = int(m) if m is not None else int(np.clip(n // 10, 10, 500))
    size = min(size, n - 1)
    rng = np.random.default_rng(seed)
    lo, hi = data.min(axis=0), data.max(axis=0)
    probes = rng.uniform(lo, hi, (size, d))
    tree = cKDTree(data)
    u, _ = tree.query(probes, k=1)
    picked = rng.choice(n, size, replace=False)
    w, _ = tree.query(data[picked], k=2)
    return hopkins_from_distances(u, w[:, 1], d)


def _model(method: Method, k: int, seed: int) -> Any:
    if method == "kmeans":
        return KMeans(n_clusters=k, n_init=4, random_state=seed)
    return GaussianMixture(n_components=k, covariance_type="full", n_init=2,
                           random_state=seed, reg_covar=1e-4)


def fit_labels(x: F64, k: int, method: Method, seed: int = 0) -> tuple[I64, Any]:
    """Fit ``method`` with ``k`` clusters; the labels of the rows and the fitted model.

    One thread: many small fits in a row are faster without a thread pool (and do not crowd
    a shared host).
    """
    with threadpool_limits(1):
        model = _model(method, k, seed).fit(x)
    return np.asarray(model.predict(x), np.int64), model


def cluster_jaccard(reference: I64, other: I64) -> F64:
    """Per cluster of ``reference``: the largest Jaccard similarity with a cluster of ``other``.

    >>> cluster_jaccard(np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0])).tolist()
    [1.0, 1.0]
    >>> cluster_jaccard(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])).tolist()
    [0.6666666666666666, 0.5]
    """
    ka, kb = int(reference.max()) + 1, int(other.max()) + 1
    table = np.zeros((ka, kb))
    np.add.at(table, (reference, other), 1.0)
    union = table.sum(axis=1)[:, None] + table.sum(axis=0)[None, :] - table
    with np.errstate(invalid="ignore", divide="ignore"):
        jac = np.where(union > 0, table / union, 0.0)
    return np.asarray(jac.max(axis=1), float)


def jaccard_stability(x: F64, labels: I64, k: int, method: Method, *, n_boot: int = 20,
                      seed: int = 0) -> F64:
    """Mean bootstrap Jaccard of each cluster of ``labels`` (Hennig's clusterboot)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    total = np.zeros(int(labels.max()) + 1)
    for b in range(n_boot):
        draw = rng.integers(0, n, n)
        idx = np.unique(draw)
        _, fitted = fit_labels(x[draw], k, method, seed + 1 + b)
        with threadpool_limits(1):
            boot = np.asarray(fitted.predict(x[idx]), np.int64)
        ref = labels[idx]
        present = np.bincount(ref, minlength=len(total)) > 0
        jac = np.zeros(len(total))
        jac[present] = cluster_jaccard(_compact(ref), boot)
        total += jac
    return total / n_boot


def _compact(labels: I64) -> I64:
    _, inverse = np.unique(labels, return_inverse=True)
    return np.asarray(inverse, np.int64)


def prediction_strength(x: F64, k: int, method: Method, *, splits: int = 5,
                        seed: int = 0) -> float:
    """Prediction strength of ``k`` clusters (mean over random halvings)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    values = []
    for s in range(splits):
        order = rng.permutation(n)
        train, test = x[order[: n // 2]], x[order[n // 2:]]
        _, fitted = fit_labels(train, k, method, seed + 100 + s)
        own, _ = fit_labels(test, k, method, seed + 200 + s)
        with threadpool_limits(1):
            predicted = np.asarray(fitted.predict(test), np.int64)
        strengths = []
        for c in range(k):
            members = predicted[own == c]
            size = len(members)
            if size < 2:
                continue
            counts = np.bincount(members).astype(float)
            strengths.append(float((counts * (counts - 1)).sum() / (size * (size - 1))))
        values.append(min(strengths) if strengths else 0.0)
    return float(np.mean(values))


@dataclass(frozen=True)
class KStability:
    """The stability of ``k`` clusters by ``method``: per-cluster Jaccard, prediction
    strength, sizes and the fit criterion (k-means inertia, the mixture's BIC)."""

    method: str
    k: int
    jaccard: tuple[float, ...]
    prediction_strength: float
    sizes: tuple[int, ...]
    criterion: float
    silhouette: float = float("nan")

    @property
    def min_jaccard(self) -> float:
        return min(self.jaccard)

    @property
    def score(self) -> tuple[float, float]:
        """How k is ranked: the least stable cluster's Jaccard, then prediction strength."""
        return (round(self.min_jaccard, 2), round(self.prediction_strength, 2))

    @property
    def stable(self) -> bool:
        """Every cluster stable (Jaccard >= 0.75) or prediction strength >= 0.8."""
        return self.min_jaccard >= STABLE or self.prediction_strength >= PREDICTION_STRENGTH

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "k": self.k, "jaccard": list(self.jaccard),
                "min_jaccard": self.min_jaccard,
                "prediction_strength": self.prediction_strength, "sizes": list(self.sizes),
                "criterion": self.criterion, "silhouette": self.silhouette,
                "stable": self.stable}


def stability_by_k(x: F64, ks: range, method: Method, *, n_boot: int = 20,
                   splits: int = 5, seed: int = 0, max_rows: int = 3_000) -> list[KStability]:
    """:class:`KStability` of every ``k`` in ``ks`` (stability measured on at most
    ``max_rows`` rows drawn at random; the full fit sizes the clusters)."""
    rng = np.random.default_rng(seed)
    sub = x[rng.choice(len(x), max_rows, replace=False)] if len(x) > max_rows else x
    out = []
    for k in ks:
        labels, model = fit_labels(x, k, method, seed)
        with threadpool_limits(1):
            sub_labels = np.asarray(model.predict(sub), np.int64)
        jac = jaccard_stability(sub, sub_labels, k, method, n_boot=n_boot, seed=seed)
        present = np.bincount(sub_labels, minlength=k) > 0
        jac = np.where(present, jac, 0.0)
        ps = prediction_strength(sub, k, method, splits=splits, seed=seed)
        criterion = float(model.inertia_ if method == "kmeans" else model.bic(x))
        sil = (float(silhouette_score(sub, sub_labels)) if len(set(sub_labels.tolist())) > 1
               else float("nan"))
        out.append(KStability(method, k, tuple(float(v) for v in jac), ps,
                              tuple(int(v) for v in np.bincount(labels, minlength=k)),
                              criterion, sil))
    return out


@dataclass(frozen=True)
class TimeStability:
    """Segments refit on the next period, matched to the first by the Hungarian method.

    ``matrix[i][j]``: customers in segment ``i`` at the first time and in (matched) segment
    ``j`` at the second; ``kept``: the share on the diagonal; ``ari``: the adjusted Rand index
    of the two labelings; ``mapping[j]``: the first-period segment the second's ``j`` matches.
    """

    customers: int
    kept: float
    ari: float
    matrix: tuple[tuple[int, ...], ...]
    mapping: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"customers": self.customers, "kept": self.kept, "ari": self.ari,
                "matrix": [list(r) for r in self.matrix], "mapping": list(self.mapping)}


def match_segments(first: I64, second: I64, k: int) -> TimeStability:
    """Match the labels ``second`` to ``first`` (the same customers, in the same order).

    >>> m = match_segments(np.array([0, 0, 1, 1, 2]), np.array([2, 2, 0, 0, 1]), 3)
    >>> m.kept, m.ari, m.mapping
    (1.0, 1.0, (1, 2, 0))
    """
    if len(first) != len(second) or len(first) == 0:
        raise DataError("segments: no customer is present at both times; cannot compare "
                        "the segments over time.")
    size = max(k, int(first.max()) + 1, int(second.max()) + 1)
    table = np.zeros((size, size), np.int64)
    np.add.at(table, (first, second), 1)
    rows, cols = linear_sum_assignment(-table)
    mapping = np.zeros(size, np.int64)
    mapping[cols] = rows
    relabelled = mapping[second]
    matrix = np.zeros((size, size), np.int64)
    np.add.at(matrix, (first, relabelled), 1)
    kept = float(np.trace(matrix) / len(first))
    return TimeStability(len(first), kept, float(adjusted_rand_score(first, second)),
                         tuple(tuple(int(v) for v in r) for r in matrix[:k, :k]),
                         tuple(int(v) for v in mapping[:k]))


def choose_k(results: list[KStability]) -> KStability | None:
    """Among the stable ``k`` (every cluster's Jaccard >= 0.75 or prediction strength >= 0.8),
    the best separated: the highest silhouette (then the least-stable cluster's Jaccard, then
    the smaller ``k``); ``None`` when none is stable.

    Stability alone does not pick ``k``: three well separated groups give stable clusters at
    ``k = 2`` (two groups merged, reproducibly) and often at ``k = 4`` (one split along its
    spread); the silhouette prefers 3. Nor does separation alone: it never says "none".

    >>> a = KStability("kmeans", 2, (0.99, 0.99), 0.99, (10, 10), 0.0, 0.55)
    >>> b = KStability("kmeans", 3, (0.98, 0.97, 0.99), 0.98, (5, 5, 10), 0.0, 0.71)
    >>> c = KStability("kmeans", 4, (0.62, 0.7, 0.9, 0.9), 0.6, (5, 5, 5, 5), 0.0, 0.8)
    >>> choose_k([a, b, c]).k
    3
    """
    stable = [r for r in results if r.stable]
    if not stable:
        return None
    return max(stable, key=lambda r: (np.nan_to_num(r.silhouette, nan=-1.0), *r.score, -r.k))
