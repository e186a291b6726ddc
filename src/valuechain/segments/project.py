"""``valuechain segment``: behavioural segments of a project, checked before they are trusted.

:func:`segment_project` reads the spec's ``segments:`` block and

1. computes the features of every active entity at the decision time ``as_of``
   (:func:`~valuechain.segments.frame.features_at`), log-transforms the ``log`` features and
   scales every feature to mean 0, standard deviation 1;
2. asks whether there is anything to cluster: the Hopkins statistic with its p-value, and a
   Gaussian mixture's BIC with one component against several. Without a tendency (Hopkins
   not significant or below 0.7) or when one Gaussian lump fits best, the answer is
   **no structure**, said plainly, with quantile bands of one or two features instead;
3. otherwise tries ``k`` in the range with each method and keeps the most stable ``k``
   (every cluster's bootstrap Jaccard >= 0.75, or prediction strength >= 0.8;
   :func:`~valuechain.segments.cluster.choose_k`); none stable: **no stable segments**;
4. refits on the next period (``as_of + period``) and matches the segments (Hungarian): the
   share of customers who keep their segment and the adjusted Rand index;
5. describes each segment: size, the features that set it apart (in words), the matured
   outcome rate (retention = 1 - churn rate for a churn label) with a bootstrap interval, and
   the action of the spec's named segment it matches.

Artifacts go to ``<workspace>/segments/``: ``segments.json`` and ``assignments.parquet``
(each entity's segment at ``as_of``), written atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from scipy.optimize import linear_sum_assignment
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from valuechain.data.build import EngineChoice
from valuechain.errors import DataError, SpecError
from valuechain.evaluate.bootstrap import block_ratio_interval
from valuechain.io import write_json, write_parquet
from valuechain.segments.cluster import (
    Hopkins,
    KStability,
    Method,
    TimeStability,
    choose_k,
    fit_labels,
    hopkins,
    match_segments,
    stability_by_k,
    trust,
)
from valuechain.segments.frame import PointFrame, data_as_of, features_at, schedule_times
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import Segments

__all__ = ["Band", "SegmentProfile", "SegmentResult", "Verdict", "outcome_differs",
           "segment_project"]

F64 = npt.NDArray[np.float64]
Verdict = Literal["segments", "no_structure", "unstable"]
Progress = Callable[[str, float], None]
#: A feature "sets a segment apart" when its mean differs by at least this many SDs.
DISTINCT_Z = 0.5


@dataclass(frozen=True)
class SegmentProfile:
    """One segment: who is in it, what sets it apart, how it fares, what to do."""

    index: int
    name: str
    size: int
    share: float
    means: dict[str, float]
    z: dict[str, float]
    words: tuple[str, ...]
    rate: float | None
    rate_low: float | None
    rate_high: float | None
    action: str | None
    jaccard: float

    @property
    def trust(self) -> str:
        """Hennig's reading of the segment's bootstrap Jaccard (``highly stable``...)."""
        return trust(self.jaccard)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__, words=list(self.words), trust=self.trust)


@dataclass(frozen=True)
class Band:
    """A quantile band of one feature: ``[low, high)`` of ``feature``, its size and rate."""

    feature: str
    band: str
    low: float
    high: float
    size: int
    rate: float | None
    rate_low: float | None
    rate_high: float | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SegmentResult:
    """What :func:`segment_project` found (``to_json()`` is ``segments.json``)."""

    verdict: Verdict
    message: str
    as_of: datetime
    next_time: datetime | None
    features: tuple[str, ...]
    rows: int
    dropped_missing: int
    hopkins: Hopkins
    bic: dict[int, float]
    stability: tuple[KStability, ...]
    method: str | None
    k: int | None
    profiles: tuple[SegmentProfile, ...]
    over_time: TimeStability | None
    bands: tuple[Band, ...]
    label: str
    mature: bool
    seconds: float
    paths: dict[str, Path] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "message": self.message,
            "as_of": self.as_of.isoformat(),
            "next_time": self.next_time.isoformat() if self.next_time else None,
            "features": list(self.features), "rows": self.rows,
            "dropped_missing": self.dropped_missing, "hopkins": self.hopkins.to_json(),
            "bic": {str(k): v for k, v in self.bic.items()},
            "stability": [s.to_json() for s in self.stability],
            "method": self.method, "k": self.k,
            "profiles": [p.to_json() for p in self.profiles],
            "over_time": self.over_time.to_json() if self.over_time else None,
            "bands": [b.to_json() for b in self.bands],
            "label": self.label, "mature": self.mature,
            "seconds": round(self.seconds, 3),
            "paths": {k: str(v) for k, v in self.paths.items()},
        }


def _config(loaded: LoadedSpec) -> Segments:
    cfg = loaded.spec.segments
    if cfg is None:
        raise SpecError(
            f"{loaded.path.name}: no `segments:` block. Add one naming at least two features, "
            "e.g. `segments: {features: [sessions_28d, tickets_90d]}` (docs/segments.md).")
    names = {f.name for f in loaded.spec.features}
    for i, extra in enumerate(cfg.define):
        if extra.name in names:
            raise SpecError(f"{loaded.where('segments', 'define', i, 'name')}: '{extra.name}' "
                            "is already a feature; give the segment feature another name.")
        names.add(extra.name)
    for i, name in enumerate(cfg.features):
        if name not in names:
            raise SpecError(f"{loaded.where('segments', 'features', i)}: '{name}' is not a "
                            f"feature of the spec; use one of {sorted(names)} or define it "
                            "under `segments.define`.")
    for i, name in enumerate(cfg.log):
        if name not in cfg.features:
            raise SpecError(f"{loaded.where('segments', 'log', i)}: '{name}' is not among "
                            "`segments.features`; list it there or drop it from `log`.")
    for seg, act in cfg.actions.items():
        for side in ("high", "low"):
            for i, name in enumerate(getattr(act, side)):
                if name not in cfg.features:
                    raise SpecError(
                        f"{loaded.where('segments', 'actions', seg, side, i)}: '{name}' is "
                        f"not among `segments.features` {cfg.features}.")
    return cfg


def _with_defined(loaded: LoadedSpec, cfg: Segments) -> LoadedSpec:
    """``loaded`` with the ``segments.define`` features appended to ``features`` (messages
    about them still point at their lines under ``segments.define``)."""
    if not cfg.define:
        return loaded
    first = len(loaded.spec.features)
    spec = loaded.spec.model_copy(update={"features": [*loaded.spec.features, *cfg.define]})
    lines = dict(loaded.lines)
    for loc, line in loaded.lines.items():
        if loc[:2] == ("segments", "define") and len(loc) >= 3 and isinstance(loc[2], int):
            lines[("features", first + loc[2], *loc[3:])] = line
    return LoadedSpec(spec, loaded.path, lines)


def _pick_time(loaded: LoadedSpec, cfg: Segments, as_of: datetime | None) -> datetime:
    latest = data_as_of(loaded)
    times = schedule_times(loaded, latest)
    if not times:
        raise DataError(f"{loaded.where('decision_points', 'schedule', 'start')}: no decision "
                        f"time up to the data's latest time {latest.isoformat()}.")
    wanted = as_of or cfg.as_of
    if wanted is not None:
        if wanted not in times:
            near = min(times, key=lambda t: abs((t - wanted).total_seconds()))
            field_ = "--as-of" if as_of else loaded.where("segments", "as_of")
            raise SpecError(f"{field_}: {wanted.isoformat()} is not a decision time of the "
                            f"schedule; the nearest is {near.isoformat()}.")
        return wanted
    horizon = loaded.spec.label.horizon
    usable = [t for t in times if t + max(horizon, cfg.period) <= latest]
    return usable[-1] if usable else times[-1]


def _matrix(point: PointFrame, cfg: Segments, where: str) -> tuple[pd.DataFrame, F64, int]:
    frame = point.frame
    for name in cfg.features:
        if frame[name].isna().all() and len(frame):
            raise SpecError(f"{where}: feature '{name}' has no numeric value at "
                            f"{point.t.isoformat()}; segment on numeric features.")
    complete = frame.dropna(subset=list(cfg.features)).reset_index(drop=True)
    if len(complete) < 50:
        raise DataError(f"{where}: only {len(complete)} entities with every feature at "
                        f"{point.t.isoformat()}; segments need at least 50.")
    x = complete[list(cfg.features)].to_numpy(float)
    for j, name in enumerate(cfg.features):
        if name in cfg.log:
            x[:, j] = np.log1p(np.maximum(x[:, j], 0.0))
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    return complete, (x - x.mean(axis=0)) / sd, len(frame) - len(complete)


def _bic(x: F64, top: int, seed: int) -> dict[int, float]:
    out = {}
    with threadpool_limits(1):
        for k in range(1, top + 1):
            gm = GaussianMixture(k, covariance_type="full", n_init=1, random_state=seed,
                                 reg_covar=1e-4).fit(x)
            out[k] = float(gm.bic(x))
    return out


def _rate(label: pd.Series, keys: pd.Series, n_boot: int,
          mature: bool) -> tuple[float | None, float | None, float | None]:
    y = label.to_numpy(float)
    if not mature or len(y) == 0 or np.isnan(y).all():
        return None, None, None
    ok = ~np.isnan(y)
    iv = block_ratio_interval(y[ok], np.ones(int(ok.sum())), keys.to_numpy()[ok],
                              n_boot=n_boot)
    return iv.value, iv.low, iv.high


def _words(z: dict[str, float], means: dict[str, float], overall: dict[str, float]) -> tuple[
        str, ...]:
    ranked = sorted((f for f in z if abs(z[f]) >= DISTINCT_Z), key=lambda f: -abs(z[f]))[:3]
    if not ranked:
        return ("close to the average on every feature",)
    return tuple(f"{'high' if z[f] > 0 else 'low'} {f} ({means[f]:.3g} vs {overall[f]:.3g} "
                 "overall)" for f in ranked)


def _names(cfg: Segments, z: F64) -> list[tuple[str | None, str | None]]:
    """The spec's named segment (and action) each cluster matches, by profile (Hungarian)."""
    k = len(z)
    entries = list(cfg.actions.items())
    if not entries:
        return [(None, None)] * k
    col = {f: j for j, f in enumerate(cfg.features)}
    score = np.zeros((k, len(entries)))
    need = np.zeros(len(entries))
    for a, (_, act) in enumerate(entries):
        score[:, a] = (sum((z[:, col[f]] for f in act.high), np.zeros(k))
                       - sum((z[:, col[f]] for f in act.low), np.zeros(k)))
        need[a] = DISTINCT_Z * max(len(act.high) + len(act.low), 1)
    rows, cols = linear_sum_assignment(-score)
    out: list[tuple[str | None, str | None]] = [(None, None)] * k
    for r, c in zip(rows, cols, strict=True):
        if score[r, c] >= need[c]:
            out[r] = (entries[c][0], entries[c][1].action)
    return out


def _bands(complete: pd.DataFrame, cfg: Segments, x: F64, mature: bool, key: str,
           n_boot: int) -> tuple[Band, ...]:
    """Tertile bands of the two features most related to the outcome (else the first two)."""
    feats = list(cfg.features)
    y = complete["label"].to_numpy(float)
    if mature and not np.isnan(y).all() and np.nanstd(y) > 0:
        ok = ~np.isnan(y)
        corr = [abs(float(np.corrcoef(x[ok, j], y[ok])[0, 1])) if x[ok, j].std() > 0 else 0.0
                for j in range(len(feats))]
        feats = [feats[j] for j in np.argsort(corr)[::-1]]
    out = []
    for name in feats[:2]:
        values = complete[name].to_numpy(float)
        cuts = np.unique(np.quantile(values, [0, 1 / 3, 2 / 3, 1]))
        for i in range(len(cuts) - 1):
            last = i == len(cuts) - 2
            inside = (values >= cuts[i]) & ((values <= cuts[i + 1]) if last
                                            else (values < cuts[i + 1]))
            part = complete[inside]
            rate = _rate(part["label"], part[key], n_boot, mature)
            label = ("low", "middle", "high")[i] if len(cuts) == 4 else f"band {i + 1}"
            out.append(Band(name, label, float(cuts[i]), float(cuts[i + 1]), int(inside.sum()),
                            *rate))
    return tuple(out)


def segment_project(
    loaded: LoadedSpec,
    *,
    as_of: datetime | None = None,
    k: tuple[int, int] | None = None,
    methods: Sequence[Method] | None = None,
    n_boot: int = 20,
    seed: int = 0,
    engine: EngineChoice = None,
    write: bool = True,
    progress: Progress | None = None,
) -> SegmentResult:
    """Segment the project's entities at a decision time and check the segments.

    Parameters
    ----------
    loaded : LoadedSpec
        The project; its ``segments:`` block says which features, when, which ``k``.
    as_of : datetime, optional
        Overrides ``segments.as_of`` (a decision time of the schedule).
    k, methods : optional
        Override ``segments.k`` and ``segments.methods``.
    n_boot : int
        Bootstrap resamples per ``k`` for the cluster Jaccard (and for the intervals, x10).
    seed : int
        Seed of every random draw (the result is reproducible).
    engine : optional
        The offline engine (default the spec's, else DuckDB).
    write : bool
        Write ``segments.json`` and ``assignments.parquet`` into ``<workspace>/segments/``.
    progress : callable, optional
        ``progress(stage, fraction)``.

    Returns
    -------
    SegmentResult
        ``verdict`` is ``segments``, ``no_structure`` or ``unstable``; ``message`` says it
        in words.

    Examples
    --------
    >>> from valuechain.spec import load_spec  # doctest: +SKIP
    >>> segment_project(load_spec("examples/churn")).verdict  # doctest: +SKIP
    'segments'
    """
    started = time.perf_counter()
    cfg = _config(loaded)
    ks = k or cfg.k
    if not 2 <= ks[0] <= ks[1] <= 12:
        raise SpecError(f"--k {list(ks)}: use two numbers with 2 <= smallest <= largest <= 12.")
    chosen_methods: list[Method] = list(methods or cfg.methods)
    where = loaded.where("segments", "features")
    framed = _with_defined(loaded, cfg)
    t = _pick_time(framed, cfg, as_of)
    if progress:
        progress("features", 0.05)
    point = features_at(framed, t, cfg.features, engine=engine)
    complete, x, dropped = _matrix(point, cfg, where)
    key = point.key
    if progress:
        progress("tendency", 0.2)
    tendency = hopkins(x, seed=seed)
    bic = _bic(x, ks[1], seed)
    one_lump = min(bic, key=lambda kk: bic[kk]) == 1
    results: list[KStability] = []
    verdict: Verdict
    best: KStability | None = None
    if not tendency.clustered or one_lump:
        verdict = "no_structure"
    else:
        for i, each in enumerate(chosen_methods):
            if progress:
                progress(f"stability {each}", 0.25 + 0.5 * i / len(chosen_methods))
            results.extend(stability_by_k(x, range(ks[0], ks[1] + 1), each, n_boot=n_boot,
                                          seed=seed))
        best = choose_k(results)
        verdict = "segments" if best is not None else "unstable"
    label = loaded.spec.label.name
    profiles: list[SegmentProfile] = []
    over_time: TimeStability | None = None
    bands: tuple[Band, ...] = ()
    labels = np.full(len(complete), -1, np.int64)
    next_t: datetime | None = t + cfg.period
    if next_t is not None and next_t > point.as_of:
        next_t = None
    if best is not None:
        method: Method = "kmeans" if best.method == "kmeans" else "gmm"
        labels, _ = fit_labels(x, best.k, method, seed)
        means_all = {f: float(complete[f].mean()) for f in cfg.features}
        zs = np.stack([x[labels == c].mean(axis=0) for c in range(best.k)])
        names = _names(cfg, zs)
        for c in range(best.k):
            members = complete[labels == c]
            means = {f: float(members[f].mean()) for f in cfg.features}
            z = {f: float(zs[c, j]) for j, f in enumerate(cfg.features)}
            name, action = names[c]
            rate = _rate(members["label"], members[key], 10 * n_boot, point.mature)
            profiles.append(SegmentProfile(
                c, name or f"segment {c + 1}", len(members), len(members) / len(complete),
                means, z, _words(z, means, means_all), *rate, action, best.jaccard[c]))
        if next_t is not None:
            if progress:
                progress("next period", 0.8)
            later = features_at(framed, next_t, cfg.features, engine=engine)
            complete2, x2, _ = _matrix(later, cfg, where)
            labels2, _ = fit_labels(x2, best.k, method, seed)
            both = complete[[key]].assign(a=labels).merge(
                complete2[[key]].assign(b=labels2), on=key)
            if len(both):
                over_time = match_segments(both["a"].to_numpy(np.int64),
                                           both["b"].to_numpy(np.int64), best.k)
    else:
        bands = _bands(complete, cfg, x, point.mature, key, 10 * n_boot)
    message = _message(verdict, tendency, best, over_time, bands, len(complete), profiles,
                       label)
    result = SegmentResult(
        verdict, message, t, next_t, tuple(cfg.features), len(complete), dropped, tendency,
        bic, tuple(results), best.method if best else None, best.k if best else None,
        tuple(profiles), over_time, bands, label, point.mature,
        time.perf_counter() - started)
    if write:
        folder = loaded.workspace / "segments"
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"json": folder / "segments.json", "assignments": folder / "assignments.parquet"}
        names_by = {p.index: p.name for p in profiles}
        write_parquet(paths["assignments"], pa.table({
            key: pa.array(complete[key].to_numpy()),
            "decision_time": pa.array([t] * len(complete), pa.timestamp("us")),
            "segment": pa.array(labels),
            "segment_name": pa.array([names_by.get(int(v), "") for v in labels]),
        }))
        result = SegmentResult(**{**result.__dict__, "paths": paths})
        write_json(paths["json"], {**result.to_json(), "spec_hash": loaded.hash})
    if progress:
        progress("done", 1.0)
    return result


def _message(verdict: Verdict, h: Hopkins, best: KStability | None,
             over_time: TimeStability | None, bands: tuple[Band, ...], rows: int,
             profiles: Sequence[SegmentProfile], label: str) -> str:
    if verdict == "no_structure":
        why = (f"the Hopkins statistic is {h.h:.2f}, p = {h.p_value:.2g}: uniform data give "
               "0.5, clear groups 0.7 and more" if not h.clustered else
               "one Gaussian fits better (BIC) than any mixture of several: a single lump")
        feats = list(dict.fromkeys(b.feature for b in bands))
        return (f"No structure: these {rows:,} customers form a continuum, not groups ({why}). "
                "Clustering would still draw boundaries, but they would be arbitrary. Use "
                f"quantile bands of {' or '.join(feats)} instead (see the bands).")
    if verdict == "unstable" or best is None:
        return (f"No stable segments: the data are not uniform (Hopkins {h.h:.2f}), but no k "
                "gives clusters that survive resampling (every cluster's bootstrap Jaccard >= "
                "0.75, or prediction strength >= 0.8). Use quantile bands (see the bands).")
    text = (f"{best.k} segments ({best.method}): every cluster's bootstrap Jaccard >= "
            f"{best.min_jaccard:.2f}, prediction strength {best.prediction_strength:.2f}; "
            f"Hopkins {h.h:.2f} (p = {h.p_value:.2g}).")
    if over_time is not None:
        text += (f" Refit on the next period: {over_time.kept:.1%} of "
                 f"{over_time.customers:,} customers keep their segment (adjusted Rand "
                 f"{over_time.ari:.2f}).")
    differs = outcome_differs(profiles)
    if differs is not None:
        text += (f" The segments differ in {label}: some 95 % intervals do not overlap." if differs
                 else f" The segments do not differ in {label} (every 95 % interval overlaps "
                 "another's): they describe behaviour, not risk.")
    return text


def outcome_differs(profiles: Sequence[SegmentProfile]) -> bool | None:
    """Whether two segments' outcome intervals are disjoint (None when not all are mature).

    >>> p = lambda lo, hi: SegmentProfile(0, "a", 1, 1.0, {}, {}, (), (lo + hi) / 2, lo, hi,
    ...                                   None, 1.0)
    >>> outcome_differs([p(0.01, 0.03), p(0.02, 0.05)]), outcome_differs([p(0.01, 0.02),
    ...                                                                    p(0.03, 0.05)])
    (False, True)
    """
    bounds = [(p.rate_low, p.rate_high) for p in profiles]
    if len(bounds) < 2 or any(lo is None or hi is None for lo, hi in bounds):
        return None
    lows = [float(lo) for lo, _ in bounds if lo is not None]
    highs = [float(hi) for _, hi in bounds if hi is not None]
    return max(lows) > min(highs)
