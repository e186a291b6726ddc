"""The Spark engine: the point-in-time kernel run per key partition, one shuffle per key.

The plan's sources are read and the decision points made exactly as for the DuckDB engine
(:func:`valuechain.data.engines.resolve.resolve`, on the driver); the result is a
:class:`~valuechain.data.pit.PitProblem`. Every definition in :mod:`valuechain.data.pit` is
*keyed*: a window reads only rows with the decision's key, a lookup only the dimension rows
matched on its key, a label only the outcome rows matched on the label's keys. So the work
splits into one **stage** per point column that something matches on (the label's first key,
each window key, each lookup key), and each stage is embarrassingly parallel by key:

1. the points (only the columns the stage reads) and the stage's tables are handed to Spark
   (Parquet files, or inline when small) and united into one DataFrame, each row tagged with
   its table and its partition key (the point's key, or the table's matching column cast to
   the point key's type);
2. one shuffle, ``repartition(partitions, key)``, puts every row of a key in the same task;
3. ``mapInArrow`` hands each task its rows as Arrow batches; the task splits them back into a
   small ``PitProblem`` and runs the single-machine kernel on it
   (:class:`~valuechain.data.engines.duckdb.DuckDBKernel`, one thread: sorted ranges and
   sliding aggregates for windows over the decision source, sorted search for as-of lookups,
   DuckDB for labels and windows over other sources);
4. the results, keyed by the point's ``__row``, are written by Spark as Parquet and put back
   in decision order on the driver.

The label's stage runs first; outcome-derived windows of a later stage read its labels as
the points' ``__label``/``__known`` columns. Since each task computes exactly what the
single-machine kernel computes for its keys, the Spark frame equals the DuckDB frame (the
conformance suite checks it against the reference; the handbook frame to 1e-9). A task holds
its partition in memory: set ``shuffle_partitions`` so that rows / partitions stays at a few
million. The Spark session is made once per process from the engine's options
(:class:`SparkConfig`); a missing Java runtime or a bad master URL is an
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
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from valuechain.data.engines.base import EngineConfig, EngineOutput, Progress
from valuechain.data.engines.duckdb import DuckDBKernel
from valuechain.data.engines.resolve import output, resolve
from valuechain.data.pit import KNOWN, LABEL, LabelPlan, LookupPlan, PitProblem, Window
from valuechain.data.plan import Plan
from valuechain.data.sources import Catalog
from valuechain.errors import EngineError
from valuechain.sql import connect

if TYPE_CHECKING:  # pragma: no cover
    from pyspark import Broadcast
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkConfig", "SparkEngine", "SparkKernel", "StageStats", "spark_session"]

_BIG = 9_223_372_036_854_775_807
_LOCAL_ROWS = 50_000
_PART = pa.field("__part", pa.int32())  # the Spark partition a point's row was computed in
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
    broadcast_rows: int = Field(default=2_000_000, ge=0, description="Tables (dimensions, "
                                "outcomes, other sources) with at most this many rows go "
                                "whole to every task; bigger ones are shuffled by key.")
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
        "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
        # one machine: shuffle files stay on the local disk, compressing them costs more
        **({"spark.shuffle.compress": "false", "spark.shuffle.spill.compress": "false"}
           if master.startswith("local") else {}),
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
        self.stats: list[StageStats] = []  # the last execute's stages

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
        kernel = SparkKernel(session, config.shuffle_partitions, progress,
                             broadcast_rows=config.broadcast_rows)
        computed = kernel.compute(resolved.problem)
        self.stats = kernel.stats
        return output(plan, resolved, computed)


def _reads_labels(stage: _Stage) -> bool:
    """The stage's outcome-derived windows read labels another stage computes."""
    return stage.needs_labels and stage.label is None


class _Stage:
    """The work of one shuffle: the points and the tables matched on one point column."""

    def __init__(self, key: str) -> None:
        self.key = key  # the point column the rows are partitioned by
        self.windows: list[Window] = []
        self.lookups: list[LookupPlan] = []
        self.label: LabelPlan | None = None
        self.on: dict[str, str] = {}  # table -> its column matched with the key
        self.needs_labels = False
        self.folded: list[str] = []  # keys of stages folded into this one



def _stages(problem: PitProblem, small: set[str]) -> list[_Stage]:
    """The stages: one per point column whose rows must meet in one task.

    Windows over the decision source need all of a key's points together, so each of their
    keys is a stage; so is each key matched with a table that is not ``small``. Work that
    reads only small tables (sent whole to every task) needs no partitioning of its own and
    joins another stage: the label the stage with outcome-derived windows (which then reads
    it at once), lookups and windows over small tables the first stage. Stages that compute
    the label come first; stages whose windows read it from another stage after.
    """
    stages: dict[str, _Stage] = {}

    def stage(key: str) -> _Stage:
        return stages.setdefault(key, _Stage(key))

    own = problem.own
    riding: list[Window | LookupPlan] = []
    for w in problem.windows:
        if w.source == own or w.source not in small:
            s = stage(w.key)
            s.windows.append(w)
            s.needs_labels |= w.outcome
            if w.source != own:
                s.on[w.source] = w.source_key
        else:
            riding.append(w)
    for lk in problem.lookups:
        if lk.source in small:
            riding.append(lk)
        else:
            stage(lk.key).lookups.append(lk)
            stage(lk.key).on[lk.source] = lk.on
    label = problem.label
    if label is not None:
        if label.outcome is None or label.outcome in small:
            readers = [s for s in stages.values() if s.needs_labels]
            home = readers[0] if readers else (
                next(iter(stages.values())) if stages else stage("__row"))
        else:
            home = stage(label.keys[0][0])
            home.on[label.outcome] = label.keys[0][1]
        home.label = label
    first = next(iter(stages.values())) if stages else stage("__row")
    for item in riding:
        if isinstance(item, Window):
            first.windows.append(item)
        else:
            first.lookups.append(item)
    return sorted(stages.values(), key=lambda s: s.label is None)


def _determines(points: pa.Table, key: str, other: str) -> bool:
    """Whether each value of ``key`` comes with one value of ``other`` (null counting as
    a value): then partitioning by ``other`` also keeps each ``key``'s rows together."""
    import pyarrow.compute as pc

    pairs = points.select([key, other]).filter(pc.is_valid(points.column(key)))
    if pairs.num_rows == 0:
        return True
    counts = pairs.group_by(key).aggregate([(other, "count_distinct",
                                             pc.CountOptions(mode="all"))])
    return bool(pc.max(counts.column(f"{other}_count_distinct")).as_py() <= 1)


def _co_partition(stages: list[_Stage], points: pa.Table) -> list[_Stage]:
    """Fold a stage into an earlier one whose key its key determines (a card belongs to one
    customer: partitioning by customer keeps every card's rows in one task), saving a
    shuffle. Stages that shuffle a table by their own key stay apart."""
    kept: list[_Stage] = []
    for stage in stages:
        home = next((k for k in kept if not stage.on and not k.on and "__row" not in
                     (k.key, stage.key) and _determines(points, stage.key, k.key)), None)
        if home is None:
            kept.append(stage)
            continue
        home.windows += stage.windows
        home.lookups += stage.lookups
        home.needs_labels |= stage.needs_labels
        home.label = home.label or stage.label
        home.folded.append(stage.key)
    return sorted(kept, key=lambda s: s.label is None)


def _sub_problem(problem: PitProblem, stage: _Stage, points: pa.Table,
                 tables: dict[str, pa.Table]) -> PitProblem:
    return PitProblem(points=points, tables=tables, own=problem.own,
                      windows=tuple(stage.windows), lookups=tuple(stage.lookups),
                      label=stage.label)


def _stage_columns(problem: PitProblem, stage: _Stage) -> dict[str, list[str]]:
    """The columns each input of ``stage`` carries (``""`` = the points)."""
    need = _needed(_sub_problem(problem, stage, problem.points, dict(problem.tables)))
    if stage.needs_labels and stage.label is None:
        need[""] |= {LABEL, KNOWN}
    need[""].add(stage.key)
    out = {}
    for name, columns in need.items():
        table = problem.points if name == "" else problem.table(name)
        out[name] = [c for c in table.column_names if c in columns]
    if stage.needs_labels and stage.label is None:
        out[""] += [LABEL, KNOWN]
    return out


@dataclass(frozen=True)
class StageStats:
    """What one stage did: its key, the rows it shuffled (points and table rows), seconds,
    and the points per partition (largest and median: the skew)."""

    key: str
    rows: int
    seconds: float
    largest_partition: int
    median_partition: float

    @property
    def skew(self) -> float:
        """Largest partition / median partition (1 = even)."""
        return self.largest_partition / self.median_partition if self.median_partition else 1.0


class SparkKernel:
    """Labels, windows and lookups of a :class:`PitProblem` on Spark (see module doc).

    ``stats`` holds a :class:`StageStats` per stage of the last :meth:`compute`.
    """

    name: ClassVar[str] = "spark"

    def __init__(self, session: SparkSession, partitions: int | None = None,
                 progress: Progress | None = None, broadcast_rows: int = 2_000_000) -> None:
        self.spark = session
        self.progress = progress
        self.broadcast_rows = broadcast_rows
        self._local = (session.sparkContext.master or "local").startswith("local")
        self._shared: tuple[pa.Table, DataFrame] | None = None  # the points, in Spark
        self.partitions = partitions or int(
            session.conf.get("spark.sql.shuffle.partitions") or 4)
        self.stats: list[StageStats] = []

    def compute(self, problem: PitProblem) -> pa.Table:
        names = [LABEL, KNOWN] if problem.label is not None else []
        names += [w.name for w in problem.windows] + [lk.name for lk in problem.lookups]
        if not names:
            return pa.table({})
        n = problem.points.num_rows
        folder = Path(tempfile.mkdtemp(prefix="valuechain-spark-"))
        arrays: dict[str, pa.Array] = {}
        self.stats = []
        try:
            small = {name for name, table in problem.tables.items()
                     if name != problem.own and table.num_rows <= self.broadcast_rows}
            stages = _co_partition(_stages(problem, small), problem.points)
            wanted = {c for stage in stages for c in _stage_columns(problem, stage)[""]}
            shared = problem.points.select([c for c in problem.points.column_names
                                            if c in wanted])
            self._shared = None
            for index, stage in enumerate(stages):
                if self.progress:
                    self.progress(f"Spark stage {index + 1}/{len(stages)}: by {stage.key}",
                                  0.3 + 0.55 * index / len(stages))
                points = shared
                if _reads_labels(stage):
                    points = points.append_column(LABEL, arrays[LABEL]).append_column(
                        KNOWN, arrays[KNOWN])
                arrays.update(self._run(problem, stage, points, folder / f"s{index}", n))
        except EngineError:
            raise
        except Exception as err:
            raise EngineError(f"Spark engine failed: {type(err).__name__}: "
                              f"{str(err).strip().splitlines()[0]}") from err
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return pa.table({name: arrays[name] for name in names})

    def _run(self, problem: PitProblem, stage: _Stage, points: pa.Table, folder: Path,
             n: int) -> dict[str, pa.Array]:
        """One stage: inputs to Spark, one shuffle by key, the kernel per partition."""
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import from_arrow_schema

        began = time.perf_counter()
        columns = _stage_columns(problem, stage)
        inputs = {name: (points if name == "" else problem.table(name)).select(cols)
                  for name, cols in columns.items()}
        # the output's types: the kernel on no rows
        empty = _sub_problem(problem, stage, inputs[""].slice(0, 0),
                             {k: v.slice(0, 0) for k, v in inputs.items() if k})
        schema = pa.schema([pa.field("__row", pa.int64()),
                            *DuckDBKernel(threads=1).compute(empty).schema])
        folder.mkdir(parents=True)
        # small tables go to every task whole (as a broadcast join); the points and big
        # tables are shuffled by key
        shuffled = [name for name, table in inputs.items()
                    if name == "" or table.num_rows > self.broadcast_rows]
        broadcast = {name: _ipc(table) for name, table in inputs.items()
                     if name not in shuffled}
        loaded = {name: (self._points(points, folder.parent) if name == "" else
                         self._frame(inputs[name], folder / f"in{i}.parquet"))
                  for i, name in enumerate(shuffled)}
        loaded[""] = loaded[""].select(*[_q(c) for c in columns[""]])
        key_type = loaded[""].schema[stage.key].dataType
        frames = []
        for i, (name, frame) in enumerate(loaded.items()):
            on = stage.key if name == "" else stage.on[name]
            frames.append(frame.select(
                F.lit(i).cast("int").alias("__src"), F.col(_q(on)).cast(key_type).alias("__pk"),
                *[F.col(_q(c)).alias(f"{i}:{c}") for c in frame.columns]))
        union = frames[0]
        for frame in frames[1:]:
            union = union.unionByName(frame, allowMissingColumns=True)
        run = _PartitionRun(problem=_sub_problem(problem, stage, inputs[""].slice(0, 0), {}),
                            inputs=shuffled, schema=schema,
                            broadcast=self.spark.sparkContext.broadcast(broadcast))
        result = (union.repartition(self.partitions, "__pk")
                  .mapInArrow(run, from_arrow_schema(schema.append(_PART))))
        if inputs[""].num_rows <= _LOCAL_ROWS or not self._local:
            got = result.toArrow()  # on a cluster: through the driver, no shared folder
        else:  # through files: a big result need not fit the driver's JVM heap
            result.write.parquet(str(folder / "out"))
            got = pq.read_table(folder / "out")
        run.broadcast.unpersist()
        sizes = np.bincount(np.asarray(got.column("__part").to_numpy(), dtype=np.int64),
                            minlength=self.partitions)
        self.stats.append(StageStats(
            key=" + ".join([stage.key, *stage.folded]),
            rows=sum(t.num_rows for t in inputs.values()),
            seconds=time.perf_counter() - began, largest_partition=int(sizes.max()),
            median_partition=float(np.median(sizes))))
        return _in_point_order(got.select(schema.names).cast(schema), n, schema.names[1:])

    def _points(self, points: pa.Table, folder: Path) -> DataFrame:
        """The points as one Spark DataFrame, written once for the stages that share them
        (stages select their columns)."""
        if self._shared is None or self._shared[0] is not points:
            self._shared = (points, self._frame(points, folder / f"points{id(points)}.parquet"))
        return self._shared[1]

    def _frame(self, table: pa.Table, path: Path) -> DataFrame:
        if table.num_rows <= _LOCAL_ROWS or not self._local:
            # a small table travels in the plan (no file scan); on a cluster the executors
            # cannot read the driver's temporary folder
            return self.spark.createDataFrame(table)
        pq.write_table(table, path)
        return self.spark.read.parquet(str(path))


class _PartitionRun:
    """The per-partition function: the single-machine kernel over one partition's rows."""

    def __init__(self, problem: PitProblem, inputs: list[str], schema: pa.Schema,
                 broadcast: Broadcast[dict[str, bytes]]) -> None:
        self.problem = problem
        self.inputs = inputs  # the shuffled inputs, by tag ("" = the points)
        self.schema = schema
        self.broadcast = broadcast  # the small tables, whole, as Arrow IPC

    def __call__(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        got = list(batches)
        if not got:
            return
        rows = pa.Table.from_batches(got)
        source = rows.column("__src")
        parts: dict[str, pa.Table] = {}
        for i, name in enumerate(self.inputs):
            mine = rows.filter(pc.equal(source, i))
            prefix = f"{i}:"
            cols = [c for c in rows.column_names if c.startswith(prefix)]
            parts[name] = mine.select(cols).rename_columns([c[len(prefix):] for c in cols])
        points = parts.pop("")
        if points.num_rows == 0:
            return
        for name, data in self.broadcast.value.items():
            parts[name] = _matching(pa.ipc.open_stream(data).read_all(), points,
                                    _matches(self.problem, name))
        rows = points.column("__row").cast(pa.int64())  # kernels want positions as __row
        points = points.set_column(points.schema.get_field_index("__row"), "__row",
                                   pa.array(np.arange(points.num_rows, dtype=np.int64)))
        p = self.problem
        computed = DuckDBKernel(threads=1).compute(PitProblem(
            points=points, tables=parts, own=p.own, windows=p.windows, lookups=p.lookups,
            label=p.label))
        from pyspark import TaskContext

        context = TaskContext.get()
        part = pa.array(np.full(len(rows), context.partitionId() if context else 0, np.int32))
        out = computed.add_column(0, "__row", rows).cast(self.schema).append_column(_PART, part)
        yield from out.to_batches(max_chunksize=65_536)


def _matches(problem: PitProblem, name: str) -> list[tuple[str, str]]:
    """The (point column, table column) pairs that ``problem`` matches table ``name`` on."""
    pairs = [(w.key, w.source_key) for w in problem.windows if w.source == name]
    pairs += [(lk.key, lk.on) for lk in problem.lookups if lk.source == name]
    label = problem.label
    if label is not None and label.outcome == name:
        pairs.append(label.keys[0])
    return pairs


def _matching(table: pa.Table, points: pa.Table, pairs: list[tuple[str, str]]) -> pa.Table:
    """The rows of a broadcast ``table`` that some point matches (the rest cannot count)."""
    import pyarrow.compute as pc

    keep = None
    for key, on in pairs:
        column = table.column(on)
        wanted = pc.unique(points.column(key).drop_null())
        if wanted.type != column.type:
            try:
                wanted = pc.cast(wanted, column.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return table  # the kernel will compare the types itself
        hit = pc.is_in(column, value_set=wanted)
        keep = hit if keep is None else pc.or_(keep, hit)
    return table if keep is None else table.filter(keep)


def _ipc(table: pa.Table) -> bytes:
    """``table`` as Arrow IPC stream bytes."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _needed(problem: PitProblem) -> dict[str, set[str]]:
    """The columns each table (``""`` = the points) must carry."""
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


def _in_point_order(table: pa.Table, n: int, names: list[str]) -> dict[str, pa.Array]:
    """The ``__row``-keyed result in points order (rows absent become null)."""
    rows = np.asarray(table.column("__row").to_numpy(), dtype=np.int64)
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows), dtype=np.int64)
    take = pa.array(position, mask=position < 0)
    return {name: table.column(name).combine_chunks().take(take) for name in names}
