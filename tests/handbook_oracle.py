"""The fraud handbook's own feature engineering, as an oracle, and a fast two-pointer yardstick.

This module is imported by tests and benchmarks; it is not a test file itself.

``handbook_features`` reproduces the baseline feature transformation of chapter 3 of
"Reproducible Machine Learning for Credit Card Fraud Detection - Practical Handbook"
(Le Borgne, Siblini, Lebichot, Bontempi), i.e. the book's pandas code: two calendar flags,
customer spending behaviour over 1/7/30-day windows (``groupby('CUSTOMER_ID').apply`` of
``get_customer_spending_behaviour_features``) and terminal risk over 1/7/30-day windows that
end a 7-day delay before the transaction (``groupby('TERMINAL_ID').apply`` of
``get_count_risk_rolling_window``).

Deliberate differences from the book's text, none of which changes a value it defines:

- sorts are stable (``kind="mergesort"``) and the table is first put in ``TRANSACTION_ID``
  order, so transactions with the same timestamp are ordered by ``TRANSACTION_ID`` (the book's
  default quicksort leaves their order unspecified; it matters for the customer windows, where
  a transaction sees the tied transactions before it and not those after it);
- the window strings use ``"D"``: the book's lowercase ``"d"`` is deprecated in pandas 3;
- ``groupby`` is given the key as an array, so each group still carries the key column on
  every pandas version (pandas 3 forbids ``include_groups=True``), and ``group_keys=True`` is
  explicit; the key level that apply adds to the index is dropped, as the book's
  ``reset_index(drop=True)`` does.

``two_pointer_features`` computes the same features from one sort by
``(key, time, TRANSACTION_ID)`` per entity and a single pass per entity with one left pointer
per window boundary. It is compiled with numba when numba is installed (running the customer
and the terminal passes on two threads); without numba it falls back to a vectorised numpy
version (``searchsorted`` on a (key, time-rank) composite, ``np.add.reduceat`` for the amount
sums), slower but exact. ``KERNEL_BACKEND`` tells which one is in use.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({
...     "TRANSACTION_ID": [0, 1, 2],
...     "TX_DATETIME": pd.to_datetime(["2018-04-01 05:00", "2018-04-01 12:00", "2018-04-09 00:00"]),
...     "CUSTOMER_ID": [7, 7, 7], "TERMINAL_ID": [3, 3, 3],
...     "TX_AMOUNT": [10.0, 30.0, 5.0], "TX_FRAUD": [1, 0, 0]})
>>> out = handbook_features(df)
>>> out["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"].tolist()
[10.0, 20.0, 5.0]
>>> out["TERMINAL_ID_RISK_1DAY_WINDOW"].tolist()
[0.0, 0.0, 0.5]
>>> bool((two_pointer_features(df) == out).all().all())
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "DELAY_PERIOD",
    "KERNEL_BACKEND",
    "WINDOWS",
    "feature_columns",
    "get_count_risk_rolling_window",
    "get_customer_spending_behaviour_features",
    "handbook_features",
    "is_night",
    "is_weekend",
    "two_pointer_features",
    "warm_up",
]

WINDOWS: tuple[int, ...] = (1, 7, 30)
DELAY_PERIOD = 7
NS_PER_DAY = 86_400 * 1_000_000_000
RAW_COLUMNS = ("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT",
               "TX_FRAUD")
NS_PER_HOUR = 3_600 * 1_000_000_000
_THREAD_MIN_ROWS = 100_000  # below this, two threads cost more than they save

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def feature_columns(
    windows_size_in_days: Sequence[int] = WINDOWS,
    *,
    customer: str = "CUSTOMER_ID",
    terminal: str = "TERMINAL_ID",
) -> list[str]:
    """The 15 feature names (for the default windows), in the book's order."""
    cols = ["TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT"]
    for w in windows_size_in_days:
        cols += [f"{customer}_NB_TX_{w}DAY_WINDOW", f"{customer}_AVG_AMOUNT_{w}DAY_WINDOW"]
    for w in windows_size_in_days:
        cols += [f"{terminal}_NB_TX_{w}DAY_WINDOW", f"{terminal}_RISK_{w}DAY_WINDOW"]
    return cols


# ---------------------------------------------------------------------------------------------
# The book's code (chapter 3, "Baseline feature transformation")
# ---------------------------------------------------------------------------------------------


def is_weekend(tx_datetime: pd.Timestamp) -> int:
    """1 on Saturday and Sunday, else 0 (the book's ``is_weekend``)."""
    # Transform date into weekday (0 is Monday, 6 is Sunday)
    weekday = tx_datetime.weekday()
    # Binary value: 0 if weekday, 1 if weekend
    return int(weekday >= 5)


def is_night(tx_datetime: pd.Timestamp) -> int:
    """1 when the hour is at most 6 (00:00-06:59), else 0 (the book's ``is_night``)."""
    tx_hour = tx_datetime.hour
    return int(tx_hour <= 6)


def get_customer_spending_behaviour_features(
    customer_transactions: pd.DataFrame, windows_size_in_days: Sequence[int] = WINDOWS
) -> pd.DataFrame:
    """Number of transactions and mean amount over each window, current transaction included."""
    # Let us first order transactions chronologically (stable: ties keep their order)
    customer_transactions = customer_transactions.sort_values("TX_DATETIME", kind="mergesort")
    # The transaction date and time is set as the index, which allows the use of rolling
    customer_transactions.index = pd.DatetimeIndex(customer_transactions["TX_DATETIME"])
    for window_size in windows_size_in_days:
        rolling = customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "D")
        sum_amount_tx_window = rolling.sum()
        nb_tx_window = rolling.count()
        # NB_TX_WINDOW is always > 0 since the current transaction is always included
        avg_amount_tx_window = sum_amount_tx_window / nb_tx_window
        customer_transactions["CUSTOMER_ID_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(
            nb_tx_window
        )
        customer_transactions["CUSTOMER_ID_AVG_AMOUNT_" + str(window_size) + "DAY_WINDOW"] = list(
            avg_amount_tx_window
        )
    # Reindex according to transaction IDs
    customer_transactions.index = pd.Index(customer_transactions["TRANSACTION_ID"])
    return customer_transactions


def get_count_risk_rolling_window(
    terminal_transactions: pd.DataFrame,
    delay_period: int = DELAY_PERIOD,
    windows_size_in_days: Sequence[int] = WINDOWS,
    feature: str = "TERMINAL_ID",
) -> pd.DataFrame:
    """Number of transactions and fraud rate in ``(t - delay - w, t - delay]``; NaN risk -> 0."""
    terminal_transactions = terminal_transactions.sort_values("TX_DATETIME", kind="mergesort")
    terminal_transactions.index = pd.DatetimeIndex(terminal_transactions["TX_DATETIME"])
    delay = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "D")
    nb_fraud_delay = delay.sum()
    nb_tx_delay = delay.count()
    for window_size in windows_size_in_days:
        delay_window = terminal_transactions["TX_FRAUD"].rolling(
            str(delay_period + window_size) + "D"
        )
        nb_fraud_delay_window = delay_window.sum()
        nb_tx_delay_window = delay_window.count()
        nb_fraud_window = nb_fraud_delay_window - nb_fraud_delay
        nb_tx_window = nb_tx_delay_window - nb_tx_delay
        risk_window = nb_fraud_window / nb_tx_window
        terminal_transactions[feature + "_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(
            nb_tx_window
        )
        terminal_transactions[feature + "_RISK_" + str(window_size) + "DAY_WINDOW"] = list(
            risk_window
        )
    terminal_transactions.index = pd.Index(terminal_transactions["TRANSACTION_ID"])
    # Replace NA values with 0 (all undefined risk scores where NB_TX_WINDOW is 0)
    terminal_transactions = terminal_transactions.fillna(0)
    return terminal_transactions


def _groupby_apply(
    df: pd.DataFrame, key: str, func: Callable[[pd.DataFrame], pd.DataFrame]
) -> pd.DataFrame:
    # Grouping by the key's values (not its label) keeps the key column inside every group on
    # pandas 2 and 3 alike; the group level that apply prepends to the index is then dropped.
    grouped = df.groupby(df[key].to_numpy(), group_keys=True, sort=True)
    out = grouped.apply(func)
    return out.reset_index(drop=True)


def handbook_features(
    df: pd.DataFrame,
    *,
    windows_size_in_days: Sequence[int] = WINDOWS,
    delay_period: int = DELAY_PERIOD,
) -> pd.DataFrame:
    """The book's chapter 3 features for a whole transactions table.

    Parameters
    ----------
    df
        Columns ``TRANSACTION_ID`` (unique), ``TX_DATETIME``, ``CUSTOMER_ID``, ``TERMINAL_ID``,
        ``TX_AMOUNT``, ``TX_FRAUD``; other columns are ignored.

    Returns
    -------
    pandas.DataFrame
        One row per ``TRANSACTION_ID``, sorted by it, with a RangeIndex and the columns
        ``TRANSACTION_ID`` followed by :func:`feature_columns` (15 features by default).
    """
    tx = df[list(RAW_COLUMNS)].sort_values("TRANSACTION_ID", kind="mergesort").reset_index(drop=True)
    tx["TX_DURING_WEEKEND"] = tx["TX_DATETIME"].apply(is_weekend)
    tx["TX_DURING_NIGHT"] = tx["TX_DATETIME"].apply(is_night)
    windows = list(windows_size_in_days)

    tx = _groupby_apply(
        tx,
        "CUSTOMER_ID",
        lambda x: get_customer_spending_behaviour_features(x, windows_size_in_days=windows),
    )
    # The book: sort_values('TX_DATETIME').reset_index(drop=True); ties by TRANSACTION_ID here
    tx = tx.sort_values(["TX_DATETIME", "TRANSACTION_ID"], kind="mergesort")
    tx = tx.reset_index(drop=True)
    tx = _groupby_apply(
        tx,
        "TERMINAL_ID",
        lambda x: get_count_risk_rolling_window(
            x, delay_period=delay_period, windows_size_in_days=windows, feature="TERMINAL_ID"
        ),
    )
    tx = tx.sort_values("TRANSACTION_ID", kind="mergesort").reset_index(drop=True)
    return tx[["TRANSACTION_ID", *feature_columns(windows)]]


# ---------------------------------------------------------------------------------------------
# The sorted two-pointer kernel
# ---------------------------------------------------------------------------------------------

_njit: Callable[..., Any] | None
try:  # numba is optional (the ``bench`` extra); the numpy fallback is exact but slower
    from numba import njit as _njit

    KERNEL_BACKEND = "numba"
except ImportError:  # pragma: no cover - depends on the environment
    _njit = None
    KERNEL_BACKEND = "numpy"


def _jit(func: Callable[..., Any]) -> Callable[..., Any]:
    if _njit is None:
        return func
    compiled: Callable[..., Any] = _njit(nogil=True)(func)
    return compiled


@_jit
def _time_order(t: I64, tid: I64) -> I64:
    """Row order by (t, tid) when t is already sorted (short tie runs fixed); else empty."""
    n = t.size
    for i in range(1, n):
        if t[i] < t[i - 1]:
            return np.empty(0, np.int64)
    order = np.arange(n)
    i = 0
    while i < n:
        j = i + 1
        while j < n and t[j] == t[i]:
            j += 1
        if j - i > 64:  # long runs of ties: let the caller sort instead
            return np.empty(0, np.int64)
        # insertion sort of the (short) run of tied timestamps by tid
        for a in range(i + 1, j):
            v = order[a]
            b = a - 1
            while b >= i and tid[order[b]] > tid[v]:
                order[b + 1] = order[b]
                b -= 1
            order[b + 1] = v
        i = j
    return order


@_jit
def _counting_sort(dense_key: I64, order: I64, n_keys: int) -> I64:
    """Stable sort of ``order`` by ``dense_key[order]`` (keys in ``0..n_keys-1``)."""
    start = np.zeros(n_keys + 1, np.int64)
    for i in range(order.size):
        start[dense_key[order[i]] + 1] += 1
    for k in range(n_keys):
        start[k + 1] += start[k]
    perm = np.empty(order.size, np.int64)
    for i in range(order.size):
        r = order[i]
        k = dense_key[r]
        perm[start[k]] = r
        start[k] += 1
    return perm


@_jit
def _scatter(values: F64, dest: I64, out: F64, col0: int) -> None:
    """``out[col0 + c, dest[i]] = values[c, i]``, one column at a time (cache friendlier)."""
    for c in range(values.shape[0]):
        for i in range(dest.size):
            out[col0 + c, dest[i]] = values[c, i]


@_jit
def _gather(perm: I64, key: I64, t: I64, value: F64, rank: I64) -> tuple[I64, I64, F64, I64]:
    """Key, time, value and output position of the rows, in ``perm`` order."""
    n = perm.size
    ks = np.empty(n, np.int64)
    ts = np.empty(n, np.int64)
    vs = np.empty(n, np.float64)
    dest = np.empty(n, np.int64)
    for i in range(n):
        r = perm[i]
        ks[i] = key[r]
        ts[i] = t[r]
        vs[i] = value[r]
        dest[i] = rank[r]
    return ks, ts, vs, dest


@_jit
def _customer_pass(ks: I64, ts: I64, am: F64, win: I64, values: F64) -> None:
    """Count and mean amount over ``(t - w, t]``, current row and tied earlier rows included.

    Rows are sorted by (key, time, TRANSACTION_ID). The amount sum is updated like pandas'
    variable-window ``roll_sum``: Kahan-compensated, removals before the addition, restarted
    from zero when the window has emptied.
    """
    n = ts.size
    nw = win.size
    lo = np.zeros(nw, np.int64)
    s = np.zeros(nw, np.float64)
    comp = np.zeros(nw, np.float64)
    for i in range(n):
        if i == 0 or ks[i] != ks[i - 1]:
            lo[:] = i
            s[:] = 0.0
            comp[:] = 0.0
        ti = ts[i]
        for w in range(nw):
            bound = ti - win[w]
            j = lo[w]
            sw = s[w]
            cw = comp[w]
            while ts[j] <= bound:  # stops at i at the latest: ts[i] > bound
                y = -am[j] - cw
                tt = sw + y
                cw = tt - sw - y
                sw = tt
                j += 1
            if j == i:  # the window emptied: start again from zero
                sw = 0.0
                cw = 0.0
            y = am[i] - cw
            tt = sw + y
            cw = tt - sw - y
            sw = tt
            lo[w] = j
            s[w] = sw
            comp[w] = cw
            cnt = i - j + 1
            values[2 * w, i] = cnt
            values[2 * w + 1, i] = sw / cnt


@_jit
def _terminal_pass(ks: I64, ts: I64, fraud: F64, delay: int, win: I64, values: F64) -> None:
    """Count and fraud rate over ``(t - delay - w, t - delay]``; rate 0 when the count is 0."""
    n = ts.size
    nw = win.size
    cum = np.empty(n + 1, np.float64)  # fraud prefix sums, exact for 0/1 labels
    cum[0] = 0.0
    for i in range(n):
        cum[i + 1] = cum[i] + fraud[i]
    a = 0
    lo = np.zeros(nw, np.int64)
    for i in range(n):
        if i == 0 or ks[i] != ks[i - 1]:
            a = i
            lo[:] = i
        bound = ts[i] - delay
        while ts[a] <= bound:  # stops at i at the latest
            a += 1
        for w in range(nw):
            bw = bound - win[w]
            j = lo[w]
            while ts[j] <= bw:
                j += 1
            lo[w] = j
            cnt = a - j
            values[2 * w, i] = cnt
            values[2 * w + 1, i] = (cum[a] - cum[j]) / cnt if cnt > 0 else 0.0


@_jit
def _calendar_pass(t: I64, dest: I64, weekend: I64, night: I64) -> None:
    day = 86_400_000_000_000
    hour = 3_600_000_000_000
    for r in range(t.size):
        days = t[r] // day
        weekend[dest[r]] = 1 if (days + 3) % 7 >= 5 else 0  # 1970-01-01 was a Thursday (3)
        night[dest[r]] = 1 if (t[r] // hour) % 24 <= 6 else 0


def _dense(key: I64) -> tuple[I64, int]:
    """Keys as integers ``0..k-1`` (used as is when they are already small non-negatives)."""
    if key.size == 0:
        return key, 0
    lo, hi = int(key.min()), int(key.max())
    if lo >= 0 and hi < 4 * key.size + 1024:
        return key, hi + 1
    codes, uniques = pd.factorize(key, sort=False)
    return codes.astype(np.int64, copy=False), len(uniques)


def _tid_rank(tid: I64) -> I64:
    """Output position of each row: the rank of its TRANSACTION_ID."""
    n = tid.size
    if n == 0:
        return np.empty(0, np.int64)
    lo, hi = int(tid.min()), int(tid.max())
    if hi - lo == n - 1:
        rank = tid - lo
        seen = np.zeros(n, np.bool_)
        seen[rank] = True
        if seen.all():
            return rank
    if len(np.unique(tid)) != n:
        raise ValueError("TRANSACTION_ID must be unique")
    rank = np.empty(n, np.int64)
    rank[np.argsort(tid, kind="stable")] = np.arange(n)
    return rank


def _key_codes(key: pd.Series) -> I64:
    """Integer keys as they are; any other key type as factorised codes."""
    if pd.api.types.is_integer_dtype(key.dtype):
        return key.to_numpy(dtype=np.int64)
    codes, _ = pd.factorize(key)
    return codes.astype(np.int64)


def _columns(df: pd.DataFrame) -> tuple[I64, I64, I64, I64, F64, F64]:
    tid = df["TRANSACTION_ID"].to_numpy(dtype=np.int64)
    t = df["TX_DATETIME"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    cust = _key_codes(df["CUSTOMER_ID"])
    term = _key_codes(df["TERMINAL_ID"])
    amount = df["TX_AMOUNT"].to_numpy(dtype=np.float64)
    fraud = df["TX_FRAUD"].to_numpy(dtype=np.float64)
    return tid, t, cust, term, amount, fraud


def _check_periods(windows: Sequence[int], delay_period: int) -> None:
    if any(w <= 0 for w in windows) or delay_period <= 0:
        raise ValueError(
            f"windows ({list(windows)}) and delay_period ({delay_period}) must be positive days"
        )


def _numba_windows(
    tid: I64,
    t: I64,
    cust: I64,
    term: I64,
    amount: F64,
    fraud: F64,
    rank: I64,
    windows: Sequence[int],
    delay_period: int,
) -> F64:
    n = tid.size
    nw = len(windows)
    win = np.asarray([w * NS_PER_DAY for w in windows], dtype=np.int64)
    out = np.empty((4 * nw, n), dtype=np.float64)
    order = _time_order(t, tid)
    if order.size != n:
        order = np.lexsort((tid, t)).astype(np.int64)

    def customer() -> None:
        dense, k = _dense(cust)
        ks, ts, am, dest = _gather(_counting_sort(dense, order, k), dense, t, amount, rank)
        values = np.empty((2 * nw, n), dtype=np.float64)
        _customer_pass(ks, ts, am, win, values)
        _scatter(values, dest, out, 0)

    def terminal() -> None:
        dense, k = _dense(term)
        ks, ts, fr, dest = _gather(_counting_sort(dense, order, k), dense, t, fraud, rank)
        values = np.empty((2 * nw, n), dtype=np.float64)
        _terminal_pass(ks, ts, fr, delay_period * NS_PER_DAY, win, values)
        _scatter(values, dest, out, 2 * nw)

    if n >= _THREAD_MIN_ROWS and (os.cpu_count() or 1) > 1:
        with ThreadPoolExecutor(max_workers=2) as pool:  # the kernels release the GIL
            futures = [pool.submit(customer), pool.submit(terminal)]
            for f in futures:
                f.result()
    else:
        customer()
        terminal()
    return out


def _numpy_windows(
    tid: I64,
    t: I64,
    cust: I64,
    term: I64,
    amount: F64,
    fraud: F64,
    rank: I64,
    windows: Sequence[int],
    delay_period: int,
) -> F64:
    """Same as the numba passes, vectorised: the left pointers come from ``searchsorted``."""
    n = tid.size
    nw = len(windows)
    out = np.empty((4 * nw, n), dtype=np.float64)
    if n == 0:
        return out
    cust_bounds = [t - w * NS_PER_DAY for w in windows]
    delay_ns = delay_period * NS_PER_DAY
    term_bounds = [t - delay_ns, *[t - delay_ns - w * NS_PER_DAY for w in windows]]
    # Ranks in the union of times and bounds keep every comparison t_j <= bound exact.
    universe = np.unique(np.concatenate([t, *cust_bounds, *term_bounds]))
    t_rank = np.searchsorted(universe, t)
    span = np.int64(universe.size)

    def pointers(key: I64, bounds: list[I64]) -> tuple[I64, list[I64]]:
        perm = np.lexsort((tid, t, key))
        ks = key[perm]
        group = np.concatenate([[0], np.cumsum(ks[1:] != ks[:-1])]).astype(np.int64)
        comp = group * span + t_rank[perm]
        los = [
            np.searchsorted(comp, group * span + np.searchsorted(universe, b[perm]), "right")
            for b in bounds
        ]
        return perm, los

    perm, los = pointers(cust, cust_bounds)
    dest = rank[perm]
    pos = np.arange(n)
    padded = np.append(amount[perm], 0.0)
    for w, lo in enumerate(los):
        idx = np.empty(2 * n, dtype=np.int64)
        idx[0::2] = lo
        idx[1::2] = pos + 1
        sums = np.add.reduceat(padded, idx)[0::2]
        cnt = pos - lo + 1
        out[2 * w, dest] = cnt
        out[2 * w + 1, dest] = sums / cnt

    perm, los = pointers(term, term_bounds)
    dest = rank[perm]
    cum = np.concatenate([[0.0], np.cumsum(fraud[perm])])
    a = los[0]
    for w, lo in enumerate(los[1:]):
        cnt = a - lo
        nb_fraud = cum[a] - cum[lo]
        risk = np.divide(nb_fraud, cnt, out=np.zeros(n), where=cnt > 0)
        out[2 * nw + 2 * w, dest] = cnt
        out[2 * nw + 2 * w + 1, dest] = risk
    return out


def two_pointer_features(
    df: pd.DataFrame,
    *,
    windows_size_in_days: Sequence[int] = WINDOWS,
    delay_period: int = DELAY_PERIOD,
    backend: str | None = None,
) -> pd.DataFrame:
    """The same table as :func:`handbook_features`, from sorted arrays and two pointers.

    Rows are sorted once by time (and ``TRANSACTION_ID`` within ties), then stably by each
    entity key, which gives the order ``(key, time, TRANSACTION_ID)``; a single pass per entity
    moves one left pointer per window boundary. ``backend`` is ``"numba"`` or ``"numpy"``
    (default: :data:`KERNEL_BACKEND`).
    """
    backend = backend or KERNEL_BACKEND
    if backend == "numba" and _njit is None:
        raise ValueError("backend='numba' needs numba installed (the 'bench' extra)")
    if backend not in ("numba", "numpy"):
        raise ValueError(f"backend must be 'numba' or 'numpy', not {backend!r}")
    windows = list(windows_size_in_days)
    _check_periods(windows, delay_period)
    tid, t, cust, term, amount, fraud = _columns(df)
    n = tid.size
    rank = _tid_rank(tid)
    compute = _numba_windows if backend == "numba" else _numpy_windows
    values = compute(tid, t, cust, term, amount, fraud, rank, windows, delay_period)

    tid_out = np.empty(n, np.int64)
    tid_out[rank] = tid
    amount_out = np.empty(n, np.float64)
    amount_out[rank] = amount
    weekend = np.empty(n, np.int64)
    night = np.empty(n, np.int64)
    if backend == "numba":
        _calendar_pass(t, rank, weekend, night)
    else:
        days = t // NS_PER_DAY
        weekend[rank] = ((days + 3) % 7 >= 5).astype(np.int64)
        night[rank] = ((t // NS_PER_HOUR) % 24 <= 6).astype(np.int64)
    cols = feature_columns(windows)
    data: dict[str, npt.NDArray[Any]] = {
        "TRANSACTION_ID": tid_out,
        cols[0]: amount_out,
        cols[1]: weekend,
        cols[2]: night,
    }
    for i, name in enumerate(cols[3:]):
        data[name] = values[i]
    return pd.DataFrame(data, copy=False)


def warm_up() -> None:
    """Compile the numba kernels (a no-op without numba) so timings exclude JIT time."""
    rng = np.random.default_rng(0)
    n = 64
    df = pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(n),
            "TX_DATETIME": pd.Timestamp("2018-04-01")
            + pd.to_timedelta(np.sort(rng.integers(0, 40 * 86_400, n)), unit="s"),
            "CUSTOMER_ID": rng.integers(0, 4, n),
            "TERMINAL_ID": rng.integers(0, 4, n),
            "TX_AMOUNT": rng.random(n),
            "TX_FRAUD": rng.integers(0, 2, n),
        }
    )
    two_pointer_features(df)
    two_pointer_features(df.iloc[::-1])
