"""The control group of a list: random, stratified by score bin, reproducible with a seed;
the weekly selection: never more than the capacity, cooldown respected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valuechain.decide.outreach import select_weekly
from valuechain.errors import SpecError
from valuechain.lists import AssignmentLog, control_bins, control_seed, stratified_control
from valuechain.lists.history import Assignment


def _per_bin(control: np.ndarray, bins: int) -> np.ndarray:
    return np.bincount(control_bins(len(control), bins), weights=control, minlength=bins)


def test_exact_counts_per_decile_when_the_share_divides_every_decile() -> None:
    # 200 listed, 20 %: every decile of 20 holds out exactly 4, whatever the seed
    for seed in range(50):
        control = stratified_control(200, 0.2, 10, np.random.default_rng(seed))
        assert control.sum() == 40
        assert _per_bin(control, 10).tolist() == [4] * 10


def test_counts_per_decile_are_floor_or_floor_plus_one_and_the_total_is_exact() -> None:
    # 37 listed, 20 %: total round(7.4) = 7; deciles of 4 or 3 (bins = rank * 10 // 37)
    sizes = np.bincount(control_bins(37, 10))
    assert sizes.sum() == 37 and set(sizes.tolist()) <= {3, 4}
    share = 7 / 37
    for seed in range(200):
        per_bin = _per_bin(stratified_control(37, 0.2, 10, np.random.default_rng(seed)), 10)
        assert per_bin.sum() == 7
        floor = np.floor(share * sizes + 1e-9)
        assert np.all((per_bin == floor) | (per_bin == floor + 1))


def test_expected_share_is_the_same_in_every_decile_over_many_seeds() -> None:
    m, share, draws = 37, 0.2, 4000
    sizes = np.bincount(control_bins(m, 10))
    expected = round(share * m) / m * sizes  # exact expectation of the systematic draw
    totals = np.zeros(10)
    members = np.zeros(m)
    for seed in range(draws):
        control = stratified_control(m, share, 10, np.random.default_rng(seed))
        totals += _per_bin(control, 10)
        members += control
    mean = totals / draws
    # each decile's count is floor or floor + 1: a Bernoulli with p = leftover; SE <= 0.5/sqrt(n)
    assert np.all(np.abs(mean - expected) < 4 * 0.5 / np.sqrt(draws)), (mean, expected)
    # within a decile every member is equally likely to be held out (no rank bias)
    bins = control_bins(m, 10)
    for d in range(10):
        rate = members[bins == d] / draws
        p = expected[d] / sizes[d]
        se = np.sqrt(p * (1 - p) / draws)
        assert np.all(np.abs(rate - p) < 5 * se), (d, rate, p)


def test_reproducible_with_the_seed_and_different_across_seeds_and_weeks() -> None:
    first = stratified_control(500, 0.2, 10, np.random.default_rng(control_seed(7, "2025-06-02")))
    again = stratified_control(500, 0.2, 10, np.random.default_rng(control_seed(7, "2025-06-02")))
    other_week = stratified_control(500, 0.2, 10,
                                    np.random.default_rng(control_seed(7, "2025-06-09")))
    other_seed = stratified_control(500, 0.2, 10,
                                    np.random.default_rng(control_seed(8, "2025-06-02")))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other_week)
    assert not np.array_equal(first, other_seed)


def test_bad_share_or_bins_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="control_share"):
        stratified_control(10, 1.0, 10, np.random.default_rng(0))
    with pytest.raises(SpecError, match="stratify_bins"):
        stratified_control(10, 0.2, 0, np.random.default_rng(0))


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 400), share=st.floats(0, 0.95), bins=st.integers(1, 20),
       seed=st.integers(0, 2**32 - 1))
def test_property_total_and_per_bin_counts(m: int, share: float, bins: int, seed: int) -> None:
    control = stratified_control(m, share, bins, np.random.default_rng(seed))
    assert control.sum() == round(share * m)
    if m:
        sizes = np.bincount(control_bins(m, bins), minlength=bins)
        per_bin = _per_bin(control, bins)
        assert np.all(per_bin <= sizes)
        realised = round(share * m) / m
        floor = np.floor(realised * sizes + 1e-9)
        assert np.all((per_bin >= floor) & (per_bin <= floor + 1))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(0, 120), size=st.integers(0, 15),
       cooldown=st.integers(0, 6))
def test_property_weekly_lists_never_exceed_capacity_and_respect_cooldown(
        data: st.DataObject, n: int, size: int, cooldown: int) -> None:
    # one row per customer and period, as a schedule makes them
    pairs = sorted(data.draw(st.sets(st.tuples(st.integers(0, 9), st.integers(0, 12)),
                                     max_size=n)))
    n = len(pairs)
    periods = np.array([p for p, _ in pairs], dtype=np.int64)
    entity = np.array([e for _, e in pairs], dtype=np.int64)
    priority = np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    chosen = select_weekly(priority, periods, entity, size, cooldown_periods=cooldown)
    for p in np.unique(periods):
        assert chosen[periods == p].sum() <= size
    listed: dict[int, list[int]] = {}
    for e, p in zip(entity[chosen], periods[chosen], strict=True):
        listed.setdefault(int(e), []).append(int(p))
    for weeks in listed.values():
        gaps = np.diff(sorted(weeks))
        assert np.all(gaps >= max(cooldown, 1)), (weeks, cooldown)
    # the top of each period among the eligible is taken: a skipped row with a higher
    # priority than a chosen row of its period must have been in cooldown (or a duplicate)
    if cooldown == 0:
        for p in np.unique(periods):
            rows = np.flatnonzero(periods == p)
            k = min(size, len(rows))
            best = rows[np.lexsort((rows, -priority[rows]))][:k]
            assert set(np.flatnonzero(chosen & (periods == p))) == set(best)


def test_assignment_log_is_idempotent_and_refuses_a_second_draw(tmp_path) -> None:
    log = AssignmentLog(tmp_path / "assignments.sqlite")
    week = [Assignment("a", "2025-06-02", "treated", 1, 0.5),
            Assignment("b", "2025-06-02", "control", 2, 0.4)]
    assert log.record(week, run_id="r1") == 2
    assert log.record(week, run_id="r1") == 0
    swapped = [Assignment("a", "2025-06-02", "control", 1, 0.5),
               Assignment("b", "2025-06-02", "treated", 2, 0.4)]
    from valuechain.errors import DataError

    with pytest.raises(DataError, match="already has a list"):
        log.record(swapped, run_id="r2")
    assert [(a.customer, a.group) for a in log.week("2025-06-02")] == [("a", "treated"),
                                                                       ("b", "control")]
    assert log.listed_between("2025-05-01", "2025-06-02") == set()
    assert log.listed_between("2025-06-02", "2025-06-03") == {"a", "b"}
    import sqlite3

    with sqlite3.connect(log.path) as con, pytest.raises(sqlite3.DatabaseError,
                                                         match="append-only"):
        con.execute("DELETE FROM assignments")
