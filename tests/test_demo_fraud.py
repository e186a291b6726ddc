"""The fraud demo world: determinism, schema, time logic, planted fraud, leaks and drift."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from valuechain.demo.fraud import TABLES, FraudWorld, generate_fraud, simulate_fraud
from valuechain.errors import ValuechainError
from valuechain.expressions import evaluate
from valuechain.spec.loader import load_spec
from valuechain.spec.models import AggregateFeature, LookupFeature, RowFeature, Spec

ROWS = 20_000
SPEC = Path(__file__).resolve().parents[1] / "examples" / "fraud" / "valuechain.yaml"
TS = pa.timestamp("us")
SCHEMAS = {
    "customers": [
        ("customer_id", pa.int64()),
        ("signup_at", TS),
        ("home_country", pa.string()),
        ("segment", pa.string()),
    ],
    "customer_profiles": [
        ("customer_id", pa.int64()),
        ("valid_from", TS),
        ("risk_tier", pa.string()),
        ("email_domain_age_days", pa.int64()),
        ("verified_phone", pa.bool_()),
    ],
    "cards": [
        ("card_id", pa.int64()),
        ("customer_id", pa.int64()),
        ("issued_at", TS),
        ("card_type", pa.string()),
    ],
    "terminals": [
        ("terminal_id", pa.int64()),
        ("merchant_category", pa.string()),
        ("country", pa.string()),
    ],
    "devices": [("device_id", pa.int64()), ("customer_id", pa.int64()), ("first_seen_at", TS)],
    "transactions": [
        ("transaction_id", pa.int64()),
        ("ts", TS),
        ("customer_id", pa.int64()),
        ("card_id", pa.int64()),
        ("terminal_id", pa.int64()),
        ("device_id", pa.int64()),
        ("amount", pa.float64()),
        ("billing_country", pa.string()),
        ("shipping_country", pa.string()),
        ("channel", pa.string()),
        ("status", pa.string()),
    ],
    "chargebacks": [
        ("chargeback_id", pa.int64()),
        ("transaction_id", pa.int64()),
        ("reported_at", TS),
        ("amount", pa.float64()),
        ("reason_code", pa.string()),
    ],
    "disputes": [
        ("dispute_id", pa.int64()),
        ("transaction_id", pa.int64()),
        ("opened_at", TS),
        ("channel", pa.string()),
    ],
}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fraud")
    generate_fraud(path, rows=ROWS, seed=7)
    return path


@pytest.fixture(scope="module")
def world() -> FraudWorld:
    return simulate_fraud(rows=ROWS, seed=7)


@pytest.fixture(scope="module")
def frames(out: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in TABLES}


def _tx_with_truth(world: FraudWorld) -> pd.DataFrame:
    tx = world.tables["transactions"].to_pandas()
    merged: pd.DataFrame = tx.merge(world.truth.to_pandas(), on="transaction_id", validate="1:1")
    return merged


def test_same_seed_gives_identical_files(out: Path, tmp_path: Path) -> None:
    stages: list[tuple[str, float]] = []
    summary = generate_fraud(
        tmp_path, rows=ROWS, seed=7, progress=lambda s, f: stages.append((s, f))
    )
    for name in TABLES:
        assert (tmp_path / f"{name}.parquet").read_bytes() == (out / f"{name}.parquet").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.parquet" for n in TABLES)
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {s for s, _ in stages} >= {"transactions", "writing"}
    assert summary.rows["transactions"] == ROWS
    assert summary.paths["chargebacks"] == tmp_path / "chargebacks.parquet"


def test_different_seeds_differ(world: FraudWorld) -> None:
    other = simulate_fraud(rows=ROWS, seed=8)
    assert other.tables["transactions"].num_rows == ROWS
    a = world.tables["transactions"].column("amount").to_numpy()
    b = other.tables["transactions"].column("amount").to_numpy()
    assert not np.array_equal(a, b)
    assert world.tables["customers"] != other.tables["customers"]


def test_schemas_are_exact(out: Path) -> None:
    for name, fields in SCHEMAS.items():
        schema = pq.read_schema(out / f"{name}.parquet")
        assert [(f.name, f.type) for f in schema] == fields, name


def test_ids_unique_and_in_time_order_with_ties(frames: dict[str, pd.DataFrame]) -> None:
    tx = frames["transactions"]
    assert tx["transaction_id"].is_unique
    assert (tx["transaction_id"].diff().dropna() > 0).all()
    assert tx["ts"].is_monotonic_increasing
    assert (tx["ts"].dt.microsecond == 0).all()  # second resolution
    tied = tx[tx.duplicated("ts", keep=False)].groupby("ts")["customer_id"].nunique()
    assert (tied > 1).sum() >= 5  # exact ties across different customers
    for name, key in (
        ("customers", "customer_id"),
        ("cards", "card_id"),
        ("terminals", "terminal_id"),
        ("devices", "device_id"),
        ("chargebacks", "chargeback_id"),
        ("disputes", "dispute_id"),
    ):
        assert frames[name][key].is_unique, name
    assert (tx["amount"] == tx["amount"].round(2)).all() and (tx["amount"] > 0).all()


def test_references_and_availability(frames: dict[str, pd.DataFrame]) -> None:
    tx = frames["transactions"]
    cards = frames["cards"].set_index("card_id")
    devices = frames["devices"].set_index("device_id")
    customers = frames["customers"].set_index("customer_id")
    assert tx["terminal_id"].isin(frames["terminals"]["terminal_id"]).all()
    assert (cards.loc[tx["card_id"], "customer_id"].to_numpy() == tx["customer_id"]).all()
    assert (cards.loc[tx["card_id"], "issued_at"].to_numpy() <= tx["ts"]).all()
    assert (devices.loc[tx["device_id"], "first_seen_at"].to_numpy() <= tx["ts"]).all()
    assert (customers.loc[tx["customer_id"], "signup_at"].to_numpy() <= tx["ts"]).all()
    home = customers.loc[tx["customer_id"], "home_country"].to_numpy()
    assert (home == tx["billing_country"]).all()
    assert set(tx["channel"]) == {"web", "app", "pos"}


def test_chargebacks_5_to_90_days_and_known_at_extract(frames: dict[str, pd.DataFrame]) -> None:
    tx, cb = frames["transactions"], frames["chargebacks"]
    as_of = tx["ts"].max() + timedelta(days=1)
    joined = cb.merge(tx, on="transaction_id", suffixes=("", "_tx"), validate="1:1")
    delay = joined["reported_at"] - joined["ts"]
    assert (delay >= timedelta(days=5)).all() and (delay <= timedelta(days=90)).all()
    assert (delay <= timedelta(days=60)).mean() > 0.9  # skewed: most within the horizon
    assert (cb["reported_at"] <= as_of).all()
    assert (joined["amount"] == joined["amount_tx"]).all()


def test_status_leaks_the_chargeback(frames: dict[str, pd.DataFrame]) -> None:
    tx, cb = frames["transactions"], frames["chargebacks"]
    has_cb = tx["transaction_id"].isin(cb["transaction_id"])
    assert ((tx["status"] == "charged_back") == has_cb).all()
    assert set(tx["status"]) == {"approved", "settled", "charged_back", "refunded"}


def test_disputes_after_purchase_before_chargeback(frames: dict[str, pd.DataFrame]) -> None:
    tx, cb, d = frames["transactions"], frames["chargebacks"], frames["disputes"]
    joined = d.merge(tx, on="transaction_id", validate="1:1")
    assert (joined["opened_at"] > joined["ts"]).all()
    assert (d["opened_at"] <= tx["ts"].max() + timedelta(days=1)).all()
    both = cb.merge(d, on="transaction_id")
    assert len(both) >= 0.9 * len(cb)  # nearly every chargeback had a dispute first
    assert (both["opened_at"] < both["reported_at"]).all()
    assert (~d["transaction_id"].isin(cb["transaction_id"])).any()  # and some genuine ones


def test_profiles_change_slowly_and_escalate_after_chargebacks(
    frames: dict[str, pd.DataFrame],
) -> None:
    prof, customers = frames["customer_profiles"], frames["customers"]
    assert not prof.duplicated(["customer_id", "valid_from"]).any()
    per_customer = prof.groupby("customer_id").size()
    assert len(per_customer) == len(customers)
    assert (per_customer > 1).mean() > 0.3
    first = prof.groupby("customer_id")["valid_from"].min()
    signup = customers.set_index("customer_id")["signup_at"]
    assert (first.loc[signup.index] == signup).all()
    assert set(prof["risk_tier"]) == {"low", "medium", "high"}
    # leak #3: after a chargeback the tier is raised, so the latest row differs from the as-of one
    cb = frames["chargebacks"].merge(frames["transactions"], on="transaction_id")
    first_cb = cb.groupby("customer_id")["reported_at"].min()
    as_of = frames["transactions"]["ts"].max() + timedelta(days=1)
    first_cb = first_cb[first_cb <= as_of - timedelta(days=2)]  # escalated within 2 days
    latest = prof.sort_values("valid_from").groupby("customer_id").last().loc[first_cb.index]
    assert len(latest) > 0
    assert (latest["risk_tier"] == "high").all() and (latest["valid_from"] > first_cb).all()
    assert (prof["risk_tier"] == "high").mean() < 0.25


def test_fraud_rate_in_target_band(world: FraudWorld) -> None:
    fraud = world.truth.column("is_fraud").to_numpy()
    assert 0.005 <= fraud.mean() <= 0.01
    scenarios = set(world.truth.column("scenario").to_pylist())
    assert scenarios == {"genuine", "card", "terminal", "campaign", "friendly"}
    cb_tx = set(world.tables["chargebacks"].column("transaction_id").to_pylist())
    truth = world.truth.to_pandas()
    charged = truth[truth["transaction_id"].isin(cb_tx)]
    assert 0.01 <= (charged["scenario"] == "friendly").mean() <= 0.05  # friendly fraud
    # frauds not yet reported at extract time look genuine in the export; they are the late ones
    ts = world.tables["transactions"].column("ts").to_numpy().astype(np.int64)
    reported = truth["transaction_id"].isin(cb_tx).to_numpy()
    unreported = truth["is_fraud"].to_numpy() & ~reported
    assert unreported.any()
    assert np.median(ts[unreported]) > np.median(ts[truth["is_fraud"].to_numpy() & reported])


def test_compromised_cards_look_different(world: FraudWorld) -> None:
    tx = _tx_with_truth(world)
    card, genuine = tx[tx["scenario"] == "card"], tx[tx["scenario"] == "genuine"]
    abroad = tx["shipping_country"] != tx["billing_country"]
    assert card["amount"].median() > 2 * genuine["amount"].median()
    assert abroad[card.index].mean() > 5 * abroad[genuine.index].mean()
    assert (card["channel"] == "web").mean() > (genuine["channel"] == "web").mean() + 0.2
    bursts = card.groupby("card_id").size()
    assert bursts.mean() > 2  # a burst per compromised card, not isolated payments


def test_compromised_terminals_concentrate_fraud(world: FraudWorld) -> None:
    tx = _tx_with_truth(world)
    hit = tx[tx["scenario"] == "terminal"]
    assert 0 < hit["terminal_id"].nunique() <= 0.2 * tx["terminal_id"].nunique()
    span = hit.groupby("terminal_id")["ts"].agg(lambda s: s.max() - s.min())
    assert (span <= timedelta(days=45)).all()  # one stretch of weeks per terminal


def test_late_campaign_only_in_last_two_months(world: FraudWorld) -> None:
    tx = _tx_with_truth(world)
    cutoff = pd.Timestamp(world.end - timedelta(days=60))
    campaign = tx[tx["scenario"] == "campaign"]
    assert len(campaign) > 0.1 * tx["is_fraud"].sum()
    assert (campaign["ts"] >= cutoff).all()
    assert (campaign["channel"] == "app").all() and campaign["amount"].max() <= 30
    # visible in the data without the truth: devices paying with many cards appear only late
    cards_per_device = tx.groupby("device_id")["card_id"].nunique()
    shared = tx[tx["device_id"].isin(cards_per_device[cards_per_device >= 4].index)]
    assert len(shared) > 0 and (shared["ts"] >= cutoff).all()
    assert (tx.loc[tx["ts"] < cutoff, "scenario"] != "campaign").all()


def test_small_or_short_worlds_are_refused() -> None:
    with pytest.raises(ValuechainError, match="rows"):
        simulate_fraud(rows=100)
    with pytest.raises(ValuechainError, match="days"):
        simulate_fraud(rows=5_000, days=30)


def test_example_spec_validates_and_fits_the_data(out: Path, world: FraudWorld) -> None:
    spec = Spec.model_validate(yaml.safe_load(SPEC.read_text()))
    assert load_spec(SPEC).spec == spec  # cross-field checks pass as well
    assert spec.event_source == "transactions"
    assert spec.label.source == "chargebacks" and spec.label.horizon == timedelta(days=60)
    assert spec.sources["disputes"].role == "post_outcome"
    assert 20 <= len(spec.features) <= 25
    schemas = {n: set(pq.read_schema(out / f"{n}.parquet").names) for n in TABLES}
    for name, source in spec.sources.items():
        assert source.path == f"data/{name}.parquet"
        cols = {*source.keys, source.event_time, source.valid_from} - {None}
        assert cols <= schemas[name], name
    used: set[str] = set()
    for feature in spec.features:
        if isinstance(feature, AggregateFeature):
            used |= {feature.key} | ({feature.of} - {None, "label"} if feature.of else set())
        elif isinstance(feature, LookupFeature):
            assert feature.lookup.column in schemas[feature.lookup.source]
            used.add(feature.lookup.key)
    assert used <= schemas["transactions"]
    assert "status" not in str([f.model_dump() for f in spec.features])
    # every row expression runs on the generated transactions (costs and today's rule run
    # on the built frame: see tests/test_train.py)
    assert spec.value is not None and spec.value.baseline_policy is not None
    transactions = pq.read_table(out / "transactions.parquet")
    for feature in spec.features:
        if isinstance(feature, RowFeature):
            values = evaluate(feature.expr, transactions, where=f"features.{feature.name}")
            assert len(values) == ROWS and np.isfinite(values).all(), feature.name
    # periods: in order, an embargo apart, and every test label mature at extract time
    assert spec.split is not None and spec.split.embargo == timedelta(days=60)
    periods = spec.split.periods
    assert [p.name for p in periods] == ["train", "validation", "test"]
    assert periods[0].start == world.start
    for before, after in itertools.pairwise(periods):
        assert after.start - before.end >= spec.split.embargo
    assert periods[-1].end + spec.label.horizon <= world.as_of
