"""The fraud demo world: card payments decided at checkout, with planted fraud, leaks and drift.

Customers with stable habits (home country, a few usual merchants, a typical amount, weekday and
daytime rhythm) pay with their cards from their devices. Three kinds of fraud are planted:

- **compromised cards**: from some moment a card has a burst of fraud over the next days —
  higher amounts, shipping abroad, a fresh device, mostly on the web. Cards of customers with a
  higher risk tier are compromised more often (the as-of profile lookup has real signal);
- **compromised terminals**: a merchant terminal is compromised for a stretch of weeks and its
  transactions in that stretch are fraud with some probability (caught by a terminal fraud-rate
  feature that counts only chargebacks already reported);
- **a late campaign**: in the last 60 days, fresh devices run many small 'app' payments across
  many cards at a few digital-goods merchants — a pattern absent from the earlier data.

Every fraud gets one chargeback 5-90 days later (most within 60 days); about 2.5 % of
chargebacks are friendly fraud on genuine purchases. The export was taken at ``as_of`` = last
transaction + 1 day: chargebacks and disputes reported later are not in it. Planted leaks:

1. ``disputes`` are opened a few days before the chargeback report (post-outcome);
2. ``transactions.status`` is ``'charged_back'`` exactly when a chargeback exists;
3. ``customer_profiles`` raises ``risk_tier`` to 'high' right after a chargeback, so a join on
   the latest profile instead of the as-of one leaks the outcome.

Everything is vectorised numpy and deterministic for a seed.

>>> world = simulate_fraud(rows=5_000, seed=1)
>>> world.tables["transactions"].num_rows
5000
>>> sorted(world.tables)[:3]
['cards', 'chargebacks', 'customer_profiles']
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from valuechain.demo.tables import Progress, report, table_lines, write_tables
from valuechain.errors import ValuechainError

__all__ = [
    "COMPACT_STORY",
    "FULL_STORY",
    "TABLES",
    "FraudWorld",
    "FraudWorldSummary",
    "Shipped",
    "Story",
    "generate_fraud",
    "make_story",
    "monitor_story",
    "ship",
    "ship_as_of",
    "simulate_fraud",
    "story_spec",
]

Arr = npt.NDArray[Any]

_DIMENSIONS = ("customers", "customer_profiles", "cards", "terminals", "devices")
TABLES = (*_DIMENSIONS, "transactions", "chargebacks", "disputes")
DAY = 86_400
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "CA", "BR", "IN", "AU", "PL")
COUNTRY_P = (0.30, 0.12, 0.11, 0.09, 0.05, 0.07, 0.06, 0.05, 0.04, 0.04, 0.04, 0.03)
SEGMENTS = ("consumer", "premium", "business", "student")
SEGMENT_P = (0.62, 0.15, 0.10, 0.13)
SEGMENT_ACTIVITY = np.array([1.0, 1.3, 1.8, 0.8])
SEGMENT_AMOUNT = np.array([0.0, 0.35, 0.55, -0.35])
_EVERYDAY = ("grocery", "fuel", "restaurants", "pharmacy", "fashion", "home")
CATEGORIES = (*_EVERYDAY, "electronics", "travel", "digital_goods", "gambling")
CATEGORY_P = (0.22, 0.12, 0.16, 0.07, 0.10, 0.08, 0.07, 0.05, 0.09, 0.04)
CATEGORY_AMOUNT = np.array([0.0, 0.2, -0.2, -0.4, 0.4, 0.6, 1.2, 1.5, -0.9, 0.3])
CATEGORY_FRAUD_APPEAL = np.array([0.3, 0.3, 0.3, 0.3, 1.5, 1.0, 4.0, 3.0, 3.0, 2.5])
DIGITAL_GOODS = CATEGORIES.index("digital_goods")
CHANNELS = ("web", "app", "pos")
WEB, APP, POS = range(3)
TIERS = ("low", "medium", "high")
TIER_COMPROMISE = np.array([1.0, 2.0, 4.0])
CARD_TYPES = ("debit", "credit", "prepaid")
REASONS = ("10.3", "10.4", "13.1", "13.3")  # card-present / card-absent fraud, not received, ...
DISPUTE_CHANNELS = ("phone", "app", "web", "email")
STATUSES = ("approved", "settled", "charged_back", "refunded")
SCENARIOS = ("genuine", "card", "terminal", "campaign", "friendly")
GENUINE, CARD, TERMINAL, CAMPAIGN, FRIENDLY = range(5)
WEEKDAY = np.array([1.0, 1.0, 1.02, 1.05, 1.18, 1.22, 0.82])  # Monday first
_AM = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5.5, 6)  # relative activity by hour
_PM = (7, 6.5, 5.5, 5, 5.5, 6.5, 7.5, 7.5, 6.5, 5, 3.5, 2)
HOUR = np.array(_AM + _PM, float)
HOUR_P = HOUR / HOUR.sum()
ID_BASE = {"customer": 10**8, "card": 2 * 10**8, "terminal": 3 * 10**8, "device": 4 * 10**8}
CAMPAIGN_DAYS = 60
TARGET = {"card": 0.0042, "terminal": 0.0016, "campaign": 0.0022}  # share of rows


@dataclass(frozen=True)
class FraudWorld:
    """A simulated world in memory: the exported tables plus the ground truth.

    ``truth`` has one row per transaction (``transaction_id``, ``is_fraud``, ``scenario`` in
    genuine / card / terminal / campaign / friendly); it is *not* part of the export.
    """

    tables: dict[str, pa.Table]
    truth: pa.Table
    start: datetime
    end: datetime
    as_of: datetime
    seed: int


@dataclass(frozen=True)
class FraudWorldSummary:
    """What :func:`generate_fraud` wrote: table sizes, fraud rates, time range and paths."""

    out: Path
    paths: dict[str, Path]
    rows: dict[str, int]
    fraud_rate: float
    chargeback_rate: float
    first_transaction_at: datetime
    last_transaction_at: datetime
    as_of: datetime
    seed: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        """Machine-readable summary (``valuechain generate fraud --json``)."""
        return {
            "out": str(self.out),
            "paths": {name: str(path) for name, path in self.paths.items()},
            "rows": dict(self.rows),
            "fraud_rate": self.fraud_rate,
            "chargeback_rate": self.chargeback_rate,
            "first_transaction_at": self.first_transaction_at.isoformat(),
            "last_transaction_at": self.last_transaction_at.isoformat(),
            "as_of": self.as_of.isoformat(),
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        """Human-readable summary lines (the CLI renders them)."""
        out = table_lines(self.rows, self.paths)
        out.append(f"fraud rate {self.fraud_rate:.3%}, chargeback rate {self.chargeback_rate:.3%}")
        out.append(
            f"transactions {self.first_transaction_at} .. {self.last_transaction_at}, "
            f"extracted {self.as_of}; {self.seconds:.1f} s"
        )
        return out


def generate_fraud(
    out: Path,
    rows: int = 1_000_000,
    seed: int = 7,
    days: int = 270,
    start: str = "2025-01-01",
    progress: Progress | None = None,
    campaign_days: int = CAMPAIGN_DAYS,
    campaign_scale: float = 1.0,
) -> FraudWorldSummary:
    """Simulate the fraud world and write one Parquet file per table into ``out``.

    Each file is written atomically (:func:`valuechain.io.write_parquet`: a temporary file moved
    into place), so a reader never sees a half-written file. The same arguments give identical files.

    Parameters
    ----------
    out : Path
        Directory for the Parquet files (created when missing).
    rows : int
        Number of transactions (at least 2,000).
    seed : int
        Seed of the random generator.
    days : int
        Length of the simulated period (at least 90; the late campaign takes the last 60).
    start : str
        First day, ISO format, tz-naive.
    progress : callable, optional
        Called as ``progress(stage, fraction)`` with fraction in [0, 1].
    campaign_days : int
        The late campaign runs in the last ``campaign_days`` days (default 60), at the same
        daily intensity (its size scales with ``campaign_days / 60``). The default world is
        unchanged by this option; a longer campaign in a longer world lets its cohorts mature
        (the monitoring story of ``valuechain demo fraud-story``, docs/retraining.md).
    campaign_scale : float
        Multiplies the campaign's daily intensity (default 1: about 1 % of the payments of a
        campaign day; 20: about a fifth).

    Returns
    -------
    FraudWorldSummary

    Examples
    --------
    >>> import tempfile
    >>> summary = generate_fraud(Path(tempfile.mkdtemp()), rows=5_000, seed=3)
    >>> summary.rows["transactions"], summary.paths["chargebacks"].name
    (5000, 'chargebacks.parquet')
    """
    began = time.perf_counter()
    world = simulate_fraud(rows=rows, seed=seed, days=days, start=start, progress=progress,
                           campaign_days=campaign_days, campaign_scale=campaign_scale)
    out = Path(out)
    paths = write_tables(out, world.tables, TABLES, progress, start=0.7)
    tx = world.tables["transactions"]
    ts = tx.column("ts").to_numpy()
    fraud = world.truth.column("is_fraud").to_numpy()
    return FraudWorldSummary(
        out=out,
        paths=paths,
        rows={name: world.tables[name].num_rows for name in TABLES},
        fraud_rate=float(fraud.mean()),
        chargeback_rate=world.tables["chargebacks"].num_rows / tx.num_rows,
        first_transaction_at=ts.min().astype(datetime),
        last_transaction_at=ts.max().astype(datetime),
        as_of=world.as_of,
        seed=seed,
        seconds=time.perf_counter() - began,
    )


def simulate_fraud(
    rows: int = 1_000_000,
    seed: int = 7,
    days: int = 270,
    start: str = "2025-01-01",
    progress: Progress | None = None,
    campaign_days: int = CAMPAIGN_DAYS,
    campaign_scale: float = 1.0,
) -> FraudWorld:
    """Simulate the fraud world in memory (see :func:`generate_fraud` for the parameters).

    >>> world = simulate_fraud(rows=4_000, seed=2)
    >>> bool(world.truth.column("is_fraud").to_numpy().any())
    True
    """
    if rows < 2_000:
        raise ValuechainError(f"fraud demo: rows={rows} is too small; use at least 2,000 rows.")
    if days < 90:
        raise ValuechainError(
            f"fraud demo: days={days} is too short; use at least 90 days (the late campaign "
            f"alone takes the last {CAMPAIGN_DAYS})."
        )
    if not 0 < campaign_scale <= 50:
        raise ValuechainError(f"fraud demo: campaign_scale={campaign_scale} must lie in "
                              "(0, 50].")
    if not 1 <= campaign_days <= days - 30:
        raise ValuechainError(
            f"fraud demo: campaign_days={campaign_days} must lie in 1..{days - 30} (days - 30: "
            "the campaign starts after the first month).")
    t0 = datetime.fromisoformat(start)
    if t0.tzinfo is not None:
        raise ValuechainError(f"fraud demo: start={start!r} must be tz-naive, e.g. '2025-01-01'.")
    rng = np.random.default_rng(seed)
    horizon = days * DAY
    ent = _entities(rng, rows, horizon)
    report(progress, "entities", 0.05)
    cards = _card_bursts(rng, ent, rows, horizon)
    campaign = _campaign(rng, ent, rows, horizon, campaign_days, campaign_scale)
    report(progress, "fraud", 0.15)
    n_genuine = rows - len(cards["ts"]) - len(campaign["ts"])
    genuine = _genuine(rng, ent, n_genuine, days, t0.weekday())
    _compromise_terminals(rng, ent, genuine, rows, horizon)
    tx = {k: np.concatenate([genuine[k], cards[k], campaign[k]]) for k in genuine}
    order = np.lexsort((rng.random(rows), tx["ts"]))  # ties in random order, then ids
    tx = {k: v[order] for k, v in tx.items()}
    report(progress, "transactions", 0.35)
    as_of = int(tx["ts"].max()) + DAY
    out = _outcomes(rng, tx, as_of)
    report(progress, "outcomes", 0.55)
    profiles = _profiles(rng, ent, tx, out, as_of)
    report(progress, "profiles", 0.65)
    epoch = int((t0 - datetime(1970, 1, 1)).total_seconds())
    tables = _tables(ent, tx, out, profiles, epoch)
    truth = pa.table(
        {
            "transaction_id": tables["transactions"].column("transaction_id"),
            "is_fraud": pa.array((tx["scen"] != GENUINE) & (tx["scen"] != FRIENDLY)),
            "scenario": _strings(tx["scen"], SCENARIOS),
        }
    )
    return FraudWorld(
        tables, truth, t0, t0 + timedelta(days=days), t0 + timedelta(seconds=as_of), seed
    )


@dataclass(frozen=True)
class Shipped:
    """The demo's last step: the bundle packaged, promoted if its gates pass, how to serve it."""

    version: str
    path: Path
    created: bool
    promoted: bool
    failing_gates: tuple[str, ...]
    serve_command: str
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "path": str(self.path), "created": self.created,
                "promoted": self.promoted, "failing_gates": list(self.failing_gates),
                "serve_command": self.serve_command, "seconds": round(self.seconds, 3)}

    def lines(self) -> list[str]:
        """What ``valuechain demo fraud`` prints last."""
        state = ("in production" if self.promoted else
                 f"staging (gates failing: {', '.join(self.failing_gates)})")
        return [f"package: {self.version} {state} -> {self.path}",
                "next: export VALUECHAIN_API_KEYS=<a secret>  (every request but /health "
                "carries one; docs/serving.md)",
                f"next: {self.serve_command}"]


def ship(spec: Any, project: Path | str) -> Shipped:
    """Package the decided run of the demo project, promote it when its gates pass.

    Parameters
    ----------
    spec : LoadedSpec or path
        The demo project's spec.
    project : Path or str
        The project folder as the user typed it (for the printed ``serve`` command).

    Returns
    -------
    Shipped
        The version, whether it went to production, and the command that serves it
        (``valuechain serve --spec DIR``, with ``--version`` when it stayed in staging).
    """
    from valuechain.registry import Registry, package

    began = time.perf_counter()
    result = package(spec)
    failing = tuple(g.name for g in result.gates if not g.passed)
    registry = Registry(result.registry)
    current = registry.production()
    promoted = current is not None and current.version == result.version
    if not failing and not promoted:
        registry.promote(result.version)
        promoted = True
    command = f"valuechain serve --spec {project}"
    if not promoted:
        command += f" --version {result.version}"
    return Shipped(result.version, result.path, result.created, promoted, failing, command,
                   time.perf_counter() - began)



def _owned(counts: Arr) -> tuple[Arr, Arr]:
    """Owner index and each owner's first row for owners holding ``counts`` items each."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.cumsum(counts) - counts


def _pick_owned(
    rng: np.random.Generator, first: Arr, counts: Arr, since: Arr, owner: Arr, ts: Arr
) -> Arr:
    """A random item of each owner usable at ``ts``; the owner's first item otherwise."""
    pick = first[owner] + (rng.random(len(owner)) * counts[owner]).astype(np.int64)
    late = since[pick] > ts
    pick[late] = first[owner[late]]
    return pick


def _group_cumsum(values: Arr, sizes: Arr) -> Arr:
    """Cumulative sum of ``values`` restarted in each consecutive group of ``sizes`` (> 0)."""
    total: Arr = np.cumsum(values)
    first = np.cumsum(sizes) - sizes
    restarted: Arr = total - np.repeat(total[first] - values[first], sizes)
    return restarted


def _other_country(rng: np.random.Generator, country: Arr) -> Arr:
    return (country + rng.integers(1, len(COUNTRIES), len(country))) % len(COUNTRIES)


def _entities(rng: np.random.Generator, rows: int, horizon: int) -> dict[str, Arr]:
    """Customers with their habits, cards, devices and terminals."""
    n_cust, n_term, n_country = max(200, rows // 50), max(60, rows // 400), len(COUNTRIES)
    e: dict[str, Arr] = {}
    e["country"] = rng.choice(n_country, n_cust, p=COUNTRY_P)
    e["segment"] = rng.choice(len(SEGMENTS), n_cust, p=SEGMENT_P)
    early = rng.random(n_cust) < 0.85  # most customers signed up before the period
    e["signup"] = np.where(
        early,
        -rng.integers(DAY, 3 * 365 * DAY, n_cust),
        rng.integers(0, int(0.85 * horizon), n_cust),
    )
    e["activity"] = rng.gamma(2.0, 0.5, n_cust) * SEGMENT_ACTIVITY[e["segment"]]
    e["amount_mu"] = rng.normal(np.log(35.0), 0.45, n_cust) + SEGMENT_AMOUNT[e["segment"]]
    e["channel_cum"] = np.cumsum(rng.dirichlet((2.0, 1.5, 3.0), n_cust), axis=1)
    e["hour_shift"] = np.rint(rng.normal(0.0, 1.2, n_cust)).astype(np.int64)
    e["tier"] = rng.choice(len(TIERS), n_cust, p=(0.70, 0.22, 0.08))
    # terminals (merchants); every country and category has at least one
    e["t_country"] = rng.choice(n_country, n_term, p=COUNTRY_P)
    e["t_country"][:n_country] = np.arange(n_country)
    e["t_cat"] = rng.choice(len(CATEGORIES), n_term, p=CATEGORY_P)
    e["t_cat"][: len(CATEGORIES)] = np.arange(len(CATEGORIES))
    e["t_pop"] = rng.lognormal(0.0, 0.8, n_term)
    by_country = np.argsort(e["t_country"], kind="stable")
    per_country = np.bincount(e["t_country"], minlength=n_country)
    first = (np.cumsum(per_country) - per_country)[e["country"]]
    slot = (rng.random((n_cust, 4)) * per_country[e["country"]][:, None]).astype(np.int64)
    e["favourites"] = by_country[first[:, None] + slot]  # four usual terminals at home
    # cards and devices: the first one from signup, the others issued/seen later
    for kind, extra, p_extra in (("card", 2, 0.2), ("dev", 3, 0.3)):
        counts = 1 + rng.binomial(extra, p_extra, n_cust)
        owner, first_of = _owned(counts)
        later_from = np.maximum(e["signup"], -365 * DAY)[owner]
        since = (later_from + rng.random(len(owner)) * (horizon - later_from)).astype(np.int64)
        primary = np.arange(len(owner)) == first_of[owner]
        e[f"{kind}_cust"], e[f"{kind}_first"], e[f"{kind}_count"] = owner, first_of, counts
        e[f"{kind}_since"] = np.where(primary, e["signup"][owner], since)
    e["card_type"] = rng.choice(len(CARD_TYPES), len(e["card_cust"]), p=(0.5, 0.42, 0.08))
    e["new_dev_cust"] = np.zeros(0, np.int64)  # fresh fraud devices, appended later
    e["new_dev_since"] = np.zeros(0, np.int64)
    return e


def _new_devices(e: dict[str, Arr], cust: Arr, since: Arr) -> Arr:
    """Register fresh devices; return their device indices."""
    base = len(e["dev_cust"]) + len(e["new_dev_cust"])
    e["new_dev_cust"] = np.concatenate([e["new_dev_cust"], cust])
    e["new_dev_since"] = np.concatenate([e["new_dev_since"], since])
    return base + np.arange(len(cust))


_TX = ("ts", "cust", "card", "term", "dev", "amount", "ship", "chan")


def _txns(e: dict[str, Arr], scen: int, *columns: Arr) -> dict[str, Arr]:
    """Transaction columns (in the order of ``_TX``) of one scenario."""
    tx = dict(zip(_TX, columns, strict=True))
    tx["ts"] = tx["ts"].astype(np.int64)
    tx["amount"] = np.maximum(np.round(tx["amount"], 2), 0.5)
    tx["bill"] = e["country"][tx["cust"]]
    tx["scen"] = np.full(len(tx["ts"]), scen, np.int8)
    return tx


def _genuine(
    rng: np.random.Generator, e: dict[str, Arr], n: int, days: int, weekday: int
) -> dict[str, Arr]:
    """Everyday purchases: weekday/daytime rhythm, usual merchants, typical amounts."""
    grid = np.arange(days + 1, dtype=float)
    weight = WEEKDAY[(weekday + np.arange(days)) % 7] * (1 + 0.12 * np.arange(days) / days)
    cdf = np.concatenate([[0.0], np.cumsum(weight) / weight.sum()])
    lo = np.maximum(e["signup"], 0) / DAY
    exposure = e["activity"] * (days - lo)
    cust = np.repeat(np.arange(len(lo)), rng.multinomial(n, exposure / exposure.sum()))
    f_lo = np.interp(lo[cust], grid, cdf)
    day = np.floor(np.interp(f_lo + rng.random(n) * (1 - f_lo), cdf, grid)).astype(np.int64)
    hour = (rng.choice(24, n, p=HOUR_P) + e["hour_shift"][cust]) % 24
    ts = np.minimum(day, days - 1) * DAY + hour * 3600 + rng.integers(0, 3600, n)
    ts = np.maximum(ts, e["signup"][cust] + 60)
    # plant exact ties between different customers (same second, same checkout load)
    a, b = rng.integers(0, n, (2, max(3, n // 400)))
    tie = (cust[a] != cust[b]) & (ts[a] >= e["signup"][cust[b]] + 60)
    ts[b[tie]] = ts[a[tie]]
    chan = (rng.random(n)[:, None] > e["channel_cum"][cust]).sum(axis=1).clip(0, POS)
    usual = e["favourites"][cust, rng.integers(0, 4, n)]
    pop = np.cumsum(e["t_pop"]) / e["t_pop"].sum()
    anywhere = np.searchsorted(pop, rng.random(n)).clip(0, len(pop) - 1)
    term = np.where(rng.random(n) < 0.85, usual, anywhere)
    amount = np.exp(
        e["amount_mu"][cust] + CATEGORY_AMOUNT[e["t_cat"][term]] + rng.normal(0.0, 0.6, n)
    )
    card = _pick_owned(rng, e["card_first"], e["card_count"], e["card_since"], cust, ts)
    dev = _pick_owned(rng, e["dev_first"], e["dev_count"], e["dev_since"], cust, ts)
    dev = np.where(chan == POS, e["dev_first"][cust], dev)  # in store: the wallet phone
    bill = e["country"][cust]
    gift = (chan != POS) & (rng.random(n) < 0.04)
    ship = np.where(gift, _other_country(rng, bill), bill)
    return _txns(e, GENUINE, ts, cust, card, term, dev, amount, ship, chan)


def _card_bursts(
    rng: np.random.Generator, e: dict[str, Arr], rows: int, horizon: int
) -> dict[str, Arr]:
    """Compromised cards: a burst of fraud over the days after the compromise."""
    mean_burst = 4.5
    n_burst = max(2, round(TARGET["card"] * rows / mean_burst))
    weight = TIER_COMPROMISE[e["tier"][e["card_cust"]]] * (e["card_since"] < horizon - 2 * DAY)
    bc = rng.choice(len(weight), n_burst, replace=False, p=weight / weight.sum())
    begin = np.maximum(e["card_since"][bc], 0)
    t0 = (begin + rng.random(n_burst) * (horizon - begin)).astype(np.int64)
    sizes = 1 + rng.poisson(mean_burst - 1, n_burst)
    burst = np.repeat(np.arange(n_burst), sizes)
    ts = t0[burst] + _group_cumsum(rng.exponential(8 * 3600, len(burst)), sizes).astype(np.int64)
    keep = ts < horizon
    cust = e["card_cust"][bc]
    fresh = rng.random(n_burst) < 0.75
    dev_of_burst = e["dev_first"][cust]
    dev_of_burst[fresh] = _new_devices(e, cust[fresh], t0[fresh])
    burst, ts = burst[keep], ts[keep]
    n = len(ts)
    chan = rng.choice(3, n, p=(0.62, 0.23, 0.15))
    appeal = CATEGORY_FRAUD_APPEAL[e["t_cat"]] * e["t_pop"]
    term = np.searchsorted(np.cumsum(appeal) / appeal.sum(), rng.random(n)).clip(0, len(appeal) - 1)
    amount = np.exp(
        np.log(110.0) + 0.5 * CATEGORY_AMOUNT[e["t_cat"][term]] + rng.normal(0.0, 0.8, n)
    )
    bill = e["country"][cust[burst]]
    abroad = (chan != POS) & (rng.random(n) < 0.55)
    ship = np.where(abroad, _other_country(rng, bill), bill)
    dev = dev_of_burst[burst]
    return _txns(e, CARD, ts, cust[burst], bc[burst], term, dev, amount, ship, chan)


def _campaign(
    rng: np.random.Generator, e: dict[str, Arr], rows: int, horizon: int,
    campaign_days: int = CAMPAIGN_DAYS, scale: float = 1.0,
) -> dict[str, Arr]:
    """The late campaign: fresh devices testing many cards with small 'app' payments."""
    begin = horizon - campaign_days * DAY
    devices = TARGET["campaign"] * rows / 8
    if campaign_days != CAMPAIGN_DAYS or scale != 1.0:  # the default world unchanged
        devices *= campaign_days / CAMPAIGN_DAYS * scale
    cards_per_dev = 3 + rng.poisson(3.0, max(3, round(devices)))
    n_dev = len(cards_per_dev)
    start = (begin + rng.random(n_dev) * (horizon - begin - 3600)).astype(np.int64)
    eligible = np.flatnonzero(e["card_since"] < begin)
    card = rng.choice(eligible, int(cards_per_dev.sum()))
    per_card = 1 + rng.binomial(1, 0.3, len(card))
    card = np.repeat(card, per_card)
    sizes = np.bincount(
        np.repeat(np.repeat(np.arange(n_dev), cards_per_dev), per_card), minlength=n_dev
    )
    device = np.repeat(np.arange(n_dev), sizes)
    ts = start[device] + _group_cumsum(rng.exponential(900, len(card)), sizes).astype(np.int64)
    cust = e["card_cust"][card]
    dev_ids = _new_devices(e, cust[np.cumsum(sizes) - sizes], start)
    keep = ts < horizon
    ts, card, cust, device = ts[keep], card[keep], cust[keep], device[keep]
    n = len(ts)
    targets = np.flatnonzero(e["t_cat"] == DIGITAL_GOODS)
    targets = rng.choice(targets, min(4, len(targets)), replace=False)
    amount = np.exp(rng.normal(np.log(6.0), 0.5, n)).clip(1.0, 30.0)
    term = targets[rng.integers(0, len(targets), n)]
    ship, chan = e["country"][cust], np.full(n, APP)
    return _txns(e, CAMPAIGN, ts, cust, card, term, dev_ids[device], amount, ship, chan)


def _compromise_terminals(
    rng: np.random.Generator, e: dict[str, Arr], tx: dict[str, Arr], rows: int, horizon: int
) -> None:
    """Compromised terminals: some purchases there during a stretch of weeks become fraud."""
    n_term, p_fraud, mean_days = len(e["t_cat"]), 0.4, 30.0
    per_terminal = len(tx["ts"]) / n_term * mean_days * DAY / horizon * p_fraud
    n_hit = int(np.clip(round(TARGET["terminal"] * rows / per_terminal), 1, n_term // 5))
    hit = rng.choice(n_term, n_hit, replace=False)
    begin = np.full(n_term, np.iinfo(np.int64).max)
    end = np.zeros(n_term, np.int64)
    begin[hit] = rng.integers(0, horizon - 10 * DAY, n_hit)
    end[hit] = begin[hit] + rng.integers(15 * DAY, 45 * DAY, n_hit)
    term, ts = tx["term"], tx["ts"]
    fraud = (ts >= begin[term]) & (ts < end[term]) & (rng.random(len(ts)) < p_fraud)
    tx["scen"][fraud] = TERMINAL


def _outcomes(rng: np.random.Generator, tx: dict[str, Arr], as_of: int) -> dict[str, Arr]:
    """Chargebacks, disputes and the export's status column, as known at ``as_of``."""
    n = len(tx["ts"])
    scen = tx["scen"]
    genuine = np.flatnonzero((scen == GENUINE) & (tx["chan"] != POS))
    n_fraud = int(np.count_nonzero(scen != GENUINE))
    friendly = rng.choice(genuine, min(len(genuine), round(0.025 / 0.975 * n_fraud)), replace=False)
    scen[friendly] = FRIENDLY
    cb = np.flatnonzero(scen != GENUINE)
    is_friendly = scen[cb] == FRIENDLY
    delay = np.where(
        is_friendly,
        15 * DAY + 75 * DAY * rng.beta(2.0, 3.0, len(cb)),
        5 * DAY + 85 * DAY * rng.beta(1.6, 4.5, len(cb)),
    ).astype(np.int64)
    reported = tx["ts"][cb] + delay
    reason = np.where(
        is_friendly, 2 + rng.integers(0, 2, len(cb)), np.where(tx["chan"][cb] == POS, 0, 1)
    )
    # disputes: nearly every chargeback, opened a few days before it is reported ...
    opened_cb = reported - np.minimum(rng.uniform(1, 6, len(cb)) * DAY, 0.8 * delay)
    with_dispute = is_friendly | (rng.random(len(cb)) < 0.95)
    # ... and a few genuine purchases disputed without a chargeback
    calm = rng.choice(genuine, max(1, len(genuine) * 3 // 1000), replace=False)
    calm = calm[scen[calm] == GENUINE]
    opened_calm = tx["ts"][calm] + rng.uniform(2, 40, len(calm)) * DAY
    d_tx = np.concatenate([cb[with_dispute], calm])
    d_opened = np.concatenate([opened_cb[with_dispute], opened_calm]).astype(np.int64)
    known_d = d_opened <= as_of
    known = reported <= as_of
    status = np.where(tx["ts"] <= as_of - 3 * DAY, 1, 0)
    status[(scen == GENUINE) & (rng.random(n) < 0.015)] = 3
    status[cb[known]] = 2
    return {
        "cb_tx": cb[known],
        "cb_reported": reported[known],
        "cb_reason": reason[known],
        "d_tx": d_tx[known_d],
        "d_opened": d_opened[known_d],
        "d_channel": rng.integers(0, len(DISPUTE_CHANNELS), int(known_d.sum())),
        "status": status,
    }


def _profiles(
    rng: np.random.Generator, e: dict[str, Arr], tx: dict[str, Arr], out: dict[str, Arr], as_of: int
) -> dict[str, Arr]:
    """Slowly changing profiles: signup row, routine reviews, phone checks, chargeback rows."""
    n = len(e["signup"])
    tier0 = e["tier"]
    age0 = np.exp(rng.normal(6.2 - 0.7 * tier0, 1.0)).astype(np.int64) + 1
    verified0 = rng.random(n) < np.array([0.88, 0.65, 0.40])[tier0]
    routine = rng.poisson(1.3, n)
    r_cust = np.repeat(np.arange(n), routine)
    lo = np.maximum(e["signup"], -365 * DAY)[r_cust]
    r_time = lo + rng.random(len(r_cust)) * (as_of - lo)
    r_tier = np.clip(
        tier0[r_cust] + rng.choice([-1, 0, 1], len(r_cust), p=(0.06, 0.88, 0.06)), 0, 2
    )
    verifies = ~verified0 & (rng.random(n) < 0.5)
    verify_at = np.full(n, np.inf)
    verify_at[verifies] = e["signup"][verifies] + rng.random(int(verifies.sum())) * (
        as_of - e["signup"][verifies]
    )
    # after a customer's first known chargeback the risk team raises the tier to 'high'
    escalate_at = np.full(n, np.inf)
    np.minimum.at(escalate_at, tx["cust"][out["cb_tx"]], out["cb_reported"].astype(float))
    escalate_at += rng.uniform(3600, 2 * DAY, n)
    escalate_at[escalate_at > as_of] = np.inf
    has_v, has_e = np.flatnonzero(verifies), np.flatnonzero(np.isfinite(escalate_at))
    cust = np.concatenate([np.arange(n), r_cust, has_v, has_e])
    at = np.concatenate([e["signup"], r_time, verify_at[has_v], escalate_at[has_e]])
    at = at.astype(np.int64)
    tier = np.concatenate([tier0, r_tier, tier0[has_v], np.full(len(has_e), 2)])
    order = np.lexsort((at, cust))
    cust, at, tier = cust[order], at[order], tier[order]
    tier = np.where(at >= escalate_at[cust], 2, tier)
    first = np.ones(len(cust), bool)
    first[1:] = (cust[1:] != cust[:-1]) | (at[1:] != at[:-1])
    cust, at, tier = cust[first], at[first], tier[first]
    return {
        "cust": cust,
        "valid_from": at,
        "tier": tier,
        "age": age0[cust] + (at - e["signup"][cust]) // DAY,
        "verified": verified0[cust] | (at >= verify_at[cust]),
    }


def _strings(codes: Arr, labels: tuple[str, ...]) -> pa.Array:
    dictionary = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(labels))
    return dictionary.dictionary_decode()


def _tables(
    e: dict[str, Arr], tx: dict[str, Arr], out: dict[str, Arr], prof: dict[str, Arr], epoch: int
) -> dict[str, pa.Table]:
    def ts(seconds: Arr) -> pa.Array:
        return pa.array((np.asarray(seconds, np.int64) + epoch) * 1_000_000, pa.timestamp("us"))

    def ids(kind: str, index: Arr) -> pa.Array:
        return pa.array(ID_BASE[kind] + 1 + np.asarray(index, np.int64))

    n_cust, n_term = len(e["signup"]), len(e["t_cat"])
    dev_cust = np.concatenate([e["dev_cust"], e["new_dev_cust"]])
    dev_since = np.concatenate([e["dev_since"], e["new_dev_since"]])
    tx_id = np.arange(1, len(tx["ts"]) + 1, dtype=np.int64)
    cb_order = np.lexsort((out["cb_tx"], out["cb_reported"]))
    d_order = np.lexsort((out["d_tx"], out["d_opened"]))
    cb_tx, d_tx = out["cb_tx"][cb_order], out["d_tx"][d_order]
    return {
        "customers": pa.table(
            {
                "customer_id": ids("customer", np.arange(n_cust)),
                "signup_at": ts(e["signup"]),
                "home_country": _strings(e["country"], COUNTRIES),
                "segment": _strings(e["segment"], SEGMENTS),
            }
        ),
        "customer_profiles": pa.table(
            {
                "customer_id": ids("customer", prof["cust"]),
                "valid_from": ts(prof["valid_from"]),
                "risk_tier": _strings(prof["tier"], TIERS),
                "email_domain_age_days": pa.array(prof["age"].astype(np.int64)),
                "verified_phone": pa.array(prof["verified"]),
            }
        ),
        "cards": pa.table(
            {
                "card_id": ids("card", np.arange(len(e["card_cust"]))),
                "customer_id": ids("customer", e["card_cust"]),
                "issued_at": ts(e["card_since"]),
                "card_type": _strings(e["card_type"], CARD_TYPES),
            }
        ),
        "terminals": pa.table(
            {
                "terminal_id": ids("terminal", np.arange(n_term)),
                "merchant_category": _strings(e["t_cat"], CATEGORIES),
                "country": _strings(e["t_country"], COUNTRIES),
            }
        ),
        "devices": pa.table(
            {
                "device_id": ids("device", np.arange(len(dev_cust))),
                "customer_id": ids("customer", dev_cust),
                "first_seen_at": ts(dev_since),
            }
        ),
        "transactions": pa.table(
            {
                "transaction_id": pa.array(tx_id),
                "ts": ts(tx["ts"]),
                "customer_id": ids("customer", tx["cust"]),
                "card_id": ids("card", tx["card"]),
                "terminal_id": ids("terminal", tx["term"]),
                "device_id": ids("device", tx["dev"]),
                "amount": pa.array(tx["amount"].astype(np.float64)),
                "billing_country": _strings(tx["bill"], COUNTRIES),
                "shipping_country": _strings(tx["ship"], COUNTRIES),
                "channel": _strings(tx["chan"], CHANNELS),
                "status": _strings(out["status"], STATUSES),
            }
        ),
        "chargebacks": pa.table(
            {
                "chargeback_id": pa.array(np.arange(1, len(cb_tx) + 1, dtype=np.int64)),
                "transaction_id": pa.array(tx_id[cb_tx]),
                "reported_at": ts(out["cb_reported"][cb_order]),
                "amount": pa.array(tx["amount"][cb_tx].astype(np.float64)),
                "reason_code": _strings(out["cb_reason"][cb_order], REASONS),
            }
        ),
        "disputes": pa.table(
            {
                "dispute_id": pa.array(np.arange(1, len(d_tx) + 1, dtype=np.int64)),
                "transaction_id": pa.array(tx_id[d_tx]),
                "opened_at": ts(out["d_opened"][d_order]),
                "channel": _strings(out["d_channel"][d_order], DISPUTE_CHANNELS),
            }
        ),
    }


# ------------------------------------------------------------------ the monitoring story
#: A compact story project (tests, quick demos): a 30-day horizon and embargo, short periods,
#: the champion's data cut on 2025-06-25, the campaign from 2025-06-29 to the end (330 days):
#: a retrain at the end trains on shifted periods holding a month of matured campaign.
COMPACT_STORY: dict[str, Any] = {
    "horizon": "30d", "min_positives": 15,
    "periods": [("train", "2025-01-01", "2025-02-15"), ("validation", "2025-03-17", "2025-04-06"),
                ("test", "2025-05-06", "2025-05-26")],
    "cut": "2025-06-25", "campaign_start": "2025-06-29", "days": 330,
}


#: The full story over the published demo's spec (horizon 60 d, its periods): the world runs
#: 185 days past the published 270, the campaign from 2025-07-30 to the end, the champion
#: trained as of 2025-09-29 (the published demo's extraction).
FULL_STORY: dict[str, Any] = {
    "horizon": None, "min_positives": None, "periods": None,
    "cut": "2025-09-29", "campaign_start": "2025-07-30", "days": 455,
}


def make_story(project: Path, spec_text: str, *, story: dict[str, Any] | None = None,
               rows: int = 1_000_000, seed: int = 7, campaign_scale: float = 1.0,
               progress: Progress | None = None) -> tuple[Shipped, datetime]:
    """Write the story project (spec + world) and ship its champion as of the story's cut.

    Returns the champion's :class:`Shipped` and the campaign's start. The world is generated
    only when ``project/data`` has no transactions yet.
    """
    cfg = story or FULL_STORY
    project.mkdir(parents=True, exist_ok=True)
    text = story_spec(spec_text, horizon=cfg["horizon"], periods=cfg["periods"],
                      min_positives=cfg["min_positives"])
    (project / "valuechain.yaml").write_text(text)
    start = datetime(2025, 1, 1)
    campaign = datetime.fromisoformat(cfg["campaign_start"])
    if not (project / "data" / "transactions.parquet").exists():
        generate_fraud(project / "data", rows=rows, seed=seed, days=cfg["days"],
                       start=start.date().isoformat(),
                       campaign_days=cfg["days"] - (campaign - start).days,
                       campaign_scale=campaign_scale, progress=progress)
    shipped = ship_as_of(project, project, datetime.fromisoformat(cfg["cut"]), seed=seed)
    return shipped, campaign


def story_spec(text: str, *, horizon: str | None = None,
               periods: list[tuple[str, str, str]] | None = None,
               min_positives: int | None = None) -> str:
    """A copy of a fraud spec's YAML with another label horizon (and embargo) and periods.

    >>> spec = Path(__file__).resolve().parents[3] / "examples" / "fraud" / "valuechain.yaml"
    >>> out = yaml.safe_load(story_spec(spec.read_text(), horizon="30d"))
    >>> out["label"]["horizon"], out["split"]["embargo"]
    ('30d', '30d')
    """
    data = yaml.safe_load(text)
    if horizon is not None:
        data["label"]["horizon"] = horizon
        data["split"]["embargo"] = horizon
    if periods is not None:
        data["split"]["periods"] = [{"name": n, "start": s, "end": e} for n, s, e in periods]
    if min_positives is not None:
        data["split"]["min_positives"] = min_positives
    return str(yaml.safe_dump(data, sort_keys=False))


def ship_as_of(spec: Any, project: Path | str, as_of: datetime, seed: int = 7,
               progress: Progress | None = None) -> Shipped:
    """Build, audit, train and decide on the data as of ``as_of``, then :func:`ship`.

    The champion of the monitoring story: trained when the data was extracted on ``as_of``,
    although the world goes on after it (what happens next is replayed and monitored).
    """
    from valuechain import api

    loaded = api.load_spec(spec)
    api.build(loaded, as_of=as_of, progress=progress)
    api.audit(loaded, as_of=as_of, seed=seed)
    api.train(loaded, as_of=as_of, seed=seed, progress=progress)
    api.decide(loaded, seed=seed)
    return ship(loaded, project)


@dataclass(frozen=True)
class Story:
    """The monitoring story: replay, the first drift alert, matured KPIs, the retrain.

    ``alert_day`` is the first day on which a drift alert fires from the campaign start on:
    the day its streak reaches the rule's consecutive ``windows`` (one monitor pass over the
    replayed days finds the streaks daily passes would: a day's drift never changes later);
    ``kpi`` holds
    the spec KPI (``loss_per_1000``) before and during the campaign, realised (matured
    cohorts) and estimated before labels.
    """

    campaign_start: datetime
    replayed: int
    replay_seconds: float
    replay_period: tuple[datetime, datetime]
    alert_day: datetime | None
    alert: str
    days_to_alert: int | None
    kpi: dict[str, float]
    retrain_recommended: bool
    retrain_reasons: tuple[str, ...]
    retrain: Any
    seconds: float
    report: Path | None = None

    def to_json(self) -> dict[str, object]:
        return {"campaign_start": self.campaign_start.isoformat(), "replayed": self.replayed,
                "replay_seconds": round(self.replay_seconds, 3),
                "replay_period": [t.isoformat() for t in self.replay_period],
                "alert_day": self.alert_day.isoformat() if self.alert_day else None,
                "alert": self.alert, "days_to_alert": self.days_to_alert, "kpi": self.kpi,
                "retrain_recommended": self.retrain_recommended,
                "retrain_reasons": list(self.retrain_reasons),
                "retrain": self.retrain.to_json() if self.retrain is not None else None,
                "report": str(self.report) if self.report else None,
                "seconds": round(self.seconds, 3)}

    def lines(self) -> list[str]:
        """What the story prints."""
        a, b = self.replay_period
        out = [f"replay: {self.replayed:,} payments {a:%Y-%m-%d}..{b:%Y-%m-%d} through the "
               f"decision path into the decision log ({self.replay_seconds:.0f} s)",
               f"campaign starts {self.campaign_start:%Y-%m-%d}"]
        if self.alert_day is not None:
            out.append(f"drift alert first fires on {self.alert_day:%Y-%m-%d}, "
                       f"{self.days_to_alert} day(s) after the campaign start: {self.alert}")
        else:
            out.append("drift alert: none fired in the replayed days")
        k = self.kpi
        if k:
            out.append(
                "KPI loss per 1,000 approved: before the campaign "
                f"{k.get('before_realised', float('nan')):.2f} realised; campaign cohorts "
                f"{k.get('campaign_realised', float('nan')):.2f} realised (matured) vs "
                f"{k.get('campaign_estimate', float('nan')):.2f} estimated before labels")
        out.append("retraining recommended: " + ("yes" if self.retrain_recommended else "no")
                   + (f" ({'; '.join(r.rstrip('.') for r in self.retrain_reasons)})"
                      if self.retrain_reasons else ""))
        if self.retrain is not None:
            r = self.retrain
            c = r.comparison
            for name in ("roc_auc", "average_precision", "loss_per_1000"):
                m = r.metric(name)
                out.append(f"retrain {r.challenger} vs {r.champion} on {c.start:%Y-%m-%d}.."
                           f"{c.end:%Y-%m-%d}: {name} {m.champion:.3f} -> {m.challenger:.3f} "
                           f"(difference {m.difference:+.3f} [{m.difference_low:+.3f}, "
                           f"{m.difference_high:+.3f}])")
            out.extend(f"retrain: {reason}" for reason in r.reasons)
        if self.report is not None:
            out.append(f"report (with its Monitoring section): {self.report}")
        return out


def _kpi_means(signals: Any, start: datetime, end: datetime, campaign: datetime
               ) -> dict[str, float]:
    """Mean daily ``loss_per_1000`` before / during the campaign, realised and estimated."""
    import pandas as pd

    s = signals[(signals["metric"] == "loss_per_1000") & (signals["status"] == "ok")]
    window = pd.to_datetime(s["window"]).dt.tz_localize(None) if getattr(
        s["window"].dtype, "tz", None) is not None else pd.to_datetime(s["window"])
    out: dict[str, float] = {}
    for label, lo, hi in (("before", start, campaign), ("campaign", campaign, end)):
        inside = (window >= lo) & (window < hi)
        for section, name in (("kpi", "realised"), ("estimate", "estimate")):
            rows = s[inside & (s["section"] == section)]
            if len(rows):
                out[f"{label}_{name}"] = float(rows["value"].mean())
    return out


def monitor_story(spec: Any, *, campaign_start: datetime, alert_days: int = 14,
                  replay_days: int | None = None, replay_from: datetime | None = None,
                  retrain_at_end: bool = True, progress: Progress | None = None) -> Story:
    """Replay the late period, monitor it day by day, then retrain (the demo's story).

    Parameters
    ----------
    spec : path or LoadedSpec
        A project whose production bundle (the champion) was trained before the campaign
        (:func:`ship_as_of`) over a world generated with a long ``campaign_days``.
    campaign_start : datetime
        When the campaign starts (the world's end minus ``campaign_days``).
    alert_days : int
        Days after the campaign start searched for the first drift alert (daily windows).
    replay_days : int, optional
        Replay from the champion's test end to ``campaign_start + replay_days`` (default: to
        the end of the data; bound it while scoring runs at hundreds of rows per second).
    replay_from : datetime, optional
        Start of the replay; default the end of the champion's test period.
    retrain_at_end : bool
        Run :func:`valuechain.monitor.retrain.retrain` at the end of the data.
    """
    import json

    import pandas as pd

    from valuechain import api
    from valuechain.monitor.retrain import retrain
    from valuechain.monitor.run import monitor, monitor_folder
    from valuechain.registry import Registry, default_registry
    from valuechain.serve.score import score_file

    began = time.perf_counter()
    loaded = api.load_spec(spec)
    registry = Registry(default_registry(loaded))
    champion = registry.load()
    metrics = json.loads((Path(champion.path) / "metrics.json").read_text())
    ends = {p["name"]: p["end"] for p in metrics["splits"]["periods"]}
    start = replay_from or datetime.fromisoformat(ends.get("test") or list(ends.values())[-1])
    source = loaded.spec.sources[str(getattr(loaded.spec.decision_points, "source", ""))]
    events_path = loaded.root / str(source.path)
    tcol = source.event_time or "ts"
    events = pq.read_table(events_path).to_pandas()
    last = pd.Timestamp(events[tcol].max()).to_pydatetime()
    end = (campaign_start + timedelta(days=replay_days) if replay_days is not None
           else last + timedelta(seconds=1))
    chosen = events[(events[tcol] >= start) & (events[tcol] < end)]
    folder = loaded.workspace / "story"
    folder.mkdir(parents=True, exist_ok=True)
    replay = folder / "replay.parquet"
    chosen.to_parquet(replay, index=False)
    log = folder / "decisions.sqlite"
    for stale in folder.glob("decisions.sqlite*"):
        stale.unlink()
    report(progress, "replay", 0.1)
    scored = score_file(loaded, replay, out=folder / "replay.decisions.parquet", log_path=log)
    report(progress, "monitor", 0.5)
    # Drift signals of a day never change later, so one pass over the replayed days finds the
    # streaks daily passes would; a streak fires on its `windows`-th consecutive day.
    alert_day, alert, days_to = None, "", None
    upto = min(end, campaign_start + timedelta(days=alert_days))
    rules = {r.name: r for r in getattr(loaded.spec.monitoring, "alerts", None) or []}
    drift = [a for a in monitor(loaded, log=log, as_of=upto).alerts
             if a.section == "drift" and _naive(a.first_window) >= campaign_start]
    if drift:
        def fires(a: Any) -> datetime:
            need = int(getattr(rules.get(a.rule), "windows", 1) or 1)
            return _naive(a.first_window) + timedelta(days=need - 1)
        first = min(drift, key=fires)
        alert_day = fires(first)
        alert = (f"{first.rule} ({first.metric}{' of ' + first.subject if first.subject else ''}"
                 f" {first.value:.3f} > {first.threshold:g} since "
                 f"{_naive(first.first_window):%Y-%m-%d})")
        days_to = (alert_day - campaign_start).days
    final = monitor(loaded, log=log, as_of=last)
    final.save(monitor_folder(loaded))  # the report's Monitoring section reads it
    kpi = _kpi_means(final.signals, start, end, campaign_start)
    report(progress, "retrain", 0.7)
    result = retrain(loaded) if retrain_at_end else None
    report(progress, "report", 0.95)
    reported = api.report(loaded)
    return Story(campaign_start, scored.rows, scored.seconds, (start, end), alert_day, alert,
                 days_to, kpi, bool(final.retrain.recommend), tuple(final.retrain.reasons),
                 result, time.perf_counter() - began, reported.path)


def _naive(moment: datetime) -> datetime:
    """``moment`` as a naive UTC time (the demo world's times are naive UTC)."""
    from datetime import UTC

    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
