"""Empirical leakage checks on a frame, all on time-ordered splits.

The frame is one row per decision: a decision-time column, a label column and feature
columns. Each feature gets a one-feature model (quantile bins or levels, positive rate per bin
learnt on the earlier 70 % of time, scored on the later part); the full model is LightGBM on
a sample. Thresholds are module constants so the docs can quote them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.audit.findings import Finding, Severity
from valuechain.audit.static import ID_NAME
from valuechain.evaluate.metrics import roc_auc
from valuechain.evaluate.splits import RANDOM_TIME_GAP
from valuechain.models.base import require
from valuechain.threads import threads

__all__ = [
    "CRITICAL_AUC",
    "SIGNATURE_PRECISION",
    "SIGNATURE_RECALL",
    "AuditFrame",
    "empirical_findings",
]

CRITICAL_AUC = 0.95  # one feature alone surely (90 % one-sided) above this, later: critical
SURE_Z = 1.2816  # one-sided 90 % normal quantile for the AUC's lower bound
WARNING_AUC = 0.85  # ... and explaining >= 90 % of the full model's lift: warning
SIGNATURE_PRECISION = 0.8  # a value (or presence) whose rows are >= 80 % positive ...
SIGNATURE_RECALL = 0.4  # ... and hold >= 40 % of all positives: the value reveals the outcome
GAP_WARNING = RANDOM_TIME_GAP  # random-split AUC above time-split AUC by this much: warning
SAMPLE = 120_000  # rows sampled to fit (and score) the full model on each split
BINS = 32

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class AuditFrame:
    """A frame prepared for the audit: times as int64 µs, label as 0/1, the time split."""

    frame: pd.DataFrame
    time_col: str
    label_col: str
    features: tuple[str, ...]
    key_col: str | None
    t: npt.NDArray[np.int64]
    y: npt.NDArray[np.int8]
    train: npt.NDArray[np.bool_]
    test: npt.NDArray[np.bool_]

    @classmethod
    def prepare(cls, frame: pd.DataFrame, time_col: str, label_col: str,
                features: Sequence[str], key_col: str | None = None,
                embargo_us: int = 0) -> AuditFrame:
        t = _as_us(frame[time_col])
        y = (pd.to_numeric(frame[label_col], errors="coerce").fillna(0).to_numpy() > 0)
        cut = int(np.quantile(t, 0.7)) if len(t) else 0
        span = int(t.max() - t.min()) if len(t) else 0
        gap = min(embargo_us, span // 10)
        return cls(frame, time_col, label_col, tuple(features), key_col, t,
                   y.astype(np.int8), t < cut, t >= cut + gap)


def _as_us(series: pd.Series) -> npt.NDArray[np.int64]:
    values = pd.to_datetime(series)
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(values.to_numpy(dtype="datetime64[us]").astype(np.int64))


def auc_standard_error(value: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUC."""
    if n_pos == 0 or n_neg == 0 or np.isnan(value):
        return float("nan")
    q1, q2 = value / (2 - value), 2 * value**2 / (1 + value)
    var = (value * (1 - value) + (n_pos - 1) * (q1 - value**2)
           + (n_neg - 1) * (q2 - value**2)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
                or pd.api.types.is_datetime64_any_dtype(series))


def _codes(series: pd.Series, train: Array) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Bin codes (0 = missing) learnt on the train rows, with a label for each bin."""
    missing = series.isna().to_numpy()
    if _is_categorical(series) or pd.api.types.is_bool_dtype(series):
        text = series.astype("string")
        levels = pd.unique(text[train & ~missing])
        lookup = {level: i + 1 for i, level in enumerate(levels)}
        codes = text.map(lookup).fillna(-1).to_numpy(dtype=np.int64).copy()
        codes[missing] = 0
        return codes, ["<missing>", *[f"= {v}" for v in levels]]
    values = pd.to_numeric(series, errors="coerce")
    if pd.api.types.is_datetime64_any_dtype(series):
        values = pd.Series(_as_us(series.fillna(pd.Timestamp(0))), index=series.index)
    numbers = values.to_numpy(dtype=np.float64)
    known = numbers[train & ~missing]
    edges = np.unique(np.quantile(known, np.linspace(0, 1, BINS + 1)[1:-1])) if len(known) else (
        np.array([]))
    codes = np.searchsorted(edges, numbers, side="left").astype(np.int64) + 1
    codes[missing] = 0
    bounds = [-np.inf, *edges, np.inf]
    labels = ["<missing>"] + [f"in ({bounds[i]:.6g}, {bounds[i + 1]:.6g}]"
                              for i in range(len(bounds) - 1)]
    return codes, labels


@dataclass(frozen=True)
class FeaturePower:
    name: str
    auc: float
    rates: Array  # smoothed positive rate per bin (train)
    counts: Array
    positives: Array
    codes: npt.NDArray[np.int64]
    labels: list[str]


def feature_power(data: AuditFrame, name: str) -> FeaturePower:
    """A one-feature model: positive rate per bin on train, AUC of those rates on test."""
    codes, labels = _codes(data.frame[name], data.train)
    n_bins = len(labels) + 1  # last slot: levels unseen in train
    safe = np.where(codes < 0, n_bins - 1, codes)
    counts = np.bincount(safe[data.train], minlength=n_bins).astype(np.float64)
    positives = np.bincount(safe[data.train], weights=data.y[data.train],
                            minlength=n_bins)
    base = positives.sum() / max(counts.sum(), 1.0)
    rates = (positives + 10 * base) / (counts + 10)
    score = rates[safe[data.test]]
    return FeaturePower(name, roc_auc(score, data.y[data.test]), rates, counts, positives, safe,
                        labels)


def _full_model_auc(data: AuditFrame, rows_train: Array, rows_test: Array,
                    seed: int = 0) -> float:
    lgb = require("lightgbm", "the leakage audit's full model")
    frame = data.frame[list(data.features)].copy()
    for name in data.features:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            frame[name] = _as_us(column.fillna(pd.Timestamp(0))).astype(np.float64)
        elif _is_categorical(column):
            frame[name] = column.astype("string").astype("category")
        elif pd.api.types.is_bool_dtype(column):
            frame[name] = column.astype(np.float64)
    rng = np.random.default_rng(seed)
    train_idx = np.flatnonzero(rows_train)
    if len(train_idx) > SAMPLE:
        train_idx = np.sort(rng.choice(train_idx, SAMPLE, replace=False))
    test_idx = np.flatnonzero(rows_test)
    if len(test_idx) > SAMPLE:
        test_idx = np.sort(rng.choice(test_idx, SAMPLE, replace=False))
    y = data.y
    if y[train_idx].min() == y[train_idx].max():
        return float("nan")
    params = {"objective": "binary", "learning_rate": 0.15, "num_leaves": 31,
              "min_data_in_leaf": 50, "max_bin": 63, "feature_fraction": 0.8,
              "verbose": -1, "seed": seed, "num_threads": threads(),
              "deterministic": True}
    model = lgb.train(params, lgb.Dataset(frame.iloc[train_idx], y[train_idx]),
                      num_boost_round=80)
    return roc_auc(np.asarray(model.predict(frame.iloc[test_idx])), y[test_idx])


def _power_findings(data: AuditFrame, powers: list[FeaturePower],
                    full_auc: float) -> Iterator[Finding]:
    n_pos = int(data.y[data.test].sum())
    n_neg = int(data.test.sum()) - n_pos
    for p in powers:
        if np.isnan(p.auc):
            continue
        low = p.auc - SURE_Z * auc_standard_error(p.auc, n_pos, n_neg)
        lift_share = (p.auc - 0.5) / (full_auc - 0.5) if full_auc > 0.5 else float("nan")
        evidence = {"auc_alone": round(p.auc, 4), "auc_alone_low_90": round(low, 4),
                    "auc_full_model": round(full_auc, 4),
                    "share_of_full_model_lift": round(lift_share, 3),
                    "test_rows": int(data.test.sum()), "test_positives": n_pos}
        severity: Severity
        if low >= CRITICAL_AUC:
            severity = "critical"
        elif p.auc >= WARNING_AUC and lift_share >= 0.9:
            severity = "warning"
        else:
            continue
        yield Finding(
            id=f"single_feature_power:{p.name}", check="single_feature_power",
            severity=severity, features=(p.name,), evidence=evidence,
            explanation=f"'{p.name}' alone ranks a later period with AUC {p.auc:.3f} (the full "
            f"model: {full_auc:.3f}). A single input that predicts the outcome this well "
            "usually records the outcome itself or something that follows it.",
            fix=f"check when '{p.name}' becomes known; if after the decision, drop it or "
            "declare its source's `available_at`/`valid_from` (or `role: post_outcome`).",
        )


def _signatures(data: AuditFrame, powers: list[FeaturePower]) -> Iterator[Finding]:
    total_pos = float(data.y[data.train].sum())
    base = total_pos / max(float(data.train.sum()), 1.0)
    if total_pos == 0 or base >= 0.2:
        return
    for p in powers:
        # Candidate value groups: each bin or level, and "present" (any non-missing value).
        counts = np.append(p.counts, p.counts[1:].sum())
        positives = np.append(p.positives, p.positives[1:].sum())
        labels = [*[*p.labels, "<unseen level>"][: len(p.counts)], "<present>"]
        raw = np.where(counts > 0, positives / np.maximum(counts, 1), 0.0)
        recall = positives / total_pos
        hits = np.flatnonzero((raw >= SIGNATURE_PRECISION) & (recall >= SIGNATURE_RECALL)
                              & (counts >= 30))
        if not len(hits):
            continue
        b = int(hits[np.argmax(recall[hits])])
        label = labels[b]
        in_bin = (p.codes > 0) if label == "<present>" else (p.codes == b)
        test_precision = float(data.y[in_bin & data.test].mean()) if (
            in_bin & data.test).any() else float("nan")
        what = {"<missing>": "missing values", "<present>": "any value"}.get(
            label, f"values {label}")
        yield Finding(
            id=f"post_outcome_signature:{p.name}", check="post_outcome_signature",
            severity="critical", features=(p.name,),
            evidence={"value": label, "positive_rate": round(float(raw[b]), 4),
                      "share_of_positives": round(float(recall[b]), 4),
                      "base_rate": round(base, 5), "rows": int(counts[b]),
                      "positive_rate_later_period": round(test_precision, 4)},
            explanation=f"rows of '{p.name}' with {what} are {raw[b]:.0%} positive (base "
            f"rate {base:.2%}) and hold {recall[b]:.0%} of all positives. A value that almost "
            "only positives have is typically written after the outcome (a status, a case "
            "opened, a flag set by the investigation).",
            fix=f"find when '{p.name}' is written; use its value as of the decision time "
            "(a `valid_from` history or `available_at`) or drop it.",
        )


def _later_values(data: AuditFrame) -> Iterator[Finding]:
    for name in data.features:
        column = data.frame[name]
        if not pd.api.types.is_datetime64_any_dtype(column):
            continue
        known = column.notna().to_numpy()
        values = _as_us(column.fillna(pd.Timestamp(0)))
        later = known & (values > data.t)
        if later.any():
            yield Finding(
                id=f"later_values:{name}", check="later_values", severity="critical",
                features=(name,),
                evidence={"rows_after_decision": int(later.sum()),
                          "share": round(float(later.mean()), 6)},
                explanation=f"'{name}' holds times after the decision time "
                f"'{data.time_col}' on {int(later.sum()):,} rows: those values did not "
                "exist when the decision was taken.",
                fix=f"rebuild the frame point-in-time (`valuechain build`), or derive "
                f"'{name}' only from rows available by '{data.time_col}'.",
            )


def _identifiers(data: AuditFrame) -> Iterator[Finding]:
    n = len(data.frame)
    for name in data.features:
        column = data.frame[name]
        if not pd.api.types.is_integer_dtype(column) and not (
                _is_categorical(column) and ID_NAME.search(name)):
            continue
        distinct = int(column.nunique())
        unique_share = distinct / max(n, 1)
        if unique_share >= 0.9 or (ID_NAME.search(name) and distinct >= 100):
            yield Finding(
                id=f"identifier:{name}", check="identifier", severity="critical",
                features=(name,),
                evidence={"distinct_values": distinct, "distinct_share": round(unique_share, 4)},
                explanation=f"'{name}' looks like an identifier ({distinct:,} distinct values"
                f", {unique_share:.0%} of rows): the model can memorise entities, which does "
                "not carry over to new ones.",
                fix=f"drop '{name}' from the features; aggregate over it instead.",
            )


def _hygiene(data: AuditFrame, periods: Sequence[tuple[str, int, int]],
             horizon_us: int | None) -> Iterator[Finding]:
    frame = data.frame
    cols = [data.time_col, *data.features, data.label_col]
    dup = int(frame.duplicated(subset=cols).sum())
    if dup:
        yield Finding(
            id="duplicates", check="split_hygiene", severity="warning", features=(),
            evidence={"duplicate_rows": dup, "share": round(dup / len(frame), 6)},
            explanation=f"{dup:,} rows repeat another row exactly (time, features, label); "
            "duplicates inflate any score computed on them and can sit on both sides of a "
            "random split.",
            fix="deduplicate the source, or add the column that tells the rows apart to the "
            "source's `keys`.",
        )
    if data.key_col is not None:
        same = int(frame.duplicated(subset=[data.key_col, data.time_col]).sum())
        if same:
            yield Finding(
                id="entity_time_duplicates", check="split_hygiene", severity="warning",
                features=(data.key_col,), evidence={"repeated_entity_times": same},
                explanation=f"{same:,} (entity, time) pairs appear more than once: one "
                "decision spread over rows, which a split can cut in two.",
                fix=f"make '{data.key_col}' and '{data.time_col}' identify one decision.",
            )
    if horizon_us is None:
        return
    for (name_a, start_a, end_a), (name_b, start_b, _) in pairwise(periods):
        rows_a = (data.t >= start_a) & (data.t < end_a)
        overlap = int((rows_a & (data.t + horizon_us > start_b)).sum())
        if overlap:
            yield Finding(
                id=f"label_overlap:{name_a}->{name_b}", check="split_hygiene",
                severity="critical", features=(),
                evidence={"rows": overlap, "horizon_seconds": horizon_us / 1e6},
                explanation=f"{overlap:,} rows of '{name_a}' have a label window that reaches "
                f"into '{name_b}': their outcomes are decided by events of the later period.",
                fix="lengthen `split.embargo` to at least the label horizon.",
            )


def empirical_findings(
    data: AuditFrame,
    *,
    periods: Sequence[tuple[str, int, int]] = (),
    horizon_us: int | None = None,
    seed: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> tuple[list[Finding], dict[str, Any]]:
    """Every empirical finding, and the context numbers (AUCs, sizes) for the report.

    ``progress(step, fraction)`` is told each step (per feature, then each probe model),
    with ``fraction`` of this function's work done, from 0 to 1.
    """
    def tell(step: str, done: float) -> None:
        if progress is not None:
            progress(step, done)

    findings: list[Finding] = []
    findings += list(_later_values(data))
    findings += list(_identifiers(data))
    powers: list[FeaturePower] = []
    for i, name in enumerate(data.features):
        tell(f"feature {i + 1}/{len(data.features)}: {name}", 0.5 * i / len(data.features))
        powers.append(feature_power(data, name))
    tell("probe model, split by time", 0.5)
    time_auc = _full_model_auc(data, data.train, data.test, seed)
    tell("probe model, random split", 0.75)
    rng = np.random.default_rng(seed)
    random_test = rng.random(len(data.t)) < 0.3
    random_auc = _full_model_auc(data, ~random_test, random_test, seed)
    tell("duplicates, periods and hygiene", 0.95)
    findings += list(_power_findings(data, powers, time_auc))
    findings += list(_signatures(data, powers))
    gap = random_auc - time_auc
    findings.append(Finding(
        id="temporal_honesty", check="temporal_honesty",
        severity="warning" if gap >= GAP_WARNING else "info", features=(),
        evidence={"auc_random_split": round(random_auc, 4), "auc_time_split": round(time_auc, 4),
                  "gap": round(gap, 4)},
        explanation=(f"a random split scores AUC {random_auc:.3f}, a split by time "
                     f"{time_auc:.3f}: the gap of {gap:+.3f} "
                     + ("suggests information shared across time (repeated entities or "
                        "campaigns in both sets, or leakage) or drift between periods; trust "
                        "the time split." if gap >= GAP_WARNING else
                        "is small: the future looks like the past for this model.")),
        fix="evaluate by time (valuechain train does); investigate features that drift."
        if gap >= GAP_WARNING else "nothing to do.",
    ))
    findings += list(_hygiene(data, periods, horizon_us))
    context = {
        "rows": len(data.t), "train_rows": int(data.train.sum()),
        "test_rows": int(data.test.sum()), "auc_time_split": time_auc,
        "auc_random_split": random_auc,
        "feature_auc": {p.name: p.auc for p in powers},
    }
    return findings, context
