"""Time splits: consecutive periods with an embargo, rolling-origin folds, a random split.

A model is judged on the future, so train, validation and test are consecutive periods
``[start, end)`` of decision time, separated by an *embargo* of at least the label horizon:
a training row's label window ``(t, t + horizon]`` then ends before the next period starts.
Rows that fall in an embargo gap, or outside every period, belong to no period.

Times are decision times as ``numpy.datetime64`` values or a (possibly time-zone aware)
pandas Series/Index. Aware times are compared as UTC instants; a naive period bound is read
as UTC wall-clock time (the spec writes dates such as ``2025-01-01``).

>>> import numpy as np
>>> from datetime import datetime, timedelta
>>> from valuechain.spec.models import Period
>>> times = np.arange("2025-01-01", "2025-01-31", dtype="datetime64[D]").astype("datetime64[us]")
>>> labels = np.ones(len(times))
>>> periods = [Period(name="train", start=datetime(2025, 1, 1), end=datetime(2025, 1, 11)),
...            Period(name="test", start=datetime(2025, 1, 18), end=datetime(2025, 1, 31))]
>>> masks = time_splits(times, labels, periods, embargo=None, horizon=timedelta(days=7),
...                     min_positives=1)
>>> {name: int(mask.sum()) for name, mask in masks.items()}
{'train': 10, 'test': 13}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.data.sources import datetime_to_us, us_to_datetime
from valuechain.errors import DataError, SpecError
from valuechain.spec.durations import to_micros
from valuechain.spec.models import Period

__all__ = [
    "RANDOM_TIME_GAP",
    "VALIDATION_SHARE",
    "Fold",
    "NoEntity",
    "default_periods",
    "entity_keys",
    "random_split",
    "rolling_origin",
    "split_validation",
    "time_splits",
]

Mask = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
_DAY_US = 86_400_000_000

#: Share of a training period's time span held out, at its end, for validation (early
#: stopping, calibration, choosing the policy) when the spec names no validation period:
#: with two periods in ``split.periods`` and in every rolling-origin fold.
VALIDATION_SHARE: Final = 0.2

#: A random-split ROC AUC above the time-split one by at least this much is worth a warning
#: (``valuechain audit``) and an explanation (``valuechain train``): training rows then sit
#: beside test rows in time (the same customers, cards, campaigns), or the data drifts. Below
#: it the gap is within the sampling noise of an AUC on a few hundred positives.
RANDOM_TIME_GAP: Final = 0.03


def _times_us(times: npt.ArrayLike | pd.Series | pd.Index) -> tuple[I64, bool]:
    """Epoch microseconds of ``times`` (UTC instants if aware) and whether they are aware."""
    index = pd.DatetimeIndex(times)  # type: ignore[arg-type]
    if index.hasnans:
        raise DataError(
            f"{int(np.count_nonzero(index.isna()))} of {len(index)} decision times are missing (NaT); "
            "every decision point needs a time. Drop or fill those rows before splitting."
        )
    aware = index.tz is not None
    return np.asarray(index.as_unit("us").asi8, dtype=np.int64), aware


def _fmt_time(value: datetime) -> str:
    if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
        return f"{value:%Y-%m-%d}"
    if (value.second, value.microsecond) == (0, 0):
        return f"{value:%Y-%m-%d %H:%M}"
    return value.isoformat(sep=" ", timespec="seconds" if not value.microsecond else "auto")


def _fmt_delta(delta: timedelta) -> str:
    """``60d``, ``36h``, ``39d 23h 54min 30s``: days, hours, minutes and seconds as needed."""
    sign = "-" if delta < timedelta(0) else ""
    seconds = round(abs(delta).total_seconds())
    if seconds == 0:
        return "0s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if not days and hours and not minutes and not secs:
        return f"{sign}{hours}h"
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "min"), (secs, "s"))
             if v]
    return sign + " ".join(parts)


def _span(period: Period) -> str:
    return f"[{_fmt_time(period.start)}, {_fmt_time(period.end)})"


def time_splits(
    times: npt.ArrayLike | pd.Series | pd.Index,
    labels: npt.ArrayLike,
    periods: Sequence[Period],
    *,
    embargo: timedelta | None,
    horizon: timedelta,
    min_positives: int = 20,
    source: str = "valuechain.yaml",
) -> dict[str, Mask]:
    """Boolean masks of the rows in each period, after checking the periods are honest.

    Parameters
    ----------
    times : array-like of datetime64 or pandas Series/Index
        Decision time of each row.
    labels : array-like of float
        Label of each row; ``NaN`` marks an immature row (not counted as a positive).
    periods : sequence of Period
        Periods ``[start, end)`` in time order, as in ``split.periods``.
    embargo : timedelta or None
        Minimum gap between one period's end and the next one's start; ``None`` means the
        label horizon.
    horizon : timedelta
        The label horizon; the embargo may not be shorter.
    min_positives : int, default 20
        Fewest mature positives (``label > 0``) a period may hold.
    source : str
        File name used in error messages.

    Returns
    -------
    dict of str to ndarray of bool
        One mask per period name, in the order given. Rows in embargo gaps are in no mask.

    Raises
    ------
    SpecError
        When the embargo is shorter than the horizon, a period ends before it starts, two
        periods overlap or are closer than the embargo, or a period has too few positives.
        The message prints every number involved and the fix.

    Examples
    --------
    >>> import numpy as np
    >>> from datetime import datetime, timedelta
    >>> from valuechain.spec.models import Period
    >>> times = np.array(["2025-01-01", "2025-02-01"], dtype="datetime64[us]")
    >>> p = [Period(name="train", start=datetime(2025, 1, 1), end=datetime(2025, 1, 2)),
    ...      Period(name="test", start=datetime(2025, 1, 5), end=datetime(2025, 3, 1))]
    >>> time_splits(times, [1, 0], p, embargo=timedelta(days=3), horizon=timedelta(days=7))
    Traceback (most recent call last):
    ...
    valuechain.errors.SpecError: valuechain.yaml: split.embargo 3d is shorter than the label ...
    """
    if embargo is None:
        embargo = horizon
    if embargo < horizon:
        raise SpecError(
            f"{source}: split.embargo {_fmt_delta(embargo)} is shorter than the label horizon "
            f"{_fmt_delta(horizon)}: training labels would overlap the next period; set "
            f"split.embargo to at least {_fmt_delta(horizon)}."
        )
    problems: list[str] = []
    names = [p.name for p in periods]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        problems.append(f"split.periods repeats the name(s) {duplicated}; give each period a "
                        "distinct name.")
    for i, period in enumerate(periods):
        if period.end <= period.start:
            problems.append(
                f"split.periods[{i}] '{period.name}' ends ({_fmt_time(period.end)}) at or "
                f"before it starts ({_fmt_time(period.start)}); set its end after its start."
            )
    for i in range(1, len(periods)):
        a, b = periods[i - 1], periods[i]
        earliest = a.end + embargo
        if b.start < a.end:
            problems.append(
                f"split.periods[{i}] '{b.name}' {_span(b)} starts {_fmt_delta(a.end - b.start)} "
                f"before split.periods[{i - 1}] '{a.name}' {_span(a)} ends: the periods overlap. "
                f"List periods in time order and start '{b.name}' on or after "
                f"{_fmt_time(earliest)} ('{a.name}' end {_fmt_time(a.end)} + embargo "
                f"{_fmt_delta(embargo)})."
            )
        elif b.start < earliest:
            problems.append(
                f"split.periods[{i}] '{b.name}' starts {_fmt_time(b.start)}, only "
                f"{_fmt_delta(b.start - a.end)} after split.periods[{i - 1}] '{a.name}' ends "
                f"({_fmt_time(a.end)}); the embargo is {_fmt_delta(embargo)} (label horizon "
                f"{_fmt_delta(horizon)}). Start '{b.name}' on or after {_fmt_time(earliest)}, or "
                f"end '{a.name}' on or before {_fmt_time(b.start - embargo)}."
            )
    if problems:
        raise SpecError(_join(source, problems))

    us, _aware = _times_us(times)
    y = np.asarray(labels, dtype=np.float64)
    if y.shape != us.shape:
        raise DataError(f"`times` has {us.shape[0]} rows but `labels` has {y.shape[0]}; give "
                        "one label per decision time.")
    masks: dict[str, Mask] = {}
    for i, period in enumerate(periods):
        mask = (us >= datetime_to_us(period.start)) & (us < datetime_to_us(period.end))
        masks[period.name] = mask
        in_period = y[mask]
        mature = int(np.count_nonzero(~np.isnan(in_period)))
        positives = int(np.count_nonzero(in_period > 0))
        if positives < min_positives:
            problems.append(
                f"split.periods[{i}] '{period.name}' {_span(period)} has {positives:,} mature "
                f"positives (among {mature:,} mature rows of {int(mask.sum()):,}); at least "
                f"{min_positives:,} are needed for stable metrics. Lengthen the period, or move it "
                f"earlier so more labels have matured (horizon {_fmt_delta(horizon)})."
            )
    if problems:
        raise SpecError(_join(source, problems))
    return masks


def _join(source: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{source}: {len(problems)} problems with `split`:\n" + "\n".join(
        f"  - {p}" for p in problems
    )


def default_periods(
    times: npt.ArrayLike | pd.Series | pd.Index,
    horizon: timedelta,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    *,
    embargo: timedelta | None = None,
    names: Sequence[str] | None = None,
) -> list[Period]:
    """Propose consecutive periods covering the data, separated by an embargo.

    Used when the spec declares no ``split``: the span of ``times`` minus the embargo gaps is
    shared out by ``fractions`` (normalised to sum to one).

    Parameters
    ----------
    times : array-like of datetime64 or pandas Series/Index
        Decision times of the (mature) rows.
    horizon : timedelta
        Label horizon; the default embargo.
    fractions : sequence of float, default (0.6, 0.2, 0.2)
        Share of the usable time span in each period.
    embargo : timedelta, optional
        Gap between periods; default ``horizon``.
    names : sequence of str, optional
        Period names; default ``train, validation, test`` (or ``train, test`` for two).

    Returns
    -------
    list of Period
        Periods ``[start, end)``; the last ends after the latest time. Bounds fall on whole
        (UTC) days when every period can span at least two days. Aware times give UTC-aware
        bounds.

    Examples
    --------
    >>> import numpy as np
    >>> from datetime import timedelta
    >>> times = np.arange("2025-01-01", "2025-04-11", dtype="datetime64[D]")
    >>> [(p.name, f"{p.start:%m-%d}", f"{p.end:%m-%d}")
    ...  for p in default_periods(times, timedelta(days=10))]
    [('train', '01-01', '02-18'), ('validation', '02-28', '03-16'), ('test', '03-26', '04-11')]
    """
    embargo = horizon if embargo is None else embargo
    shares = np.asarray(fractions, dtype=np.float64)
    if shares.ndim != 1 or len(shares) == 0 or np.any(shares <= 0):
        raise SpecError(f"split fractions must be positive numbers, got {list(fractions)}.")
    if names is None:
        defaults = {2: ("train", "test"), 3: ("train", "validation", "test")}
        if len(shares) not in defaults:
            raise SpecError(f"name the {len(shares)} periods: pass `names` with one per fraction.")
        names = defaults[len(shares)]
    if len(names) != len(shares):
        raise SpecError(f"{len(names)} names for {len(shares)} fractions; give one name each.")
    us, aware = _times_us(times)
    if len(us) == 0:
        raise DataError(
            "no decision times to split: the frame has no rows. `valuechain build` says why "
            "(it refuses an empty decision or outcome source and a frame without mature "
            "labels; see `rows` in build/manifest.json); run it again.")
    first, last = int(us.min()), int(us.max()) + 1
    gaps = (len(shares) - 1) * to_micros(embargo)
    # whole days when each period can hold a couple of them: readable bounds for the spec
    whole_days = last - first - gaps >= 2 * _DAY_US * len(shares)
    if whole_days:
        first, last = first // _DAY_US * _DAY_US, -(-last // _DAY_US) * _DAY_US
    usable = last - first - gaps
    if usable <= len(shares):
        low, high = int(us.min()), int(us.max())
        raise DataError(
            f"the decision times span {_fmt_delta(timedelta(microseconds=high - low))} "
            f"({_fmt_time(us_to_datetime(low, aware))} .. "
            f"{_fmt_time(us_to_datetime(high, aware))}), not more than the "
            f"{len(shares) - 1} embargo gaps of {_fmt_delta(embargo)} between {len(shares)} "
            "periods. Use more history, or declare `split.periods` yourself."
        )
    bounds = first + np.floor(np.cumsum(shares / shares.sum()) * usable).astype(np.int64)
    if whole_days:
        bounds = bounds // _DAY_US * _DAY_US
    bounds[-1] = last - gaps
    out: list[Period] = []
    start = first
    for i, name in enumerate(names):
        end = int(bounds[i]) + i * to_micros(embargo)
        if end <= start:
            raise DataError(
                f"period '{name}' would be empty: fractions {list(fractions)} over "
                f"{_fmt_delta(timedelta(microseconds=usable))} of usable time. Give it a larger "
                "fraction or declare `split.periods` yourself."
            )
        out.append(Period(name=name, start=us_to_datetime(start, aware),
                          end=us_to_datetime(end, aware)))
        start = end + to_micros(embargo)
    return out


@dataclass(frozen=True, eq=False)
class Fold:
    """One rolling-origin fold: training rows, test rows and their time bounds ``[start, end)``.

    The training period ends at least the embargo before the test period starts.
    """

    train: Mask
    test: Mask
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    index: int = 0


def rolling_origin(
    times: npt.ArrayLike | pd.Series | pd.Index,
    *,
    n_folds: int,
    test_length: timedelta,
    embargo: timedelta,
    train_length: timedelta | None = None,
    horizon: timedelta | None = None,
    until: datetime | None = None,
) -> list[Fold]:
    """Rolling-origin backtest folds stepping forward, the last test ending at the data's end.

    Fold ``j`` (0-based) tests on ``[end - (n_folds - j) * test_length, ... + test_length)``
    and trains on every earlier row up to the embargo before the test (expanding window) or
    on the ``train_length`` before that. ``end`` is just after the latest time, rounded up to
    midnight (UTC) when ``test_length`` is a whole number of days, or ``until``.

    Parameters
    ----------
    times : array-like of datetime64 or pandas Series/Index
        Decision times of the (mature) rows.
    n_folds : int
        Number of folds.
    test_length : timedelta
        Length of each test period (and the step between folds).
    embargo : timedelta
        Gap between a fold's training end and its test start.
    train_length : timedelta, optional
        Fixed training window; ``None`` trains on all earlier history (expanding).
    horizon : timedelta, optional
        When given, the embargo may not be shorter than it.
    until : datetime, optional
        End (exclusive) of the last test period; default the data's end.

    Returns
    -------
    list of Fold
        In time order.

    Raises
    ------
    DataError
        When the data does not reach back far enough for the first fold.

    Examples
    --------
    >>> import numpy as np
    >>> from datetime import timedelta
    >>> times = np.arange("2025-01-01", "2025-03-02", dtype="datetime64[D]")
    >>> folds = rolling_origin(times, n_folds=2, test_length=timedelta(days=7),
    ...                        embargo=timedelta(days=7))
    >>> [(f"{f.train_end:%m-%d}", f"{f.test_start:%m-%d}", int(f.test.sum())) for f in folds]
    [('02-09', '02-16', 7), ('02-16', '02-23', 7)]
    """
    if n_folds < 1:
        raise SpecError(f"n_folds must be at least 1, got {n_folds}.")
    if test_length <= timedelta(0):
        raise SpecError(f"test_length must be positive, got {_fmt_delta(test_length)}.")
    if embargo < timedelta(0):
        raise SpecError(f"embargo cannot be negative, got {_fmt_delta(embargo)}.")
    if train_length is not None and train_length <= timedelta(0):
        raise SpecError(f"train_length must be positive, got {_fmt_delta(train_length)}.")
    if horizon is not None and embargo < horizon:
        raise SpecError(
            f"rolling-origin embargo {_fmt_delta(embargo)} is shorter than the label horizon "
            f"{_fmt_delta(horizon)}: training labels would overlap the test fold; set the "
            f"embargo to at least {_fmt_delta(horizon)}."
        )
    us, aware = _times_us(times)
    if len(us) == 0:
        raise DataError("no decision times for a rolling-origin backtest: the frame is empty.")
    first, end = int(us.min()), int(us.max()) + 1
    if until is not None:
        end = datetime_to_us(until)
    elif test_length.total_seconds() % 86400 == 0:
        end = -(-end // _DAY_US) * _DAY_US  # whole-day folds end at midnight (UTC)
    step, gap = to_micros(test_length), to_micros(embargo)
    window = None if train_length is None else to_micros(train_length)
    first_train_end = end - n_folds * step - gap
    needed = n_folds * step + gap + (window or 0)
    if first_train_end <= first or (window is not None and first_train_end - window < first):
        fixed = "" if train_length is None else f" + train_length {_fmt_delta(train_length)}"
        raise DataError(
            f"not enough history for {n_folds} rolling-origin folds: they need "
            f"{n_folds} x test_length {_fmt_delta(test_length)} + embargo {_fmt_delta(embargo)}"
            f"{fixed} = {_fmt_delta(timedelta(microseconds=needed))}"
            f"{'' if window else ' plus some training history'}, but the decision times run "
            f"from {_fmt_time(us_to_datetime(first, aware))} to "
            f"{_fmt_time(us_to_datetime(int(us.max()), aware))} (folds end "
            f"{_fmt_time(us_to_datetime(end, aware))}: "
            f"{_fmt_delta(timedelta(microseconds=end - first))}). Use fewer or shorter folds, a "
            "shorter train_length, or more history."
        )
    folds: list[Fold] = []
    for j in range(n_folds):
        test_start = end - (n_folds - j) * step
        test_end = test_start + step
        train_end = test_start - gap
        train_start = first if window is None else train_end - window
        folds.append(Fold(
            train=(us >= train_start) & (us < train_end),
            test=(us >= test_start) & (us < test_end),
            train_start=us_to_datetime(train_start, aware),
            train_end=us_to_datetime(train_end, aware),
            test_start=us_to_datetime(test_start, aware),
            test_end=us_to_datetime(test_end, aware),
            index=j,
        ))
    return folds


def random_split(n: int, test_share: float, seed: int = 0) -> dict[str, Mask]:
    """A shuffled train/test split of ``n`` rows, for the random-vs-time comparison.

    Parameters
    ----------
    n : int
        Number of rows.
    test_share : float
        Share of rows in ``test``, in (0, 1).
    seed : int, default 0
        Seed of the shuffle.

    Returns
    -------
    dict of str to ndarray of bool
        ``{"train": mask, "test": mask}``, complementary.

    Examples
    --------
    >>> masks = random_split(10, 0.3, seed=1)
    >>> int(masks["test"].sum()), bool((masks["train"] ^ masks["test"]).all())
    (3, True)
    """
    if not 0 < test_share < 1:
        raise SpecError(f"test_share must be between 0 and 1 (exclusive), got {test_share}.")
    test = np.zeros(n, dtype=np.bool_)
    n_test = round(n * test_share)
    test[np.random.default_rng(seed).permutation(n)[:n_test]] = True
    return {"train": ~test, "test": test}


def split_validation(
    times: pd.Series, train: Mask, share: float = VALIDATION_SHARE
) -> tuple[Mask, Mask]:
    """Split the ``train`` rows in time: the last ``share`` of their span is validation.

    The cut is the ``1 - share`` quantile of the training rows' decision times, so the
    validation rows are the latest ones (never rows before training rows).

    Parameters
    ----------
    times : pandas.Series
        Decision time of every row.
    train : ndarray of bool
        The rows to split.
    share : float, default :data:`VALIDATION_SHARE`
        Share of the training rows (by time quantile) that become validation.

    Returns
    -------
    tuple of ndarray of bool
        ``(train, validation)`` masks over all rows, disjoint, covering ``train``.

    Examples
    --------
    >>> times = pd.Series(pd.date_range("2025-01-01", periods=10, freq="D"))
    >>> fit, valid = split_validation(times, np.ones(10, bool))
    >>> int(fit.sum()), int(valid.sum()), str(times[valid].min().date())
    (8, 2, '2025-01-09')
    """
    if not 0 < share < 1:
        raise SpecError(f"validation share must be between 0 and 1 (exclusive), got {share}.")
    cut = times[train].quantile(1 - share)
    later = (times >= cut).to_numpy()
    return train & ~later, train & later


@dataclass(frozen=True)
class NoEntity:
    """The entity of a row whose ``split.entity`` value is empty: its own, one per decision.

    Never equal to a real key value (nor to another row's), so a guest checkout without a
    card or customer id is a one-payment entity of its own, as it would be online.
    """

    decision_id: str

    def __str__(self) -> str:
        return f"<no entity: {self.decision_id}>"


def entity_keys(values: npt.ArrayLike | pd.Series, decision_ids: npt.ArrayLike | pd.Series,
                ) -> npt.NDArray[np.object_]:
    """The ``split.entity`` values with each empty one (null, NaN) made its own entity.

    Parameters
    ----------
    values : array-like
        The frame's entity column (e.g. ``card_id``), possibly with nulls (guest checkouts).
    decision_ids : array-like
        The frame's ``decision_id`` column, same length.

    Returns
    -------
    numpy.ndarray of object
        ``values`` where present; :class:`NoEntity` ``(decision_id)`` where empty.

    Examples
    --------
    >>> [str(k) for k in entity_keys([7, None, 7, float("nan")], ["a", "b", "c", "d"])]
    ['7', '<no entity: b>', '7', '<no entity: d>']
    """
    keys = np.asarray(pd.Series(values, dtype=object).to_numpy(dtype=object), dtype=object)
    ids = pd.Series(decision_ids, dtype=object).to_numpy(dtype=object)
    if len(keys) != len(ids):
        raise DataError(f"`values` and `decision_ids` have {len(keys)} and {len(ids)} rows; "
                        "expected one decision id per entity value.")
    empty = pd.isna(pd.Series(keys, dtype=object)).to_numpy()
    out = keys.copy()
    for i in np.flatnonzero(empty):
        out[i] = NoEntity(str(ids[i]))
    return out

