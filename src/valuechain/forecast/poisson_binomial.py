"""The exact distribution of a sum of independent Bernoulli variables (Poisson-binomial).

When each of ``n`` customers churns with its own calibrated probability ``p_i`` and the
customers are independent, the number of churners ``S = Σ X_i`` follows the Poisson-binomial
distribution. Its mean is ``Σ p_i`` and its variance ``Σ p_i (1 - p_i)``; its probability mass
function is the coefficient list of the polynomial ``Π (1 - p_i + p_i z)``.

:func:`poisson_binomial_pmf` multiplies those ``n`` degree-one polynomials exactly by
recursive convolution, pairwise (a balanced product tree: the short products vectorised
over customers, the largest ones by FFT convolution): ``O(n log² n)`` instead of the ``O(n²)`` of one-at-a-time recursion, exact up
to floating point (tiny negative round-off is clipped to zero and the mass renormalised).
:func:`poisson_binomial_interval` reads an equal-tailed interval off the exact cumulative
distribution; no normal approximation is involved, so the interval is right for ten
customers as for a million, and for probabilities near zero.

Examples
--------
>>> pmf = poisson_binomial_pmf([0.5, 0.5])
>>> [round(float(v), 6) for v in pmf]
[0.25, 0.5, 0.25]
>>> poisson_binomial_interval([0.1] * 100, level=0.9)
(5, 15)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.signal import fftconvolve

from valuechain.errors import DataError

__all__ = ["poisson_binomial_cdf", "poisson_binomial_interval", "poisson_binomial_pmf"]

F64 = npt.NDArray[np.float64]
#: Products longer than this use FFT convolution (shorter ones ``numpy.convolve``).
FFT_FROM = 500
#: Polynomials are multiplied row-wise in one array while shorter than this.
BATCH_UNTIL = 64


def _probabilities(p: Sequence[float] | npt.ArrayLike) -> F64:
    arr = np.asarray(p, dtype=np.float64).ravel()
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"probabilities: {int(bad.sum())} value(s) outside [0, 1] or not finite (first at "
            f"position {first}: {arr[first]!r}); pass calibrated probabilities")
    return arr


def _batched(rows: F64) -> F64:
    """Pairwise products of equal-length polynomials (rows), vectorised over the rows."""
    a, b = rows[0::2], rows[1::2]
    width = rows.shape[1]
    out = np.zeros((len(a), 2 * width - 1))
    for j in range(width):
        out[:, j:j + width] += a * b[:, j:j + 1]
    return out


def _product(p: F64) -> F64:
    """Coefficients of ``Π (1 - p_i + p_i z)``: a balanced tree of exact convolutions."""
    size = 1 << max(0, int(np.ceil(np.log2(len(p)))))
    rows = np.zeros((size, 2))
    rows[:, 0] = 1.0
    rows[: len(p), 0], rows[: len(p), 1] = 1.0 - p, p
    while len(rows) > 1 and rows.shape[1] <= BATCH_UNTIL:
        rows = _batched(rows)
    polys = list(rows)
    while len(polys) > 1:
        merged = []
        for i in range(0, len(polys), 2):
            a, b = polys[i], polys[i + 1]
            if min(len(a), len(b)) > FFT_FROM:
                merged.append(np.asarray(fftconvolve(a, b), dtype=np.float64))
            else:
                merged.append(np.convolve(a, b))
        polys = merged
    return np.asarray(polys[0][: len(p) + 1], dtype=np.float64)


def poisson_binomial_pmf(p: Sequence[float] | npt.ArrayLike) -> F64:
    """``P(S = k)`` for ``k = 0 .. n`` where ``S`` is a sum of independent Bernoulli(``p_i``).

    Parameters
    ----------
    p : array-like of float
        Success probabilities in ``[0, 1]``.

    Returns
    -------
    ndarray of float
        ``n + 1`` probabilities summing to one.

    Raises
    ------
    DataError
        A probability is outside ``[0, 1]`` or not finite.

    Examples
    --------
    >>> [round(float(v), 4) for v in poisson_binomial_pmf([0.2, 0.7, 1.0])]
    [0.0, 0.24, 0.62, 0.14]
    """
    arr = _probabilities(p)
    if len(arr) == 0:
        return np.ones(1)
    certain = int(np.count_nonzero(arr == 1.0))
    rest = arr[(arr > 0.0) & (arr < 1.0)]
    if len(rest):
        body = _product(rest)
        body = np.clip(body, 0.0, None)
        body /= body.sum()
    else:
        body = np.ones(1)
    out = np.zeros(len(arr) + 1)
    out[certain:certain + len(body)] = body
    return out


def poisson_binomial_cdf(p: Sequence[float] | npt.ArrayLike) -> F64:
    """``P(S <= k)`` for ``k = 0 .. n`` (the cumulative sum of :func:`poisson_binomial_pmf`).

    Examples
    --------
    >>> [round(float(v), 4) for v in poisson_binomial_cdf([0.5, 0.5])]
    [0.25, 0.75, 1.0]
    """
    cdf = np.cumsum(poisson_binomial_pmf(p))
    return np.minimum(cdf, 1.0)


def poisson_binomial_interval(p: Sequence[float] | npt.ArrayLike, level: float = 0.9
                              ) -> tuple[int, int]:
    """Equal-tailed interval ``[low, high]`` holding ``S`` with probability at least ``level``.

    ``low`` is the smallest ``k`` with ``P(S <= k) > (1 - level) / 2`` and ``high`` the
    smallest ``k`` with ``P(S <= k) >= (1 + level) / 2`` (the lower and upper quantiles of the
    exact distribution), so ``P(S < low) <= (1 - level) / 2`` and
    ``P(S > high) <= (1 - level) / 2``.

    Parameters
    ----------
    p : array-like of float
        Success probabilities in ``[0, 1]``.
    level : float, default 0.9
        Coverage, in ``(0, 1)``.

    Examples
    --------
    >>> poisson_binomial_interval([0.5] * 10, level=0.8)
    (3, 7)
    >>> poisson_binomial_interval([], level=0.9)
    (0, 0)
    """
    if not 0.0 < level < 1.0:
        raise DataError(f"level={level!r}: expected a coverage between 0 and 1, e.g. 0.9")
    cdf = poisson_binomial_cdf(p)
    tail = (1.0 - level) / 2.0
    eps = 1e-12
    low = int(np.searchsorted(cdf, tail + eps, side="left"))
    high = int(np.searchsorted(cdf, 1.0 - tail - eps, side="left"))
    return min(low, len(cdf) - 1), min(high, len(cdf) - 1)
