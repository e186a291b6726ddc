"""The random control group of a list, stratified by score bin.

A list of ``m`` customers, ranked (rank 0 = highest priority), holds out
``total = round(share * m)`` customers as a control (not acted on). The rule, exactly:

1. **bins**: the listed are cut into ``bins`` equal-count bins *by rank among the listed*:
   ``bin = rank * bins // m`` (bin 0 = the top tenth with ``bins=10``; sizes differ by at most
   one);
2. **floor per bin**: bin ``d`` of size ``n_d`` holds out ``floor(share' * n_d)`` where
   ``share' = total / m`` (the realised share after rounding the total);
3. **remainder**: the ``extra = total - sum(floors)`` customers left go one each to bins drawn
   by systematic sampling with inclusion probability equal to each bin's leftover fraction
   ``share' * n_d - floor(share' * n_d)`` (bins in a random order, one uniform start): every
   bin's *expected* control count is exactly ``share' * n_d``, and the total is exact;
4. **members**: within each bin the control members are drawn uniformly without replacement.

The draw is a function of the seed alone: the same seed, list and share give the same
group. :func:`control_seed` derives the seed of a week from the spec's ``outreach.seed`` and
the week, so each week's draw is independent of the others and reproducible.

The churn world's generator (:mod:`valuechain.demo.churn`) holds out its history's control
with the same floor-per-decile rule (its remainder draw is a weighted draw without
replacement instead of the systematic one).

>>> import numpy as np
>>> control = stratified_control(20, 0.2, 10, np.random.default_rng(0))
>>> int(control.sum()), [int(control[i * 2:(i + 1) * 2].sum()) for i in range(10)]
(4, [0, 1, 0, 1, 0, 0, 1, 0, 0, 1])
>>> control_bins(5, 2).tolist()
[0, 0, 0, 1, 1]
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from valuechain.errors import SpecError

__all__ = ["control_bins", "control_seed", "stratified_control"]

Bool = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]


def control_bins(m: int, bins: int) -> I64:
    """The score bin of each of ``m`` ranked rows: ``rank * bins // m`` (0 = top)."""
    return (np.arange(m, dtype=np.int64) * int(bins)) // max(int(m), 1)


def control_seed(seed: int, week: str) -> int:
    """A per-week seed: a stable hash of the spec's seed and the week's ISO date.

    >>> control_seed(7, "2025-06-02") == control_seed(7, "2025-06-02")
    True
    >>> control_seed(7, "2025-06-02") != control_seed(7, "2025-06-09")
    True
    """
    digest = hashlib.blake2b(f"{int(seed)}|{week}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _check(share: float, bins: int) -> None:
    if not 0.0 <= share < 1.0:
        raise SpecError(f"`outreach.control_share` must lie in [0, 1), got {share!r}; e.g. 0.2 "
                        "holds out a fifth of each list.")
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise SpecError(f"`outreach.stratify_bins` must be a whole number >= 1, got {bins!r}; "
                        "e.g. 10 (score deciles).")


def stratified_control(m: int, share: float, bins: int, rng: np.random.Generator) -> Bool:
    """Which of ``m`` ranked rows are held out as control (True), stratified by rank bin.

    Parameters
    ----------
    m : int
        Rows in the list, in rank order (0 = highest priority).
    share : float
        Share held out, in [0, 1); the total is ``round(share * m)``.
    bins : int
        Equal-count bins by rank (10: deciles of the listed).
    rng : numpy.random.Generator
        The source of randomness (e.g. ``default_rng(control_seed(seed, week))``).

    Returns
    -------
    ndarray of bool
        ``True`` for the control rows.

    Examples
    --------
    >>> c = stratified_control(200, 0.2, 10, np.random.default_rng(3))
    >>> int(c.sum()), sorted({int(c[i * 20:(i + 1) * 20].sum()) for i in range(10)})
    (40, [4])
    """
    _check(share, bins)
    control = np.zeros(m, dtype=bool)
    total = round(share * m)
    if m == 0 or total == 0:
        return control
    stratum = control_bins(m, bins)
    sizes = np.bincount(stratum, minlength=int(bins)).astype(np.float64)
    realised = total / m
    base = np.floor(realised * sizes + 1e-9).astype(np.int64)
    left = np.clip(realised * sizes - base, 0.0, 1.0)
    extra = total - int(base.sum())
    if extra > 0:
        # systematic sampling over a random order: inclusion probability = leftover exactly
        order = rng.permutation(len(sizes))
        edges = np.cumsum(left[order])
        edges *= extra / edges[-1]  # guard against rounding: the leftovers sum to `extra`
        start = rng.random()
        hits = np.searchsorted(edges, start + np.arange(extra), side="right")
        base[order[np.minimum(hits, len(order) - 1)]] += 1
    for d in np.flatnonzero(base):
        members = np.flatnonzero(stratum == d)
        control[rng.choice(members, int(min(base[d], len(members))), replace=False)] = True
    return control
