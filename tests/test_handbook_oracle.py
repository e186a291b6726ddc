"""The handbook oracle (the book's pandas features) and the two-pointer kernel agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .handbook_oracle import (
    KERNEL_BACKEND,
    RAW_COLUMNS,
    feature_columns,
    handbook_features,
    two_pointer_features,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HANDBOOK = SHARED_DATA / "fraud_handbook" / "transactions.parquet"

BACKENDS = ["numpy", *(["numba"] if KERNEL_BACKEND == "numba" else [])]

CUST = [f"CUSTOMER_ID_{k}_{w}DAY_WINDOW" for w in (1, 7, 30) for k in ("NB_TX", "AVG_AMOUNT")]
TERM = [f"TERMINAL_ID_{k}_{w}DAY_WINDOW" for w in (1, 7, 30) for k in ("NB_TX", "RISK")]


def hand_frame() -> pd.DataFrame:
    """Seven transactions; 2018-04-01 is a Sunday.

    Customer 1: rows 0 and 2 are exactly 7 days apart, rows 2 and 3 exactly 1 day apart.
    Customer 2: rows 4 and 5 share a timestamp (and are listed in reverse id order); row 6
    is exactly 7 days after them, so for terminal 10 they sit exactly on its delay boundary.
    """
    rows = [
        # id, datetime, customer, terminal, amount, fraud
        (5, "2018-04-10 12:00", 2, 10, 70.0, 0),
        (3, "2018-04-10 07:00", 1, 20, 40.0, 0),
        (0, "2018-04-02 07:00", 1, 10, 10.0, 1),
        (6, "2018-04-17 12:00", 2, 10, 5.0, 0),
        (4, "2018-04-10 12:00", 2, 10, 50.0, 1),
        (1, "2018-04-08 06:30", 1, 10, 20.0, 0),
        (2, "2018-04-09 07:00", 1, 10, 30.0, 0),
    ]
    df = pd.DataFrame(rows, columns=list(RAW_COLUMNS))
    df["TX_DATETIME"] = pd.to_datetime(df["TX_DATETIME"])
    return df


def hand_expected() -> pd.DataFrame:
    amount = [10.0, 20.0, 30.0, 40.0, 50.0, 70.0, 5.0]
    weekend = [0, 1, 0, 0, 0, 0, 0]  # row 1 is on Sunday 2018-04-08
    night = [0, 1, 0, 0, 0, 0, 0]  # 06:30 is night (hour <= 6), 07:00 and later are not
    # (NB_TX, AVG_AMOUNT) for 1, 7, 30 days; the window is (t - w, t]
    customer = [
        [1, 10, 1, 10, 1, 10],
        [1, 20, 2, 15, 2, 15],
        [1, 30, 2, 25, 3, 20],  # row 1 is 24.5 h before, row 0 exactly 7 days before
        [1, 40, 3, 30, 4, 25],  # row 2 exactly 1 day before
        [1, 50, 1, 50, 1, 50],  # tied with row 5, which comes after it
        [2, 60, 2, 60, 2, 60],  # sees the tied row 4
        [1, 5, 1, 5, 3, 125 / 3],  # rows 4 and 5 exactly 7 days before
    ]
    # (NB_TX, RISK) for 1, 7, 30 days; the window is (t - 7d - w, t - 7d]
    terminal = [
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1],  # row 0 exactly 7 days before: inside the 1-day window
        [0, 0, 0, 0, 0, 0],  # alone on terminal 20
        [0, 0, 1, 1, 1, 1],
        [0, 0, 1, 1, 1, 1],
        [2, 0.5, 4, 0.25, 5, 0.4],  # rows 4 and 5 exactly 7 days before: inside
    ]
    out = pd.DataFrame({"TRANSACTION_ID": np.arange(7), "TX_AMOUNT": amount})
    out["TX_DURING_WEEKEND"] = weekend
    out["TX_DURING_NIGHT"] = night
    out[CUST] = np.asarray(customer, dtype=float)
    out[TERM] = np.asarray(terminal, dtype=float)
    return out


def random_frame(n: int, seed: int, *, odd_keys: bool = False) -> pd.DataFrame:
    """Random transactions over 60 days with many tied timestamps and exact-day gaps."""
    rng = np.random.default_rng(seed)
    # whole hours plus a few minute offsets: many exact 1/7/30-day gaps and many ties
    seconds = rng.integers(0, 60 * 24, n) * 3600 + rng.choice([0, 0, 0, 60, 1800], n)
    customers = rng.integers(0, max(n // 150, 2), n)
    terminals = rng.integers(0, max(n // 75, 2), n)
    if odd_keys:  # sparse, negative and huge ids exercise the key factorisation
        customers = customers * 7_919_000_000_017 - 10**9
        terminals = -terminals - 1
    df = pd.DataFrame(
        {
            "TRANSACTION_ID": rng.permutation(n) * 3 + 11,
            "TX_DATETIME": pd.Timestamp("2018-04-01") + pd.to_timedelta(seconds, unit="s"),
            "CUSTOMER_ID": customers,
            "TERMINAL_ID": terminals,
            "TX_AMOUNT": np.round(rng.gamma(2.0, 30.0, n), 2),
            "TX_FRAUD": (rng.random(n) < 0.05).astype(np.int64),
            "TX_FRAUD_SCENARIO": 0,
        }
    )
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def assert_same(left: pd.DataFrame, right: pd.DataFrame, atol: float = 1e-9) -> None:
    assert list(left.columns) == list(right.columns)
    assert list(left.dtypes) == list(right.dtypes)
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=0.0, atol=atol)


def test_feature_columns_are_the_books_15() -> None:
    cols = feature_columns()
    assert len(cols) == 15
    assert cols == ["TX_AMOUNT", "TX_DURING_WEEKEND", "TX_DURING_NIGHT", *CUST, *TERM]


def test_handbook_features_match_hand_computed_values() -> None:
    got = handbook_features(hand_frame())
    expected = hand_expected()
    assert list(got.columns) == ["TRANSACTION_ID", *feature_columns()]
    assert got["TX_DURING_WEEKEND"].dtype == np.int64
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=0.0, atol=1e-12)


def test_handbook_features_do_not_depend_on_row_order() -> None:
    df = random_frame(600, seed=3)
    shuffled = df.sample(frac=1.0, random_state=99)
    assert_same(handbook_features(df), handbook_features(shuffled), atol=0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_pointer_matches_hand_computed_values(backend: str) -> None:
    got = two_pointer_features(hand_frame(), backend=backend)
    assert_same(got, hand_expected(), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("odd_keys", [False, True])
def test_two_pointer_matches_handbook_on_random_frame(backend: str, odd_keys: bool) -> None:
    df = random_frame(5_000, seed=7, odd_keys=odd_keys)
    expected = handbook_features(df)
    assert (expected["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] >= 1).all()
    assert_same(two_pointer_features(df, backend=backend), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_pointer_other_windows_and_delay(backend: str) -> None:
    df = random_frame(1_500, seed=11)
    expected = handbook_features(df, windows_size_in_days=[2, 14], delay_period=3)
    assert list(expected.columns)[4:6] == [
        "CUSTOMER_ID_NB_TX_2DAY_WINDOW",
        "CUSTOMER_ID_AVG_AMOUNT_2DAY_WINDOW",
    ]
    got = two_pointer_features(df, windows_size_in_days=[2, 14], delay_period=3, backend=backend)
    assert_same(got, expected)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    n=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    n_keys=st.integers(1, 4),
    spread_days=st.sampled_from([1, 8, 40]),
)
def test_two_pointer_matches_handbook_on_tiny_frames(
    n: int, seed: int, n_keys: int, spread_days: int
) -> None:
    rng = np.random.default_rng(seed)
    # times on a 6-hour grid: ties and exact 1/7/30-day gaps are frequent
    steps = rng.integers(0, spread_days * 4, n)
    df = pd.DataFrame(
        {
            "TRANSACTION_ID": rng.permutation(n),
            "TX_DATETIME": pd.Timestamp("2018-04-01") + pd.to_timedelta(steps * 6, unit="h"),
            "CUSTOMER_ID": rng.integers(0, n_keys, n),
            "TERMINAL_ID": rng.integers(0, n_keys, n),
            "TX_AMOUNT": rng.integers(1, 10_000, n) / 100,
            "TX_FRAUD": rng.integers(0, 2, n),
        }
    )
    expected = handbook_features(df)
    for backend in BACKENDS:
        assert_same(two_pointer_features(df, backend=backend), expected)


def test_two_pointer_rejects_bad_input() -> None:
    df = hand_frame()
    with pytest.raises(ValueError, match="must be positive"):
        two_pointer_features(df, delay_period=0)
    with pytest.raises(ValueError, match="unique"):
        two_pointer_features(pd.concat([df, df]))
    with pytest.raises(ValueError, match="backend"):
        two_pointer_features(df, backend="spark")


@pytest.fixture(scope="module")
def handbook_head() -> pd.DataFrame:
    if not HANDBOOK.exists():
        pytest.skip(f"shared handbook data not present at {HANDBOOK}")
    return pd.read_parquet(HANDBOOK).iloc[:200_000]


@pytest.mark.slow
def test_two_pointer_matches_handbook_on_real_data(handbook_head: pd.DataFrame) -> None:
    df = handbook_head
    expected = handbook_features(df)
    assert len(expected) == len(df)
    assert expected["TRANSACTION_ID"].is_monotonic_increasing

    # sanity of the book's features on the real data
    assert (expected["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] >= 1).all()
    nb_tx = [c for c in TERM if "_NB_TX_" in c]
    risk = [c for c in TERM if "_RISK_" in c]
    times = df.set_index("TRANSACTION_ID")["TX_DATETIME"].loc[expected["TRANSACTION_ID"]]
    first_week = (times < times.min().normalize() + pd.Timedelta(days=7)).to_numpy()
    assert first_week.sum() > 0
    assert (expected.loc[first_week, nb_tx + risk] == 0).all().all()
    assert (expected.loc[~first_week, "TERMINAL_ID_NB_TX_30DAY_WINDOW"] > 0).mean() > 0.9
    assert ((expected[risk] >= 0) & (expected[risk] <= 1)).all().all()
    assert set(np.unique(expected["TX_DURING_WEEKEND"])) == {0, 1}
    assert set(np.unique(expected["TX_DURING_NIGHT"])) == {0, 1}

    for backend in BACKENDS:
        assert_same(two_pointer_features(df, backend=backend), expected)
