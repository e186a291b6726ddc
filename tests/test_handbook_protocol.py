"""benchmarks/handbook_protocol.py: the book's test-set rule and the chapter-3 reproduction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import load_benchmark

HANDBOOK = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "fraud_handbook"
    / "transactions.parquet"
)


hp = load_benchmark("handbook_protocol")

# Hand example: 21 days from 2018-04-01, train days 0-6, delay days 7-13, test days 14-20.
# Every card pays once a day at noon; the frauds are:
#   card 1: train day 3        -> known before the test: out of every test day
#   card 2: delay day 7        -> known from test day 15 (7 <= 15 - 8): only on day 14
#   card 3: delay day 13       -> known from day 21 only: in every test day
#   card 4: test day 14        -> the rule only looks back to day - 8: in every test day
#   card 5: never              -> in every test day
#   card 6: delay day 6 + 1 = 7 as well, but pays only on test days 16 and 18 -> out of both
FRAUDS = {1: 3, 2: 7, 3: 13, 4: 14, 6: 7}


def hand_frame() -> pd.DataFrame:
    rows = []
    for day in range(21):
        for card in (1, 2, 3, 4, 5):
            rows.append((day, card))
        if day in (7, 16, 18):
            rows.append((day, 6))
    frame = pd.DataFrame(rows, columns=["day", "CUSTOMER_ID"])
    frame["TRANSACTION_ID"] = np.arange(len(frame))[::-1]  # ids not in time order
    frame["TX_DATETIME"] = (pd.Timestamp("2018-04-01 12:00")
                            + pd.to_timedelta(frame["day"], unit="D"))
    frame["TX_FRAUD"] = [int(FRAUDS.get(c) == d)
                         for d, c in zip(frame["day"], frame["CUSTOMER_ID"], strict=True)]
    out: pd.DataFrame = hp.add_day_index(frame.drop(columns="day"))
    return out


def test_known_compromised_cards_are_removed_as_the_book_does() -> None:
    frame = hand_frame()
    train, test = hp.get_train_test_set(frame, pd.Timestamp("2018-04-01"))

    assert sorted(train["TX_TIME_DAYS"].unique().tolist()) == list(range(7))
    assert len(train) == 7 * 5
    assert train["TRANSACTION_ID"].is_monotonic_increasing
    assert test["TRANSACTION_ID"].is_monotonic_increasing

    cards_by_day = test.groupby("TX_TIME_DAYS")["CUSTOMER_ID"].apply(lambda s: sorted(set(s)))
    assert cards_by_day.to_dict() == {
        14: [2, 3, 4, 5],
        **{day: [3, 4, 5] for day in range(15, 21)},
    }
    # the label of a removed card does not leak into the test set
    assert set(test["CUSTOMER_ID"]) == {2, 3, 4, 5}
    assert int(test["TX_FRAUD"].sum()) == 1  # card 4's fraud on day 14


def test_shorter_delay_moves_the_known_set_forward() -> None:
    frame = hand_frame()
    _, test = hp.get_train_test_set(frame, pd.Timestamp("2018-04-01"), delta_delay=3,
                                    delta_test=5)
    # test days 10..14 keep cards without a fraud on days <= test day - delay - 1
    cards_by_day = test.groupby("TX_TIME_DAYS")["CUSTOMER_ID"].apply(lambda s: sorted(set(s)))
    assert cards_by_day.to_dict() == {
        10: [2, 3, 4, 5], 11: [3, 4, 5], 12: [3, 4, 5], 13: [3, 4, 5], 14: [3, 4, 5],
    }


def test_no_training_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="no transactions"):
        hp.get_train_test_set(hand_frame(), pd.Timestamp("2019-01-01"))


def test_targets_are_compared_at_the_books_precision() -> None:
    assert hp.reaches({"average_precision": 0.6868, "card_precision_at_100": 0.303})
    assert not hp.reaches({"average_precision": 0.6864, "card_precision_at_100": 0.31})
    assert not hp.reaches({"average_precision": 0.70, "card_precision_at_100": 0.3024})


@pytest.mark.slow
def test_chapter3_logistic_reproduces_the_book() -> None:
    if not HANDBOOK.exists():
        pytest.skip(f"shared handbook data not present at {HANDBOOK}")
    frame = hp.build_handbook_frame(HANDBOOK)
    assert len(frame) == 1_754_155
    train, test = hp.get_train_test_set(frame, hp.CHAPTER3_START)
    assert train["TX_DATETIME"].min() >= pd.Timestamp("2018-07-25")
    assert train["TX_DATETIME"].max() < pd.Timestamp("2018-08-01")
    assert test["TX_DATETIME"].min() >= pd.Timestamp("2018-08-08")
    assert test["TX_DATETIME"].max() < pd.Timestamp("2018-08-15")

    model = hp.fit_candidate("logistic", train, train)
    ours = hp.assess(model.predict(test), test)
    book = hp.PUBLISHED["chapter3"]["logistic_regression"]
    for metric in hp.METRICS:
        assert abs(ours[metric] - book[metric]) <= 0.01, (metric, ours[metric], book[metric])
