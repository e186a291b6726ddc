"""A small handcrafted world for the online tests: every feature kind and every rule at once.

Payments at a few customers and terminals with many timestamps shared (ties), null keys and
values, chargebacks reported late (``available_at`` days after the chargeback's
``event_time``), customer profiles updated over time (with a backdated correction and a
version without time), logins from another source counted with a lag, and features of every
kind: row expressions, windows of every aggregate with filters, ``include_current: false``,
lags, outcome-derived rates, counts and sums, and as-of lookups with fills.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

__all__ = ["SPEC", "make_world"]

START = datetime(2025, 3, 1)

SPEC: dict[str, Any] = {
    "version": 1,
    "project": {"name": "online-world"},
    "decision": {"statement": "Approve or review each payment.", "owner": "risk",
                 "moment": "at checkout", "actions": ["approve", "review"]},
    "decision_points": {"source": "payments", "keep": ["customer_id"]},
    "sources": {
        "payments": {"path": "data/payments.parquet", "keys": ["payment_id"],
                     "event_time": "ts"},
        "chargebacks": {"path": "data/chargebacks.parquet", "role": "outcome",
                        "keys": ["chargeback_id"], "event_time": "charged_at",
                        "available_at": "reported_at"},
        "profiles": {"path": "data/profiles.parquet", "role": "dimension",
                     "keys": ["customer_id"], "valid_from": "valid_from",
                     "available_at": "entered_at"},
        "terminals": {"path": "data/terminals.parquet", "role": "dimension",
                      "keys": ["terminal_id"]},
        "logins": {"path": "data/logins.parquet", "keys": ["login_id"],
                   "event_time": "login_at"},
    },
    "label": {"name": "is_fraud", "source": "chargebacks",
              "keys": {"payment_id": "payment_id"}, "horizon": "10d"},
    "features": [
        {"name": "amount", "expr": "amount"},
        {"name": "big", "expr": "CAST(amount > 100 AS INTEGER)", "fill": -1},
        {"name": "log_amount", "expr": "ln(amount + 1)"},
        {"name": "web_or_big", "expr": "CASE WHEN channel = 'web' OR amount > 200 THEN 1 "
                                       "ELSE 0 END"},
        {"name": "night", "expr": "CAST(hour(ts) < 6 AS INTEGER)"},
        {"name": "amount_or_zero", "expr": "coalesce(amount, 0) * 2"},
        {"name": "c_count_1d", "aggregate": "count", "key": "customer_id", "window": "1d"},
        {"name": "c_count_1d_excl", "aggregate": "count", "key": "customer_id",
         "window": "1d", "include_current": False},
        {"name": "c_count_amount_3d", "aggregate": "count", "of": "amount",
         "key": "customer_id", "window": "3d"},
        {"name": "c_sum_3d", "aggregate": "sum", "of": "amount", "key": "customer_id",
         "window": "3d"},
        {"name": "c_mean_3d", "aggregate": "mean", "of": "amount", "key": "customer_id",
         "window": "3d"},
        {"name": "c_min_3d", "aggregate": "min", "of": "amount", "key": "customer_id",
         "window": "3d"},
        {"name": "c_max_3d_lag1d", "aggregate": "max", "of": "amount", "key": "customer_id",
         "window": "3d", "lag": "1d"},
        {"name": "c_std_5d", "aggregate": "std", "of": "amount", "key": "customer_id",
         "window": "5d"},
        {"name": "c_std_5d_filled", "aggregate": "std", "of": "amount", "key": "customer_id",
         "window": "5d", "fill": 0},
        {"name": "c_terminals_5d", "aggregate": "distinct_count", "of": "terminal_id",
         "key": "customer_id", "window": "5d"},
        {"name": "c_web_rate_5d", "aggregate": "rate", "of": "is_web", "key": "customer_id",
         "window": "5d"},
        {"name": "c_web_count_2d", "aggregate": "count", "key": "customer_id", "window": "2d",
         "where": "channel = 'web'"},
        {"name": "c_big_sum_2d", "aggregate": "sum", "of": "amount", "key": "customer_id",
         "window": "2d", "where": "amount > 50 AND channel <> 'app'"},
        {"name": "t_count_1d_lag2d", "aggregate": "count", "key": "terminal_id", "window": "1d",
         "lag": "2d"},
        {"name": "t_fraud_rate_8d", "aggregate": "rate", "of": "label", "key": "terminal_id",
         "window": "8d"},
        {"name": "t_fraud_count_8d", "aggregate": "count", "of": "label", "key": "terminal_id",
         "window": "8d"},
        {"name": "c_fraud_sum_6d_lag1d", "aggregate": "sum", "of": "label",
         "key": "customer_id", "window": "6d", "lag": "1d"},
        {"name": "c_fraud_mean_6d", "aggregate": "mean", "of": "label", "key": "customer_id",
         "window": "6d", "fill": 0},
        {"name": "c_logins_1d", "aggregate": "count", "key": "customer_id", "window": "1d",
         "source": "logins"},
        {"name": "c_logins_2d_lag1d", "aggregate": "count", "key": "customer_id",
         "window": "2d", "lag": "1d", "source": "logins", "where": "success"},
        {"name": "tier", "lookup": {"source": "profiles", "key": "customer_id",
                                    "column": "tier"}},
        {"name": "score", "lookup": {"source": "profiles", "key": "customer_id",
                                     "column": "score"}, "fill": -1},
        {"name": "category", "lookup": {"source": "terminals", "key": "terminal_id",
                                        "column": "category"}},
    ],
}


def _at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def make_world(folder: Path, *, seed: int = 11, payments: int = 400,
               charged_twice: bool = True, text_keys: bool = False) -> Path:
    """Write the spec and the data of a small world into ``folder``; return ``folder``.

    ``charged_twice``: one payment has two chargebacks, reported at different times.
    ``text_keys``: payment ids are text (``"p123"``), so ties are ordered as strings
    (``"p10" < "p9"``), not as numbers.
    """
    rng = random.Random(seed)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    (folder / "valuechain.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    rows: dict[str, list[Any]] = {k: [] for k in (
        "payment_id", "ts", "customer_id", "terminal_id", "amount", "channel", "is_web",
        "flag")}
    ids: list[Any] = rng.sample(range(1, 10 * payments), payments)  # not in time order
    if text_keys:
        ids = [f"p{i}" for i in ids]
    for pid in ids:
        # whole hours (many ties), sometimes exactly one or two days apart (window edges)
        hour = rng.randrange(0, 24 * 20)
        customer = rng.choice([1, 2, 3, 4, 5, None]) if rng.random() < 0.97 else None
        amount = None if rng.random() < 0.08 else round(rng.uniform(1, 300), 2)
        channel = rng.choice(["web", "app", "pos", None])
        rows["payment_id"].append(pid)
        rows["ts"].append(_at(hour))
        rows["customer_id"].append(customer)
        rows["terminal_id"].append(rng.choice([10, 11, 12]))
        rows["amount"].append(amount)
        rows["channel"].append(channel)
        rows["is_web"].append(None if channel is None else int(channel == "web"))
        rows["flag"].append(int(rng.random() < 0.3))
    pq.write_table(pa.table({**rows, "ts": pa.array(rows["ts"], pa.timestamp("us")),
                             "customer_id": pa.array(rows["customer_id"], pa.int64()),
                             "amount": pa.array(rows["amount"], pa.float64())}),
                   data / "payments.parquet")
    cb: dict[str, list[Any]] = {k: [] for k in ("chargeback_id", "payment_id", "charged_at",
                                                "reported_at", "amount")}
    for n, (pid, ts) in enumerate(zip(rows["payment_id"], rows["ts"], strict=True)):
        if rng.random() < 0.25:
            charged = ts + timedelta(hours=rng.choice([0, 1, 30, 24 * 10, 24 * 12]))
            # reported later: on the spot, hours, or days (late outcomes)
            reported = charged + timedelta(hours=rng.choice([0, 2, 24, 24 * 4, 24 * 9]))
            cb["chargeback_id"].append(n + 1)
            cb["payment_id"].append(pid)
            cb["charged_at"].append(charged)
            cb["reported_at"].append(reported)
            cb["amount"].append(rng.uniform(1, 50))
    # a payment charged back twice (the earliest report makes the label known)
    if charged_twice and cb["payment_id"]:
        cb["chargeback_id"].append(10_000)
        cb["payment_id"].append(cb["payment_id"][0])
        cb["charged_at"].append(cb["charged_at"][0] + timedelta(hours=1))
        cb["reported_at"].append(cb["charged_at"][0] + timedelta(hours=3))
        cb["amount"].append(5.0)
    pq.write_table(pa.table({**cb, "payment_id": pa.array(cb["payment_id"],
                                                          pa.string() if text_keys
                                                          else pa.int64())}),
                   data / "chargebacks.parquet")
    prof: dict[str, list[Any]] = {k: [] for k in ("customer_id", "valid_from", "entered_at",
                                                  "tier", "score")}
    for customer in (1, 2, 3, 4, 5):
        prof["customer_id"].append(customer)  # a version known from the start of time
        prof["valid_from"].append(None)
        prof["entered_at"].append(None)
        prof["tier"].append("base")
        prof["score"].append(None if customer == 5 else float(customer))
        for step in range(3):
            valid = _at(rng.randrange(0, 24 * 20))
            # backdated corrections: entered days after they are valid
            entered = valid + timedelta(hours=rng.choice([0, 0, 5, 24 * 3]))
            prof["customer_id"].append(customer)
            prof["valid_from"].append(valid)
            prof["entered_at"].append(entered)
            prof["tier"].append(rng.choice(["low", "mid", "high", None]))
            prof["score"].append(None if step == 2 and customer == 2 else rng.random())
    pq.write_table(pa.table({**prof,
                             "valid_from": pa.array(prof["valid_from"], pa.timestamp("us")),
                             "entered_at": pa.array(prof["entered_at"], pa.timestamp("us"))}),
                   data / "profiles.parquet")
    pq.write_table(pa.table({"terminal_id": [10, 11], "category": ["food", None]}),
                   data / "terminals.parquet")
    logins: dict[str, list[Any]] = {k: [] for k in ("login_id", "customer_id", "login_at",
                                                    "success")}
    for n in range(payments // 2):
        logins["login_id"].append(n)
        logins["customer_id"].append(rng.choice([1, 2, 3, 4, 5, None]))
        logins["login_at"].append(_at(rng.randrange(0, 24 * 20)))
        logins["success"].append(rng.choice([True, False, None]))
    pq.write_table(pa.table(logins), data / "logins.parquet")
    return folder
