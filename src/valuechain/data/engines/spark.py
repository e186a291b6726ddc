"""The Spark engine: point-in-time windows, labels and lookups as Spark SQL, partitioned by key.

The plan's sources are read and the decision points made exactly as for the DuckDB engine
(:func:`valuechain.data.engines.resolve.resolve`, on the driver); the result is a
:class:`~valuechain.data.pit.PitProblem` whose tables are handed to Spark as Parquet.
:class:`SparkKernel` then computes labels, windows and lookups with the DataFrame API, every
step partitioned by the entity key (so the work spreads over executors by key, and each key's
rows are sorted by time inside its partition):

* **windows over another source**: the source rows are united with one *probe* row per
  decision at ``t - lag``; a ``RANGE`` frame of width ``window - 1`` µs ending at the probe
  (peers included) holds exactly the rows available in ``(t - lag - w, t - lag]``;
* **windows over the decision source, no lag**: the rows strictly before ``t`` come from a
  ``RANGE`` frame ``[t - w + 1, t - 1]``, the tied rows before the decision (and the decision
  itself with ``include_current``) from a ``ROWS`` frame over ``(key, t)`` ordered by tie
  order; the two parts are combined (counts and sums add, min/max take the least/greatest,
  ``std`` merges the two parts' moments, ``distinct_count`` unites the value sets);
* **windows over the decision source with a lag**: one ``RANGE`` frame
  ``[t - lag - w + 1, t - lag]``;
* **outcome-derived windows**: the member count from the frames above, the known positives
  by a range join on the key with ``known <= t`` (positives are rare);
* **labels**: a join of points and outcome rows on the label keys and
  ``t < event <= t + horizon``, grouped by point;
* **as-of lookups**: dimension rows united with the points, ordered by
  ``(known, dimension first, tie order)``: the last dimension row at or before each point.

Every definition is the one in :mod:`valuechain.data.pit`; the conformance suite checks the
engine against the reference. The Spark session is made once per process from the engine's
options (:class:`SparkConfig`); a missing Java runtime or a bad master URL is an
:class:`~valuechain.errors.EngineError` saying how to fix it.

>>> SparkConfig(type="spark").shuffle_partitions
4
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from valuechain.data.engines.base import EngineConfig, EngineOutput, Progress
from valuechain.data.engines.resolve import output, resolve
from valuechain.data.pit import DAY_US, EMPTY_ZERO, KNOWN, LABEL, RECENCY, PitProblem, Window
from valuechain.data.plan import Plan
from valuechain.data.sources import Catalog
from valuechain.errors import EngineError
from valuechain.sql import connect

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["SparkConfig", "SparkEngine", "SparkKernel", "spark_session"]

_BIG = 9_223_372_036_854_775_807
_LOCAL_ROWS = 50_000
# the master URLs Spark accepts (SparkContext.createTaskScheduler), checked before the JVM starts
_MASTER = re.compile(r"^(local(\[(\*|\d+)(,\s*\d+)?\])?|local-cluster\[.+\]|"
                     r"(spark|mesos|k8s)://.+|yarn)$")
MASTER_ENV = "VALUECHAIN_SPARK_MASTER"


class SparkConfig(EngineConfig):
    """Options of the Spark engine.

    ``master`` defaults to the environment variable ``VALUECHAIN_SPARK_MASTER``, else
    ``local[2]``; ``conf`` is passed to the session builder as is (e.g.
    ``{"spark.driver.memory": "4g"}``). The Spark UI is off unless ``conf`` turns it on.

    >>> SparkConfig(type="spark", master="local[4]", conf={"spark.driver.memory": "2g"}).master
    'local[4]'
    """

    type: str = "spark"
    master: str | None = Field(default=None, description="Spark master URL; default "
                               "VALUECHAIN_SPARK_MASTER or local[2].")
    shuffle_partitions: int = Field(default=4, ge=1, description="spark.sql.shuffle.partitions.")
    app_name: str = Field(default="valuechain", min_length=1)
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark settings.")

    def resolved_master(self) -> str:
        """The master URL the session uses."""
        return self.master or os.environ.get(MASTER_ENV) or "local[2]"


def _setup_help(master: str, err: BaseException | None) -> str:
    """One paragraph: what went wrong starting Spark and how to fix it."""
    detail = "" if err is None else f" ({type(err).__name__}: {str(err).strip().splitlines()[0]})"
    java = shutil.which("java")
    java_home = os.environ.get("JAVA_HOME")
    if java_home and not Path(java_home, "bin", "java").exists():
        return (f"The Spark engine needs a Java runtime, but JAVA_HOME={java_home} has no "
                f"bin/java{detail}. Point JAVA_HOME at a Java 17 or 21 installation (or unset "
                "it to use `java` on the PATH); on Debian/Ubuntu: `apt-get install "
                "openjdk-17-jre-headless`. Or build with another engine: `--engine duckdb`.")
    if not java_home and java is None:
        return ("The Spark engine needs a Java runtime (Java 17 or 21), and there is no "
                f"`java` on the PATH and no JAVA_HOME{detail}. Install one (Debian/Ubuntu: "
                "`apt-get install openjdk-17-jre-headless`; macOS: `brew install openjdk@17`) "
                "or set JAVA_HOME, or build with another engine: `--engine duckdb`.")
    if "master" in str(err).lower() or "url" in str(err).lower():
        return (f"Spark could not start with master '{master}'{detail}. Expected a master "
                "URL such as local[2], local[*], spark://host:7077, yarn or "
                "k8s://https://host:443; set `engine: {type: spark, master: ...}` in the spec "
                f"or the environment variable {MASTER_ENV}.")
    return (f"Spark could not start with master '{master}'{detail}. Check that Java 17 or "
            "21 runs (`java -version`), that pyspark 4 is installed in this Python, and the "
            f"master URL (`engine.master` in the spec or {MASTER_ENV}).")


def spark_session(config: SparkConfig | None = None) -> SparkSession:
    """The process's Spark session for ``config`` (made once; remade when the master changes).

    Raises
    ------
    EngineError
        pyspark is not installed, Java is missing, or the master URL is wrong: one paragraph
        with the fix.
    """
    config = config or SparkConfig()
    master = config.resolved_master()
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError(
            "The Spark engine needs pyspark 4: `pip install 'pyspark>=4.0,<5'` (and a Java 17 "
            "or 21 runtime), or build with another engine: `--engine duckdb`.") from None
    if not _MASTER.match(master):
        raise EngineError(_setup_help(master, ValueError(f"unknown master URL '{master}'")))
    active = SparkSession.getActiveSession()
    if active is not None:
        if active.sparkContext.master == master:
            active.conf.set("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
            return active
        active.stop()
    java_home = os.environ.get("JAVA_HOME")
    if (java_home and not Path(java_home, "bin", "java").exists()) or (
            not java_home and shutil.which("java") is None):
        raise EngineError(_setup_help(master, None))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.adaptive.enabled": "true",
        **config.conf,
    }
    builder = SparkSession.builder.master(master).appName(config.app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as err:  # py4j / pyspark raise many kinds
        raise EngineError(_setup_help(master, err)) from None
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkEngine:
    """Scale-out engine: windows, labels and lookups computed by Spark (see module doc).

    >>> from valuechain.data.engines import get_engine
    >>> get_engine({"type": "spark", "master": "local[2]"}).config.master
    'local[2]'
    """

    name: ClassVar[str] = "spark"
    Config: ClassVar[type[EngineConfig]] = SparkConfig

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = (config if isinstance(config, SparkConfig)
                       else SparkConfig.model_validate({}))

    def execute(self, plan: Plan, progress: Progress | None = None) -> EngineOutput:
        config = self.config
        assert isinstance(config, SparkConfig)
        session = spark_session(config)
        con = connect()
        try:
            resolved = resolve(plan, Catalog(plan, con=con), progress)
        finally:
            con.close()
        if progress:
            progress("features and labels (Spark)", 0.3)
        return output(plan, resolved, SparkKernel(session).compute(resolved.problem))


def _c(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _needed(problem: PitProblem) -> dict[str, set[str]]:
    """The columns each table (``""`` = the points) must carry to Spark."""
    need: dict[str, set[str]] = defaultdict(set)
    need[""] |= {"__row", "__t", "__o"}
    own = problem.own
    for w in problem.windows:
        target = "" if w.source == own else w.source
        need[""].add(w.key)
        need[target] |= {w.source_key, "__t", "__o"}
        need[target] |= {c for c in (w.filter, w.value) if c}
    for lk in problem.lookups:
        need[""].add(lk.key)
        need[lk.source] |= {lk.on, lk.column, "__t", "__o"}
    label = problem.label
    if label is not None:
        if label.outcome is None:
            need[""].add(label.column or "")
        else:
            need[""] |= {a for a, _ in label.keys}
            need[label.outcome] |= {b for _, b in label.keys} | {"__t", "__e"}
            if label.column:
                need[label.outcome].add(label.column)
    return need


class SparkKernel:
    """Labels, windows and lookups of a :class:`PitProblem` in Spark (see module doc)."""

    name: ClassVar[str] = "spark"

    def __init__(self, session: SparkSession) -> None:
        self.spark = session

    def compute(self, problem: PitProblem) -> pa.Table:
        names = [LABEL, KNOWN] if problem.label is not None else []
        names += [w.name for w in problem.windows] + [lk.name for lk in problem.lookups]
        if not names:
            return pa.table({})
        folder = Path(tempfile.mkdtemp(prefix="valuechain-spark-"))
        try:
            frames = self._load(problem, folder)
            result = self._plan(problem, frames)
            selected = result.select("__row", *[_c(n) for n in names])
            try:
                if problem.points.num_rows <= _LOCAL_ROWS:
                    table = selected.toArrow()
                else:  # through files: a big result need not fit the driver's JVM heap
                    selected.write.parquet(str(folder / "result"))
                    table = pq.read_table(folder / "result")
            except Exception as err:
                raise EngineError(f"Spark engine failed: {type(err).__name__}: "
                                  f"{str(err).strip().splitlines()[0]}") from err
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return _in_point_order(table, problem.points.num_rows, names)

    # -- input -----------------------------------------------------------------------------
    def _load(self, problem: PitProblem, folder: Path) -> dict[str, DataFrame]:
        frames: dict[str, DataFrame] = {}
        for name, columns in _needed(problem).items():
            table = problem.points if name == "" else problem.table(name)
            part = table.select([c for c in table.column_names if c in columns])
            if part.num_rows <= _LOCAL_ROWS:
                # a small table travels in the plan (no file scan); big ones as Parquet
                frames[name] = self.spark.createDataFrame(part)
                continue
            path = folder / f"t{len(frames)}.parquet"
            pq.write_table(part, path)
            frames[name] = self.spark.read.parquet(str(path))
        return frames

    # -- the whole computation, one lazy DataFrame keyed by __row ----------------------------
    def _plan(self, problem: PitProblem, frames: dict[str, DataFrame]) -> DataFrame:
        points = frames[""]
        result = points.select("__row")
        labels = None
        if problem.label is not None:
            labels = self._labels(problem, frames)
            result = result.join(labels, "__row", "left")
        groups: dict[tuple[object, ...], list[Window]] = defaultdict(list)
        for w in problem.windows:
            own = w.source == problem.own
            groups[(w.source, w.key, w.source_key, w.lag_us, w.filter,
                    w.include_current if own else True)].append(w)
        for windows in groups.values():
            part = self._window_group(problem, frames, windows, labels)
            result = result.join(part, "__row", "left")
        for lookup in problem.lookups:
            result = result.join(self._lookup(frames, lookup), "__row", "left")
        return result

    # -- labels ----------------------------------------------------------------------------
    def _labels(self, problem: PitProblem, frames: dict[str, DataFrame]) -> DataFrame:
        from pyspark.sql import functions as F

        plan = problem.label
        assert plan is not None
        points = frames[""]
        if plan.outcome is None:
            assert plan.column is not None
            return points.select("__row", _c(plan.column).alias(LABEL),
                                 (F.col("__t") + F.lit(plan.horizon_us)).alias(KNOWN))
        o = frames[plan.outcome]
        o = o.where(F.col("__e").isNotNull() & F.col("__t").isNotNull())
        if plan.known_by_us is not None:
            o = o.where(F.col("__t") <= F.lit(int(plan.known_by_us)))
        if plan.kind == "amount":
            o = o.where(_c(plan.column or "").isNotNull())
        o = o.select(*[_c(b).alias(f"__ok{i}") for i, (_, b) in enumerate(plan.keys)],
                     F.col("__e").alias("__oe"), F.col("__t").alias("__ot"),
                     *([_c(plan.column).cast("double").alias("__oa")]
                       if plan.kind == "amount" and plan.column else []))
        p = points.select("__row", "__t", *[_c(a).alias(f"__pk{i}")
                                            for i, (a, _) in enumerate(plan.keys)])
        cond = [F.col(f"__pk{i}") == F.col(f"__ok{i}") for i in range(len(plan.keys))]
        cond += [F.col("__oe") > F.col("__t"),
                 F.col("__oe") <= F.col("__t") + F.lit(plan.horizon_us)]
        joined = p.join(o, on=_all(cond), how="inner")
        if plan.kind == "binary" and plan.absent:
            # 1 when no outcome falls in the horizon (known at its end), else 0
            hits = joined.groupBy("__row").agg(F.lit(0).alias("__lab"),
                                               F.min("__ot").alias("__kn"))
            return (points.select("__row", "__t").join(hits, "__row", "left").select(
                "__row", F.coalesce(F.col("__lab"), F.lit(1)).alias(LABEL),
                F.coalesce(F.col("__kn"), F.col("__t") + F.lit(plan.horizon_us)).alias(KNOWN)))
        if plan.kind == "binary":
            hits = joined.groupBy("__row").agg(F.lit(1).alias("__lab"),
                                               F.min("__ot").alias(KNOWN))
            empty = F.lit(0)
        else:
            hits = joined.groupBy("__row").agg(F.sum("__oa").alias("__lab"),
                                               F.max("__ot").alias(KNOWN))
            empty = F.lit(0.0)
        return (points.select("__row").join(hits, "__row", "left")
                .select("__row", F.coalesce(F.col("__lab"), empty).alias(LABEL), KNOWN))

    # -- windows ---------------------------------------------------------------------------
    def _window_group(self, problem: PitProblem, frames: dict[str, DataFrame],
                      windows: list[Window], labels: DataFrame | None) -> DataFrame:
        from pyspark.sql import Window as W
        from pyspark.sql import functions as F

        first = windows[0]
        own = first.source == problem.own
        lag = first.lag_us
        points = frames[""]
        values = sorted({w.value for w in windows if w.value and not w.outcome})
        val_of = {v: f"__v{i}" for i, v in enumerate(values)}

        def vals(frame_keep: Column) -> list[Column]:
            ev = F.when(frame_keep, F.lit(1)).alias("__ev")
            return [ev, *[F.when(frame_keep, _c(v)).alias(val_of[v]) for v in values]]

        if own:
            u = points.select("__row", _c(first.key).alias("__k"), F.col("__t").alias("__tm"),
                              F.col("__o").cast("long").alias("__tie"),
                              F.lit(1).alias("__probe"),
                              *vals(F.coalesce(_c(first.filter), F.lit(False))
                                    if first.filter else F.lit(True)))
        else:
            src = frames[first.source]
            key_type = points.schema[first.key].dataType
            rows = src.where(F.col("__t").isNotNull() & _c(first.source_key).isNotNull()) \
                .select(F.lit(None).cast("long").alias("__row"),
                        _c(first.source_key).cast(key_type).alias("__k"),
                        F.col("__t").alias("__tm"), F.col("__o").cast("long").alias("__tie"),
                        F.lit(0).alias("__probe"),
                        *vals(F.coalesce(_c(first.filter), F.lit(False))
                              if first.filter else F.lit(True)))
            types = dict(rows.dtypes)
            probes = points.select(
                "__row", _c(first.key).alias("__k"),
                (F.col("__t") - F.lit(lag)).alias("__tm"), F.lit(_BIG).alias("__tie"),
                F.lit(1).alias("__probe"),
                F.lit(None).cast("int").alias("__ev"),
                *[F.lit(None).cast(types[val_of[v]]).alias(val_of[v]) for v in values])
            u = rows.unionByName(probes)

        by_time = W.partitionBy("__k").orderBy("__tm")
        parts: list[tuple[Any, ...]] = []  # per window: the frames whose union are members
        if own and lag == 0:
            end = W.currentRow if first.include_current else -1
            ties = W.partitionBy("__k", "__tm").orderBy("__tie").rowsBetween(
                W.unboundedPreceding, end)
            for w in windows:
                parts.append((by_time.rangeBetween(-(w.window_us - 1), -1), ties)
                             if w.window_us > 1 else (ties,))
        elif own:  # a lag over the decision source: members in (t - lag - w, t - lag]
            for w in windows:
                parts.append((by_time.rangeBetween(-(w.window_us + lag - 1), -lag),))
        else:  # another source: the probes already sit at t - lag
            for w in windows:
                parts.append((by_time.rangeBetween(-(w.window_us - 1), 0),))

        cols: list[Column] = []
        outcome = [(i, w) for i, w in enumerate(windows) if w.outcome]
        for i, (w, specs) in enumerate(zip(windows, parts, strict=True)):
            if w.outcome:
                n = _add([F.count("__ev").over(s) for s in specs])
                cols.append(n.alias(f"__n{i}"))
                continue
            v = "__ev" if w.value is None else val_of[w.value]
            if w.agg in RECENCY:
                t = F.col("__tm") + F.lit(0 if own else lag)
                cols.append(_recency(w.agg, v, specs, t).alias(f"__a{i}"))
                continue
            cols.append(_aggregate(w.agg, v, specs).alias(f"__a{i}"))
        agg = u.select("__row", "__k", "__probe", *cols).where(F.col("__probe") == 1)

        if outcome:
            assert labels is not None
            if not own:
                raise EngineError("outcome-derived windows must aggregate the decision source")
            agg = agg.join(self._outcome_counts(points, labels, outcome, first), "__row",
                           "left")
        out = []
        for i, w in enumerate(windows):
            if w.outcome:
                count = F.coalesce(F.col(f"__c{i}"), F.lit(0)).cast("long")
                total = F.coalesce(F.col(f"__s{i}"), F.lit(0.0)).cast("double")
                if w.agg == "count":
                    expr = count
                elif w.agg == "sum":
                    expr = total
                else:
                    expr = F.when(F.col(f"__n{i}") > 0, total / F.col(f"__n{i}"))
                empty = F.lit(0) if w.agg in ("count", "sum") else F.lit(None)
            else:
                expr = F.col(f"__a{i}")
                empty = F.lit(0) if w.agg in EMPTY_ZERO else F.lit(None)
            expr = F.when(F.col("__k").isNull(), empty).otherwise(expr)
            if w.fill is not None:
                expr = F.coalesce(expr, F.lit(float(w.fill)))
            out.append(expr.alias(w.name))
        return agg.select("__row", *out)

    def _outcome_counts(self, points: DataFrame, labels: DataFrame,
                        windows: list[tuple[int, Window]], first: Window) -> DataFrame:
        """Known positive outcomes per decision and window: a range join on positives."""
        from pyspark.sql import functions as F

        lag = first.lag_us
        widest = max(w.window_us for _, w in windows)
        base = points.join(labels, "__row")
        positive = (F.col(LABEL) > 0) & F.col(KNOWN).isNotNull() & _c(first.key).isNotNull()
        if first.filter:
            positive = positive & F.coalesce(_c(first.filter), F.lit(False))
        e = base.where(positive).select(
            F.col("__row").alias("__er"), F.col("__t").alias("__et"),
            F.col("__o").alias("__eo"), _c(first.key).alias("__ek"),
            F.col(LABEL).cast("double").alias("__el"), F.col(KNOWN).alias("__ekn"))
        p = points.select("__row", "__t", "__o", _c(first.key).alias("__pk"))
        upper = (F.col("__et") <= F.col("__t")) if lag == 0 else (
            F.col("__et") <= F.col("__t") - F.lit(lag))
        cond = ((F.col("__pk") == F.col("__ek")) & (F.col("__er") != F.col("__row"))
                & (F.col("__ekn") <= F.col("__t"))
                & (F.col("__et") > F.col("__t") - F.lit(widest + lag)) & upper)
        joined = p.join(e, on=cond, how="inner")
        sums = []
        for i, w in windows:
            inside = F.col("__et") > F.col("__t") - F.lit(w.window_us + lag)
            if lag == 0:
                inside = inside & ((F.col("__et") < F.col("__t"))
                                   | (F.col("__eo") < F.col("__o")))
            else:
                inside = inside & (F.col("__et") <= F.col("__t") - F.lit(lag))
            sums.append(F.count(F.when(inside, F.lit(1))).alias(f"__c{i}"))
            sums.append(F.sum(F.when(inside, F.col("__el"))).alias(f"__s{i}"))
        return joined.groupBy("__row").agg(*sums)

    # -- lookups ---------------------------------------------------------------------------
    def _lookup(self, frames: dict[str, DataFrame], lookup: Any) -> DataFrame:
        from pyspark.sql import Window as W
        from pyspark.sql import functions as F

        points = frames[""]
        dim = frames[lookup.source]
        key_type = points.schema[lookup.key].dataType
        value_type = dim.schema[lookup.column].dataType
        d = dim.where(_c(lookup.on).isNotNull()).select(
            F.lit(None).cast("long").alias("__row"), _c(lookup.on).cast(key_type).alias("__k"),
            F.coalesce(F.col("__t"), F.lit(-_BIG)).alias("__tm"), F.lit(0).alias("__probe"),
            F.col("__o").cast("long").alias("__tie"),
            F.struct(_c(lookup.column).alias("v")).alias("__s"))
        p = points.select("__row", _c(lookup.key).alias("__k"), F.col("__t").alias("__tm"),
                          F.lit(1).alias("__probe"), F.lit(0).cast("long").alias("__tie"),
                          F.lit(None).cast(f"struct<v:{value_type.simpleString()}>")
                          .alias("__s"))
        spec = (W.partitionBy("__k").orderBy("__tm", "__probe", "__tie")
                .rowsBetween(W.unboundedPreceding, W.currentRow))
        found = d.unionByName(p).select(
            "__row", "__probe", F.last("__s", ignorenulls=True).over(spec).alias("__s"))
        value = F.col("__s.v")
        if lookup.fill is not None:
            value = F.coalesce(value, F.lit(float(lookup.fill)))
        return found.where(F.col("__probe") == 1).select("__row", value.alias(lookup.name))


def _all(conditions: list[Column]) -> Column:
    out = conditions[0]
    for c in conditions[1:]:
        out = out & c
    return out


def _add(parts: list[Column]) -> Column:
    out = parts[0]
    for c in parts[1:]:
        out = out + c
    return out


def _recency(agg: str, v: str, specs: tuple[Any, ...], t: Column) -> Column:
    """since_first / since_last (float days to ``t``) or last (the value of the latest member
    by ``(availability, tie order)``) over the members whose ``v`` is not null."""
    from pyspark.sql import functions as F

    present = F.col(v).isNotNull()
    if agg == "last":
        got = [F.max(F.when(present, F.struct(F.col("__tm").alias("t"),
                                               F.col("__tie").alias("o"),
                                               F.col(v).alias("v")))).over(s) for s in specs]
        return (got[0] if len(got) == 1 else F.greatest(*got)).getField("v")
    if agg == "since_first":
        firsts = [F.min(F.when(present, F.col("__tm"))).over(s) for s in specs]
        member = firsts[0] if len(firsts) == 1 else F.least(*firsts)
    else:
        lasts = [F.max(F.when(present, F.col("__tm"))).over(s) for s in specs]
        member = lasts[0] if len(lasts) == 1 else F.greatest(*lasts)
    return (t - member).cast("double") / F.lit(float(DAY_US))


def _aggregate(agg: str, v: str, specs: tuple[Any, ...]) -> Column:
    """The aggregate ``agg`` of column ``v`` over the union of the frames ``specs``."""
    from pyspark.sql import functions as F

    col = F.col(v)
    if agg == "count":
        return _add([F.count(col).over(s) for s in specs])
    if agg == "distinct_count":
        sets = [F.collect_set(col).over(s) for s in specs]
        merged = sets[0] if len(sets) == 1 else F.array_union(sets[0], sets[1])
        return F.size(merged).cast("long")
    if agg == "min":
        got = [F.min(col).over(s) for s in specs]
        return got[0] if len(got) == 1 else F.least(*got)
    if agg == "max":
        got = [F.max(col).over(s) for s in specs]
        return got[0] if len(got) == 1 else F.greatest(*got)
    x = col.cast("double")
    n = _add([F.count(x).over(s) for s in specs])
    total = _add([F.coalesce(F.sum(x).over(s), F.lit(0.0)) for s in specs])
    if agg == "sum":
        return total
    if agg in ("mean", "rate"):
        return F.when(n > 0, total / n)
    if agg == "std":
        if len(specs) == 1:
            return F.stddev_samp(x).over(specs[0])
        # merge the two parts' moments (Chan et al.): M2 = M2a + M2b + d^2 na nb / n
        na, nb = (F.count(x).over(s) for s in specs)
        ma, mb = (F.coalesce(F.avg(x).over(s), F.lit(0.0)) for s in specs)
        m2a, m2b = (F.coalesce(F.var_pop(x).over(s), F.lit(0.0)) * F.count(x).over(s)
                    for s in specs)
        delta = mb - ma
        m2 = m2a + m2b + F.when(n > 0, delta * delta * na * nb / n).otherwise(F.lit(0.0))
        return F.when(n >= 2, F.sqrt(F.greatest(m2, F.lit(0.0)) / (n - 1)))
    raise EngineError(f"unknown aggregate '{agg}'")


def _in_point_order(table: pa.Table, n: int, names: list[str]) -> pa.Table:
    """The ``__row``-keyed result in points order (rows absent become null)."""
    rows = np.asarray(table.column("__row").to_numpy(), dtype=np.int64)
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows), dtype=np.int64)
    take = pa.array(position, mask=position < 0)
    return pa.table({name: table.column(name).combine_chunks().take(take) for name in names})
