"""Online features: the build's feature definitions computed one decision event at a time.

:class:`OnlineFeatures` keeps, in a :class:`~valuechain.serve.state.StateStore`, exactly the
rows the plan's features can still see, and computes the features of a decision event from
them with the definitions of :mod:`valuechain.data.pit` (``in_window``, ``aggregate``,
``outcome_label``, ``outcome_aggregate``, ``lookup_rank``): the same membership, tie,
availability and as-of rules as every offline engine (see docs/point-in-time.md).

State model (one bucket per line; entries ordered by time):

* ``w|<source>|<key column>|<key>``: rows of a source a window aggregates, at their
  availability time (decision events at their event time), with the tie order, the values
  the windows read (``of``), which ``where`` filters they pass and, for outcome-derived
  windows, the keys their label is looked up by. Trimmed to the longest ``window + lag`` of
  the windows reading them (plus ``slack``).
* ``x``: one entry per recent decision (while an outcome-derived window can still count
  it), by its label keys: its time and the keys its outcome-derived windows group by, so that
  an outcome reported later is filed under them.
* ``ow|<key column>|<key>``: the outcomes reported on the decisions of one key (event time,
  availability, amount, or the label value for a column label), at the decision's time, so
  that an outcome-derived window reads one bucket.
* ``d|<source>|<on column>|<key>``: the versions of a dimension row, at their known time.

Updates: :meth:`OnlineFeatures.apply_event` (the decision events themselves),
:meth:`~OnlineFeatures.apply_outcome` (outcomes as they are reported),
:meth:`~OnlineFeatures.apply_dimension` (dimension versions), and :meth:`~OnlineFeatures.warm`
(the sources' recent history). :meth:`~OnlineFeatures.compute` is pure.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from valuechain.data.pit import (
    RECENCY,
    Window,
    aggregate,
    in_window,
    lookup_rank,
    outcome_aggregate,
    outcome_label,
    recency,
)
from valuechain.data.plan import EventPointsPlan, Plan
from valuechain.data.sources import Catalog, datetime_to_us, us_to_datetime
from valuechain.errors import DataError, SpecError
from valuechain.serve.history import StreamItem, order_of, plain, read_history
from valuechain.serve.rowexpr import RowFunction, compile_expression
from valuechain.serve.state import MIN_TIME, Entry, StateStore, WriteItem

__all__ = ["DEFAULT_SLACK_US", "OnlineFeatures", "StreamItem", "WarmResult"]

DEFAULT_SLACK_US = 3_600_000_000
"""How much older than the longest window rows are kept (late, out-of-order events)."""

_INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
              "UINTEGER", "UBIGINT")
_FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")
_TIME_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DATE", "TIMESTAMP_NS", "TIMESTAMP_MS",
               "TIMESTAMP_S")
_ARROW = {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "DOUBLE": pa.float64(),
          "FLOAT": pa.float32(), "VARCHAR": pa.string(), "BOOLEAN": pa.bool_(),
          "TIMESTAMP": pa.timestamp("us"), "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", "UTC")}


@dataclass(frozen=True)
class WarmResult:
    """What :meth:`OnlineFeatures.warm` loaded.

    Attributes
    ----------
    until : datetime
        The state holds what was known at this time.
    since : dict
        Per source, the oldest time loaded (window sources), as datetime.
    rows : dict
        Rows loaded per source.
    entries : int
        Entries written to the state.
    seconds : float
        Wall time.
    """

    until: datetime
    since: dict[str, datetime | None]
    rows: dict[str, int]
    entries: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"until": self.until.isoformat(),
                "since": {k: v.isoformat() if v else None for k, v in self.since.items()},
                "rows": dict(self.rows), "entries": self.entries,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class _Group:
    """The rows of ``source`` bucketed by ``key``, read by the windows ``members``."""

    source: str
    key: str
    span_us: int
    members: tuple[int, ...]


def _canon(value: Any) -> Any:
    """A JSON-stable key value (integral floats as ints)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _bucket_key(values: Sequence[Any]) -> str:
    """The JSON text of the key values (a bucket's name part)."""
    if len(values) == 1 and type(values[0]) is int:
        return f"[{values[0]}]"  # the common case, as json.dumps writes it
    return json.dumps([_canon(plain(v)) for v in values], separators=(",", ":"))


class OnlineFeatures:
    """The plan's features of one decision event, from state updated as events arrive.

    Parameters
    ----------
    plan : Plan
        The build plan (:func:`valuechain.data.plan.make_plan`); decision points must be
        events of a source.
    state : StateStore
        Where the rows are kept (:class:`~valuechain.serve.state.MemoryState`,
        :class:`~valuechain.serve.redis_state.RedisState`).
    slack_us : int
        Rows are kept this much longer than the longest window needs (default 1 h).

    Examples
    --------
    >>> from valuechain.serve.state import MemoryState   # doctest: +SKIP
    >>> of = OnlineFeatures(make_plan(load_spec("examples/fraud")), MemoryState())  # doctest: +SKIP
    >>> of.warm()                                         # doctest: +SKIP
    >>> of.compute({"transaction_id": 1, "ts": "2025-09-28T10:00:00", ...})  # doctest: +SKIP
    """

    def __init__(self, plan: Plan, state: StateStore, *,
                 slack_us: int = DEFAULT_SLACK_US) -> None:
        if not isinstance(plan.points, EventPointsPlan) or plan.own is None:
            raise SpecError(
                f"{plan.where('decision_points')}: online features need decision points that "
                "are events of a source (`decision_points.source`); scheduled decisions are "
                "scored in batch."
            )
        self.plan = plan
        self.state = state
        self.slack_us = slack_us
        self.own: str = plan.own
        self.keys: tuple[str, ...] = plan.points.keys
        src = plan.sources[self.own]
        assert src.event_time is not None
        self.time_column: str = src.event_time
        self._types, self.aware = self._schemas()
        self._windows = [Window(name=w.name, source=w.source, key=w.key, agg=w.agg,
                                window_us=w.window_us, lag_us=w.lag_us, value=w.of,
                                include_current=w.include_current, outcome=w.outcome,
                                fill=w.fill) for w in plan.windows]
        arrow = {s: {c: _ARROW[t] for c, t in cols.items() if t in _ARROW}
                 for s, cols in self._types.items()}
        self._rows_fx: list[tuple[str, RowFunction, float | None]] = [
            (f.name, compile_expression(f.expr, arrow.get(self.own)), f.fill)
            for f in plan.row_features]
        self._filters: dict[int, RowFunction] = {
            i: compile_expression(w.where, arrow.get(w.source))
            for i, w in enumerate(plan.windows) if w.where is not None}
        groups: dict[tuple[str, str], list[int]] = {}
        for i, w in enumerate(plan.windows):
            groups.setdefault((w.source, w.key), []).append(i)
        self._groups = [
            _Group(source=s, key=k, members=tuple(ix),
                   span_us=max(plan.windows[i].window_us + plan.windows[i].lag_us for i in ix))
            for (s, k), ix in groups.items()]
        self._outcome_span = max((w.window_us + w.lag_us for w in plan.windows if w.outcome),
                                 default=None)
        self._outcome_groups = [
            _Group(source=g.source, key=g.key, members=tuple(
                       i for i in g.members if plan.windows[i].outcome),
                   span_us=max(plan.windows[i].window_us + plan.windows[i].lag_us
                               for i in g.members if plan.windows[i].outcome))
            for g in self._groups if any(plan.windows[i].outcome for i in g.members)]
        lab = plan.label
        self._label_pairs: tuple[tuple[str, str], ...] = ()
        if self._outcome_span is not None and lab.source is not None:
            self._label_pairs = plan.label_pairs(
                list(self._types.get(lab.source, {})) or [b for _, b in lab.keys or ()]
                or list(self.keys))
        self._required = self._required_columns()

    # -- schemas ----------------------------------------------------------------------------
    def _schemas(self) -> tuple[dict[str, dict[str, str]], bool]:
        """Column types of every source (DuckDB names) and whether times are aware."""
        from valuechain.data.engines.resolve import awareness

        catalog = Catalog(self.plan)
        try:
            aware, _ = awareness(catalog)
            return {n: dict(catalog.columns(n)) for n in self.plan.sources}, aware
        finally:
            catalog.con.close()

    def _required_columns(self) -> tuple[str, ...]:
        plan, own = self.plan, self.own
        need: list[str] = [*self.keys, self.time_column]
        assert isinstance(plan.points, EventPointsPlan)
        need += plan.points.keep
        for f in plan.row_features:
            need += sorted(f.expr.columns)
        for w in plan.windows:
            need.append(w.key)
            if w.source == own:
                need += [w.of] if w.of else []
                need += sorted(w.where.columns) if w.where is not None else []
        need += [lk.key for lk in plan.lookups]
        need += [a for a, _ in self._label_pairs]
        columns = self._types.get(own, {})
        folded = {c.lower(): c for c in columns}
        out: list[str] = []
        for c in need:
            name = c if c in columns or not folded else folded.get(c.lower(), c)
            if name not in out:
                out.append(name)
        return tuple(out)

    @property
    def required(self) -> tuple[str, ...]:
        """The fields a decision event must carry."""
        return self._required

    # -- normalising --------------------------------------------------------------------------
    def _value(self, source: str, column: str, value: Any, what: str) -> Any:
        kind = self._types.get(source, {}).get(column)
        if value is None or kind is None:
            return value
        if kind in _INT_TYPES:
            if isinstance(value, bool) or not isinstance(value, int | float) or (
                    isinstance(value, float) and not value.is_integer()):
                raise DataError(f"{what}: field '{column}' must be an integer (column "
                                f"'{column}' of source '{source}' is {kind}); got {value!r}.")
            return int(value)
        if kind in _FLOAT_TYPES or kind.startswith("DECIMAL"):
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                raise DataError(f"{what}: field '{column}' must be a number (column "
                                f"'{column}' of source '{source}' is {kind}); got {value!r}.")
            return float(value)
        if kind == "BOOLEAN":
            if not isinstance(value, bool):
                raise DataError(f"{what}: field '{column}' must be true or false (column "
                                f"'{column}' of source '{source}' is BOOLEAN); got {value!r}.")
            return value
        if kind == "VARCHAR":
            if not isinstance(value, str):
                raise DataError(f"{what}: field '{column}' must be a string (column "
                                f"'{column}' of source '{source}' is VARCHAR); got {value!r}.")
            return value
        if kind in _TIME_TYPES:
            return self._time(source, column, value, what)
        return value

    def _time(self, source: str, column: str, value: Any, what: str) -> datetime:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise DataError(
                    f"{what}: field '{column}' is {value!r}, not an ISO 8601 time. Expected "
                    "e.g. '2025-03-01T14:05:00'" + ("+00:00." if self.aware else ".")
                ) from None
        else:
            raise DataError(f"{what}: field '{column}' must be an ISO 8601 time string; got "
                            f"{value!r}.")
        offset = moment.utcoffset()
        if self.aware:
            if offset is None:
                raise DataError(
                    f"{what}: field '{column}' is {value!r}, without a UTC offset, but the "
                    f"source '{source}' holds time-zone aware times. Add the offset, e.g. "
                    f"'{moment.isoformat()}+00:00'.")
            return moment.astimezone(UTC)
        if offset is not None:
            if offset.total_seconds() != 0:
                raise DataError(
                    f"{what}: field '{column}' is {value!r}, with a UTC offset, but source "
                    f"'{source}' holds naive (wall-clock) times. Send the wall-clock time "
                    "without an offset.")
            moment = moment.replace(tzinfo=None)
        return moment

    def check_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The decision event normalised (types of the decision source, times parsed), or a
        :class:`~valuechain.errors.DataError` naming the field.

        Every field the features read must be present (null allowed except for the keys and
        the event time); other fields are kept as they are.
        """
        if not isinstance(event, Mapping):
            raise DataError(f"event: expected an object with the fields {list(self._required)}"
                            f"; got {type(event).__name__}.")
        missing = [c for c in self._required if c not in event]
        if missing:
            raise DataError(
                f"event: missing field{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(c) for c in missing)} (column{'s' if len(missing) > 1 else ''}"
                f" of source '{self.own}' the features read). Expected the fields "
                f"{list(self._required)}.")
        out = dict(event)
        for column in self._required:
            out[column] = self._value(self.own, column, event[column], "event")
        for column in (*self.keys, self.time_column):
            if out[column] is None:
                raise DataError(f"event: field '{column}' is null; a decision needs its keys "
                                "and its time.")
        if not isinstance(out[self.time_column], datetime):
            out[self.time_column] = self._time(self.own, self.time_column,
                                               out[self.time_column], "event")
        return out

    def _check_row(self, source: str, row: Mapping[str, Any], columns: Sequence[str],
                   what: str) -> dict[str, Any]:
        if not isinstance(row, Mapping):
            raise DataError(f"{what}: expected an object; got {type(row).__name__}.")
        missing = [c for c in columns if c not in row]
        if missing:
            raise DataError(f"{what}: missing field{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(repr(c) for c in missing)} (columns of source "
                            f"'{source}'). Expected the fields {list(columns)}.")
        out = dict(row)
        for c in columns:
            out[c] = self._value(source, c, row[c], what)
        return out

    def event_id(self, event: Mapping[str, Any]) -> str:
        """The decision id (``decision_id`` of the frame) of a normalised event."""
        return "|".join("" if event[k] is None else str(event[k]) for k in self.keys)

    def event_time_us(self, event: Mapping[str, Any]) -> int:
        return datetime_to_us(event[self.time_column])

    # -- computing ----------------------------------------------------------------------------
    def _own_payload(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """What the windows over the decision source keep of an event."""
        values = {w.of: plain(event.get(w.of)) for w in self.plan.windows
                  if w.source == self.own and w.of}
        passed = [i for i, fx in self._filters.items()
                  if self.plan.windows[i].source == self.own and fx(event) is True]
        payload: dict[str, Any] = {"o": order_of([event[k] for k in self.keys]), "v": values,
                                   "f": passed}
        if self._outcome_span is not None:
            payload["l"] = self._label_key(event)
        lab = self.plan.label
        if lab.source is None and lab.column and event.get(lab.column) is not None:
            payload["y"] = plain(event[lab.column])
        return payload

    def _label_key(self, event: Mapping[str, Any]) -> str:
        """The key a decision's outcomes are filed by (its label keys; its id for a column
        label)."""
        if self.plan.label.source is None:
            return self.event_id(event)
        return _bucket_key([event.get(a) for a, _ in self._label_pairs])

    def compute(self, event: Mapping[str, Any], *, checked: bool = False) -> dict[str, Any]:
        """The features of the decision ``event`` at its own time, in spec order.

        Pure: the state is read, never written (the event itself counts in windows over its
        own source as the definitions say, whether or not it was applied already).
        ``checked``: the event is already what :meth:`check_event` returns (not checked
        again).
        """
        ev = event if checked else self.check_event(event)
        t = self.event_time_us(ev)
        uid = self.event_id(ev)
        o = order_of([ev[k] for k in self.keys])
        out: dict[str, Any] = {}
        for name, fx, fill in self._rows_fx:
            value = fx(ev)
            out[name] = fill if value is None else value
        # one read for every bucket the windows and lookups need
        buckets: list[str] = []
        after: list[int | None] = []
        for g in self._groups:
            key = ev.get(g.key)
            buckets.append(f"w|{g.source}|{g.key}|{_bucket_key([key])}")
            after.append(t - g.span_us if key is not None else None)
        for lk in self.plan.lookups:
            buckets.append(f"d|{lk.source}|{lk.on}|{_bucket_key([ev.get(lk.key)])}")
            after.append(None)
        outcome_at: dict[str, int] = {}
        for g in self._outcome_groups:
            key = ev.get(g.key)
            if key is not None:
                outcome_at[g.key] = len(buckets)
                buckets.append(f"ow|{g.key}|{_bucket_key([key])}")
                after.append(t - g.span_us)
        got = self.state.read(buckets, after)
        self_payload = self._own_payload(ev) if any(
            g.source == self.own for g in self._groups) else None
        reported: dict[int | None, dict[str, list[dict[str, Any]]]] = {}
        for g, entries in zip(self._groups, got, strict=False):
            own = g.source == self.own
            key = ev.get(g.key)
            times = [e[0] for e in entries]
            for i in g.members:
                window, plan_w = self._windows[i], self.plan.windows[i]
                members: list[tuple[int, bool, dict[str, Any]]] = []
                if key is not None:
                    # entries are in time order: only those in (t - lag - window, t - lag]
                    # can be members (in_window decides)
                    end = t - window.lag_us
                    lo = bisect.bisect_right(times, end - window.window_us)
                    hi = bisect.bisect_right(times, end)
                    for row_t, row_uid, payload in entries[lo:hi]:
                        if own and row_uid == uid:
                            continue
                        if plan_w.where is not None and i not in payload["f"]:
                            continue
                        if in_window(window, own=own, t=t, o=o, row_t=row_t,
                                     row_o=payload["o"], is_point=False):
                            members.append((row_t, False, payload))
                    if own and self_payload is not None and (
                            plan_w.where is None or i in self_payload["f"]) and in_window(
                            window, own=True, t=t, o=o, row_t=t, row_o=o, is_point=True):
                        members.append((t, True, self_payload))
                if window.outcome:
                    at = outcome_at.get(g.key)
                    if at not in reported:  # one index of the outcomes per group
                        reported[at] = _by_decision(got[at] if at is not None else [])
                    self._outcome_feature(i, members, reported[at], t, out)
                    continue
                if window.agg in RECENCY:  # reads the members' times and tie order
                    value = recency(window.agg, [
                        (row_t, p["o"], None if window.value is None else p["v"][window.value])
                        for row_t, _, p in members
                        if window.value is None or p["v"].get(window.value) is not None], t)
                elif window.value is None:
                    value = aggregate(window.agg, [], len(members))
                else:
                    values = [p["v"][window.value] for _, _, p in members
                              if p["v"].get(window.value) is not None]
                    value = aggregate(window.agg, values, len(values))
                out[window.name] = window.fill if value is None else value
        lookups_at = len(self._groups)
        for lk, entries in zip(self.plan.lookups,
                               got[lookups_at:lookups_at + len(self.plan.lookups)],
                               strict=True):
            best: tuple[int, Any] | None = None
            value = None
            if ev.get(lk.key) is not None:
                for known, _, payload in entries:
                    if known > t:
                        continue
                    rank = lookup_rank(None if known == MIN_TIME else known, payload["o"])
                    if best is None or rank > best:
                        best, value = rank, payload["v"].get(lk.column)
            out[lk.name] = lk.fill if value is None else value
        return {name: out[name] for name in self.plan.feature_names}

    def _outcome_feature(self, i: int, members: list[tuple[int, bool, dict[str, Any]]],
                         by_decision: Mapping[str, list[dict[str, Any]]], t: int,
                         out: dict[str, Any]) -> None:
        """An outcome-derived window from its members and the outcomes reported on them
        (``by_decision``: the reported outcome rows by the decision they are filed under)."""
        lab = self.plan.label
        window = self._windows[i]
        labels: list[tuple[Any, Any]] = []
        # a member without any reported outcome: the label of no hits (same for every time)
        nothing = outcome_label(lab.kind, lab.horizon_us, 0, [])
        for row_t, _, payload in members:
            hits = by_decision.get(payload["l"], [])
            if lab.source is not None:
                labels.append(outcome_label(lab.kind, lab.horizon_us, row_t,
                                            [(h["e"], h["a"], h.get("x")) for h in hits])
                              if hits else nothing)
            else:
                y = payload.get("y")
                if y is None and hits:
                    y = hits[-1]["y"]
                labels.append((y, row_t + lab.horizon_us))
        value = outcome_aggregate(window.agg, labels, t)
        out[window.name] = window.fill if value is None else value

    # -- updating -----------------------------------------------------------------------------
    def _event_items(self, ev: Mapping[str, Any], t: int) -> tuple[list[WriteItem],
                                                                    list[tuple[str, int]]]:
        uid = self.event_id(ev)
        payload = self._own_payload(ev)
        items: list[WriteItem] = []
        trims: list[tuple[str, int]] = []
        if self._outcome_span is not None:
            keys = {g.key: plain(ev.get(g.key)) for g in self._outcome_groups}
            items.append(("x", t, payload["l"], {"t": t, "k": keys}))
            trims.append(("x", t - self._outcome_span - self.slack_us))
        for g in self._groups:
            if g.source != self.own or ev.get(g.key) is None:
                continue
            bucket = f"w|{g.source}|{g.key}|{_bucket_key([ev[g.key]])}"
            items.append((bucket, t, uid, payload))
            trims.append((bucket, t - g.span_us - self.slack_us))
        return items, trims

    def apply_event(self, event: Mapping[str, Any], *, checked: bool = False) -> None:
        """Add a decision event to the state (idempotent: applying it twice changes nothing).

        ``checked``: the event is already what :meth:`check_event` returns.
        """
        ev = event if checked else self.check_event(event)
        items, trims = self._event_items(ev, self.event_time_us(ev))
        if items:
            self.state.write(items, trims)

    def _source_columns(self, source: str) -> list[str]:
        """The columns of a (non-decision) source the state keeps."""
        plan = self.plan
        src = plan.sources[source]
        cols: list[str] = [*src.keys, *(c for _, c in src.time_fields())]
        for w in plan.windows:
            if w.source == source:
                cols += [w.key, *([w.of] if w.of else []),
                         *(sorted(w.where.columns) if w.where is not None else [])]
        for lk in plan.lookups:
            if lk.source == source:
                cols += [lk.on, lk.column]
        if source == plan.label.source and self._outcome_span is not None:
            cols += [b for _, b in self._label_pairs]
            if plan.label.kind == "amount" and plan.label.column:
                cols.append(plan.label.column)
        return list(dict.fromkeys(cols))

    def _row_items(self, source: str, row: Mapping[str, Any]) -> tuple[list[WriteItem],
                                                                        list[tuple[str, int]]]:
        plan = self.plan
        src = plan.sources[source]
        items: list[WriteItem] = []
        trims: list[tuple[str, int]] = []

        def us(column: str | None) -> int | None:
            value = row.get(column) if column else None
            return datetime_to_us(value) if isinstance(value, datetime) else None

        uid = _bucket_key([row.get(k) for k in src.keys]) if src.keys else _bucket_key(
            [plain(v) for v in row.values()])
        avail = us(src.available_at) if src.available_at else us(src.event_time)
        for g in self._groups:
            if g.source != source or avail is None or row.get(g.key) is None:
                continue
            values = {of: plain(row.get(of)) for i in g.members
                      if (of := plan.windows[i].of) is not None}
            passed = [i for i in g.members
                      if i in self._filters and self._filters[i](row) is True]
            bucket = f"w|{source}|{g.key}|{_bucket_key([row[g.key]])}"
            items.append((bucket, avail, uid, {"o": order_of([row.get(k) for k in src.keys]),
                                               "v": values, "f": passed}))
            trims.append((bucket, avail - g.span_us - self.slack_us))
        for lk in plan.lookups:
            if lk.source != source or row.get(lk.on) is None:
                continue
            known = [x for x in (us(src.valid_from), us(src.available_at)) if x is not None]
            at = max(known) if known else MIN_TIME
            items.append((f"d|{source}|{lk.on}|{_bucket_key([row[lk.on]])}", at,
                          f"{uid}@{at}", {"o": order_of([row.get(k) for k in src.keys]),
                                          "v": {c: plain(row.get(c)) for c in
                                                {x.column for x in plan.lookups
                                                 if x.source == source}}}))
        if source == plan.label.source and self._label_pairs and self._outcome_span:
            e = us(src.event_time)
            if e is not None and avail is not None:
                key = _bucket_key([row.get(b) for _, b in self._label_pairs])
                amount = plain(row.get(plan.label.column)) if plan.label.column else None
                self._file_outcome(key, uid, {"l": key, "e": e, "a": avail, "x": amount},
                                   avail, items, trims)
        return items, trims

    def _file_outcome(self, key: str, uid: str, hit: dict[str, Any], now: int,
                      items: list[WriteItem], trims: list[tuple[str, int]]) -> None:
        """File an outcome reported at ``now`` on the decision with label key ``key`` under
        the keys of its outcome-derived windows (nothing when the decision is too old to be
        in any of them)."""
        found = self.state.get("x", [key])[0]
        if found is None:
            return
        for g in self._outcome_groups:
            value = found["k"].get(g.key)
            if value is None:
                continue
            bucket = f"ow|{g.key}|{_bucket_key([value])}"
            items.append((bucket, found["t"], uid, hit))
            trims.append((bucket, now - g.span_us - self.slack_us))

    def apply_row(self, source: str, row: Mapping[str, Any]) -> None:
        """Add a row of ``source`` (an outcome, a dimension version, an event a window counts;
        for the decision source, its label value) to the state."""
        plan = self.plan
        if source not in plan.sources:
            raise DataError(f"source '{source}' is not in the spec; expected one of "
                            f"{sorted(plan.sources)}.")
        if source == self.own:
            lab = plan.label
            if lab.source is not None or not lab.column:
                raise DataError(
                    f"source '{source}' holds the decision events: send them to "
                    "`apply_event`. Outcomes come from the label's source "
                    f"'{lab.source}'.")
            row = self._check_row(source, row, [*self.keys, lab.column], "outcome")
            if self._outcome_span is None or row[lab.column] is None:
                return
            uid = self.event_id(row)
            items: list[WriteItem] = []
            trims: list[tuple[str, int]] = []
            found = self.state.get("x", [uid])[0]
            now = found["t"] + lab.horizon_us if found else 0
            self._file_outcome(uid, uid, {"l": uid, "y": plain(row[lab.column])}, now,
                               items, trims)
            if items:
                self.state.write(items, trims)
            return
        columns = self._source_columns(source)
        times = {c for _, c in plan.sources[source].time_fields()}
        what = f"row of source '{source}'"
        missing = [c for c in columns if c in times and isinstance(row, Mapping)
                   and c not in row]
        if missing:
            raise DataError(f"{what}: missing field{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(repr(c) for c in missing)} (the time columns of "
                            f"source '{source}'; null when the row has no such time).")
        checked = self._check_row(source, row, [c for c in columns if c not in times], what)
        for c in times & set(columns):
            if checked.get(c) is not None:
                checked[c] = self._time(source, c, checked[c], what)
        items, trims = self._row_items(source, checked)
        if items:
            self.state.write(items, trims)

    def apply_outcome(self, source: str, row: Mapping[str, Any]) -> None:
        """Record an outcome as it is reported (a row of the label's source; for a column
        label, the decision's keys and the label column)."""
        self.apply_row(source, row)

    def apply_dimension(self, source: str, row: Mapping[str, Any]) -> None:
        """Record a new version of a dimension row (known from its ``valid_from`` /
        ``available_at``)."""
        if self.plan.sources.get(source) is not None and self.plan.sources[
                source].role != "dimension":
            raise DataError(f"source '{source}' is not a dimension (its role is "
                            f"'{self.plan.sources[source].role}'); send its rows to "
                            "apply_outcome or apply_row.")
        self.apply_row(source, row)

    # -- history ------------------------------------------------------------------------------
    def spans(self) -> dict[str, int]:
        """Per source, how far back (µs) the features can look."""
        out: dict[str, int] = {}
        for g in self._groups:
            out[g.source] = max(out.get(g.source, 0), g.span_us)
        return out

    def history(self, since_us: int | None, until_us: int, *,
                warm: bool = False) -> Iterator[StreamItem]:
        """The sources' rows that become known in ``(since_us, until_us]``, in replay order
        (:func:`valuechain.serve.history.read_history`)."""
        return read_history(self, since_us, until_us, warm=warm)

    def apply(self, item: StreamItem) -> None:
        """Apply one :class:`StreamItem` (as :meth:`history` yields them)."""
        if item.kind == "event":
            items, trims = self._event_items(item.row, item.time)
            if items:
                self.state.write(items, trims)
        elif item.kind == "label":
            self.apply_row(item.source, item.row)
        else:
            items, trims = self._row_items(item.source, item.row)
            if items:
                self.state.write(items, trims)

    def warm(self, until: datetime | None = None, *, batch: int = 5000) -> WarmResult:
        """Load the sources' recent history into the state: what the features can still see
        at ``until`` (default: the latest time in the decision source).

        Returns a :class:`WarmResult` with the rows loaded per source.
        """
        started = time.perf_counter()
        until_us = self._until(until)
        rows: dict[str, int] = {}
        oldest: dict[str, int] = {}
        pending_items: list[WriteItem] = []
        entries = 0
        for item in self.history(None, until_us, warm=True):
            rows[item.source] = rows.get(item.source, 0) + 1
            if item.time > MIN_TIME:
                oldest[item.source] = min(oldest.get(item.source, item.time), item.time)
            if item.kind == "event":
                new, _ = self._event_items(item.row, item.time)
            else:
                if item.source == self.plan.label.source and pending_items:
                    self.state.write(pending_items)  # the outcome looks its decision up
                    entries += len(pending_items)
                    pending_items = []
                new, _ = self._row_items(item.source, item.row)
            pending_items += new
            if len(pending_items) >= batch:
                self.state.write(pending_items)
                entries += len(pending_items)
                pending_items = []
        if pending_items:
            self.state.write(pending_items)
            entries += len(pending_items)
        self.state.set_meta("warmed_until", str(until_us))
        return WarmResult(until=us_to_datetime(until_us, self.aware),
                          since={s: us_to_datetime(v, self.aware) for s, v in oldest.items()},
                          rows=rows, entries=entries, seconds=time.perf_counter() - started)

    def _until(self, until: datetime | None) -> int:
        if until is not None:
            if (until.tzinfo is not None) != self.aware:
                raise DataError(
                    f"until: {until.isoformat()} is {'aware' if until.tzinfo else 'naive'} but "
                    f"the data's times are {'aware' if self.aware else 'naive'}.")
            return datetime_to_us(until)
        catalog = Catalog(self.plan)
        try:
            from valuechain.data.engines.resolve import awareness

            _, tsql = awareness(catalog)
            value = catalog.scalar(f"SELECT max({tsql[(self.own, 'event_time')]}) FROM "
                                   f"{catalog.view(self.own)}")
        finally:
            catalog.con.close()
        if value is None:
            raise DataError(f"source '{self.own}' has no rows with a time: nothing to warm "
                            "from.")
        return int(value)


def _by_decision(reported: Sequence[Entry]) -> dict[str, list[dict[str, Any]]]:
    """Outcome rows reported on a key, by the decision (label key) they are filed under."""
    out: dict[str, list[dict[str, Any]]] = {}
    for _, _, hit in reported:
        out.setdefault(hit["l"], []).append(hit)
    return out
