"""The churn demo world: a subscription business, a weekly call list, and what a call truly does.

Time runs on a grid of weeks starting on the first Monday at or after ``start`` (the export
holds nothing earlier). ``customers`` subscribers are simulated: 60 % subscribed before the
period (tenure up to three years), 40 % join during it.

**Subscriptions.** Each customer has one subscription: plan ``basic`` / ``standard`` /
``premium`` (45 / 35 / 20 %, 9.99 / 19.99 / 39.99 a month), billed ``monthly`` (75 %) or
``annual`` (25 %, ten months' price once a year). About 12 % change plan once at a random
time, and a quarter of the customers who start to disengage downgrade a week later: the plan
is a slowly changing dimension (``plan_changes``: one row per plan with its ``valid_from``).

**Why customers leave.** Each customer has a weekly cancel hazard ``h``:

- a base of 0.15 % a week (sudden cancels), plus 1 % in the first eight weeks of tenure;
- *disengagement*: from an onset week (exponential, 0.6 % a week times the response-type
  factor below) engagement decays as ``g = exp(-(week - onset) / tau)``, tau 2-6 weeks, and
  the hazard grows by ``0.22 (1 - g)``. Usage (sessions, minutes) falls with ``g`` and
  support tickets rise: many cancels follow weeks of declining usage, some (sudden, payment)
  do not;
- *payments*: every billing date a payment is attempted; 3 % fail (4.5 % on basic); a failed
  payment is retried 3 days later and succeeds 55 % of the time. A first failure adds 3 % to
  the hazard of its week, a failed retry 35 % (involuntary churn);
- plan (basic x1.2, premium x0.8) and billing: annual subscribers x0.3, except in the four
  weeks before a renewal date, x2.

The hazard (capped at 0.95) is drawn week by week; a cancel falls uniformly in its week. With
the defaults about 3.5-5 % of the active customers cancel within 30 days of a Monday.

**Past outreach (today's rule).** From the ninth Monday on, every Monday customer success
lists the ``capacity`` riskiest active customers by a simple rule (capacity 2,000 per week per
100,000 customers: ``round(20 * customers / 1000)``, at least 10). The rule score is the drop
in sessions (last 2 weeks vs the 4 before, per week, relative), plus 0.5 per ticket and 1 per
failed payment in the last 4 weeks. ``round(20 %)`` of each week's list is drawn at random as
**control**, stratified by the decile of the rule score *among the listed*: each decile holds
out ``floor(20 % of its size)`` and the remainder goes one each to deciles drawn at random, so
every decile's expected control share is 20 % (exactly 20 % when the list is a multiple of 50).
The others are **treated** (called during the week). A listed customer, called or held
out, is not listed again for 5 weeks (a cooldown: the control stays uncalled for the 30 days
its outcome is measured over, and calls' effects do not overlap). Every listed customer has a
row in ``outreach``.

**What a call truly does.** Each customer has a fixed response type (``truth``):

===============  =======  ===============================  ==========================
type             share    onset factor                     call multiplies the hazard
===============  =======  ===============================  ==========================
sure_thing       45 %     0.3 (rarely disengage)           1.0 (no effect)
persuadable      30 %     1.5, twice the support tickets   0.4
lost_cause       20 %     3.0 (most disengage)             1.0 (no effect)
sleeping_dog      5 %     1.0, a third of the usage        2.0 (reminded to leave)
===============  =======  ===============================  ==========================

A call's multiplier holds for the 30 days after the Monday of the listing (weeks 0-3, and
2/7 of week 4); a later call restarts it. The true effect of a call at Monday ``t`` is
``uplift = p0 - p1``, the 30-day cancel probabilities without and with a call now, computed
from the customer's hazards *given the calls made before t* (a customer called last week is
still partly under that call without a new one: the effect of calling again is small) and
ignoring later calls. This is what a randomized listing at ``t`` measures. It is kept in memory (``ChurnWorld.truth``,
``ChurnWorld.uplift``) and written to ``out/truth/`` when asked, which is **not** a source.

**Planted leaks.**

1. ``cancellation_requests``: 90 % of cancels are preceded by a request logged 2-28 days
   before the subscription ends (a notice period), and 1.5 % of the customers who stay file a
   request they withdraw. It only exists once the customer has decided: ``post_outcome``.
2. ``customers.status`` is the status at the export (``active``, ``cancelled``,
   ``past_due``): a lookup of it sees the future.

The weekly snapshot ``active_subscribers`` (one row per customer active at each Monday 00:00)
lets a schedule's ``active_within`` select exactly the active customers.

**Planted segments and a continuum** (for ``valuechain segment``). Each customer has a fixed
*persona* (``truth/segments``): ``creator`` 40 %, ``collaborator`` 35 %, ``analyst`` 25 %.
``feature_events`` logs every use of a product area (``editor``, ``sharing``, ``reports``);
the weekly uses per area are Poisson with the persona's rates (:data:`PERSONA_RATES`: creators
5 / 0.6 / 0.4, collaborators 0.8 / 4 / 0.6, analysts 0.6 / 0.8 / 4) times the customer's
engagement ``g``, so counts per area over 28 days form three real groups. How long one use
lasts (``seconds``, gamma with shape 16 around the customer's own mean, uniform in 60-300 s)
and how many items it touches (``items``, Poisson around the customer's own mean, uniform in
2-20) vary *continuously* between customers: their 28-day means have no groups. Neither
changes any hazard. These columns and tables come from a second random stream
(``default_rng([seed, 13])``): every other table, column and truth value is the same as
without them.

>>> world = simulate_churn(customers=2_000, months=6, seed=1)
>>> sorted(world.tables)[:3]
['active_subscribers', 'cancellation_requests', 'customers']
>>> world.truth.num_rows
2000
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

from valuechain.demo.tables import Progress, report, table_lines, write_tables
from valuechain.errors import ValuechainError

__all__ = [
    "PERSONAS",
    "PERSONA_RATES",
    "RESPONSE_TYPES",
    "TABLES",
    "ChurnWorld",
    "ChurnWorldSummary",
    "generate_churn",
    "outreach_capacity",
    "simulate_churn",
]

Arr = npt.NDArray[Any]

TABLES = ("customers", "subscriptions", "plan_changes", "usage_events", "support_tickets",
          "payments", "active_subscribers", "outreach", "cancellation_requests",
          "feature_events")
DAY = 86_400
WEEK = 7 * DAY
PLANS = ("basic", "standard", "premium")
PLAN_P = (0.45, 0.35, 0.20)
PRICE = np.array([9.99, 19.99, 39.99])
PLAN_HAZARD = np.array([1.2, 1.0, 0.8])
PLAN_FAIL = np.array([1.5, 1.0, 1.0])
BILLING = ("monthly", "annual")
REGIONS = ("north", "south", "east", "west")
CHANNELS = ("search", "social", "referral", "partner")
TICKETS = ("billing", "bug", "how_to", "account")
REQUEST_CHANNELS = ("app", "web", "phone")
STATUSES = ("active", "cancelled", "past_due")
#: Response types to a call, their shares, onset factors and hazard multipliers under a call.
RESPONSE_TYPES = ("sure_thing", "persuadable", "lost_cause", "sleeping_dog")
TYPE_P = (0.45, 0.30, 0.20, 0.05)
TYPE_ONSET = np.array([0.3, 1.5, 3.0, 1.0])
TYPE_CALL = np.array([1.0, 0.4, 1.0, 2.0])
TYPE_TICKETS = np.array([1.0, 2.0, 1.0, 1.0])
TYPE_USAGE = np.array([1.0, 1.0, 1.0, 0.35])
BASE_HAZARD, NEW_HAZARD, ONSET_RATE, DECLINE_HAZARD = 0.0015, 0.01, 0.006, 0.22
FAIL_P, RETRY_OK, FAIL_HAZARD, DUNNING_HAZARD = 0.03, 0.55, 0.03, 0.35
OUTREACH_FROM = 8  # the first listing Monday (week index): 8 weeks of history first
COOLDOWN_WEEKS = 5  # a listed customer (called or held out) is not listed again for 5 weeks
CONTROL_SHARE = 0.2
CALL_WEEKS = 30 / 7  # a call's effect lasts 30 days
ID_BASE = 10**6
#: Planted segments: personas, their shares, and weekly uses of each product area.
PERSONAS = ("creator", "collaborator", "analyst")
PERSONA_P = (0.40, 0.35, 0.25)
AREAS = ("editor", "sharing", "reports")
PERSONA_RATES = np.array([[5.0, 0.6, 0.4], [0.8, 4.0, 0.6], [0.6, 0.8, 4.0]])
SEGMENT_STREAM = 13  # the personas' random stream: default_rng([seed, SEGMENT_STREAM])


def outreach_capacity(customers: int) -> int:
    """Calls per week: 2,000 per 100,000 customers, at least 10.

    >>> outreach_capacity(100_000), outreach_capacity(10_000), outreach_capacity(100)
    (2000, 200, 10)
    """
    return max(10, round(20 * customers / 1000))


@dataclass(frozen=True)
class ChurnWorld:
    """A simulated subscription world: the exported tables plus the ground truth.

    ``truth`` has one row per customer (``customer_id``, ``response_type``,
    ``call_multiplier``, ``onset_at`` (null when never disengaging)); ``uplift`` one row per
    customer active at a listing Monday (``customer_id``, ``decision_time``, ``p_cancel_30d``,
    ``p_cancel_30d_called``, ``uplift`` = the first minus the second); ``segments`` one row per
    customer (``customer_id``, ``persona``, ``mean_seconds``, ``mean_items``: the planted
    segment and the two continuous traits). None is exported as a source.
    """

    tables: dict[str, pa.Table]
    truth: pa.Table
    uplift: pa.Table
    start: datetime
    first_monday: datetime
    end: datetime
    as_of: datetime
    capacity: int
    seed: int
    segments: pa.Table | None = None


@dataclass(frozen=True)
class ChurnWorldSummary:
    """What :func:`generate_churn` wrote: table sizes, rates, time range and paths."""

    out: Path
    paths: dict[str, Path]
    rows: dict[str, int]
    cancel_share: float
    cancel_30d_rate: float
    capacity: int
    control_share: float
    first_monday: datetime
    as_of: datetime
    seed: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        """Machine-readable summary (``valuechain generate churn --json``)."""
        return {
            "out": str(self.out),
            "paths": {name: str(path) for name, path in self.paths.items()},
            "rows": dict(self.rows),
            "cancel_share": self.cancel_share,
            "cancel_30d_rate": self.cancel_30d_rate,
            "capacity": self.capacity,
            "control_share": self.control_share,
            "first_monday": self.first_monday.isoformat(),
            "as_of": self.as_of.isoformat(),
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        """Human-readable summary lines (the CLI renders them)."""
        out = table_lines(self.rows, self.paths)
        out.append(f"{self.cancel_share:.1%} of customers cancel; {self.cancel_30d_rate:.2%} of "
                   "active customers cancel within 30 days of a Monday")
        out.append(f"outreach: {self.capacity:,} listed per week, {self.control_share:.1%} "
                   "held out as control")
        out.append(f"weeks from {self.first_monday}, extracted {self.as_of}; "
                   f"{self.seconds:.1f} s")
        return out


def generate_churn(
    out: Path,
    *,
    customers: int = 100_000,
    months: int = 18,
    seed: int = 7,
    start: str = "2024-01-01",
    truth: bool = True,
    progress: Progress | None = None,
) -> ChurnWorldSummary:
    """Simulate the churn world and write one Parquet file per table into ``out``.

    Files are written under a temporary name and moved into place (a reader never sees a
    half-written file). The same arguments give identical files. With ``truth``, the ground
    truth goes to ``out/truth/`` (``customers.parquet``, ``uplift.parquet``,
    ``segments.parquet``): not a source.

    Parameters
    ----------
    out : Path
        Directory for the Parquet files (created when missing).
    customers : int
        Number of subscribers (500 to 10 million).
    months : int
        Length of the period in months of 30.44 days (at least 4, at most 120).
    seed : int
        Seed of the random generator.
    start : str
        First day, ISO format, tz-naive; the weeks start on the first Monday from it.
    truth : bool
        Also write the ground truth into ``out/truth/``.
    progress : callable, optional
        Called as ``progress(stage, fraction)`` with fraction in [0, 1].

    Returns
    -------
    ChurnWorldSummary

    Examples
    --------
    >>> import tempfile
    >>> summary = generate_churn(Path(tempfile.mkdtemp()), customers=1_000, months=5)
    >>> summary.paths["subscriptions"].name, summary.rows["customers"]
    ('subscriptions.parquet', 1000)
    """
    began = time.perf_counter()
    world = simulate_churn(customers=customers, months=months, seed=seed, start=start,
                           progress=progress)
    out = Path(out)
    paths = write_tables(out, world.tables, TABLES, progress)
    if truth:
        assert world.segments is not None
        write_tables(out / "truth", {"customers": world.truth, "uplift": world.uplift,
                                     "segments": world.segments},
                     ("customers", "uplift", "segments"))
    subs = world.tables["subscriptions"]
    upl = world.uplift
    cancels = world.tables["subscriptions"].column("cancelled_at").null_count
    outreach = world.tables["outreach"]
    return ChurnWorldSummary(
        out=out,
        paths=paths,
        rows={name: world.tables[name].num_rows for name in TABLES},
        cancel_share=1.0 - cancels / subs.num_rows,
        cancel_30d_rate=float(np.mean(upl.column("cancelled_30d").to_numpy())),
        capacity=world.capacity,
        control_share=float(np.mean(outreach.column("group").to_numpy(
            zero_copy_only=False) == "control")) if outreach.num_rows else 0.0,
        first_monday=world.first_monday,
        as_of=world.as_of,
        seed=seed,
        seconds=time.perf_counter() - began,
    )


def simulate_churn(
    customers: int = 100_000,
    months: int = 18,
    seed: int = 7,
    start: str = "2024-01-01",
    progress: Progress | None = None,
) -> ChurnWorld:
    """Simulate the churn world in memory (see :func:`generate_churn` for the parameters).

    >>> world = simulate_churn(customers=1_000, months=5, seed=2)
    >>> world.capacity, sorted(set(world.tables["outreach"].column("group").to_pylist()))
    (20, ['control', 'treated'])
    """
    if not 500 <= customers <= 10_000_000:
        raise ValuechainError(f"churn demo: `customers` {customers} is out of range; use "
                              "500 to 10,000,000 customers.")
    if not 4 <= months <= 120:
        raise ValuechainError(f"churn demo: `months` {months} is out of range; use 4 to 120 "
                              "months (outreach starts after 8 weeks of history).")
    try:
        t0 = datetime.fromisoformat(start)
    except ValueError:
        raise ValuechainError(f"churn demo: `start` {start!r} is not an ISO date; use e.g. "
                              "'2024-01-01'.") from None
    if t0.tzinfo is not None:
        raise ValuechainError(f"churn demo: `start` {start!r} must be tz-naive, e.g. '2024-01-01'.")
    rng = np.random.default_rng(seed)
    t0 = datetime(t0.year, t0.month, t0.day)
    monday = t0 + timedelta(days=(7 - t0.weekday()) % 7)
    end = round(months * 30.44) * DAY - (monday - t0).days * DAY  # seconds from monday
    weeks = -(-end // WEEK)
    e = _customers(rng, customers, end)
    report(progress, "customers", 0.05)
    hz, obs = _hazards(rng, e, weeks, end)
    report(progress, "hazards", 0.25)
    capacity = outreach_capacity(customers)
    cancel, listing = _weekly(rng, e, hz, obs, weeks, end, capacity)
    report(progress, "weeks", 0.45)
    epoch = int((monday - datetime(1970, 1, 1)).total_seconds())
    tables = _tables(rng, e, obs, cancel, listing, end, epoch)
    report(progress, "tables", 0.7)
    truth, uplift = _truth(e, listing, cancel, weeks, epoch)
    events, segments = _personas(np.random.default_rng([seed, SEGMENT_STREAM]), e, obs["g"],
                                 cancel, end, epoch)
    tables["feature_events"] = events
    return ChurnWorld(tables, truth, uplift, t0, monday, monday + timedelta(seconds=end),
                      monday + timedelta(seconds=end), capacity, seed, segments)




def _customers(rng: np.random.Generator, n: int, end: int) -> dict[str, Arr]:
    """Who subscribes when, on which plan, how engaged, and how they respond to a call."""
    e: dict[str, Arr] = {}
    early = rng.random(n) < 0.6
    e["start"] = np.where(early, -rng.integers(WEEK, 3 * 365 * DAY, n),
                          rng.integers(0, max(end - 2 * WEEK, DAY), n)).astype(np.int64)
    e["plan"] = rng.choice(3, n, p=PLAN_P)
    e["annual"] = rng.random(n) < np.array([0.2, 0.27, 0.35])[e["plan"]]
    e["type"] = rng.choice(len(RESPONSE_TYPES), n, p=TYPE_P)
    e["region"] = rng.integers(0, len(REGIONS), n)
    e["channel"] = rng.choice(len(CHANNELS), n, p=(0.4, 0.25, 0.2, 0.15))
    e["usage"] = rng.gamma(2.0, 1.3, n) * np.array([0.8, 1.0, 1.3])[e["plan"]] * TYPE_USAGE[
        e["type"]]
    begin = np.maximum(e["start"] / WEEK, -4.0)
    e["onset"] = begin + rng.exponential(1.0 / (ONSET_RATE * TYPE_ONSET[e["type"]]))
    e["tau"] = rng.uniform(2.0, 6.0, n)
    # plan changes: 12 % at a random time; a quarter of the disengaging downgrade a week later
    change = rng.random(n) < 0.12
    lo = np.maximum(e["start"], 0)
    c1 = np.where(change, lo + rng.random(n) * (end - lo), np.inf)
    p1 = np.clip(e["plan"] + rng.choice([-1, 1], n), 0, 2)
    down = (rng.random(n) < 0.25) & (e["plan"] > 0)
    c2 = np.where(down, (e["onset"] + 1) * WEEK + rng.random(n) * WEEK, np.inf)
    c2 = np.where(c2 > np.maximum(e["start"], 0), c2, np.inf)
    c2[c2 >= end] = np.inf
    p2 = np.maximum(np.where(c2 > c1, p1, e["plan"]) - 1, 0)
    e["c1"], e["p1"], e["c2"], e["p2"] = c1, p1, c2, p2
    return e


def _plan_at(e: dict[str, Arr], idx: Arr, t: Arr) -> Arr:
    """The plan of customers ``idx`` at times ``t``: the latest change at or before ``t``."""
    c1, c2 = e["c1"][idx], e["c2"][idx]
    plan = e["plan"][idx].copy()
    for first, second in ((("c1", "p1"), ("c2", "p2")), (("c2", "p2"), ("c1", "p1"))):
        late = e[first[0]][idx] <= e[second[0]][idx]
        for c, p in (first, second):  # the later change is applied last
            hit = late & (e[c][idx] <= t)
            plan[hit] = e[p][idx][hit]
    del c1, c2
    return plan


def _hazards(rng: np.random.Generator, e: dict[str, Arr], weeks: int,
             end: int) -> tuple[Arr, dict[str, Arr]]:
    """Weekly hazards (customers x weeks) and the observable weekly counts behind them."""
    n = len(e["start"])
    w = np.arange(weeks, dtype=float)
    g = np.exp(-np.maximum(w[None, :] - e["onset"][:, None], 0.0) / e["tau"][:, None])
    g = g.astype(np.float32)
    tenure_weeks = w[None, :] - e["start"][:, None] / WEEK
    h = BASE_HAZARD + NEW_HAZARD * (tenure_weeks < 8) + DECLINE_HAZARD * (1.0 - g)
    h *= PLAN_HAZARD[e["plan"]][:, None]
    # annual: locked in, except in the four weeks before a renewal date
    since = (w[None, :] * WEEK - e["start"][:, None]) % (365 * DAY)
    near = since > (365 * DAY - 4 * WEEK)
    h *= np.where(e["annual"][:, None], np.where(near, 2.0, 0.3), 1.0)
    # payments: every 30 days (monthly) or 365 days (annual) from the start
    period = np.where(e["annual"], 365 * DAY, 30 * DAY)
    k0 = np.maximum(-(-(0 - e["start"]) // period), 0)
    k1 = (end - 1 - e["start"]) // period
    count = np.maximum(k1 - k0 + 1, 0)
    cust = np.repeat(np.arange(n), count)
    k = k0[cust] + np.arange(len(cust)) - np.repeat(np.cumsum(count) - count, count)
    due = e["start"][cust] + k * period[cust] + rng.integers(0, 6 * 3600, len(cust))
    p_fail = FAIL_P * PLAN_FAIL[e["plan"][cust]]
    failed = rng.random(len(cust)) < p_fail
    retry_failed = failed & (rng.random(len(cust)) >= RETRY_OK)
    pw = np.minimum(due // WEEK, weeks - 1)
    rw = np.minimum((due + 3 * DAY) // WEEK, weeks - 1)
    np.add.at(h, (cust[failed], pw[failed]), FAIL_HAZARD)
    np.add.at(h, (cust[retry_failed], rw[retry_failed]), DUNNING_HAZARD)
    h = np.minimum(h, 0.95).astype(np.float32)
    fails = np.zeros((n, weeks), np.int16)
    np.add.at(fails, (cust[failed], pw[failed]), 1)
    sessions = rng.poisson(e["usage"][:, None] * g).astype(np.int32)
    ticket_rate = (0.015 + 0.10 * (1.0 - g)) * TYPE_TICKETS[e["type"]][:, None]
    tickets = rng.poisson(ticket_rate).astype(np.int16)
    obs = {"g": g, "sessions": sessions, "tickets": tickets, "fails": fails,
           "pay_cust": cust, "pay_due": due, "pay_failed": failed,
           "pay_retry_failed": retry_failed}
    return h, obs


def _rule_score(cum: dict[str, Arr], w: int, idx: Arr) -> Arr:
    """Today's rule at Monday ``w``: usage drop + 0.5 per ticket + 1 per failed payment.

    ``cum`` holds the weekly counts summed over weeks (column ``j`` = weeks before ``j``).
    """
    def last(name: str, a: int, b: int) -> Arr:  # sum over weeks [w - a, w - b)
        c = cum[name]
        return np.asarray(c[idx, w - b] - c[idx, w - a], float)

    recent = last("sessions", 2, 0) / 2.0
    prior = last("sessions", 6, 2) / 4.0
    drop = (prior - recent) / (prior + 1.0)
    return np.asarray(drop + 0.5 * last("tickets", 4, 0) + 1.0 * last("fails", 4, 0))


def _weekly(rng: np.random.Generator, e: dict[str, Arr], h: Arr, obs: dict[str, Arr],
            weeks: int, end: int, capacity: int) -> tuple[Arr, dict[str, Arr]]:
    """Week by week: list and call (with a stratified control), then draw the cancels."""
    n = len(e["start"])
    cancel = np.full(n, np.iinfo(np.int64).max)
    last_call = np.full(n, -100)
    last_listed = np.full(n, -100)
    mult = TYPE_CALL[e["type"]]
    rows: dict[str, list[Arr]] = {k: [] for k in ("cust", "week", "score", "decile", "rank",
                                                  "treated")}
    truth: dict[str, list[Arr]] = {k: [] for k in ("cust", "week", "p0", "p1")}
    cum = {k: np.concatenate([np.zeros((n, 1), np.int32), np.cumsum(obs[k], axis=1,
                                                                    dtype=np.int32)], axis=1)
           for k in ("sessions", "tickets", "fails")}
    for w in range(weeks):
        t = w * WEEK
        active = (e["start"] <= t) & (cancel > t)
        if w >= OUTREACH_FROM:
            idx = np.flatnonzero(active)
            for key, value in zip(("cust", "week", "p0", "p1"),
                                  _effect(h, idx, w, last_call[idx], mult[idx]), strict=True):
                truth[key].append(value)
            idx = idx[w - last_listed[idx] >= COOLDOWN_WEEKS]
            rule = _rule_score(cum, w, idx)
            noisy = -(rule + rng.random(len(idx)) * 1e-6)
            best = np.argpartition(noisy, capacity - 1)[:capacity] if len(idx) > capacity \
                else np.arange(len(idx))
            best = best[np.argsort(noisy[best], kind="stable")]
            top, top_score = idx[best], rule[best]
            m = len(top)
            decile = (np.arange(m) * 10 // m).astype(np.int8)  # 0: riskiest tenth
            treated = _stratified_control(rng, decile, round(CONTROL_SHARE * m))
            last_call[top[treated]] = w
            last_listed[top] = w
            for key, value in (("cust", top), ("week", np.full(m, w)), ("score", top_score),
                               ("decile", decile), ("rank", np.arange(1, m + 1)),
                               ("treated", treated)):
                rows[key].append(value)
        factor = _call_factor(w - last_call, mult)
        at_risk = active & (rng.random(n) < h[:, w] * factor)
        when = t + rng.integers(0, WEEK, n)
        cancel[at_risk] = np.minimum(when[at_risk], end - 1)
    listing = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in rows.items()}
    listing.update({f"truth_{k}": np.concatenate(v) if v else np.zeros(0)
                    for k, v in truth.items()})
    return cancel, listing


def _call_factor(since: Arr, mult: Arr) -> Arr:
    """Hazard factor of a week ``since`` weeks after the last call (30 days: 4 + 2/7 weeks)."""
    return np.asarray(np.where(since < 4, mult, np.where(since == 4, 2 / 7 * mult + 5 / 7,
                                                           1.0)), float)


def _effect(h: Arr, idx: Arr, w: int, last: Arr, mult: Arr) -> tuple[Arr, Arr, Arr, Arr]:
    """30-day cancel probabilities at Monday ``w`` without and with a call now.

    Without: the earlier calls' effects as they are; with: a call at ``w`` (restarting the
    effect). The 30 days are weeks ``w .. w + 3`` and the first 2/7 of week ``w + 4``.
    """
    weeks = h.shape[1]
    log0 = np.zeros(len(idx))
    log1 = np.zeros(len(idx))
    for k in range(5):
        hk = h[idx, min(w + k, weeks - 1)].astype(np.float64)
        share = 1.0 if k < 4 else CALL_WEEKS - 4
        log0 += np.log1p(-share * np.minimum(hk * _call_factor(w + k - last, mult), 0.95))
        log1 += np.log1p(-share * np.minimum(hk * _call_factor(np.full(len(idx), k), mult),
                                             0.95))
    return idx, np.full(len(idx), w), 1.0 - np.exp(log0), 1.0 - np.exp(log1)


def _stratified_control(rng: np.random.Generator, stratum: Arr, total: int) -> Arr:
    """Hold out ``total`` rows as control (False), spread evenly over the strata at random.

    Each stratum holds out ``floor(share * size)``, and the remainder goes, one each, to
    strata drawn at random without replacement (weighted by their leftover fraction), so the
    expected control share is the same in every stratum and the total is exact.

    >>> treated = _stratified_control(np.random.default_rng(0), np.repeat(np.arange(10), 5), 10)
    >>> int((~treated).sum()), [int((~treated[i * 5:(i + 1) * 5]).sum()) for i in range(10)]
    (10, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    """
    treated = np.ones(len(stratum), bool)
    sizes = np.bincount(stratum)
    share = total / max(len(stratum), 1)
    base = np.floor(share * sizes + 1e-9).astype(np.int64)
    left = share * sizes - base
    extra = total - int(base.sum())
    if extra > 0:
        bonus = rng.choice(len(sizes), extra, replace=False, p=left / left.sum())
        base[bonus] += 1
    for d in np.flatnonzero(base):
        members = np.flatnonzero(stratum == d)
        treated[rng.choice(members, int(base[d]), replace=False)] = False
    return treated


def _strings(codes: Arr, labels: tuple[str, ...]) -> pa.Array:
    dictionary = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, np.int32)),
                                                pa.array(labels))
    return dictionary.dictionary_decode()


def _expand(rng: np.random.Generator, counts: Arr, lo: Arr,
            hi: Arr) -> tuple[Arr, Arr]:
    """Events from a customers x weeks count matrix, uniform in each week, within [lo, hi).

    Rows come week by week (customers in order within a week), not sorted by time.
    """
    week, cust = np.nonzero(counts.T)  # week by week, customers in order
    reps = counts[cust, week].astype(np.int64)
    cust, week = np.repeat(cust, reps), np.repeat(week, reps)
    ts = week.astype(np.int64) * WEEK + rng.integers(0, WEEK, len(cust))
    keep = (ts >= lo[cust]) & (ts < hi[cust])
    return cust[keep], ts[keep]


def _tables(rng: np.random.Generator, e: dict[str, Arr], obs: dict[str, Arr], cancel: Arr,
            listing: dict[str, Arr], end: int, epoch: int) -> dict[str, pa.Table]:
    def ts(seconds: Arr) -> pa.Array:
        return pa.array((np.asarray(seconds, np.int64) + epoch) * 1_000_000, pa.timestamp("us"))

    def ids(index: Arr) -> pa.Array:
        return pa.array(ID_BASE + 1 + np.asarray(index, np.int64))

    n = len(e["start"])
    cancelled = cancel < end
    stop = np.minimum(cancel, end)
    lo = np.maximum(e["start"], 0)
    # usage and tickets up to the cancel
    u_cust, u_ts = _expand(rng, obs["sessions"], lo, stop)
    minutes = np.round(rng.lognormal(np.log(12.0), 0.7, len(u_cust))
                       * np.sqrt(obs["g"][u_cust, u_ts // WEEK]), 1)
    t_cust, t_ts = _expand(rng, obs["tickets"], lo, stop)
    t_cat = rng.choice(len(TICKETS), len(t_cust), p=(0.3, 0.3, 0.25, 0.15))
    # payments (first attempts and retries) up to the cancel
    pc, due, failed = obs["pay_cust"], obs["pay_due"], obs["pay_failed"]
    retry_at = due[failed] + 3 * DAY
    p_cust = np.concatenate([pc, pc[failed]])
    p_ts = np.concatenate([due, retry_at])
    p_ok = np.concatenate([~failed, ~obs["pay_retry_failed"][failed]])
    p_attempt = np.concatenate([np.ones(len(pc), np.int8), np.full(int(failed.sum()), 2,
                                                                   np.int8)])
    keep = (p_ts >= lo[p_cust]) & (p_ts < stop[p_cust])
    p_cust, p_ts, p_ok, p_attempt = p_cust[keep], p_ts[keep], p_ok[keep], p_attempt[keep]
    order = np.lexsort((p_attempt, p_cust, p_ts))
    p_cust, p_ts, p_ok, p_attempt = (a[order] for a in (p_cust, p_ts, p_ok, p_attempt))
    p_plan = _plan_at(e, p_cust, p_ts)
    p_amount = np.round(PRICE[p_plan] * np.where(e["annual"][p_cust], 10.0, 1.0), 2)
    # plan history: the plan at start, then the changes before the cancel
    rows_c = [np.arange(n)]
    rows_t = [e["start"]]
    rows_p = [e["plan"]]
    for c in ("c1", "c2"):
        at = e[c]
        ok = np.isfinite(at) & (at < stop) & (at > e["start"])
        idx = np.flatnonzero(ok)
        rows_c.append(idx)
        rows_t.append(at[idx].astype(np.int64))
        rows_p.append(_plan_at(e, idx, at[idx].astype(np.int64)))
    pc_c, pc_t, pc_p = (np.concatenate(r) for r in (rows_c, rows_t, rows_p))
    order = np.lexsort((pc_t, pc_c))
    pc_c, pc_t, pc_p = pc_c[order], pc_t[order], pc_p[order]
    # weekly snapshot of the active subscribers (Monday 00:00)
    weeks = obs["sessions"].shape[1]
    grid = np.arange(weeks, dtype=np.int64) * WEEK
    act = (e["start"][:, None] <= grid[None, :]) & (cancel[:, None] > grid[None, :])
    s_week, s_cust = np.nonzero(act.T)
    # leak 1: cancellation requests 2-28 days before the cancel; a few withdrawn ones
    asked = np.flatnonzero(cancelled & (rng.random(n) < 0.9))
    r_at = cancel[asked] - rng.integers(2 * DAY, 28 * DAY, len(asked))
    r_at = np.maximum(r_at, np.maximum(e["start"][asked], 0))
    stay = np.flatnonzero(~cancelled & (rng.random(n) < 0.015))
    w_at = lo[stay] + (rng.random(len(stay)) * (end - lo[stay])).astype(np.int64)
    r_cust = np.concatenate([asked, stay])
    r_at = np.concatenate([r_at, w_at])
    order = np.lexsort((r_cust, r_at))
    r_cust, r_at = r_cust[order], r_at[order]
    # leak 2: the status at the export
    recent_dunning = np.zeros(n, bool)
    late = obs["pay_retry_failed"] & (obs["pay_due"] > end - 3 * WEEK)
    recent_dunning[obs["pay_cust"][late]] = True
    status = np.where(cancelled, 1, np.where(recent_dunning, 2, 0))
    monthly_price = PRICE[e["plan"]]
    lw = listing["week"].astype(np.int64) * WEEK
    treated = listing["treated"].astype(bool)
    called_at = lw + rng.integers(9 * 3600, 4 * DAY + 17 * 3600, len(lw))
    return {
        "customers": pa.table({
            "customer_id": ids(np.arange(n)),
            "signup_at": ts(e["start"]),
            "region": _strings(e["region"], REGIONS),
            "acquisition_channel": _strings(e["channel"], CHANNELS),
            "status": _strings(status, STATUSES),
        }),
        "subscriptions": pa.table({
            "subscription_id": pa.array(2 * ID_BASE + 1 + np.arange(n, dtype=np.int64)),
            "customer_id": ids(np.arange(n)),
            "started_at": ts(e["start"]),
            "plan": _strings(e["plan"], PLANS),
            "billing": _strings(e["annual"].astype(int), BILLING),
            "monthly_price": pa.array(monthly_price),
            "cancelled_at": pa.array(np.where(cancelled, (cancel + epoch) * 1_000_000, 0),
                                     pa.timestamp("us"), mask=~cancelled),
        }),
        "plan_changes": pa.table({
            "customer_id": ids(pc_c),
            "valid_from": ts(pc_t),
            "plan": _strings(pc_p, PLANS),
            "monthly_price": pa.array(PRICE[pc_p]),
        }),
        "usage_events": pa.table({
            "event_id": pa.array(np.arange(1, len(u_cust) + 1, dtype=np.int64)),
            "customer_id": ids(u_cust),
            "ts": ts(u_ts),
            "minutes": pa.array(minutes),
        }),
        "support_tickets": pa.table({
            "ticket_id": pa.array(np.arange(1, len(t_cust) + 1, dtype=np.int64)),
            "customer_id": ids(t_cust),
            "opened_at": ts(t_ts),
            "category": _strings(t_cat, TICKETS),
        }),
        "payments": pa.table({
            "payment_id": pa.array(np.arange(1, len(p_cust) + 1, dtype=np.int64)),
            "customer_id": ids(p_cust),
            "ts": ts(p_ts),
            "amount": pa.array(p_amount),
            "attempt": pa.array(p_attempt),
            "failed": pa.array((~p_ok).astype(np.int8)),
        }),
        "active_subscribers": pa.table({
            "customer_id": ids(s_cust),
            "snapshot_at": ts(s_week.astype(np.int64) * WEEK),
        }),
        "outreach": pa.table({
            "customer_id": ids(listing["cust"]),
            "week": ts(lw),
            "rank": pa.array(listing["rank"].astype(np.int64)),
            "rule_score": pa.array(np.round(listing["score"].astype(float), 6)),
            "risk_decile": pa.array(listing["decile"].astype(np.int64) + 1),
            "listed": pa.array(np.ones(len(lw), bool)),
            "group": _strings(np.where(treated, 0, 1), ("treated", "control")),
            "called_at": pa.array(np.where(treated, (called_at + epoch) * 1_000_000, 0),
                                  pa.timestamp("us"), mask=~treated),
        }),
        "cancellation_requests": pa.table({
            "request_id": pa.array(np.arange(1, len(r_cust) + 1, dtype=np.int64)),
            "customer_id": ids(r_cust),
            "requested_at": ts(r_at),
            "channel": _strings(rng.integers(0, 3, len(r_cust)), REQUEST_CHANNELS),
        }),
    }


def _truth(e: dict[str, Arr], listing: dict[str, Arr], cancel: Arr, weeks: int,
           epoch: int) -> tuple[pa.Table, pa.Table]:
    """Per customer: the response type; per active customer-Monday: the true uplift."""
    n = len(e["start"])
    cu, wk = listing["truth_cust"].astype(np.int64), listing["truth_week"].astype(np.int64)
    p0, p1 = listing["truth_p0"], listing["truth_p1"]
    t = wk * WEEK
    onset_at = e["onset"] * WEEK
    has_onset = onset_at < weeks * WEEK
    truth = pa.table({
        "customer_id": pa.array(ID_BASE + 1 + np.arange(n, dtype=np.int64)),
        "response_type": _strings(e["type"], RESPONSE_TYPES),
        "call_multiplier": pa.array(TYPE_CALL[e["type"]]),
        "onset_at": pa.array(np.where(has_onset, (onset_at.astype(np.int64) + epoch)
                                      * 1_000_000, 0), pa.timestamp("us"), mask=~has_onset),
    })
    uplift = pa.table({
        "customer_id": pa.array(ID_BASE + 1 + cu),
        "decision_time": pa.array((t + epoch) * 1_000_000, pa.timestamp("us")),
        "p_cancel_30d": pa.array(p0),
        "p_cancel_30d_called": pa.array(p1),
        "uplift": pa.array(p0 - p1),
        "cancelled_30d": pa.array((cancel[cu] > t) & (cancel[cu] <= t + 30 * DAY)),
    })
    return truth, uplift


def _personas(rng: np.random.Generator, e: dict[str, Arr], g: Arr, cancel: Arr, end: int,
              epoch: int) -> tuple[pa.Table, pa.Table]:
    """Planted segments (personas: uses per product area) and a continuum (seconds, items).

    Draws only from its own generator ``rng`` and reads ``e``, ``g`` and ``cancel`` without
    changing them, so the rest of the world is the same with or without it.
    """
    n = len(e["start"])
    persona = rng.choice(len(PERSONAS), n, p=PERSONA_P)
    mean_seconds = rng.uniform(60.0, 300.0, n)
    mean_items = rng.uniform(2.0, 20.0, n)
    lo = np.maximum(e["start"], 0)
    stop = np.minimum(cancel, end)
    custs: list[Arr] = []
    times: list[Arr] = []
    areas: list[Arr] = []
    for a in range(len(AREAS)):
        counts = rng.poisson(PERSONA_RATES[persona, a][:, None] * g).astype(np.int32)
        c, t = _expand(rng, counts, lo, stop)
        custs.append(c)
        times.append(t)
        areas.append(np.full(len(c), a))
    cust, ts, area = (np.concatenate(x) for x in (custs, times, areas))
    order = np.lexsort((area, cust, ts))
    cust, ts, area = cust[order], ts[order], area[order]
    seconds = np.round(rng.gamma(16.0, mean_seconds[cust] / 16.0), 1)
    items = rng.poisson(mean_items[cust]).astype(np.int64)
    ids = pa.array(ID_BASE + 1 + np.arange(n, dtype=np.int64))
    events = pa.table({
        "event_id": pa.array(np.arange(1, len(cust) + 1, dtype=np.int64)),
        "customer_id": pa.array(ID_BASE + 1 + cust.astype(np.int64)),
        "ts": pa.array((ts.astype(np.int64) + epoch) * 1_000_000, pa.timestamp("us")),
        "area": _strings(area, AREAS),
        "seconds": pa.array(seconds),
        "items": pa.array(items),
    })
    truth = pa.table({
        "customer_id": ids,
        "persona": _strings(persona, PERSONAS),
        "mean_seconds": pa.array(mean_seconds),
        "mean_items": pa.array(mean_items),
    })
    return events, truth
