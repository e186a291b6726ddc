"""Evaluate as the future will: time splits, decision metrics and block-bootstrap intervals.

Three modules, one job each:

- :mod:`~valuechain.evaluate.splits`: consecutive periods separated by an embargo of at
  least the label horizon (refused with a message that prints every number and the fix when
  they are not), rolling-origin folds, and a random split for the random-vs-time comparison;
- :mod:`~valuechain.evaluate.metrics`: ROC AUC, average precision, Brier, log loss, ECE and a
  reliability table; precision/recall at the capacity per period, the handbook's card
  precision top-k, expected cost; all numpy, ``NaN`` when undefined;
- :mod:`~valuechain.evaluate.bootstrap`: percentile intervals resampling whole days, paired
  differences between two candidates on the same resamples, and a beats/ties/loses verdict;
  also intervals of totals and ratios (money saved, precision at capacity). Every interval
  draws :data:`~valuechain.evaluate.bootstrap.N_BOOT` resamples.

Named constants shared by every stage: ``N_BOOT`` (resamples per interval),
``VALIDATION_SHARE`` (the end of a training period held out for validation when the spec
names no validation period) and ``RANDOM_TIME_GAP`` (the random-vs-time AUC gap that
``audit`` warns about and ``train`` explains).

Everything is a pure function of arrays and returns plain numbers or frozen results.

>>> import numpy as np
>>> from datetime import timedelta
>>> from valuechain.evaluate import block_bootstrap, default_periods, time_splits
>>> rng = np.random.default_rng(0)
>>> times = np.datetime64("2025-01-01", "us") + np.sort(rng.integers(0, 100, 5000)).astype(
...     "timedelta64[D]")
>>> labels = rng.integers(0, 2, len(times)).astype(float)
>>> periods = default_periods(times, horizon=timedelta(days=7))
>>> masks = time_splits(times, labels, periods, embargo=None, horizon=timedelta(days=7))
>>> [name for name in masks]
['train', 'validation', 'test']
>>> scores = rng.normal(labels, 1.0)
>>> test = masks["test"]
>>> days = times.astype("datetime64[D]")
>>> iv = block_bootstrap("roc_auc", days[test], scores[test], labels[test])
>>> 0.6 < iv.low < iv.value < iv.high < 0.9
True
"""

from __future__ import annotations

from valuechain.evaluate.bootstrap import (
    N_BOOT,
    Interval,
    block_bootstrap,
    block_ratio_interval,
    block_sum_interval,
    paired_difference,
    verdict,
)
from valuechain.evaluate.metrics import (
    GREATER_IS_BETTER,
    CapacityResult,
    CardPrecision,
    all_metrics,
    average_precision,
    brier,
    card_precision_at_k,
    ece,
    expected_cost,
    k_per_period,
    log_loss,
    precision_recall_at_capacity,
    reliability_table,
    roc_auc,
)
from valuechain.evaluate.splits import (
    RANDOM_TIME_GAP,
    VALIDATION_SHARE,
    Fold,
    default_periods,
    random_split,
    rolling_origin,
    split_validation,
    time_splits,
)

__all__ = [
    "GREATER_IS_BETTER",
    "N_BOOT",
    "RANDOM_TIME_GAP",
    "VALIDATION_SHARE",
    "CapacityResult",
    "CardPrecision",
    "Fold",
    "Interval",
    "all_metrics",
    "average_precision",
    "block_bootstrap",
    "block_ratio_interval",
    "block_sum_interval",
    "brier",
    "card_precision_at_k",
    "default_periods",
    "ece",
    "expected_cost",
    "k_per_period",
    "log_loss",
    "paired_difference",
    "precision_recall_at_capacity",
    "random_split",
    "reliability_table",
    "roc_auc",
    "rolling_origin",
    "split_validation",
    "time_splits",
    "verdict",
]
