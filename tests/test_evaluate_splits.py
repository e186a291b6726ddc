"""Time splits: period masks, the refusals and their messages, default periods, rolling origin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valuechain.errors import DataError, SpecError
from valuechain.evaluate.splits import default_periods, random_split, rolling_origin, time_splits
from valuechain.spec.models import Period

DAY = timedelta(days=1)


def hourly(start: str = "2025-01-01", days: int = 120) -> np.ndarray:
    return np.arange(np.datetime64(start, "h"), np.datetime64(start, "h") + days * 24).astype(
        "datetime64[us]")


def period(name: str, start: str, end: str) -> Period:
    return Period(name=name, start=datetime.fromisoformat(start), end=datetime.fromisoformat(end))


def test_masks_are_half_open_periods_and_gap_rows_belong_to_none() -> None:
    times = hourly(days=100)
    labels = np.ones(len(times))
    periods = [period("train", "2025-01-01", "2025-02-01"),
               period("validation", "2025-02-15", "2025-03-01"),
               period("test", "2025-03-15", "2025-04-01")]
    masks = time_splits(times, labels, periods, embargo=14 * DAY, horizon=7 * DAY)
    assert list(masks) == ["train", "validation", "test"]
    assert masks["train"].sum() == 31 * 24
    assert masks["validation"].sum() == 14 * 24
    assert masks["test"].sum() == 17 * 24
    assert times[masks["train"]].max() == np.datetime64("2025-01-31T23:00", "us")
    assert times[masks["validation"]].min() == np.datetime64("2025-02-15", "us")
    in_any = masks["train"] | masks["validation"] | masks["test"]
    gap = (times >= np.datetime64("2025-02-01", "us")) & (times < np.datetime64("2025-02-15", "us"))
    assert not in_any[gap].any()
    assert in_any.sum() == (31 + 14 + 17) * 24
    assert not (masks["train"] & masks["validation"]).any()


def test_aware_times_against_naive_and_aware_bounds() -> None:
    times = pd.Series(pd.date_range("2025-01-01", periods=24 * 60, freq="h", tz="Europe/Paris"))
    labels = np.ones(len(times))
    naive = [period("train", "2025-01-01", "2025-01-10"), period("test", "2025-01-20", "2025-02-01")]
    masks = time_splits(times, labels, naive, embargo=None, horizon=10 * DAY, min_positives=1)
    # naive bounds are UTC: 2025-01-01 00:00 UTC is 01:00 in Paris, so the first hour is out
    assert times[masks["train"]].min() == pd.Timestamp("2025-01-01 01:00", tz="Europe/Paris")
    paris = timezone(timedelta(hours=1))
    aware = [Period(name="train", start=datetime(2025, 1, 1, tzinfo=paris),
                    end=datetime(2025, 1, 10, tzinfo=paris)),
             Period(name="test", start=datetime(2025, 1, 20, tzinfo=UTC),
                    end=datetime(2025, 2, 1, tzinfo=UTC))]
    masks = time_splits(times, labels, aware, embargo=None, horizon=10 * DAY, min_positives=1)
    assert times[masks["train"]].min() == pd.Timestamp("2025-01-01 00:00", tz="Europe/Paris")
    assert masks["train"].sum() == 9 * 24


def test_embargo_defaults_to_the_horizon() -> None:
    times, labels = hourly(), np.ones(len(hourly()))
    periods = [period("train", "2025-01-01", "2025-02-01"), period("test", "2025-03-03", "2025-04-01")]
    time_splits(times, labels, periods, embargo=None, horizon=30 * DAY)  # gap exactly 30d: fine
    with pytest.raises(SpecError, match="only 30d after"):
        time_splits(times, labels, periods, embargo=None, horizon=31 * DAY)


def test_embargo_shorter_than_horizon_is_refused_with_both_numbers_and_the_fix() -> None:
    periods = [period("train", "2025-01-01", "2025-02-01"), period("test", "2025-04-01", "2025-05-01")]
    with pytest.raises(SpecError) as err:
        time_splits(hourly(), np.ones(len(hourly())), periods, embargo=7 * DAY,
                    horizon=60 * DAY, source="fraud/valuechain.yaml")
    assert str(err.value) == (
        "fraud/valuechain.yaml: split.embargo 7d is shorter than the label horizon 60d: "
        "training labels would overlap the next period; set split.embargo to at least 60d."
    )


def test_period_ending_before_it_starts() -> None:
    periods = [period("train", "2025-02-01", "2025-01-01")]
    with pytest.raises(SpecError) as err:
        time_splits(hourly(), np.ones(len(hourly())), periods, embargo=None, horizon=DAY)
    message = str(err.value)
    assert "split.periods[0] 'train' ends (2025-01-01) at or before it starts (2025-02-01)" in message
    assert "set its end after its start" in message


def test_overlapping_periods_print_both_spans_the_overlap_and_the_first_allowed_start() -> None:
    periods = [period("train", "2025-01-01", "2025-03-01"),
               period("validation", "2025-02-15", "2025-03-15")]
    with pytest.raises(SpecError) as err:
        time_splits(hourly(), np.ones(len(hourly())), periods, embargo=None, horizon=7 * DAY)
    message = str(err.value)
    assert "'validation' [2025-02-15, 2025-03-15) starts 14d before" in message
    assert "'train' [2025-01-01, 2025-03-01) ends: the periods overlap" in message
    assert "start 'validation' on or after 2025-03-08" in message
    assert "embargo 7d" in message


def test_gap_shorter_than_embargo_prints_dates_gap_and_fix() -> None:
    periods = [period("train", "2025-01-01", "2025-03-01"),
               period("test", "2025-03-10", "2025-04-01")]
    with pytest.raises(SpecError) as err:
        time_splits(hourly(), np.ones(len(hourly())), periods, embargo=60 * DAY, horizon=60 * DAY)
    message = str(err.value)
    assert ("split.periods[1] 'test' starts 2025-03-10, only 9d after split.periods[0] 'train' "
            "ends (2025-03-01); the embargo is 60d") in message
    assert "Start 'test' on or after 2025-04-30, or end 'train' on or before 2025-01-09" in message


def test_several_problems_are_reported_together() -> None:
    periods = [period("train", "2025-01-01", "2025-03-01"),
               period("train", "2025-02-01", "2025-01-15")]
    with pytest.raises(SpecError) as err:
        time_splits(hourly(), np.ones(len(hourly())), periods, embargo=None, horizon=DAY)
    message = str(err.value)
    assert message.startswith("valuechain.yaml: 3 problems with `split`:")
    assert "repeats the name(s) ['train']" in message


def test_too_few_mature_positives_prints_the_count() -> None:
    times = hourly(days=90)
    labels = np.zeros(len(times))
    late = times >= np.datetime64("2025-03-01", "us")
    labels[np.flatnonzero(~late)[::20]] = 1.0  # plenty early on
    labels[np.flatnonzero(late)[:12]] = 1.0  # 12 positives in test
    labels[np.flatnonzero(late)[12:40]] = np.nan  # immature: not positives, not mature
    periods = [period("train", "2025-01-01", "2025-02-01"), period("test", "2025-03-01", "2025-04-01")]
    with pytest.raises(SpecError) as err:
        time_splits(times, labels, periods, embargo=None, horizon=14 * DAY)
    message = str(err.value)
    n_test = int(late.sum())
    assert (f"split.periods[1] 'test' [2025-03-01, 2025-04-01) has 12 mature positives (among "
            f"{n_test - 28:,} mature rows of {n_test:,}); at least 20 are needed") in message
    assert "horizon 14d" in message
    assert "'train'" not in message
    masks = time_splits(times, labels, periods, embargo=None, horizon=14 * DAY, min_positives=12)
    assert masks["test"].sum() == n_test


def test_missing_times_are_refused() -> None:
    times = np.array(["2025-01-01", "NaT"], dtype="datetime64[us]")
    with pytest.raises(DataError, match="1 of 2 decision times are missing"):
        time_splits(times, [1, 1], [period("a", "2025-01-01", "2025-02-01")], embargo=None,
                    horizon=DAY, min_positives=0)


def test_default_periods_are_valid_consecutive_and_cover_the_data() -> None:
    times = hourly(days=200)
    periods = default_periods(times, 30 * DAY)
    assert [p.name for p in periods] == ["train", "validation", "test"]
    assert periods[0].start == datetime(2025, 1, 1)
    assert periods[-1].end > times.max().astype(datetime)
    for a, b in pairwise(periods):
        assert b.start - a.end == 30 * DAY
        assert b.start.hour == 0
    lengths = [(p.end - p.start).days for p in periods]
    assert lengths == [84, 28, 28]  # (200 - 2 * 30) days shared 0.6 / 0.2 / 0.2
    masks = time_splits(times, np.ones(len(times)), periods, embargo=None, horizon=30 * DAY)
    assert sum(int(m.sum()) for m in masks.values()) == (200 - 60) * 24


def test_default_periods_aware_and_two_fractions_and_too_short() -> None:
    times = pd.Series(pd.date_range("2025-01-01", periods=1000, freq="h", tz="UTC"))
    periods = default_periods(times, DAY, fractions=(3, 1), embargo=2 * DAY)
    assert [p.name for p in periods] == ["train", "test"]
    assert periods[0].start.tzinfo is not None
    assert periods[1].start - periods[0].end == 2 * DAY
    with pytest.raises(DataError, match=r"span 2d 23h \(2025-01-01 .. 2025-01-03 23:00\), not "
                       "more than the 2 embargo gaps of 7d between 3 periods"):
        default_periods(hourly(days=3), 7 * DAY)


def test_rolling_origin_expanding_and_fixed_windows() -> None:
    times = hourly(days=120)
    folds = rolling_origin(times, n_folds=4, test_length=7 * DAY, embargo=14 * DAY)
    assert [f.index for f in folds] == [0, 1, 2, 3]
    assert folds[-1].test_end == datetime(2025, 5, 1)  # data ends 2025-04-30 23:00
    assert all(f.train_start == datetime(2025, 1, 1) for f in folds)
    for a, b in pairwise(folds):
        assert b.test_start == a.test_end
        assert b.train_end - a.train_end == 7 * DAY
    assert all(int(f.test.sum()) == 7 * 24 for f in folds)
    fixed = rolling_origin(times, n_folds=4, test_length=7 * DAY, embargo=14 * DAY,
                           train_length=30 * DAY)
    assert all(f.train_end - f.train_start == 30 * DAY for f in fixed)
    assert all(int(f.train.sum()) == 30 * 24 for f in fixed)


def test_rolling_origin_refuses_short_history_and_short_embargo() -> None:
    with pytest.raises(DataError) as err:
        rolling_origin(hourly(days=40), n_folds=4, test_length=7 * DAY, embargo=14 * DAY)
    message = str(err.value)
    assert "not enough history for 4 rolling-origin folds" in message
    assert "4 x test_length 7d + embargo 14d" in message
    assert "= 42d plus some training history" in message
    assert "run from 2025-01-01 to 2025-02-09 23:00 (folds end 2025-02-10: 40d)" in message
    with pytest.raises(DataError, match=r"\+ train_length 30d = 72d"):
        rolling_origin(hourly(days=60), n_folds=4, test_length=7 * DAY, embargo=14 * DAY,
                       train_length=30 * DAY)
    with pytest.raises(SpecError, match="embargo 7d is shorter than the label horizon 14d"):
        rolling_origin(hourly(), n_folds=2, test_length=DAY, embargo=7 * DAY, horizon=14 * DAY)


@settings(max_examples=60, deadline=None)
@given(
    n_folds=st.integers(1, 6),
    test_hours=st.integers(1, 24 * 10),
    embargo_hours=st.integers(0, 24 * 20),
    train_hours=st.one_of(st.none(), st.integers(1, 24 * 30)),
)
def test_rolling_origin_never_overlaps_test_with_train_plus_embargo(
    n_folds: int, test_hours: int, embargo_hours: int, train_hours: int | None
) -> None:
    rng = np.random.default_rng(n_folds * 1000 + test_hours)
    times = np.datetime64("2025-01-01", "us") + np.sort(
        rng.integers(0, 150 * 24 * 3600, 3000)).astype("timedelta64[s]")
    embargo = timedelta(hours=embargo_hours)
    try:
        folds = rolling_origin(
            times, n_folds=n_folds, test_length=timedelta(hours=test_hours), embargo=embargo,
            train_length=None if train_hours is None else timedelta(hours=train_hours))
    except DataError:
        return
    assert len(folds) == n_folds
    assert times.max() < np.datetime64(folds[-1].test_end)
    for fold in folds:
        assert not (fold.train & fold.test).any()
        assert fold.train_end + embargo == fold.test_start
        if fold.train.any():
            assert times[fold.train].max() < np.datetime64(fold.test_start - embargo)
        if fold.test.any():
            assert times[fold.test].min() >= np.datetime64(fold.test_start)
    tests = np.array([f.test for f in folds])
    assert (tests.sum(axis=0) <= 1).all()


def test_random_split_is_complementary_sized_and_reproducible() -> None:
    a, b = random_split(1000, 0.25, seed=7), random_split(1000, 0.25, seed=7)
    assert int(a["test"].sum()) == 250
    assert (a["train"] == ~a["test"]).all()
    assert (a["test"] == b["test"]).all()
    assert not (random_split(1000, 0.25, seed=8)["test"] == a["test"]).all()
    with pytest.raises(SpecError):
        random_split(10, 1.0, seed=0)


def test_one_gap_threshold_and_one_validation_share() -> None:
    from valuechain.audit.empirical import GAP_WARNING
    from valuechain.evaluate import RANDOM_TIME_GAP, VALIDATION_SHARE, split_validation

    assert GAP_WARNING == RANDOM_TIME_GAP == 0.03  # audit warns where train explains
    times = pd.Series(pd.date_range("2025-01-01", periods=100, freq="h"))
    train = np.zeros(100, bool)
    train[10:60] = True
    fit, valid = split_validation(times, train)
    assert not (fit & valid).any() and ((fit | valid) == train).all()
    assert int(valid.sum()) == round(50 * VALIDATION_SHARE)
    assert times[fit].max() < times[valid].min()
    with pytest.raises(SpecError, match="validation share"):
        split_validation(times, train, share=1.0)


# -- split.entity with empty values (guest checkouts) -------------------------------------------
def test_each_empty_entity_is_its_own_entity() -> None:
    import pandas as pd

    from valuechain.evaluate.metrics import card_precision_at_k
    from valuechain.evaluate.splits import NoEntity, entity_keys

    cards = pd.Series([7, None, 7, float("nan"), 8, None], dtype=object)
    keys = entity_keys(cards, ["1", "2", "3", "4", "5", "6"])
    assert list(keys[[0, 2, 4]]) == [7, 7, 8]
    assert [keys[i] for i in (1, 3, 5)] == [NoEntity("2"), NoEntity("4"), NoEntity("6")]
    assert len(set(keys.tolist())) == 5  # card 7 once, card 8, three guests
    assert NoEntity("2") != "2" and str(keys[1]) == "<no entity: 2>"
    # CP@k accepts them: the guests compete as one-payment cards.
    cp = card_precision_at_k([0.9, 0.8, 0.1, 0.7, 0.2, 0.95], [1, 1, 0, 0, 0, 1],
                             [1] * 6, keys, k=2)
    assert cp.value == 1.0  # guest 6 (0.95, fraud) and card 7 (0.9, fraud)
    with pytest.raises(DataError, match="missing day or entity"):
        card_precision_at_k([0.9, 0.8], [1, 1], [1, 1], [7, None], k=1)
