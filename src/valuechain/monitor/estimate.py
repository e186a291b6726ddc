"""Performance estimates before labels: what the calibrated scores say each cohort will do.

Confidence-based performance estimation (as NannyML's CBPE): a calibrated score ``p_i`` is
the probability that decision ``i`` turns out positive. Taking the labels as independent
given the scores, ``Y_i ~ Bernoulli(p_i)``, every metric of
:mod:`valuechain.monitor.kpis` — precision, recall, the KPI, the cost, the positive rate —
has a distribution *before any label is known*, for every cohort, including the ones still
waiting for labels.

Derivation. Each metric is ``(A + sum(a_i Y_i)) / (B + sum(b_i Y_i))`` (a
:class:`~valuechain.monitor.kpis.Form`). The sums ``S = sum(w_i Y_i)`` are weighted
Poisson-binomial variables: ``E[S] = sum(w_i p_i)``, ``Var[S] = sum(w_i^2 p_i (1 - p_i))``.

* Metrics whose denominator does not depend on the labels (precision: the flagged count is
  known; positive rate; loss per 1,000: the approved volume is known; cost) are linear in
  the labels: the point estimate is exact, ``(A + sum(a_i p_i)) / B`` (the estimate of
  ``cost`` is the summed ``expected_cost``).
* Recall (flagged positives / positives) and the false decline rate have random
  denominators; ``E[X / Z] != E[X] / E[Z]`` for small counts, so their point estimate is the
  mean of the simulated ratios (draws with a zero denominator are left out).

Intervals are quantiles of the simulated distribution, not a normal approximation: the money
metrics are sums of a few large, skewed amounts (one 3,000 USD fraud moves a day's KPI), and
precision and recall of a 150-review queue are discrete. ``n_sim`` label vectors are drawn
per cohort (default 2,000: the 5 % and 95 % quantiles move by about 1 % of the interval
width between seeds). Drawing them costs ``O(n_sim * sum(p))``, not ``O(n_sim * rows)``:
rows are grouped by ``p`` into bands ``(2^-(k+1), 2^-k]``; in a band the candidates of a
Bernoulli(``2^-k``) process are placed by geometric gaps and each is kept with probability
``p_i / 2^-k`` (thinning, exact). A 100,000-decision day with 0.5 % positives takes a few
hundredths of a second.

Coverage. When the scores are calibrated and the labels independent given them, a realised
value is one draw from the simulated distribution, so a central interval at ``level`` holds
it with probability ``level`` (a little more for the discrete metrics, whose end points carry
mass). Over matured cohorts, :func:`estimate_coverage` tracks the share actually covered and
the mean absolute error; over ``m`` cohorts the share has a sampling standard deviation of
about ``sqrt(level (1 - level) / m)`` (0.047 for 40 cohorts at 90 %).
When outcomes cluster (several frauds on one card), the labels are not independent given the
scores and the intervals are too narrow: :func:`fit_dispersion` measures the variance
inflation on earlier matured cohorts and ``estimate_signals(..., dispersion=...)`` widens the
intervals by its square root.

Blind spot. The estimate only knows the scores. A change in the relation between features
and outcome that leaves the scores unchanged — a new attack whose payments look like normal
ones — moves the realised KPI but not the estimate: the estimate stays flat and its
intervals stop covering. Only the matured KPI (:func:`~valuechain.monitor.kpis.kpi_signals`)
sees it, ``horizon + delay`` later; ``covered`` and ``estimate_error`` on matured cohorts are
the alarm that the estimate can no longer be trusted. Drift monitoring sees such an attack
only if it moves the inputs.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> pos_sim, pos_row = bernoulli_draws(np.array([0.0, 0.5, 1.0]), 1000, rng)
>>> sorted(set(pos_row.tolist())), int((pos_row == 2).sum())
([1, 2], 1000)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError
from valuechain.monitor.kpis import Form, check_labelled, cohorts, forms, signals_frame
from valuechain.spec.loader import LoadedSpec

__all__ = [
    "N_SIM",
    "Draws",
    "Estimate",
    "bernoulli_draws",
    "estimate_coverage",
    "estimate_form",
    "estimate_signals",
    "fit_dispersion",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Label vectors drawn per cohort.
N_SIM: Final = 2000
#: Bands with a Bernoulli rate of at least this are drawn directly (one uniform per row).
_DIRECT: Final = 1 / 4
#: Bands with at most this many rows are drawn directly too (cheaper than their gaps).
_FEW: Final = 32
#: Largest (draws x candidates) block held in memory at once.
_CHUNK: Final = 4_000_000


def bernoulli_draws(p: F64, n_sim: int, rng: np.random.Generator) -> tuple[I64, I64]:
    """Positive rows of ``n_sim`` independent draws of ``Y_i ~ Bernoulli(p_i)``.

    Returns ``(sim, row)``: one entry per positive, the draw it belongs to and its row.
    Exact; the work is proportional to ``n_sim * sum(p)`` (see the module docstring).
    """
    p = np.asarray(p, dtype=np.float64)
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1):
        raise DataError("`p` must be probabilities in [0, 1].")
    sims: list[I64] = []
    rows: list[I64] = []
    live = np.flatnonzero(p > 0)
    band = np.minimum(np.floor(-np.log2(p[live])), 40).astype(np.int64)
    for k in np.unique(band):
        idx = live[band == k]
        u = 2.0 ** -float(k)
        nb = len(idx)
        if u >= _DIRECT or nb <= _FEW:
            step = max(1, _CHUNK // max(nb, 1))
            for first in range(0, n_sim, step):
                size = min(step, n_sim - first)
                hit = rng.random((size, nb)) < p[idx]
                s, j = np.nonzero(hit)
                sims.append(s + first)
                rows.append(idx[j])
            continue
        mean = nb * u
        m = int(np.ceil(mean + 3 * np.sqrt(mean) + 2))
        step = max(1, _CHUNK // m)
        for first in range(0, n_sim, step):
            size = min(step, n_sim - first)
            s, r = _gaps(rng, u, nb, size, m)
            r = idx[r]
            keep = rng.random(len(r)) * u < p[r]
            sims.append(s[keep] + first)
            rows.append(r[keep])
    if not sims:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(sims).astype(np.int64), np.concatenate(rows).astype(np.int64)


def _gaps(rng: np.random.Generator, u: float, nb: int, size: int, m: int
          ) -> tuple[I64, I64]:
    """``(draw, slot)`` of the successes of ``size`` Bernoulli(``u``) processes on ``nb``
    slots, placed by geometric gaps (``m`` at a time; a draw that has not passed the last
    slot continues from its last success: the gaps are memoryless, so this is exact)."""
    position = np.cumsum(rng.geometric(u, size=(size, m)), axis=1) - 1
    s, j = np.nonzero(position < nb)
    draws, slots = [s], [position[s, j]]
    todo = np.flatnonzero(position[:, -1] < nb)
    start = position[todo, -1]
    while len(todo):
        more = start[:, None] + np.cumsum(rng.geometric(u, size=(len(todo), m)), axis=1)
        s, j = np.nonzero(more < nb)
        draws.append(todo[s])
        slots.append(more[s, j])
        going = more[:, -1] < nb
        todo, start = todo[going], more[going, -1]
    return np.concatenate(draws).astype(np.int64), np.concatenate(slots).astype(np.int64)


@dataclass(frozen=True)
class Estimate:
    """A metric's estimate from the scores: point value and central interval."""

    value: float
    lower: float
    upper: float


class Draws:
    """Label vectors drawn from the scores (:func:`bernoulli_draws`), shared by the metrics
    of a cohort: :meth:`sums` gives ``sum(w_i Y_i)`` per draw, computed once per weight array
    (metrics share theirs: the flagged rows, all rows)."""

    def __init__(self, p: F64, n_sim: int, rng: np.random.Generator) -> None:
        self.n_sim = n_sim
        self.sim, self.row = bernoulli_draws(p, n_sim, rng)
        self._sums: dict[int, tuple[F64, F64]] = {}

    def sums(self, w: F64) -> F64:
        """``sum(w_i Y_i)`` of each draw."""
        hit = self._sums.get(id(w))
        if hit is not None and hit[0] is w:
            return hit[1]
        out: F64
        if not np.any(w):
            out = np.zeros(self.n_sim)
        elif np.all(w == 1):
            out = np.asarray(np.bincount(self.sim, minlength=self.n_sim), dtype=np.float64)
        else:
            out = np.asarray(np.bincount(self.sim, weights=w[self.row], minlength=self.n_sim),
                             dtype=np.float64)
        self._sums[id(w)] = (w, out)
        return out


def estimate_form(form: Form, p: F64, draws: Draws, level: float) -> Estimate:
    """One metric's estimate under ``Y ~ Bernoulli(p)``, from draws shared by the metrics:
    the exact mean when the denominator is fixed, else the mean of the draws; the central
    ``level`` interval of the draws."""
    num = form.num_c.sum() + draws.sums(form.num_w)
    den = form.den_c.sum() + draws.sums(form.den_w)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)
    finite = ratio[np.isfinite(ratio)]
    if not len(finite):
        return Estimate(np.nan, np.nan, np.nan)
    value = form.value(p) if form.fixed_denominator else float(finite.mean())
    alpha = (1 - level) / 2
    lower, upper = np.quantile(finite, [alpha, 1 - alpha])
    return Estimate(value, float(lower), float(upper))


def estimate_signals(labelled: pd.DataFrame, spec: LoadedSpec, *, window_us: int,
                     level: float = 0.9, seed: int = 0, n_sim: int = N_SIM,
                     min_mature_share: float = 1.0,
                     dispersion: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Confidence-based estimates of every cohort's metrics, and their error once mature.

    Parameters
    ----------
    labelled : DataFrame
        Decisions labelled by :func:`~valuechain.monitor.outcomes.label_decisions` (the
        estimate itself reads only ``score``, ``role`` and the cost columns; labels are
        used to score the estimate on matured cohorts).
    spec : LoadedSpec
        The project's spec (binary label).
    window_us : int
        Window length in microseconds.
    level : float, default 0.9
        Coverage of the intervals.
    seed : int, default 0
        Seed of the label draws (each cohort draws from ``(seed, window)``).
    n_sim : int, default :data:`N_SIM`
        Label vectors drawn per cohort.
    min_mature_share : float, default 1.0
        As in :func:`~valuechain.monitor.kpis.kpi_signals`; the matured cohorts are the
        same. ``labelled.attrs["as_of_us"]`` (set by ``label_decisions``) closes windows.
        Below 1 the realised value of a matured cohort covers its mature rows only while the
        estimate covers the whole cohort: keep 1.0 when the tracked coverage matters.
    dispersion : mapping of str to float, optional
        Per metric, the variance inflation :func:`fit_dispersion` measured on *earlier*
        matured cohorts (or the reference period): each interval is widened around its
        estimate by ``sqrt(dispersion)`` (values <= 1 leave it as drawn). For outcomes that
        are not independent given the scores (several frauds on one card).

    Returns
    -------
    DataFrame
        A signals table, section ``estimate``: for every window each metric of
        :data:`~valuechain.monitor.kpis.KPI_METRICS` but ``expected_cost`` (the estimate of
        ``cost`` is it) with ``value`` the estimate and ``lower``/``upper`` its interval
        (``insufficient`` when undefined, e.g. nothing flagged); for matured windows also
        ``estimate_error`` (estimate - realised) and ``covered`` (1.0 when the interval
        holds the realised value, else 0.0), with the metric as ``subject``.
    """
    check_labelled(labelled, spec)
    if not 0 < level < 1:
        raise DataError(f"`level` must lie in (0, 1), got {level}.")
    if n_sim < 100:
        raise DataError(f"`n_sim` must be at least 100 (quantiles of fewer draws are "
                        f"noise), got {n_sim}.")
    as_of = labelled.attrs.get("as_of_us")
    records: list[dict[str, object]] = []
    for cohort in cohorts(labelled, window_us=window_us,
                          as_of_us=None if as_of is None else int(as_of),
                          min_mature_share=min_mature_share):
        rows = cohort.rows
        p = rows["score"].to_numpy(dtype=np.float64)
        rng = np.random.default_rng([seed, cohort.window & 0x7FFFFFFF])
        draws = Draws(p, n_sim, rng)
        base = {"window": cohort.start_us, "section": "estimate"}
        realised = {}
        if cohort.matured:
            mature = cohort.labelled
            y = mature["label"].to_numpy(dtype=np.float64)
            realised = {f.name: f.value(y) for f in forms(mature)}
        for form in forms(rows):
            if form.name == "expected_cost":
                continue
            est = _widen(estimate_form(form, p, draws, level), form.name,
                         (dispersion or {}).get(form.name, 1.0))
            ok = bool(np.isfinite(est.value))
            records.append({**base, "metric": form.name, "subject": "", "value": est.value,
                            "lower": est.lower, "upper": est.upper, "n": form.n,
                            "status": "ok" if ok else "insufficient"})
            truth = realised.get(form.name, np.nan)
            if not cohort.matured or not ok or not np.isfinite(truth):
                continue
            covered = float(est.lower <= truth <= est.upper)
            records.append({**base, "metric": "estimate_error", "subject": form.name,
                            "value": est.value - truth, "lower": np.nan, "upper": np.nan,
                            "n": form.n, "status": "ok"})
            records.append({**base, "metric": "covered", "subject": form.name,
                            "value": covered, "lower": np.nan, "upper": np.nan,
                            "n": form.n, "status": "ok"})
    return signals_frame(records)


#: Metrics that are shares, bounded by 1 (every metric is >= 0).
_SHARES: Final = frozenset({"positive_rate", "precision", "recall", "false_decline_rate"})


def _widen(est: Estimate, metric: str, factor: float) -> Estimate:
    """``est`` with its interval widened around the value by ``sqrt(factor)`` (>= 1)."""
    if not factor > 1 or not np.isfinite(est.value):
        return est
    k = float(np.sqrt(factor))
    lower = max(0.0, est.value - k * (est.value - est.lower))
    upper = est.value + k * (est.upper - est.value)
    return Estimate(est.value, lower, min(upper, 1.0) if metric in _SHARES else upper)


def fit_dispersion(signals: pd.DataFrame, *, level: float = 0.9) -> dict[str, float]:
    """Per metric, how much more the realised values vary than the scores say.

    From the matured windows of an :func:`estimate_signals` table: each estimate's standard
    deviation is read off its interval as ``(upper - lower) / (2 z)`` (``z`` the normal
    quantile of ``level``), and the dispersion is the mean of ``(error / sd)^2`` — about 1
    when the labels are independent given the scores, above 1 when outcomes cluster. Fit it
    on earlier cohorts (or the reference period) and pass it to ``estimate_signals`` for the
    later ones: fitting and scoring on the same cohorts would make their coverage look
    right by construction.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"section": "estimate", "window": [0, 0, 1, 1],
    ...                   "metric": ["recall", "estimate_error"] * 2, "subject": ["", "recall"] * 2,
    ...                   "value": [0.5, 0.2, 0.5, -0.2], "lower": [0.4, None, 0.4, None],
    ...                   "upper": [0.6, None, 0.6, None]})
    >>> round(fit_dispersion(s, level=0.9)["recall"], 2)
    10.82
    """
    mine = signals[signals["section"] == "estimate"]
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    errors = mine[mine["metric"] == "estimate_error"]
    out: dict[str, float] = {}
    for metric in dict.fromkeys(errors["subject"]):
        est = mine[(mine["metric"] == metric) & (mine["subject"] == "")]
        err = errors[errors["subject"] == metric]
        both = err[["window", "value"]].merge(est[["window", "lower", "upper"]], on="window")
        sd = (both["upper"] - both["lower"]).to_numpy(dtype=np.float64) / (2 * z)
        e = both["value"].to_numpy(dtype=np.float64)
        ok = sd > 0
        if ok.any():
            out[metric] = float(np.mean((e[ok] / sd[ok]) ** 2))
    return out


def estimate_coverage(signals: pd.DataFrame) -> pd.DataFrame:
    """Per metric: matured windows, share whose interval covered the realised value, errors.

    Parameters
    ----------
    signals : DataFrame
        A signals table holding :func:`estimate_signals` rows (other sections are ignored).

    Returns
    -------
    DataFrame
        Columns ``metric``, ``windows`` (matured windows scored), ``covered`` (share),
        ``mean_abs_error``, ``mean_error`` (the bias: estimate - realised), and
        ``covered_low`` / ``covered_high``: the 95 % Wilson interval of the covered share, to
        tell a shortfall from the sampling noise of few windows (0.85 over 40 windows is
        consistent with 90 %; over 400 it is not). One row per metric, first-seen order.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"section": ["estimate"] * 4, "metric": ["covered", "covered",
    ...                   "estimate_error", "estimate_error"], "subject": ["recall"] * 4,
    ...                   "value": [1.0, 0.0, 0.25, -0.75]})
    >>> row = estimate_coverage(s).iloc[0].to_dict()
    >>> {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
    {'metric': 'recall', 'windows': 2, 'covered': 0.5, 'mean_abs_error': 0.5, 'mean_error': -0.25, 'covered_low': 0.095, 'covered_high': 0.905}
    """
    mine = signals[signals["section"] == "estimate"]
    cov = mine[mine["metric"] == "covered"]
    err = mine[mine["metric"] == "estimate_error"]
    out = []
    for metric in dict.fromkeys(cov["subject"]):
        c = cov.loc[cov["subject"] == metric, "value"].to_numpy(dtype=np.float64)
        e = err.loc[err["subject"] == metric, "value"].to_numpy(dtype=np.float64)
        low, high = _wilson(float(c.sum()), len(c))
        out.append({"metric": metric, "windows": len(c), "covered": float(c.mean()),
                    "mean_abs_error": float(np.abs(e).mean()) if len(e) else np.nan,
                    "mean_error": float(e.mean()) if len(e) else np.nan,
                    "covered_low": low, "covered_high": high})
    return pd.DataFrame(out, columns=["metric", "windows", "covered", "mean_abs_error",
                                      "mean_error", "covered_low", "covered_high"])


def _wilson(hits: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``hits / n`` (95 % by default)."""
    if n == 0:
        return np.nan, np.nan
    share = hits / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)
