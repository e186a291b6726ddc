"""Drift of the inputs and the score against the bundle's reference period.

Three measures, each an *effect size* (how far apart two distributions are), never a
p-value alone: with 100,000 decisions a day every p-value is tiny, so alerts fire on the
size of the change, above a minimum sample count, for several consecutive windows.

PSI, the population stability index (numeric and categorical features, the score)
    ``PSI = sum_b (c_b - r_b) * ln(c_b / r_b)`` over bins ``b``, where ``r_b`` and ``c_b``
    are the reference's and the current window's shares of rows in bin ``b``. Numeric bins
    are the reference's deciles (``bins=10``: edges at the reference quantiles
    ``1/10 .. 9/10``, the outer bins open to +-inf, tied edges merged), so each holds about
    a tenth of the reference; categorical bins are the categories. Missing values are one
    more bin (a change in the share of nulls is drift), and categories never seen in the
    reference get a bin of their own (reference share 0). An empty bin's share is replaced
    by ``eps = 1e-4`` (0.01 %) before the logarithm — Evidently's convention (``np.place(
    percents, percents == 0, 0.0001)`` in its ``psi_stat_test``), so our PSI equals
    Evidently's on the same bins. Rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2
    large.
KS, the two-sample Kolmogorov-Smirnov statistic (numeric features, the score)
    ``D = max_x |F_ref(x) - F_cur(x)|`` over the non-missing values, in [0, 1]; :func:`ks`
    also returns SciPy's p-value (``scipy.stats.ks_2samp``, two-sided).
JS, the Jensen-Shannon *distance* (categorical features)
    ``JS = sqrt((KL(r || m) + KL(c || m)) / 2)``, ``m = (r + c) / 2``, logarithms base 2:
    the square root of the Jensen-Shannon divergence, a metric in [0, 1] (0: same
    distribution; 1: disjoint categories). Missing values are a category. Zero shares need
    no epsilon (``0 * log 0 = 0``). The same as NannyML's ``jensen_shannon`` method and
    ``scipy.spatial.distance.jensenshannon(r, c, base=2)``.

>>> round(psi([1, 2, 3, 4], [1, 2, 3, 4], bins=2), 6)
0.0
>>> round(js(["a", "a", "b", "b"], ["a", "a", "a", "a"]), 4)
0.5579
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError
from valuechain.monitor.inputs import Reference, window_index, window_signals

if TYPE_CHECKING:
    from valuechain.registry.bundle import Bundle

__all__ = ["EPS", "MIN_SAMPLES", "bin_edges", "drift_ranking", "drift_signals",
           "feature_importance", "js", "ks", "ks_statistic", "psi", "psi_from_counts"]

#: The share an empty bin gets before the logarithm of PSI (Evidently's 0.0001).
EPS: Final = 1e-4
#: Fewer current rows than this in a window: the drift signals say ``insufficient``.
MIN_SAMPLES: Final = 500


# ----------------------------------------------------------------------------- measures

def _numeric(values: Any, what: str) -> npt.NDArray[np.float64]:
    """Values as float64 (None / pandas NA -> NaN), without boxing numeric input."""
    refused = DataError(f"`{what}`: expected numbers, got text or booleans; use js() or "
                        "psi(categorical=True) for categories.")
    if isinstance(values, pd.Series | pd.Index):
        if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(
                values.dtype):
            raise refused
        return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan)).ravel()
    array = np.asarray(values)
    if array.dtype.kind in "iuf":
        return array.astype(np.float64).ravel()
    if array.dtype.kind == "b" or any(isinstance(v, str) for v in array.ravel()):
        raise refused
    try:
        return np.asarray(pd.to_numeric(pd.Series(array.ravel(), dtype=object)),
                          dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"`{what}`: expected numbers ({err}); use js() or "
                        "psi(categorical=True) for categories.") from err


def bin_edges(reference: Any, bins: int = 10) -> npt.NDArray[np.float64]:
    """Inner edges of ``bins`` reference-quantile bins (tied quantiles merged).

    The edges are reference values (the ``inverted_cdf`` quantiles ``1/bins ..
    (bins-1)/bins``: the smallest value with at least that share of the reference at or
    below it), and bins are closed on the right: ``(-inf, e1], (e1, e2], ..., (ek, +inf)``;
    ``x`` falls in bin ``searchsorted(edges, x, side="left")``. Because the edges are
    values of the sample, not interpolations, PSI is exactly invariant to any strictly
    increasing transform of both samples. Missing values are not binned (their own bin).

    >>> bin_edges([1, 2, 3, 4, 5, 6, 7, 8], bins=4).tolist()  # 2 values per bin
    [2.0, 4.0, 6.0]
    >>> bin_edges([0, 0, 0, 1], bins=4).tolist()  # the tied quantiles merge
    [0.0]
    """
    if int(bins) < 1:
        raise DataError(f"`bins` must be >= 1, got {bins!r}.")
    ref = _numeric(reference, "reference")
    ref = ref[~np.isnan(ref)]
    if len(ref) == 0:
        return np.array([], dtype=np.float64)
    quantiles = np.quantile(ref, np.linspace(0.0, 1.0, int(bins) + 1)[1:-1],
                            method="inverted_cdf")
    return np.unique(quantiles)


def _bin_counts(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]
                ) -> npt.NDArray[np.int64]:
    """Counts per bin, the last bin holding the missing values."""
    missing = np.isnan(values)
    idx = np.searchsorted(edges, values[~missing], side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1)
    return np.append(counts, missing.sum()).astype(np.int64)


def psi_from_counts(reference: npt.ArrayLike, current: npt.ArrayLike, *,
                    eps: float | tuple[float, float] = EPS) -> float:
    """PSI of two histograms over the same bins (counts or shares; empty bins -> ``eps``).

    Bins empty on both sides are left out (they carry no information). ``eps`` may be a
    pair ``(reference, current)`` to use another tool's per-side convention.

    >>> round(psi_from_counts([50, 50], [80, 20]), 6)  # (.8-.5)ln(.8/.5) + (.2-.5)ln(.2/.5)
    0.415888
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.shape != c.shape:
        raise DataError(f"psi: reference and current need the same bins, got {r.shape} and "
                        f"{c.shape}.")
    if r.sum() <= 0 or c.sum() <= 0:
        return float("nan")
    keep = (r > 0) | (c > 0)
    rs, cs = r[keep] / r.sum(), c[keep] / c.sum()
    eps_r, eps_c = (eps, eps) if isinstance(eps, int | float) else eps
    rs = np.where(rs == 0, eps_r, rs)
    cs = np.where(cs == 0, eps_c, cs)
    return float(np.sum((cs - rs) * np.log(cs / rs)))


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int | npt.ArrayLike = 10,
        categorical: bool = False, eps: float | tuple[float, float] = EPS) -> float:
    """Population stability index of ``current`` against ``reference``.

    Parameters
    ----------
    reference, current : array-like
        Numeric values (NaN/None: missing, its own bin), or categories with
        ``categorical=True`` (None/NaN: its own category; categories new in ``current``
        get their own bin).
    bins : int or array-like, default 10
        Numeric: the number of reference-quantile bins (:func:`bin_edges`), or the inner
        edges themselves (to compare with another tool on its bins).
    eps : float or (float, float), default 1e-4
        The share an empty bin gets (Evidently's convention).

    Returns
    -------
    float
        PSI >= 0 (0: the same shares in every bin); NaN when a side is empty.

    Examples
    --------
    Two reference-quantile bins of [1..4] are ``(-inf, 2]`` and ``(2, inf)``; the current window
    has 3/4 in the first: ``(.75 - .5) ln(.75/.5) + (.25 - .5) ln(.25/.5) = 0.2747``.

    >>> round(psi([1, 2, 3, 4], [1, 1, 2, 4], bins=2), 4)
    0.2747

    New category ``c`` and vanished ``b`` each get the eps share on the empty side:
    ``2 * (0.5 - 1e-4) * ln(0.5 / 1e-4) = 8.5155``.

    >>> round(psi(["a", "b"], ["a", "c"], categorical=True), 4)
    8.5155
    """
    if categorical:
        r_counts, c_counts = _category_counts(reference, current)
        return psi_from_counts(r_counts, c_counts, eps=eps)
    ref = _numeric(reference, "reference")
    cur = _numeric(current, "current")
    edges = (bin_edges(ref, int(bins)) if isinstance(bins, int | np.integer)
             else np.asarray(bins, dtype=np.float64))
    return psi_from_counts(_bin_counts(ref, edges), _bin_counts(cur, edges), eps=eps)


def _as_text(values: Any) -> pd.Series:
    """Categories as text (booleans ``'True'``/``'False'``), missing values kept missing."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    return series.astype("str").reset_index(drop=True)


def _category_codes(reference: Any, current: Any
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """Integer codes of both samples over their union of categories (missing: a category)."""
    ref, cur = _as_text(reference), _as_text(current)
    both = pd.concat([ref, cur], ignore_index=True)
    codes, levels = pd.factorize(both, use_na_sentinel=False)
    codes = np.asarray(codes, dtype=np.int64)
    return codes[:len(ref)], codes[len(ref):], len(levels)


def _category_counts(reference: Any, current: Any
                     ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    r, c, k = _category_codes(reference, current)
    return (np.bincount(r, minlength=k).astype(np.int64),
            np.bincount(c, minlength=k).astype(np.int64))


def ks_statistic(reference_sorted: npt.NDArray[np.float64],
                 current_sorted: npt.NDArray[np.float64]) -> float:
    """``max |F_ref - F_cur|`` of two sorted samples without missing values (vectorised).

    >>> round(ks_statistic(np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0])), 6)
    0.333333
    """
    r, c = reference_sorted, current_sorted
    if len(r) == 0 or len(c) == 0:
        return float("nan")
    # Both CDFs at every point of either sample (as SciPy). A sorted sample's own CDF at
    # its points needs no search: at the last of each run of equal values it is (i + 1) / n.
    d = 0.0
    for own, other in ((r, c), (c, r)):
        last = np.flatnonzero(np.append(own[1:] != own[:-1], True))
        f_own = (last + 1) / len(own)
        f_other = np.searchsorted(other, own[last], side="right") / len(other)
        d = max(d, float(np.max(np.abs(f_own - f_other))))
    return d


def ks(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: ``(statistic, p-value)`` over the non-missing values.

    The statistic is SciPy's ``ks_2samp`` (two-sided, ``method="auto"``); NaN, NaN when a
    side has no value.

    >>> round(ks([1, 2, 3], [2, 3, 4])[0], 6)
    0.333333
    """
    from scipy.stats import ks_2samp

    ref = _numeric(reference, "reference")
    cur = _numeric(current, "current")
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), float("nan")
    result = ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def _js_from_counts(r: npt.NDArray[Any], c: npt.NDArray[Any]) -> float:
    if r.sum() <= 0 or c.sum() <= 0:
        return float("nan")
    p, q = r / r.sum(), c / c.sum()
    m = (p + q) / 2.0

    def kl(a: npt.NDArray[np.float64]) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2.0)))


def js(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two samples of categories.

    Missing values are a category of their own; categories seen on one side only count
    with a share of 0 on the other (no epsilon needed).

    >>> js(["a", "b"], ["a", "b"])
    0.0
    >>> js(["a"], ["b"])
    1.0
    """
    r, c = _category_counts(reference, current)
    return _js_from_counts(r.astype(np.float64), c.astype(np.float64))


# ----------------------------------------------------------------------------- per window

def _windows(decisions: pd.DataFrame, window_us: int) -> tuple[npt.NDArray[np.int64],
                                                                npt.NDArray[np.int64]]:
    index = window_index(decisions, window_us)
    windows, codes = np.unique(index, return_inverse=True)
    return windows.astype(np.int64), codes.astype(np.int64)


def _is_categorical(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def drift_signals(decisions: pd.DataFrame, reference: Reference, *, window_us: int,
                  importance: Mapping[str, float] | None = None, bins: int = 10,
                  min_samples: int = MIN_SAMPLES) -> pd.DataFrame:
    """Drift of every feature and of the score, per window, as a signals table.

    Parameters
    ----------
    decisions : DataFrame
        :func:`~valuechain.monitor.inputs.read_decisions`' table.
    reference : Reference
        The bundle's reference period (:func:`~valuechain.monitor.inputs.load_reference`).
    window_us : int
        Window length in µs; windows are capacity periods (anchor Monday 1970-01-05 UTC).
    importance : mapping, optional
        Feature -> normalised importance (:func:`feature_importance`): adds per window the
        metric ``weighted_psi`` (subject ``""``), the importance-weighted sum of the
        features' PSI.
    bins : int, default 10
        Reference-quantile bins of the numeric PSI.
    min_samples : int, default 500
        Windows with fewer current rows are ``insufficient`` (the value is still given).

    Returns
    -------
    DataFrame
        Signals (section ``drift``): per feature ``psi`` and ``ks`` (numeric) or ``psi`` and
        ``js`` (categorical); for the score ``score_psi`` and ``score_ks`` (subject
        ``"score"``); ``n`` the window's rows with a value (KS) or all rows (PSI, JS: missing
        values are a bin). Features of the reference missing from the log are skipped.
    """
    windows, codes = _windows(decisions, window_us)
    n_win = len(windows)
    counts = np.bincount(codes, minlength=n_win)
    rows: list[dict[str, Any]] = []
    ref_frame = reference.frame

    def add(metric: str, subject: str, values: npt.NDArray[np.float64],
            n: npt.NDArray[np.int64]) -> None:
        for w in range(n_win):
            rows.append({"window": int(windows[w]), "window_us": window_us,
                         "section": "drift", "metric": metric, "subject": subject,
                         "value": float(values[w]), "n": int(n[w]),
                         "status": "ok" if n[w] >= min_samples else "insufficient"})

    order = np.argsort(codes, kind="stable")  # rows grouped by window
    bounds = np.concatenate([[0], np.cumsum(counts)])
    Measures = list[tuple[str, npt.NDArray[np.float64], npt.NDArray[np.int64]]]

    def measure(column: str) -> Measures:
        ref_col, cur_col = ref_frame[column], decisions[column]
        prefix = "score_" if column == "score" else ""
        if _is_categorical(ref_col) or _is_categorical(cur_col):
            ref_codes, cur_codes, k = _category_codes(ref_col, cur_col)
            r = np.bincount(ref_codes, minlength=k).astype(np.float64)
            grid = np.bincount(codes * k + cur_codes, minlength=n_win * k).reshape(n_win, k)
            p = np.array([psi_from_counts(r, grid[w]) for w in range(n_win)])
            j = np.array([_js_from_counts(r, grid[w].astype(np.float64))
                          for w in range(n_win)])
            return [(f"{prefix}psi", p, counts), (f"{prefix}js", j, counts)]
        ref = ref_col.to_numpy(dtype=np.float64, na_value=np.nan)
        cur = cur_col.to_numpy(dtype=np.float64, na_value=np.nan)
        edges = bin_edges(ref, bins)
        r = _bin_counts(ref, edges).astype(np.float64)
        k = len(edges) + 2
        missing = np.isnan(cur)
        idx = np.where(missing, k - 1, np.searchsorted(edges, np.nan_to_num(cur), side="left"))
        grid = np.bincount(codes * k + idx, minlength=n_win * k).reshape(n_win, k)
        p = np.array([psi_from_counts(r, grid[w]) for w in range(n_win)])
        ref_sorted = np.sort(ref[~np.isnan(ref)])
        by_window = cur[order]
        ks_vals = np.full(n_win, np.nan)
        present = np.bincount(codes[~missing], minlength=n_win).astype(np.int64)
        for w in range(n_win):
            chunk = by_window[bounds[w]:bounds[w + 1]]
            ks_vals[w] = ks_statistic(ref_sorted, np.sort(chunk[~np.isnan(chunk)]))
        return [(f"{prefix}psi", p, counts), (f"{prefix}ks", ks_vals, present)]

    targets = [f for f in reference.features if f in decisions.columns] + ["score"]
    # Features are independent and NumPy's sorts and searches release the GIL.
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        results = list(pool.map(measure, targets))
    psis: dict[str, npt.NDArray[np.float64]] = {}
    for subject, measures in zip(targets, results, strict=True):
        for metric, values, n in measures:
            add(metric, subject, values, n)
        psis[subject] = measures[0][1]
    if importance:
        total = np.zeros(n_win)
        for name, weight in importance.items():
            if name in psis:
                total += float(weight) * np.nan_to_num(psis[name])
        add("weighted_psi", "", total, counts)
    return window_signals(rows)


# ----------------------------------------------------------------------------- ranking

def feature_importance(bundle: Bundle, reference: Reference | None = None
                       ) -> dict[str, float]:
    """The bundle model's feature importance, normalised to sum to 1.

    LightGBM: total gain of the splits on each feature (``importance_type="gain"``).
    Logistic regression and other candidates: the mean absolute contribution of each
    feature to the log-odds over the reference rows (for logistic regression
    ``|coef| * |standardised value|``, summed over a feature's inputs: ``|coef| * std``
    up to the mean-absolute-deviation / std ratio); zeros when the candidate has no
    explanation. Features with no importance get 0.
    """
    from valuechain.models import LightGBM

    names = bundle.feature_names
    model = bundle.model
    weights: npt.NDArray[np.float64]
    if isinstance(model, LightGBM) and model.booster is not None:
        weights = np.asarray(model.booster.feature_importance(importance_type="gain"),
                             dtype=np.float64)
    elif reference is not None and len(reference.frame):
        sample = reference.frame.iloc[:: max(1, len(reference.frame) // 5000)]
        weights = np.abs(bundle.contributions(sample[list(names)])).mean(axis=0)
    else:
        weights = np.zeros(len(names))
    total = float(weights.sum())
    if total <= 0 or not np.isfinite(total):
        return dict.fromkeys(names, 0.0)
    return {n: float(w / total) for n, w in zip(names, weights, strict=True)}


def drift_ranking(signals: pd.DataFrame, importance: Mapping[str, float]) -> pd.DataFrame:
    """Features ranked by drift weighted by importance, on the latest sufficient window.

    Returns
    -------
    DataFrame
        One row per feature: ``feature``, ``importance``, ``window`` (the latest window
        with ``ok`` status), ``psi`` there, ``psi_max`` (over all ``ok`` windows), the
        second measure there (``ks`` or ``js``), ``weighted`` = importance x PSI, and
        ``rank`` (1: most weighted drift), sorted by rank.
    """
    drift = signals[(signals["section"] == "drift") & (signals["status"] == "ok")
                    & (signals["subject"] != "score") & (signals["subject"] != "")]
    out = []
    for feature, group in drift.groupby("subject", sort=True):
        psi_rows = group[group["metric"] == "psi"].sort_values("window")
        if psi_rows.empty:
            continue
        last = psi_rows.iloc[-1]
        other = group[(group["metric"].isin(["ks", "js"])) & (group["window"] == last["window"])]
        weight = float(importance.get(str(feature), 0.0))
        out.append({"feature": str(feature), "importance": weight, "window": last["window"],
                    "psi": float(last["value"]), "psi_max": float(psi_rows["value"].max()),
                    "measure": str(other["metric"].iloc[0]) if len(other) else "",
                    "measure_value": float(other["value"].iloc[0]) if len(other) else np.nan,
                    "weighted": weight * float(last["value"])})
    frame = pd.DataFrame(out, columns=["feature", "importance", "window", "psi", "psi_max",
                                       "measure", "measure_value", "weighted"])
    frame = frame.sort_values(["weighted", "psi"], ascending=False, kind="stable")
    frame["rank"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame.reset_index(drop=True)
