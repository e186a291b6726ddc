"""The decision spec: strict, frozen pydantic models for ``valuechain.yaml``.

Every stage reads one :class:`Spec`. Fields are documented in ``docs/spec.md``; the JSON
Schema is published by ``valuechain schema``.

>>> spec = Spec.model_validate({
...     "project": {"name": "demo"},
...     "decision": {"statement": "Review risky orders", "owner": "fraud ops",
...                  "moment": "checkout", "actions": ["approve", "review"]},
...     "decision_points": {"source": "orders"},
...     "sources": {"orders": {"path": "orders.parquet", "keys": ["order_id"],
...                            "event_time": "ts"}},
...     "label": {"column": "is_fraud", "horizon": "7d"},
...     "features": [{"name": "amount", "expr": "amount"}],
... })
>>> spec.features[0].kind
'row'
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    field_validator,
    model_validator,
)

from valuechain.errors import SpecError
from valuechain.spec.durations import format_duration, parse_duration

__all__ = [
    "KNOWN_METRICS",
    "SEVERITIES",
    "AggregateFeature",
    "AlertRule",
    "AuditAcceptance",
    "AuditSettings",
    "Capacity",
    "Decision",
    "DecisionPoints",
    "Duration",
    "EngineSettings",
    "EventPoints",
    "Feature",
    "Label",
    "Lookup",
    "LookupFeature",
    "Monitoring",
    "Owners",
    "Period",
    "Project",
    "ReviewOutcome",
    "RowFeature",
    "Schedule",
    "SchedulePoints",
    "SegmentAction",
    "Segments",
    "Source",
    "Spec",
    "TimeSplit",
    "Treatment",
    "Value",
    "alert_owner_problems",
    "default_alert_rules",
]

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "pattern": r"^\d+(\.\d+)?(s|min|h|d|w)$"}),
]
#: The largest capacity `limit` a spec may write (a documented bound, far above any real one).
MAX_LIMIT = 10**12
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=120)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Project(_Model):
    """Project name and where artifacts go."""

    name: str = Field(description="Short project name, used in reports and artifact names.")
    workspace: str | None = Field(
        None, description="Directory for artifacts; default `.valuechain/` beside the spec."
    )
    description: str | None = None


class Decision(_Model):
    """The decision the model serves: who acts, when, with which actions."""

    statement: str = Field(description="One sentence: what is decided, for whom.")
    owner: str = Field(description="Person or team accountable for the decision.")
    moment: str = Field(description="When the decision is taken, e.g. 'at checkout'.")
    actions: list[str] = Field(min_length=1, description="The actions the decision can take.")
    latency_budget_ms: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="Time allowed to decide one case online, in milliseconds (finite); "
        "not needed for a batch decision (scheduled decision points).",
    )
    kpi: str | None = Field(None, description="The business KPI the decision should move.")


class EventPoints(_Model):
    """One decision point per row of an event source (e.g. each transaction at checkout)."""

    source: str = Field(description="Name of an `events` source; its keys and event time are used.")
    keep: list[str] = Field(
        default_factory=list,
        description="Columns of the decision source copied into the frame as they are (for "
        "grouping, costs and audits); they are not features.",
    )


class Schedule(_Model):
    """Decision points on a schedule: each active entity every `every` from `start`."""

    every: Duration = Field(description="Spacing of decision times, e.g. '7d'.")

    @field_validator("every")
    @classmethod
    def _positive_every(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise SpecError("a schedule's `every` must be longer than zero, e.g. '7d'")
        return value
    start: datetime = Field(description="First decision time (sets the weekday and hour).")
    end: datetime | None = Field(None, description="Last decision time; default `as_of`.")
    population: str = Field(description="Source whose rows define the entities.")
    key: str = Field(description="Entity key column in the population source.")
    active_within: Duration | None = Field(
        None,
        description="Only entities with a population event in (t - active_within, t]; "
        "default: every entity seen at or before t.",
    )
    active_from: str | None = Field(
        None,
        description="Column of the population source: from when a row's entity is active "
        "(included). With it, an entity is a decision point at t when some population row "
        "has active_from <= t and (active_until is null or active_until > t).",
    )
    active_until: str | None = Field(
        None,
        description="Column of the population source: when a row's activity ends (excluded; "
        "null while active). Only ever excludes: a later end is never seen at t.",
    )


class SchedulePoints(_Model):
    """Scheduled decision points (e.g. every active customer each Monday)."""

    schedule: Schedule


def _points_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "schedule" if "schedule" in value else "events"
    return "schedule" if isinstance(value, SchedulePoints) else "events"


DecisionPoints = Annotated[
    Annotated[EventPoints, Tag("events")] | Annotated[SchedulePoints, Tag("schedule")],
    Discriminator(_points_tag),
]


class Source(_Model):
    """A table: Parquet, CSV or a DuckDB table, with its keys and times."""

    path: str | None = Field(
        None, description="Parquet/CSV file or directory (relative to the spec), or DuckDB file."
    )
    table: str | None = Field(None, description="Table name when `path` is a DuckDB database.")
    format: Literal["parquet", "csv", "duckdb"] | None = Field(
        None, description="Inferred from the path suffix when omitted."
    )
    keys: list[str] = Field(
        default_factory=list, description="Columns that identify a row (also order tied events)."
    )
    event_time: str | None = Field(None, description="When the row's event happened.")
    available_at: str | None = Field(
        None, description="When the row became known, if later than `event_time`."
    )
    valid_from: str | None = Field(
        None, description="For slowly changing tables: from when the row's values hold."
    )
    reporting_delay: Duration | None = Field(
        None,
        description="How long after `event_time` a row reaches the systems that serve "
        "features; aggregates over this source need a `lag` at least this long.",
    )
    role: Literal["events", "dimension", "outcome", "post_outcome"] = Field(
        "events",
        description="events: facts in time; dimension: attributes; outcome: what the label "
        "is made of; post_outcome: exists only after the outcome (never a feature).",
    )
    description: str | None = None

    @model_validator(mode="after")
    def _located(self) -> Source:
        if self.path is None and self.table is None:
            raise SpecError("a source needs `path` (a file) or `table` (in a DuckDB database)")
        return self


class Label(_Model):
    """The outcome the model predicts, within a horizon after the decision time."""

    name: Identifier = Field("label", description="Column name of the label in the frame.")
    kind: Literal["binary", "amount"] = "binary"
    horizon: Duration = Field(description="The outcome counts if it happens in (t, t + horizon].")
    source: str | None = Field(
        None, description="An `outcome` source whose rows are the outcome events."
    )
    keys: dict[str, str] | None = Field(
        None, description="Join: decision column -> outcome column (default: shared key names)."
    )
    column: str | None = Field(
        None,
        description="Without `source`: a column of the decision source recording the outcome "
        "within the horizon, known at t + horizon. With `source` and kind amount: the amount.",
    )
    absent: bool = Field(
        False,
        description="Label 1 when NO outcome of `source` falls in (t, t + horizon] (e.g. "
        "'no purchase within 13 weeks'); binary labels from an outcome source only.",
    )

    @field_validator("horizon")
    @classmethod
    def _positive_horizon(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise SpecError("a label horizon must be longer than zero (the outcome is looked "
                            "for in (t, t + horizon]), e.g. '7d'")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> Label:
        if self.source is None and self.column is None:
            raise SpecError("a label needs `source` (an outcome table) or `column`")
        if self.kind == "amount" and self.source is not None and self.column is None:
            raise SpecError("an amount label from an outcome source needs `column` (the amount)")
        if self.absent and (self.kind != "binary" or self.source is None):
            raise SpecError("`absent: true` labels the absence of an outcome event: it needs "
                            "`kind: binary` and an outcome `source` (not `column`)")
        return self


class RowFeature(_Model):
    """A value computed from the decision event's own fields (a DuckDB SQL expression)."""

    name: Identifier
    expr: str = Field(description="SQL expression over the decision row's columns.")
    description: str | None = None
    fill: float | None = Field(None, description="Value used where the result is null.")

    @property
    def kind(self) -> Literal["row"]:
        return "row"


AggregateName = Literal["count", "sum", "mean", "min", "max", "std", "distinct_count", "rate",
                        "since_first", "since_last", "last"]


class AggregateFeature(_Model):
    """An aggregate over a key's rows whose availability lies in (t - lag - window, t - lag].

    ``of: label`` makes it outcome-derived: only outcomes known at t count.
    """

    name: Identifier
    aggregate: AggregateName
    key: str = Field(description="Grouping column, present in the decision row and the source.")
    window: Duration
    lag: Duration = Field(timedelta(0), description="Window ends this long before t.")
    of: str | None = Field(
        None,
        description="Column aggregated (not needed for count); `label` for outcome-derived "
        "aggregates; for rate, a 0/1 column or `label`.",
    )
    source: str | None = Field(None, description="Source aggregated; default the decision source.")
    where: str | None = Field(None, description="SQL filter over the source rows.")
    include_current: bool = Field(
        True, description="Whether the decision event itself is in windows over its own table."
    )
    description: str | None = None
    fill: float | None = Field(None, description="Value used where the window is empty.")

    @property
    def kind(self) -> Literal["aggregate"]:
        return "aggregate"

    @property
    def outcome_derived(self) -> bool:
        return self.of == "label"

    @model_validator(mode="after")
    def _needs_column(self) -> AggregateFeature:
        if self.aggregate not in ("count", "since_first", "since_last") and self.of is None:
            raise SpecError(f"aggregate '{self.aggregate}' needs `of` (the column aggregated)")
        if self.window <= timedelta(0):
            raise SpecError("`window` must be longer than zero")
        if self.lag < timedelta(0):
            raise SpecError("`lag` cannot be negative")
        return self


class Lookup(_Model):
    """As-of lookup into a dimension source."""

    source: str
    key: str = Field(description="Column of the decision row.")
    on: str | None = Field(None, description="Column of the dimension source; default `key`.")
    column: str = Field(description="Dimension column returned.")


class LookupFeature(_Model):
    """The value of a dimension column as known at t (as-of `valid_from`/`available_at` <= t)."""

    name: Identifier
    lookup: Lookup
    description: str | None = None
    fill: float | None = None

    @property
    def kind(self) -> Literal["lookup"]:
        return "lookup"


def _feature_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        for tag in ("aggregate", "lookup", "expr"):
            if tag in value:
                return "row" if tag == "expr" else tag
        return "row"
    kind = getattr(value, "kind", None)
    # not a mapping nor a feature (a number, a string, null): pydantic reports the field
    return kind if isinstance(kind, str) else None


Feature = Annotated[
    Annotated[RowFeature, Tag("row")]
    | Annotated[AggregateFeature, Tag("aggregate")]
    | Annotated[LookupFeature, Tag("lookup")],
    Discriminator(
        _feature_tag, custom_error_type="feature_kind",
        custom_error_message="expected a feature: a mapping with `name` and one of `expr`, "
        "`aggregate` or `lookup`, e.g. {name: amount, expr: amount}",
    ),
]


class Period(_Model):
    """A named time period [start, end)."""

    name: str
    start: datetime
    end: datetime


class TimeSplit(_Model):
    """Consecutive train / validation / test periods separated by an embargo."""

    periods: list[Period] = Field(
        default_factory=list,
        description="Consecutive periods: train, validation, test (a fourth and later are "
        "extra test periods). With two, validation is the last fifth of train.",
    )
    embargo: Duration | None = Field(None, description="Gap between periods; default the horizon.")
    entity: str | None = Field(
        None,
        description="Frame column for precision at k by entity (e.g. a card, as the "
        "handbook's CP@k); keep it with `decision_points.keep`.",
    )
    min_positives: int = Field(20, ge=1, description="Fewest mature positives a period needs.")


class Capacity(_Model):
    """How many of an action can be taken per period."""

    limit: int = Field(ge=0, le=MAX_LIMIT, description="Most actions per period, at most "
                       "10^12 (0: the action is never taken).")
    per: Duration = Field(timedelta(days=1))

    @field_validator("per")
    @classmethod
    def _positive_per(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise SpecError("a capacity period must be longer than zero, e.g. '1d'")
        return value
    overflow: Literal["approve", "decline"] = Field(
        "approve", description="Where cases beyond the limit go: approved or declined."
    )
    percentile: float = Field(
        1.0, gt=0, le=1,
        description="Share of periods that must stay within the limit (1.0: every period).",
    )


class ReviewOutcome(_Model):
    """What a manual review achieves."""

    catch_rate: float = Field(
        default=1.0, ge=0, le=1, description="Share of positives a reviewer catches (then declined)."
    )
    friction: float = Field(
        default=0.0, ge=0, le=1,
        description="Share of genuine cases lost to review friction (each costs a false "
        "positive).",
    )


class Value(_Model):
    """Costs (SQL expressions over frame columns), capacities and today's policy."""

    currency: str = "USD"
    costs: dict[str, str] = Field(
        default_factory=dict,
        description="Per-decision costs as SQL expressions over frame columns. "
        "`false_negative` (a positive not acted on) and `false_positive` (a negative acted on) "
        "price the default policy in `valuechain train`.",
    )
    capacity: dict[str, Capacity] = Field(default_factory=dict)
    review: ReviewOutcome = Field(default_factory=ReviewOutcome,
                                  description="What a manual review achieves.")
    baseline_policy: str | None = Field(
        None, description="SQL expression of the rule the business runs today."
    )


#: The severities an alert rule may carry, mildest first.
SEVERITIES = ("info", "warning", "critical")
#: Metric names the monitor's components emit (``docs/monitoring.md``); a rule may name
#: another metric (a newer component's), it then fires only when such signals exist.
KNOWN_METRICS = (
    "psi", "ks", "js", "score_psi", "review_rate", "approve_rate", "decline_rate",
    "queue_fill", "overflow_share", "volume", "volume_z", "latency_p50_ms", "latency_p99_ms",
    "loss_per_1000", "chargeback_rate", "precision", "recall", "cost", "estimate_error",
)


class AlertRule(_Model):
    """One alert rule: a metric of the monitor's signals, a threshold and how long it must hold.

    A rule fires on a ``(section, subject)`` series of the signals when ``windows``
    consecutive evaluated windows breach the threshold (``above``: value > threshold;
    ``below``: value < threshold). Windows with fewer than ``min_samples`` samples, and
    windows whose labels are not mature yet (``pending``), are not evaluated: they neither
    count towards a streak nor break it (docs/monitoring.md).
    """

    name: Identifier = Field(description="Short unique name of the rule, e.g. `feature_drift`.")
    metric: Identifier = Field(
        description="A signals metric: psi, ks, js, score_psi, review_rate, queue_fill, "
        "overflow_share, volume_z, latency_p99_ms, loss_per_1000, precision, recall, cost, "
        "estimate_error, ...")
    subject: str = Field(
        "*", description="Feature or action the metric is about; `*` (default) for any.")
    section: Literal["drift", "ops", "kpi", "estimate"] | None = Field(
        None, description="Only signals of this section (e.g. `kpi` for the realised "
        "precision rather than the `estimate`); default any section.")
    above: float | None = Field(
        None, allow_inf_nan=False, description="Breach when the value is above this.")
    below: float | None = Field(
        None, allow_inf_nan=False, description="Breach when the value is below this.")
    above_reference: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="Breach when the value is above the reference period's value by more "
        "than this share (0.25: 25 % worse). Needs a reference value for the metric.")
    below_reference: float | None = Field(
        None, ge=0, le=1, allow_inf_nan=False,
        description="Breach when the value is below the reference period's value by more "
        "than this share.")
    confident: bool = Field(
        False, description="Breach only when the whole interval is beyond the threshold "
        "(`lower` above it, `upper` below it), where the signal has an interval.")
    min_samples: int = Field(
        0, ge=0, description="Windows with fewer samples (`n`) are not evaluated.")
    windows: int = Field(
        1, ge=1, le=1000, description="Consecutive evaluated windows that must breach.")
    severity: Literal["info", "warning", "critical"] = "warning"
    owner: str | None = Field(
        None, description="Who acts: a key of `owners` (e.g. `data_science`, which must then "
        "be set) or a free name; default the decision's owner.")
    channel: str | None = Field(
        None, description="Where the alert goes; default `monitoring.alert_channel`.")

    @model_validator(mode="after")
    def _one_threshold(self) -> AlertRule:
        given = [name for name in ("above", "below", "above_reference", "below_reference")
                 if getattr(self, name) is not None]
        if len(given) != 1:
            raise SpecError(
                f"alert rule '{self.name}' needs exactly one threshold of `above`, `below`, "
                f"`above_reference` or `below_reference`, got "
                f"{', '.join(f'`{g}`' for g in given) if given else 'none'}; e.g. "
                "`above: 0.2`")
        if not self.subject:
            raise SpecError(f"alert rule '{self.name}': `subject` is empty; name a feature "
                            "or action, or write `*` for any")
        return self

    @property
    def threshold(self) -> float:
        """The threshold value written (absolute, or the relative margin)."""
        for name in ("above", "below", "above_reference", "below_reference"):
            value = getattr(self, name)
            if value is not None:
                return float(value)
        raise SpecError(f"alert rule '{self.name}' sets no threshold; give one of above, "
                        "below, above_reference, below_reference.")  # pragma: no cover

    @property
    def direction(self) -> Literal["above", "below"]:
        """``above`` when a larger value is worse, else ``below``."""
        return "above" if self.above is not None or self.above_reference is not None \
            else "below"

    @property
    def relative(self) -> bool:
        """Whether the threshold is relative to the reference period's value."""
        return self.above_reference is not None or self.below_reference is not None


def default_alert_rules(drift_threshold: float = 0.2) -> tuple[AlertRule, ...]:
    """The rules used when ``monitoring.alerts`` is not written (docs/monitoring.md).

    >>> [(r.name, r.metric, r.threshold, r.windows) for r in default_alert_rules()][:2]
    [('feature_drift', 'psi', 0.2, 2), ('score_drift', 'score_psi', 0.1, 2)]
    """
    rules = (
        {"name": "feature_drift", "metric": "psi", "section": "drift",
         "above": drift_threshold, "min_samples": 500, "windows": 2, "owner": "data_science"},
        {"name": "score_drift", "metric": "score_psi", "section": "drift", "above": 0.1,
         "min_samples": 500, "windows": 2, "owner": "data_science"},
        {"name": "review_queue_full", "metric": "queue_fill", "section": "ops",
         "above": 0.999, "windows": 3, "owner": "operations"},
        {"name": "kpi_worse", "metric": "loss_per_1000", "section": "kpi",
         "above_reference": 0.25, "min_samples": 1000, "windows": 2, "severity": "critical",
         "owner": "product"},
    )
    return tuple(AlertRule.model_validate(rule) for rule in rules)


class Monitoring(_Model):
    """How the deployed decision is watched: cadence, drift measure, KPIs and alert rules."""

    cadence: Duration = Field(
        timedelta(days=1), description="Monitoring window: one signal per window (1d or 1w; "
        "days start at midnight UTC, weeks on Monday).")
    drift_metric: Literal["psi", "ks", "wasserstein"] = "psi"
    drift_threshold: float = Field(
        0.2, gt=0, allow_inf_nan=False,
        description="The threshold of the default feature-drift rule (PSI above it).")
    kpis: list[str] = Field(default_factory=list)
    alert_channel: str | None = None
    alerts: list[AlertRule] | None = Field(
        None, description="Alert rules; default the built-in rules (docs/monitoring.md); "
        "`[]` for none.")

    @field_validator("cadence")
    @classmethod
    def _positive_cadence(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise SpecError("`cadence` must be longer than zero, e.g. '1d' or '1w'")
        return value

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Monitoring:
        seen: set[str] = set()
        for rule in self.alerts or []:
            if rule.name in seen:
                raise SpecError(f"two alert rules are named '{rule.name}'; give each rule "
                                "its own `name`")
            seen.add(rule.name)
        return self

    @property
    def rules(self) -> tuple[AlertRule, ...]:
        """The alert rules in force: the written ones, else the defaults."""
        if self.alerts is None:
            return default_alert_rules(self.drift_threshold)
        return tuple(self.alerts)


class SegmentAction(_Model):
    """What to do with one named segment, and how to recognise it by its profile."""

    high: list[Identifier] = Field(
        default_factory=list, description="Features the segment is high on (its profile).")
    low: list[Identifier] = Field(
        default_factory=list, description="Features the segment is low on.")
    action: str = Field(description="The action for the segment: an onboarding flow, a "
                        "message, an experiment.")


class Segments(_Model):
    """Behavioural segments (`valuechain segment`, docs/segments.md)."""

    features: list[Identifier] = Field(
        min_length=2, description="Features to segment on (at least two): names from "
        "`features` or `segments.define`.")
    define: list[Feature] = Field(
        default_factory=list, description="Features used only for segments, not by the "
        "model; written as in `features`.")
    as_of: datetime | None = Field(
        None, description="Decision time to segment at (on the schedule); default the latest "
        "one whose label is mature and whose next period is in the data.")
    period: Duration = Field(
        timedelta(days=28), description="Refit this long after `as_of` to check stability "
        "over time.")
    k: tuple[int, int] = Field((2, 6), description="Smallest and largest number of segments "
                               "tried, e.g. `[2, 6]`.")
    methods: list[Literal["kmeans", "gmm"]] = Field(
        ["kmeans", "gmm"], min_length=1,
        description="Clustering methods: `kmeans`, `gmm` (Gaussian mixture).")
    log: list[Identifier] = Field(
        default_factory=list, description="Features log1p-transformed before scaling "
        "(skewed counts).")
    actions: dict[Identifier, SegmentAction] = Field(
        default_factory=dict, description="Named segments: profile and action.")

    @field_validator("k")
    @classmethod
    def _k_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 2 <= value[0] <= value[1] <= 12:
            raise SpecError(f"`k` {list(value)} must be [smallest, largest] with "
                            "2 <= smallest <= largest <= 12, e.g. [2, 6]")
        return value


class Owners(_Model):
    """Who owns each link of the value chain."""

    product: str | None = None
    data_science: str | None = None
    data_engineering: str | None = None
    ml_engineering: str | None = None
    operations: str | None = None


class AuditAcceptance(_Model):
    """An audit finding accepted on purpose."""

    id: str
    reason: str
    by: str


class AuditSettings(_Model):
    accept: list[AuditAcceptance] = Field(default_factory=list)


class Treatment(_Model):
    """The randomized history of an action: who was treated and who held out, at which t.

    Rows of ``source`` whose ``key`` matches a decision point's key and whose ``time`` equals
    its decision time are that decision point's assignment (``column`` = ``treated`` or
    ``control``); only those rows train and evaluate uplift (``docs/uplift.md``).
    """

    source: str = Field(description="Source holding the assignment history, e.g. `outreach`.")
    key: str = Field(description="Entity key column, in the source and in the frame.")
    time: str = Field(description="Source column equal to the decision time of the listing.")
    column: str = Field(description="Source column holding the group of each row.")
    treated: str = Field("treated", description="Value of `column` for treated rows.")
    control: str = Field("control", description="Value of `column` for held-out rows.")
    strata: list[str] = Field(
        default_factory=list,
        description="Source columns the randomization was stratified by (e.g. "
        "`risk_decile`): the known propensity is the treated share within each (time, "
        "strata) cell; default the share within each time.",
    )

    @model_validator(mode="after")
    def _two_groups(self) -> Treatment:
        if self.treated == self.control:
            raise SpecError(f"treatment: `treated` and `control` are both {self.treated!r}; "
                            "name the two group values, e.g. treated: treated, control: "
                            "control")
        return self


class EngineSettings(BaseModel):
    """Which engine builds the frame, with its options (checked by the engine's own config)."""

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)

    type: str = Field(
        "duckdb",
        description="Engine short name (`duckdb`, `reference`) or a third-party class path "
        "`package.module:Class`; the other fields are the engine's options, e.g. "
        "`threads: 2`, `memory_limit: 8GB` for duckdb.",
    )


def _engine_settings(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


class Spec(_Model):
    """The whole decision spec."""

    version: Literal[1] = 1
    project: Project
    decision: Decision
    decision_points: DecisionPoints
    sources: dict[Identifier, Source] = Field(min_length=1)
    label: Label
    features: list[Feature] = Field(min_length=1)
    split: TimeSplit | None = None
    value: Value | None = None
    monitoring: Monitoring | None = None
    segments: Segments | None = None
    owners: Owners = Field(default_factory=Owners)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    engine: Annotated[EngineSettings, BeforeValidator(_engine_settings)] | None = Field(
        None, description="Engine that builds the frame: `duckdb` (default) or "
        "`{type: duckdb, threads: 2, memory_limit: 8GB}`; `valuechain build --engine` "
        "overrides the type.",
    )
    treatment: Treatment | None = None

    @property
    def event_source(self) -> str | None:
        """Name of the decision source in event mode, else None."""
        dp = self.decision_points
        return dp.source if isinstance(dp, EventPoints) else None


def alert_owner_problems(spec: Spec) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Alert rules whose ``owner`` names a key of ``owners`` that is not set.

    Returns ``(location, owner, message)`` per problem (empty when every owner resolves).
    """
    monitoring = spec.monitoring
    if monitoring is None or monitoring.alerts is None:
        return []
    out: list[tuple[tuple[str | int, ...], str, str]] = []
    keys = list(Owners.model_fields)
    for i, rule in enumerate(monitoring.alerts):
        if rule.owner in keys and getattr(spec.owners, rule.owner) is None:
            out.append((("monitoring", "alerts", i, "owner"), rule.owner,
                        f"alert rule '{rule.name}' is owned by `owners.{rule.owner}`, which "
                        f"is not set; set `owners.{rule.owner}` or name the owner directly"))
    return out
