"""One decision, end to end: event → features → score → policy → capacity → log → state.

:class:`Decider` is the single code path of the service (``POST /v1/decide``) and of batch
scoring (``valuechain score``). For one event it

1. validates and normalises the event (``OnlineFeatures.check_event``: a missing or mistyped
   field raises :class:`~valuechain.errors.DataError` naming it) and computes its features at
   the event's own time (``OnlineFeatures.compute``, pure);
2. scores them with the bundle (calibrated probability) and takes the per-feature
   contributions for the top reasons;
3. applies the bundle's policy, then the real-time capacity: the capacity-limited action
   (the review band of a three-band policy) is counted per period of the spec
   (``value.capacity.<action>.per``, periods aligned to the epoch, so ``1d`` is a UTC day) by
   ``state.take_capacity``; when the period is full the spec's ``overflow`` rule gives the
   action instead (``approve``: the action below, ``decline``: the action above), and the
   decision says so (``overflow: true`` and a ``capacity_note``). Online, the queue is first
   come, first served: a case is never taken back out of it for a later, higher score;
4. appends the decision to the :class:`~valuechain.serve.log.DecisionLog` (durable on
   return);
5. only then applies the event to the feature state (``OnlineFeatures.apply_event``).

A failure before step 4 completes changes nothing: features and scores are pure, and a
capacity slot taken in step 3 is given back (``state.release_capacity``). A crash after step
4 and before step 5 loses no state either: the service replays the log's journal into the
state when it starts.

>>> Decision.__dataclass_fields__.keys() >= {"decision_id", "score", "action", "reasons"}
True
"""

from __future__ import annotations

import hashlib
import inspect
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError, SpecError
from valuechain.policy.capacity import PERIOD_ANCHOR_US, capacity_period, limited_action
from valuechain.policy.policies import Policy, TopN
from valuechain.serve.log import DecisionLog, DecisionRecord, iso_us
from valuechain.spec.durations import parse_duration, to_micros

#: Which decisions get their top reasons: every one, those not given the policy's lowest
#: action (reviewed and declined payments), none. TreeSHAP costs far more than the score.
REASONS = ("all", "flagged", "none")
_NO_CONTRIB: npt.NDArray[np.float64] = np.empty(0)

__all__ = [
    "Capacity",
    "Decider",
    "Decision",
    "Pending",
    "Reason",
    "Scored",
    "ScoringBundle",
    "policy_version",
    "stable_decision_id",
    "time_us",
]


class ScoringBundle(Protocol):
    """What the decider needs of a bundle (:class:`valuechain.registry.Bundle` has it)."""

    @property
    def version(self) -> str: ...

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    @property
    def policy(self) -> Policy: ...

    @property
    def capacity(self) -> tuple[str, int, int, str] | None: ...

    def score(self, features: Any) -> np.ndarray: ...

    def contributions(self, features: Any) -> np.ndarray: ...


class CapacityState(Protocol):
    """The part of the feature state store that counts capacity."""

    def take_capacity(self, action: str, period_start_us: int, limit: int) -> bool: ...

    def release_capacity(self, action: str, period_start_us: int) -> None: ...


class Online(Protocol):
    """What the decider needs of :class:`valuechain.serve.features.OnlineFeatures`."""

    def check_event(self, event: Mapping[str, Any]) -> dict[str, Any]: ...

    def compute(self, event: Mapping[str, Any], *, checked: bool = False
                ) -> dict[str, Any]: ...

    def apply_event(self, event: Mapping[str, Any], *, checked: bool = False) -> Any: ...


@dataclass(frozen=True)
class Reason:
    """One feature's contribution to the score (log-odds units for both model kinds)."""

    feature: str
    value: Any
    contribution: float

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": _plain(self.value),
                "contribution": self.contribution}


@dataclass(frozen=True)
class Capacity:
    """The real-time capacity rule: ``limit`` of ``action`` per ``per_us``, then ``overflow``."""

    action: str
    limit: int
    per_us: int
    overflow: str  # "approve" | "decline"
    spill_to: str  # the action given when the period is full
    per: str  # the period as written, e.g. "1d"

    def period_start(self, t_us: int) -> int:
        """Start of the capacity period holding ``t_us`` (the periods of
        :func:`~valuechain.policy.capacity_period`, as offline)."""
        return PERIOD_ANCHOR_US + capacity_period(t_us, self.per_us) * self.per_us

    def full_note(self, t_us: int) -> str:
        """The ``capacity_note`` of a decision at ``t_us`` the overflow rule acted on."""
        return (f"{self.action} capacity {self.limit} per {self.per} is full for the period "
                f"starting {iso_us(self.period_start(t_us))}: overflow rule `{self.overflow}` "
                f"gives `{self.spill_to}`")


@dataclass(frozen=True)
class Decision:
    """What ``POST /v1/decide`` answers (and what the log holds, plus the features)."""

    decision_id: str
    key: str
    time: str
    score: float
    action: str
    policy_action: str
    overflow: bool
    capacity_note: str | None
    reasons: tuple[Reason, ...]
    bundle_version: str
    policy_version: str
    latency_us: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The response body of ``POST /v1/decide``."""
        return {"decision_id": self.decision_id, "key": self.key, "time": self.time,
                "score": self.score, "action": self.action,
                "policy_action": self.policy_action, "overflow": self.overflow,
                "capacity_note": self.capacity_note,
                "reasons": [r.to_json() for r in self.reasons],
                "bundle_version": self.bundle_version, "policy_version": self.policy_version,
                "latency_us": dict(self.latency_us)}


@dataclass(frozen=True)
class Scored:
    """A decision scored and acted on, before its reasons (see :meth:`Decider.start`)."""

    event: dict[str, Any]
    features: dict[str, Any]
    t_us: int
    score: float
    inputs: Any  # what the model read (for the contributions)
    action: str
    policy_action: str
    overflow: bool
    note: str | None
    slot: tuple[str, int] | None
    started_ns: int
    features_ns: int
    model_ns: int
    policy_ns: int


@dataclass(frozen=True)
class Pending:
    """A decision made but not yet durable: its log record and the capacity slot it holds."""

    event: dict[str, Any]
    decision: Decision
    record: DecisionRecord
    slot: tuple[str, int] | None  # (action, period start) of a capacity slot taken
    started_ns: int


def policy_version(policy: Policy) -> str:
    """``kind@hash``: the policy's kind and a short hash of its ``policy.yaml`` text.

    >>> from valuechain.policy import ThreeBand
    >>> policy_version(ThreeBand(0.2, 0.9)).startswith("three_band@")
    True
    """
    digest = hashlib.sha256(policy.to_yaml().encode("utf-8")).hexdigest()[:12]
    return f"{policy.kind}@{digest}"


def stable_decision_id(scope: str, key: str, t_us: int) -> str:
    """A batch decision's id: 32 hex characters (blake2b-128) of its scope (origin, bundle,
    policy and capacity limit, :attr:`Decider.id_scope`), its key text and its time in µs.

    >>> stable_decision_id("score|v1|three_band@0|", "tx1", 0) == stable_decision_id(
    ...     "score|v1|three_band@0|", "tx1", 0)
    True
    """
    return hashlib.blake2b(f"{scope}\x1f{key}\x1f{int(t_us)}".encode(), digest_size=16
                           ).hexdigest()


def time_us(value: Any, field_name: str = "time") -> int:
    """An event time (datetime, ``pd.Timestamp``, ISO text, epoch µs) as epoch microseconds.

    Naive times are UTC.

    >>> time_us("2025-01-01T00:00:01Z"), time_us(pd.Timestamp("2025-01-01 00:00:01"))
    (1735689601000000, 1735689601000000)
    """
    if isinstance(value, bool):
        raise DataError(f"event field `{field_name}`: expected a time, got {value!r}.")
    if isinstance(value, int | np.integer):
        return int(value)
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise DataError(f"event field `{field_name}`: expected an ISO-8601 time such as "
                        f"'2025-07-01T12:00:00Z', got {value!r}.") from err
    if pd.isna(stamp):
        raise DataError(f"event field `{field_name}` is missing (null); give the decision "
                        "time, e.g. '2025-07-01T12:00:00Z'.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(stamp.value // 1000)


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # the common cases
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return value


class _Scorer:
    """The bundle's scoring of feature mappings, split so a decision can act on its score.

    :meth:`Bundle.score <valuechain.registry.Bundle.score>` and ``contributions`` take the
    feature mappings the online path computes (no pandas: bit for bit the DataFrame path).
    With the bundle's :class:`~valuechain.registry.fast.RowScorer`, the arrays the model reads
    are made once per decision and shared by the score and the reasons (same arithmetic,
    same numbers).
    """

    def __init__(self, bundle: ScoringBundle) -> None:
        from valuechain.registry.fast import RowScorer

        self.bundle = bundle
        rows = getattr(bundle, "scorer", None)
        self.rows: RowScorer | None = rows if isinstance(rows, RowScorer) and rows.fast \
            else None

    def score(self, rows: Sequence[Mapping[str, Any]]) -> tuple[npt.NDArray[np.float64], Any]:
        """Calibrated scores ``(n,)`` and the inputs :meth:`contributions` reads."""
        if self.rows is not None:
            prepared = self.rows.prepare(rows)
            if prepared is not None:
                return self.rows.score_prepared(prepared), _Prepared(prepared)
        return np.asarray(self.bundle.score(rows), dtype=np.float64), rows

    def contributions(self, inputs: Any) -> npt.NDArray[np.float64]:
        """Per-feature contributions ``(n, n_features)``."""
        if isinstance(inputs, _Prepared) and self.rows is not None:
            return self.rows.reasons_prepared(inputs.arrays)
        return np.asarray(self.bundle.contributions(inputs), dtype=np.float64)

    def __call__(self, rows: Sequence[Mapping[str, Any]]
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Calibrated scores ``(n,)`` and contributions ``(n, n_features)``."""
        scores, inputs = self.score(rows)
        return scores, self.contributions(inputs)


@dataclass(frozen=True)
class _Prepared:
    """The arrays a fast candidate reads (see :meth:`RowScorer.prepare
    <valuechain.registry.fast.RowScorer.prepare>`)."""

    arrays: tuple[np.ndarray, np.ndarray]


def _capacity(bundle: ScoringBundle) -> Capacity | None:
    policy = bundle.policy
    limited, low, high = limited_action(policy)
    found = bundle.capacity
    if isinstance(policy, TopN):
        per_us = to_micros(parse_duration(policy.per))
        limit = policy.n if found is None else min(policy.n, int(found[1]))
        overflow = "approve" if found is None else found[3]
        if found is not None and int(found[2]) != per_us:
            raise SpecError(
                f"bundle {bundle.version}: the top_n policy ranks per {policy.per} but the "
                f"spec's capacity counts per {found[2]} µs; decide again so both agree.")
        return Capacity(limited, limit, per_us, overflow, low, policy.per)
    if found is None:
        return None
    action, limit, per_us, overflow = found
    if overflow == "decline" and high is None:
        raise SpecError(f"bundle {bundle.version}: capacity `overflow: decline` needs a "
                        f"decline band above the `{limited}` action; a {policy.kind} policy "
                        "has none. Use `overflow: approve` or a three_band policy.")
    spill = low if overflow == "approve" else str(high)
    return Capacity(limited if action not in _actions(policy) else action, int(limit),
                    int(per_us), overflow, spill, _fmt_per(int(per_us)))


def _actions(policy: Policy) -> tuple[str, ...]:
    return tuple(policy.actions)


def _fmt_per(per_us: int) -> str:
    from datetime import timedelta

    from valuechain.spec.durations import format_duration

    return format_duration(timedelta(microseconds=per_us))


class Decider:
    """Decide events with one bundle, one feature state and one decision log.

    Parameters
    ----------
    bundle : ScoringBundle
        The loaded bundle (model, calibration, policy, capacity).
    online : OnlineFeatures
        Online features over the state store.
    log : DecisionLog
        Where every decision is appended durably before it is returned.
    state : optional
        The state store counting capacity; default ``online.state``.
    time_column, key_columns : optional
        The event's time column and the decision point's key columns; default from
        ``online.plan`` (the decision source's event time and keys).
    top_reasons : int, default 3
        Reasons returned per decision (largest absolute contributions).
    origin : str, default "serve"
        Written to the log's ``origin`` column.
    capacity_limit : int, optional
        Overrides the spec's capacity limit (e.g. fewer reviewers today); the action, the
        period and the overflow rule stay the spec's.
    reasons : {"all", "flagged", "none"}, default "all"
        Which decisions get their top reasons (:data:`REASONS`): ``"flagged"`` skips the
        per-feature contributions for decisions given the policy's lowest action (approved
        payments), which are most of them; their reasons are empty in the response and log.
    stable_ids : bool, optional
        Give each decision a stable id (:meth:`decision_id`) instead of a random one;
        default for ``origin="score"`` (batch scoring), so the same batch gets the same ids
        and is logged once however often it is scored.
    """

    def __init__(self, bundle: ScoringBundle, online: Online, log: DecisionLog | None, *,
                 state: CapacityState | None = None, time_column: str | None = None,
                 key_columns: Sequence[str] | None = None, top_reasons: int = 3,
                 origin: str = "serve", capacity_limit: int | None = None,
                 reasons: str = "all", stable_ids: bool | None = None) -> None:
        if reasons not in REASONS:
            raise SpecError(f"`reasons` must be one of {', '.join(REASONS)}, got {reasons!r}.")
        self.reasons = reasons
        self.bundle = bundle
        self.online = online
        self.log = log
        self.state = state if state is not None else getattr(online, "state", None)
        plan = getattr(online, "plan", None)
        self.time_column = time_column or (plan.time_column if plan is not None else "time")
        self.key_columns = tuple(key_columns if key_columns is not None else (
            plan.decision_keys if plan is not None else ()))
        self.guard_columns = tuple(sorted({
            w.key for w in getattr(plan, "windows", ()) if w.source == getattr(plan, "own", None)
        } | set(self.key_columns)))
        self.top_reasons = top_reasons
        self.origin = origin
        self.policy = bundle.policy
        self.policy_version = policy_version(bundle.policy)
        self.lowest_action = limited_action(bundle.policy)[1]
        self.capacity = _capacity(bundle)
        if capacity_limit is not None:
            if isinstance(capacity_limit, bool) or capacity_limit < 0:
                raise SpecError(f"`capacity_limit` must be a whole number >= 0, got "
                                f"{capacity_limit!r}.")
            if self.capacity is None:
                raise SpecError("`capacity_limit` overrides the spec's capacity, but bundle "
                                f"{bundle.version} has none (`value.capacity` in the spec).")
            self.capacity = replace(self.capacity, limit=int(capacity_limit))
        if self.capacity is not None and self.state is None:
            raise SpecError("the bundle limits capacity but the decider has no state store "
                            "to count it in; pass `state`.")
        #: What a stable decision id hashes besides the key and time (None: random ids).
        self.id_scope: str | None = None
        stable = origin == "score" if stable_ids is None else stable_ids
        if stable:
            limit = "" if self.capacity is None else str(self.capacity.limit)
            self.id_scope = f"{origin}|{bundle.version}|{self.policy_version}|{limit}"
        self.feature_names = tuple(bundle.feature_names)
        self.scorer = _Scorer(bundle)
        # OnlineFeatures skips checking an event twice (``checked=True``); others may not
        self._prechecked = all(
            "checked" in inspect.signature(getattr(online, f)).parameters
            for f in ("compute", "apply_event"))

    def _apply(self, checked: dict[str, Any]) -> None:
        if self._prechecked:
            self.online.apply_event(checked, checked=True)
        else:
            self.online.apply_event(checked)

    # ------------------------------------------------------------------ stages

    def _features(self, event: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
        checked = self.online.check_event(event)
        t_us = time_us(checked.get(self.time_column), self.time_column)
        if self._prechecked:
            return checked, self.online.compute(checked, checked=True), t_us
        return checked, self.online.compute(checked), t_us

    def _reasons(self, features: Mapping[str, Any], contrib: npt.NDArray[np.float64]
                 ) -> tuple[Reason, ...]:
        k = min(self.top_reasons, len(contrib))
        if k <= 0:
            return ()
        order = np.argsort(-np.abs(contrib), kind="stable")[:k]
        return tuple(Reason(self.feature_names[j], features.get(self.feature_names[j]),
                            float(contrib[j])) for j in order)

    def act(self, score: float, t_us: int) -> tuple[str, str, bool, str | None,
                                                     tuple[str, int] | None]:
        """Policy then capacity for a calibrated ``score`` at ``t_us``: ``(action, policy
        action, overflow, capacity note, slot taken)``. A slot taken (the capacity-limited
        action counted in its period) is given back with ``state.release_capacity(*slot)``
        when the decision is not logged."""
        policy_action = str(self.policy.apply(np.array([score]), np.zeros(1))[0])
        cap = self.capacity
        if cap is None or policy_action != cap.action:
            return policy_action, policy_action, False, None, None
        start = cap.period_start(t_us)
        assert self.state is not None
        if self.state.take_capacity(cap.action, start, cap.limit):
            return policy_action, policy_action, False, None, (cap.action, start)
        return cap.spill_to, policy_action, True, cap.full_note(t_us), None

    _act = act  # the former name (batch scoring used it)

    def _key(self, event: Mapping[str, Any]) -> str:
        return "|".join(str(_plain(event.get(k))) for k in self.key_columns)

    def decision_id(self, key: str, t_us: int) -> str:
        """A new decision's id (32 hex characters): random (``uuid4``) for the service;
        with :attr:`id_scope` (batch scoring) :func:`stable_decision_id` of the scope, the
        decision point's key text and its time — the same for the same event scored again
        with the same bundle, policy and capacity limit, whichever batch path (one machine,
        row by row, Spark) scored it. The log keeps the first of a repeated id
        (``DecisionLog.append_many(on_repeat="skip")``)."""
        if self.id_scope is None:
            return uuid.uuid4().hex
        return stable_decision_id(self.id_scope, key, t_us)

    def _finish(self, scored: Scored, contrib: npt.NDArray[np.float64],
                contrib_ns: int) -> Pending:
        latency = {"features": scored.features_ns // 1000,
                   "model": (scored.model_ns + contrib_ns) // 1000,
                   "policy": scored.policy_ns // 1000}
        ordered = {n: _plain(scored.features.get(n)) for n in self.feature_names}
        reasons = self._reasons(ordered, contrib) if self.wants_reasons(scored) else ()
        checked = scored.event
        key = self._key(checked)
        decision = Decision(
            decision_id=self.decision_id(key, scored.t_us), key=key, time=iso_us(scored.t_us),
            score=scored.score, action=scored.action, policy_action=scored.policy_action,
            overflow=scored.overflow, capacity_note=scored.note, reasons=reasons,
            bundle_version=self.bundle.version, policy_version=self.policy_version,
            latency_us=latency)
        record = DecisionRecord(
            decision_id=decision.decision_id, time_us=scored.t_us, key=decision.key,
            bundle_version=decision.bundle_version, policy_version=self.policy_version,
            event=checked, features=ordered, score=scored.score,
            policy_action=scored.policy_action, action=scored.action,
            overflow=scored.overflow, capacity_note=scored.note,
            reasons=[r.to_json() for r in reasons], latency_us=latency, origin=self.origin,
            created_at_us=time.time_ns() // 1000)
        return Pending(checked, decision, record, scored.slot, scored.started_ns)

    def _scored(self, checked: dict[str, Any], features: dict[str, Any], t_us: int,
                score: float, inputs: Any, started_ns: int, features_ns: int,
                model_ns: int) -> Scored:
        t_policy = time.perf_counter_ns()
        action, policy_action, overflow, note, slot = self.act(score, t_us)
        return Scored(checked, features, t_us, score, inputs, action, policy_action,
                      overflow, note, slot, started_ns, features_ns, model_ns,
                      time.perf_counter_ns() - t_policy)

    # ------------------------------------------------------------------ one event

    def start(self, event: Mapping[str, Any]) -> Scored:
        """Steps 1-3 without the reasons: features, score, policy and capacity.

        Its capacity slot (if any) is given back by :meth:`abandon` when the decision is not
        logged; :meth:`finish` adds the reasons.
        """
        if not isinstance(event, Mapping):
            raise DataError(f"the event must be a JSON object of the decision event's fields, "
                            f"got {type(event).__name__}.")
        started = time.perf_counter_ns()
        checked, features, t_us = self._features(event)
        t_features = time.perf_counter_ns()
        scores, inputs = self.scorer.score([features])
        t_model = time.perf_counter_ns()
        return self._scored(checked, features, t_us, float(scores[0]), inputs, started,
                            t_features - started, t_model - t_features)

    def wants_reasons(self, scored: Scored) -> bool:
        """Whether this decision gets its reasons under the decider's ``reasons`` mode."""
        return self.reasons == "all" or (self.reasons == "flagged"
                                         and scored.action != self.lowest_action)

    def contributions(self, scored: Scored) -> npt.NDArray[np.float64]:
        """The per-feature contributions of a started decision (thread-safe, GIL released);
        empty when :meth:`wants_reasons` says it gets none."""
        if not self.wants_reasons(scored):
            return _NO_CONTRIB
        out: npt.NDArray[np.float64] = self.scorer.contributions(scored.inputs)[0]
        return out

    def finish(self, scored: Scored, contrib: npt.NDArray[np.float64],
               contrib_ns: int = 0) -> Pending:
        """The decision and its log record, with the top reasons."""
        return self._finish(scored, contrib, contrib_ns)

    def prepare(self, event: Mapping[str, Any]) -> Pending:
        """Steps 1-3 (no durable effect except a capacity slot, see :meth:`abandon`)."""
        scored = self.start(event)
        try:
            started = time.perf_counter_ns()
            contrib = self.contributions(scored)
            return self.finish(scored, contrib, time.perf_counter_ns() - started)
        except BaseException:
            self.abandon(scored)
            raise

    def abandon(self, pending: Pending | Scored) -> None:
        """Give back the capacity slot of a decision that will not be logged."""
        if pending.slot is not None and self.state is not None:
            self.state.release_capacity(*pending.slot)

    def commit(self, pending: Pending, log_us: int) -> Decision:
        """Step 5, after the record is durable: apply the event to the feature state."""
        self._apply(pending.event)
        total = (time.perf_counter_ns() - pending.started_ns) // 1000
        return replace(pending.decision, latency_us={**pending.decision.latency_us,
                                                     "log": log_us, "total": total})

    def decide(self, event: Mapping[str, Any]) -> Decision:
        """Decide one event: durable in the log, applied to the state, returned."""
        pending = self.prepare(event)
        if self.log is None:
            raise DataError("this decider has no decision log; pass one to decide events.")
        started = time.perf_counter_ns()
        try:
            self.log.append(pending.record)
        except BaseException:
            self.abandon(pending)
            raise
        return self.commit(pending, (time.perf_counter_ns() - started) // 1000)

    # ------------------------------------------------------------------ many events

    def prepare_batch(self, events: Sequence[Mapping[str, Any]]) -> list[Pending]:
        """Steps 1-3 for events in order, the model run once for all of them.

        Features are computed event by event, each event applied to the state before the
        next is computed (as the service does when events arrive in this order); scores and
        contributions come from one model call; policy and capacity run in order. The
        decisions equal those of :meth:`decide` on the same events one at a time. Unlike
        :meth:`prepare`, this applies the events to the state before they are logged: the
        caller owns the state (batch scoring uses a private one) and logs the records.
        Latencies are per event (the batch's time per stage divided by its size).
        """
        started = time.perf_counter_ns()
        checked_rows: list[dict[str, Any]] = []
        feature_rows: list[dict[str, Any]] = []
        times: list[int] = []
        for event in events:
            if not isinstance(event, Mapping):
                raise DataError(f"each event must be a mapping of fields, got "
                                f"{type(event).__name__}.")
            checked, features, t_us = self._features(event)
            self._apply(checked)
            checked_rows.append(checked)
            feature_rows.append(features)
            times.append(t_us)
        if not feature_rows:
            return []
        n = len(feature_rows)
        t_features = time.perf_counter_ns()
        scores, contribs = self.scorer(feature_rows)
        t_model = time.perf_counter_ns()
        features_ns, model_ns = (t_features - started) // n, (t_model - t_features) // n
        return [self._finish(self._scored(c, f, t, float(s), None, started, features_ns,
                                          model_ns), k, 0)
                for c, f, t, s, k in zip(checked_rows, feature_rows, times, scores, contribs,
                                         strict=True)]

    def decide_batch(self, events: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """:meth:`prepare_batch`, then one durable group append of all the records."""
        pendings = self.prepare_batch(events)
        if self.log is None:
            raise DataError("this decider has no decision log; pass one to log decisions.")
        # stable ids (batch scoring): a decision logged before stays as it was logged
        self.log.append_many([p.record for p in pendings],
                             on_repeat="error" if self.id_scope is None else "skip")
        return [p.decision for p in pendings]

    def guard_keys(self, event: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
        """The (column, value) pairs whose state this event updates (for ordering requests)."""
        return tuple((c, str(event.get(c))) for c in self.guard_columns)
