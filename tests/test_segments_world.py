"""The churn world's planted segments and continuum: additive only (every existing table,
column and truth value unchanged for the same seed), personas in the area counts, a smooth
continuum in the per-use means."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from valuechain.demo.churn import PERSONA_RATES, PERSONAS, ChurnWorld, simulate_churn

#: Digests of every table of ``simulate_churn(customers=800, months=5, seed=5)`` made by the
#: generator *before* the personas were planted (commit 6f2dc7c).
BEFORE = {
    "active_subscribers": "d6087111299ee8b0",
    "cancellation_requests": "729a7c887f7839df",
    "customers": "ff5b2e0c73d03e77",
    "outreach": "606fc063b06bfb68",
    "payments": "7ddd527d937cde79",
    "plan_changes": "eb52dfb25c829923",
    "subscriptions": "a162fcc9470a8042",
    "support_tickets": "a993536727fb6859",
    "usage_events": "0dc0ca6c3bbc30e9",
    "truth/customers": "1cbb5d39d3bd4576",
    "truth/uplift": "da9a5e2f2bf4efbc",
}


def _digest(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def world() -> ChurnWorld:
    return simulate_churn(customers=2_000, months=6, seed=3)


def test_existing_outputs_are_unchanged() -> None:
    w = simulate_churn(customers=800, months=5, seed=5)
    now = {name: _digest(t) for name, t in w.tables.items() if name != "feature_events"}
    now["truth/customers"] = _digest(w.truth)
    now["truth/uplift"] = _digest(w.uplift)
    assert now == BEFORE


def test_personas_show_in_area_counts(world: ChurnWorld) -> None:
    assert world.segments is not None
    truth = world.segments.to_pandas()
    shares = truth["persona"].value_counts(normalize=True)
    assert abs(shares["creator"] - 0.40) < 0.04 and abs(shares["analyst"] - 0.25) < 0.04
    events = world.tables["feature_events"].to_pandas()
    events = events.merge(truth[["customer_id", "persona"]], on="customer_id")
    mix = events.groupby(["persona", "area"], observed=True).size().unstack()
    mix = mix.div(mix.sum(axis=1), axis=0)
    for i, persona in enumerate(PERSONAS):  # each persona's top area is its highest rate
        assert mix.loc[persona].idxmax() == ("editor", "sharing", "reports")[
            int(np.argmax(PERSONA_RATES[i]))]
        expected = PERSONA_RATES[i] / PERSONA_RATES[i].sum()
        assert np.allclose(mix.loc[persona, ["editor", "sharing", "reports"]], expected,
                           atol=0.03)


def test_continuum_means_follow_the_traits(world: ChurnWorld) -> None:
    assert world.segments is not None
    truth = world.segments.to_pandas().set_index("customer_id")
    events = world.tables["feature_events"].to_pandas()
    per = events.groupby("customer_id").agg(n=("seconds", "size"), s=("seconds", "mean"),
                                            i=("items", "mean"))
    per = per[per["n"] >= 20].join(truth)
    assert np.corrcoef(per["s"], per["mean_seconds"])[0, 1] > 0.95
    assert np.corrcoef(per["i"], per["mean_items"])[0, 1] > 0.95
    assert truth["mean_seconds"].between(60, 300).all()
    # no persona in the continuum: means by persona agree
    by = truth.groupby("persona", observed=True)["mean_seconds"].mean()
    assert by.max() - by.min() < 15


def test_events_stop_at_the_cancel(world: ChurnWorld) -> None:
    subs = world.tables["subscriptions"].to_pandas().set_index("customer_id")
    events = world.tables["feature_events"].to_pandas().join(subs, on="customer_id")
    cancelled = events["cancelled_at"].notna()
    assert (events.loc[cancelled, "ts"] < events.loc[cancelled, "cancelled_at"]).all()
    assert (events["ts"] >= events["started_at"]).all()
