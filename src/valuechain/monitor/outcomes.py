"""Label logged decisions once their outcomes are known, and price what each one cost.

:func:`label_decisions` joins a decisions table (one row per logged decision, the format of
:func:`valuechain.monitor.inputs.read_decisions`) to the spec's label source with the *same*
rules as ``valuechain build`` (:mod:`valuechain.data.pit`):

* an outcome row counts for the decision at ``t`` when its keys match (``label.keys``), its
  event time lies in ``(t, t + horizon]`` and it was known (``available_at``, else its event
  time) by ``as_of``; outcomes known later are ignored, as the build ignores them;
* the label is *mature* iff ``t + horizon + d <= as_of`` (:func:`~valuechain.data.pit.is_mature`),
  ``d`` the outcome delay (:func:`~valuechain.data.pit.label_delay`: the source's declared
  ``reporting_delay``, else the largest ``available_at - event_time`` of its rows, else 0);
* an immature decision has ``label`` NaN — never 0: a payment whose chargeback may still come
  is not a genuine payment yet. ``outcome_known_at`` is filled as soon as a counted outcome
  is known, mature or not (an early positive is visible; it is not a label until the
  horizon and the delay have passed).

The labels are computed by the build's own DuckDB kernel
(:class:`valuechain.data.engines.duckdb.DuckDBKernel`) on a problem holding only the label,
so the join is the build's join, not a copy of it.

Costs are priced as ``valuechain decide`` prices a policy
(:class:`valuechain.policy.CostModel`): ``value.costs`` are SQL expressions over frame
columns, evaluated here over the decisions table, where a name resolves to the model feature
column of that name, else to the event field ``event.<name>``, else (for the decision key) to
``key``. Each row gets ``cost`` (the realised cost of the action actually taken, NaN while
immature), ``expected_cost`` (the same action priced with the calibrated score, known at
decision time), and the two pieces both are made of: ``cost_positive`` and ``cost_negative``
(the action's cost were the label 1 or 0; every cost is linear in the label, so
``expected_cost = score * cost_positive + (1 - score) * cost_negative``), the action's cost
``role`` (approve, review, decline) and ``exposure`` (the ``false_negative`` cost: what an
approved positive loses — the amount, for the fraud example).

>>> import pandas as pd
>>> from valuechain.monitor.outcomes import action_roles
>>> action_roles(pd.Series(["approve", "review", "decline"]), None).tolist()
['approve', 'review', 'decline']
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from valuechain.data.engines.duckdb import DuckDBKernel
from valuechain.data.pit import KNOWN, LABEL, LabelPlan, PitProblem, is_mature, label_delay
from valuechain.data.plan import make_plan
from valuechain.data.sources import Catalog, datetime_to_us
from valuechain.errors import DataError, SpecError
from valuechain.expressions import parse_expression
from valuechain.policy.costs import ROLES, CostModel
from valuechain.spec.loader import LoadedSpec
from valuechain.sql import quote_ident
from valuechain.train.context import COST_FIELDS, row_costs

__all__ = ["LABEL_COLUMNS", "REQUIRED", "action_roles", "label_decisions", "price_rows",
           "resolve_column"]

F64 = npt.NDArray[np.float64]

#: Columns of the decisions table :func:`label_decisions` reads.
REQUIRED: Final = ("decision_id", "key", "time_us", "score", "action")

#: Columns :func:`label_decisions` adds.
LABEL_COLUMNS: Final = ("label", "mature", "outcome_known_at", "role", "exposure",
                        "cost_positive", "cost_negative", "cost", "expected_cost")


def _check_table(decisions: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED if c not in decisions.columns]
    if missing:
        raise DataError(
            f"decisions table: columns {missing} are missing (columns: "
            f"{list(decisions.columns)[:12]}...). Expected the table of "
            "valuechain.monitor.inputs.read_decisions (decision_id, key, time, time_us, score, "
            "action, ..., features, event.<field>).")
    score = decisions["score"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(score) | (score < 0) | (score > 1)
    if bad.any():
        first = decisions["decision_id"].iloc[int(np.flatnonzero(bad)[0])]
        raise DataError(f"decisions table: column `score` must be a calibrated probability in "
                        f"[0, 1] on every row; {int(bad.sum())} rows are not, e.g. decision_id "
                        f"{first!r}. Read the log with read_decisions (it keeps the bundle's "
                        "calibrated score).")


def resolve_column(decisions: pd.DataFrame, name: str, *, where: str,
                   key_columns: tuple[str, ...] = ()) -> pd.Series:
    """The column a spec name means in a decisions table.

    A name is a model feature column (``amount``), else an event field (``event.amount``),
    else — when it is the decision's only key column — the logged ``key``.

    Examples
    --------
    >>> t = pd.DataFrame({"key": ["7"], "amount": [3.0], "event.channel": ["web"]})
    >>> resolve_column(t, "channel", where="cost").tolist()
    ['web']
    >>> resolve_column(t, "transaction_id", where="label.keys",
    ...                key_columns=("transaction_id",)).tolist()
    ['7']
    """
    if name in decisions.columns:
        return decisions[name]
    if f"event.{name}" in decisions.columns:
        return decisions[f"event.{name}"]
    if key_columns == (name,) and "key" in decisions.columns:
        return decisions["key"]
    events = sorted(c for c in decisions.columns if str(c).startswith("event."))
    raise DataError(
        f"{where}: '{name}' is neither a model feature column nor an event field "
        f"(`event.{name}`) of the decisions table (event fields: {events[:12]}). Log the "
        "field with the event (the service logs every field it receives), or change the "
        "spec expression to use a column the log holds.")


def action_roles(actions: pd.Series, roles: Mapping[str, str] | None) -> pd.Series:
    """The cost role (approve, review, decline) of each action name.

    ``roles`` maps action names to roles (a policy's ``roles``); by default the names are
    the roles themselves. Unknown names are a :class:`~valuechain.errors.DataError`.
    """
    mapping = dict(roles) if roles is not None else {r: r for r in ROLES}
    out = actions.astype(str).map(mapping)
    unknown = sorted(set(actions[out.isna()].astype(str)))
    if unknown:
        raise DataError(
            f"decisions table: actions {unknown[:5]} have no cost role (known: "
            f"{sorted(mapping)}). Pass `roles=` the bundle policy's roles (Policy.roles, "
            "e.g. {'skip': 'approve', 'contact': 'review'}).")
    return out


def _key_array(values: pd.Series, target: pa.DataType, column: str, where: str) -> pa.Array:
    """A decision key column as the outcome key's type (text keys of the log vs. integers)."""
    array = pa.array(values.astype(object).where(values.notna(), None)
                     if values.dtype == object else values, from_pandas=True)
    if array.type == target:
        return array
    try:
        return pc.cast(array, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise DataError(
            f"{where}: decision column '{column}' ({array.type}) cannot be matched with the "
            f"outcome key ({target}): {err}. Log the key with the same type as the outcome "
            "source's key.") from None


def _outcome_labels(decisions: pd.DataFrame, loaded: LoadedSpec, t_us: npt.NDArray[np.int64],
                    as_of_us: int) -> tuple[F64, npt.NDArray[np.int64], npt.NDArray[np.bool_],
                                            int, str]:
    """Label, known time (µs, -1 when none), whether known, delay and its basis."""
    spec = loaded.spec
    lab = spec.label
    plan = make_plan(loaded)
    horizon = plan.label.horizon_us
    n = len(decisions)
    if lab.source is None:
        assert lab.column is not None
        where = loaded.where("label", "column")
        values = pd.to_numeric(resolve_column(decisions, lab.column, where=where),
                               errors="coerce").to_numpy(dtype=np.float64)
        return values, t_us + horizon, t_us + horizon <= as_of_us, 0, "none"
    out = lab.source
    catalog = Catalog(loaded, open_all=False)
    try:
        catalog.open(out)
        ref = catalog.sources[out]
        assert ref.event_time is not None  # make_plan refuses an outcome without one
        e_sql, _ = catalog.time_us(out, ref.event_time, "sources", out, "event_time")
        a_sql = e_sql
        if ref.available_at:
            a_sql, _ = catalog.time_us(out, ref.available_at, "sources", out, "available_at")
        pairs = plan.label_pairs(list(catalog.columns(out)))
        wanted = [b for _, b in pairs] + ([lab.column] if lab.column else [])
        select = ", ".join(dict.fromkeys(quote_ident(c) for c in wanted))
        table = catalog.con.sql(
            f"SELECT {select}, {e_sql} AS __e, {a_sql} AS __t, 0 AS __o "
            f"FROM {catalog.view(out)} WHERE {e_sql} IS NOT NULL AND {a_sql} IS NOT NULL"
        ).to_arrow_table()
        gaps = None
        if ref.available_at and ref.available_at != ref.event_time:
            gap = catalog.scalar(f"SELECT max({a_sql} - {e_sql}) FROM {catalog.view(out)}")
            gaps = [] if gap is None else [int(gap)]
    finally:
        catalog.con.close()
    delay_us, basis = label_delay(ref.reporting_delay_us, gaps)
    points: dict[str, Any] = {"__row": np.arange(n, dtype=np.int64), "__t": t_us,
                              "__o": np.arange(n, dtype=np.int64)}
    keys = []
    for i, (a, b) in enumerate(pairs):
        column = f"__k{i}"
        where = loaded.where("label", "keys")
        found = resolve_column(decisions, a, where=where, key_columns=plan.decision_keys)
        points[column] = _key_array(found, table.schema.field(b).type, a, where)
        keys.append((column, b))
    problem = PitProblem(points=pa.table(points), tables={out: table}, label=LabelPlan(
        kind=lab.kind, horizon_us=horizon, outcome=out, keys=tuple(keys), column=lab.column,
        known_by_us=as_of_us))
    computed = DuckDBKernel().compute(problem)
    label = computed.column(LABEL).to_numpy().astype(np.float64)
    known = computed.column(KNOWN)
    has = np.asarray(pc.is_valid(known).to_numpy(zero_copy_only=False), dtype=bool)
    known_us = np.asarray(pc.fill_null(known, -1).to_numpy(), dtype=np.int64)
    return label, known_us, has, delay_us, basis


def _row_name(table: pd.DataFrame, row: int) -> str:
    if "decision_id" in table.columns:
        return f"decision_id {table['decision_id'].iloc[row]!r}"
    return f"row {row}"


def _costs(decisions: pd.DataFrame, loaded: LoadedSpec) -> CostModel | None:
    """The spec's cost model over the decisions (None without ``false_negative`` and
    ``false_positive``)."""
    value = loaded.spec.value
    if value is None or not {"false_negative", "false_positive"} <= set(value.costs):
        return None
    plan = make_plan(loaded)
    columns: dict[str, pd.Series] = {}
    for name in COST_FIELDS:
        if name not in value.costs:
            continue
        where = loaded.where("value", "costs", name)
        for column in parse_expression(value.costs[name], where=where).columns:
            columns[column] = resolve_column(decisions, column, where=where,
                                             key_columns=plan.decision_keys).reset_index(
                                                 drop=True)
    # `__rows` keeps the frame's length when no expression reads a column (e.g. "3").
    frame = pd.DataFrame({"__rows": np.zeros(len(decisions)), **columns},
                         index=pd.RangeIndex(len(decisions)))
    per_row: dict[str, Any] = {}
    for name in COST_FIELDS:
        values = row_costs(loaded, frame, name)
        if values is None:
            continue
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{loaded.where('value', 'costs', name)}: cost `{name}` = "
                f"`{value.costs[name]}` is null, not finite or negative on "
                f"{int(bad.sum()):,} of {len(values):,} decisions, e.g. "
                f"{_row_name(decisions, first)} (value {values[first]!r}); a "
                "missing cost is never taken as 0. Fill the inputs in the log, or write the "
                "default into the expression, e.g. `coalesce(amount, 0)`.")
        per_row[name] = values
    return CostModel(false_negative=per_row["false_negative"],
                     false_positive=per_row["false_positive"],
                     review=per_row.get("review", 0.0), catch_rate=value.review.catch_rate,
                     friction=value.review.friction)


def price_rows(table: pd.DataFrame, spec: LoadedSpec,
               roles: Mapping[str, str] | None = None) -> None:
    """Add ``role``, ``exposure``, ``cost_positive``, ``cost_negative``, ``cost`` and
    ``expected_cost`` to ``table`` in place (it has ``action``, ``score``, ``label`` and
    ``mature``, and the columns the cost expressions read)."""
    role = action_roles(table["action"], roles)
    table["role"] = role.to_numpy(dtype=object)
    costs = _costs(table, spec) if spec.spec.label.kind == "binary" else None
    nan = np.full(len(table), np.nan)
    if costs is None:
        for column in ("exposure", "cost_positive", "cost_negative", "cost", "expected_cost"):
            table[column] = nan
        return
    acts = role.to_numpy(dtype=object)
    mature = table["mature"].to_numpy(dtype=bool)
    label = table["label"].to_numpy(dtype=np.float64)
    table["exposure"] = np.broadcast_to(costs.false_negative, (len(table),)).astype(np.float64)
    table["cost_positive"] = costs.cost_of(acts, np.ones(len(table)))
    table["cost_negative"] = costs.cost_of(acts, np.zeros(len(table)))
    cost = nan.copy()
    if mature.any():
        cost[mature] = costs.take(mature).cost_of(acts[mature], label[mature])
    table["cost"] = cost
    table["expected_cost"] = costs.cost_of(acts, table["score"].to_numpy(np.float64))


def _as_of_us(as_of: datetime) -> int:
    if not isinstance(as_of, datetime):
        raise SpecError(f"`as_of`: expected a datetime (the time the outcomes were "
                        f"extracted), got {as_of!r}.")
    return datetime_to_us(as_of)


def label_decisions(decisions: pd.DataFrame, spec: LoadedSpec, *, as_of: datetime,
                    roles: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Join logged decisions to their outcomes known by ``as_of`` and price each decision.

    Parameters
    ----------
    decisions : DataFrame
        One row per logged decision (``read_decisions``): ``decision_id``, ``key``,
        ``time_us``, ``score`` (calibrated), ``action`` (after the capacity rule), the model
        features as columns and the event's other fields as ``event.<name>``.
    spec : LoadedSpec
        The project's spec: ``label`` (source, keys, horizon, kind), the outcome source
        (``event_time``, ``available_at``, ``reporting_delay``) and ``value`` (costs,
        review catch rate and friction).
    as_of : datetime
        When the outcomes were extracted: outcomes known later are ignored, and a decision
        is mature iff ``t + horizon + delay <= as_of``. Naive times are wall-clock, as in
        the build.
    roles : mapping of str to str, optional
        Action name -> cost role when the names are not approve/review/decline (the bundle
        policy's ``roles``).

    Returns
    -------
    DataFrame
        ``decisions`` (same order, fresh index) plus :data:`LABEL_COLUMNS`: ``label``
        (float64, NaN while immature), ``mature`` (bool), ``outcome_known_at``
        (datetime64[us, UTC], NaT when no counted outcome is known), ``role``, ``exposure``,
        ``cost_positive``, ``cost_negative``, ``cost`` (NaN while immature) and
        ``expected_cost``. The cost columns are NaN when the spec gives no
        ``value.costs.false_negative`` / ``false_positive`` or the label is an amount.
        ``attrs`` holds ``as_of_us``, ``label_delay_us``, ``label_delay_basis`` and
        ``horizon_us``.

    Raises
    ------
    DataError
        A required column is missing, a score is not a probability, a name of the spec
        matches no column, a key cannot be matched, or a cost is missing or negative.
    """
    _check_table(decisions)
    table = decisions.reset_index(drop=True).copy()
    as_of_us = _as_of_us(as_of)
    t_us = table["time_us"].to_numpy(dtype=np.int64)
    label, known_us, known, delay_us, basis = _outcome_labels(table, spec, t_us, as_of_us)
    horizon = make_plan(spec).label.horizon_us
    mature = np.asarray(is_mature(cast(Any, t_us), horizon, delay_us, as_of_us), dtype=bool)
    table["label"] = np.where(mature, label, np.nan)
    table["mature"] = mature
    known_at = pd.to_datetime(np.where(known, known_us, 0), unit="us", utc=True)
    table["outcome_known_at"] = pd.Series(known_at, index=table.index).where(known).astype(
        "datetime64[us, UTC]")
    price_rows(table, spec, roles)
    table.attrs.update({"as_of_us": as_of_us, "label_delay_us": delay_us,
                        "label_delay_basis": basis, "horizon_us": horizon})
    return table
