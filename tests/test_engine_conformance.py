"""One conformance suite for every engine: reference, DuckDB, Spark (and a toy third party).

Every check of :mod:`valuechain.testing` (the property-based comparisons with the reference
and the hand-computed cases) runs over every engine; Spark with few Hypothesis examples
(``VALUECHAIN_SPARK_EXAMPLES``, default 2; a slow test runs more). Then the frames of real
specs: the fraud demo identical between DuckDB and Spark, the handbook frame equal to 1e-9 on
every row (when ../shared/data/fraud_handbook is present), and a bad Spark setup explained.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from valuechain.data.build import build_frame
from valuechain.data.engines import Engine, get_engine
from valuechain.errors import EngineError
from valuechain.spec import load_spec
from valuechain.testing import engine_checks

ROOT = Path(__file__).resolve().parents[1]
HANDBOOK = ROOT.parent / "shared" / "data" / "fraud_handbook" / "transactions.parquet"
TOY = "tests.toy_engine:ToyEngine"
# One Spark session for the test session: two local cores, few shuffle partitions, no UI.
SPARK = {"type": "spark", "master": "local[2]", "shuffle_partitions": 2}
# Hypothesis examples per property check; None = the check's own count. The reference is
# compared with itself (a few prove it runs end to end); Spark pays ~1-5 s per example.
EXAMPLES: dict[str, int | None] = {
    "duckdb": None, "reference": 8, "toy": 60,
    "spark": int(os.environ.get("VALUECHAIN_SPARK_EXAMPLES", "2")),
}


def _factory(name: str) -> Callable[[], Engine]:
    if name == "duckdb":
        return lambda: get_engine({"type": "duckdb", "threads": 1})
    if name == "spark":  # the small tables go whole to every task
        return lambda: get_engine(SPARK)
    if name == "spark-shuffled":  # every table is shuffled by key with the points
        return lambda: get_engine({**SPARK, "broadcast_rows": 0})
    return lambda: get_engine(TOY if name == "toy" else name)


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from valuechain.data.engines.spark import SparkConfig, spark_session

    session = spark_session(SparkConfig.model_validate(SPARK))
    yield session
    session.stop()


@pytest.mark.parametrize("check", engine_checks(), ids=lambda c: c.name)
@pytest.mark.parametrize("engine", ["reference", "duckdb", "toy"])
def test_conformance(engine: str, check) -> None:  # type: ignore[no-untyped-def]
    check.run(_factory(engine), EXAMPLES[engine])


@pytest.mark.parametrize("check", engine_checks(), ids=lambda c: c.name)
def test_spark_conformance(spark: object, check) -> None:  # type: ignore[no-untyped-def]
    check.run(_factory("spark"), EXAMPLES["spark"])


PROPERTY_CHECKS = [c for c in engine_checks() if c.name in (
    "own_source_windows", "other_sources_labels_lookups", "scheduled_points")]


@pytest.mark.slow
@pytest.mark.parametrize("check", PROPERTY_CHECKS, ids=lambda c: c.name)
def test_spark_conformance_more_examples(spark: object, check) -> None:  # type: ignore[no-untyped-def]
    """More examples, with every table shuffled (the path of tables too big to broadcast)."""
    check.run(_factory("spark-shuffled"), 12)


def _rows(path: Path, key: str) -> dict[str, list[object]]:
    table = pq.read_table(path)
    table = table.take(pa.compute.sort_indices(table, [(key, "ascending")]))
    return table.to_pydict()  # type: ignore[no-any-return]


def _assert_frames_equal(got: dict[str, list[object]], want: dict[str, list[object]],
                         tol: float) -> None:
    assert list(got) == list(want), f"columns {list(got)} != {list(want)}"
    for name, values in want.items():
        other = got[name]
        assert len(other) == len(values), name
        for i, (a, b) in enumerate(zip(other, values, strict=True)):
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and (
                    isinstance(a, float) or isinstance(b, float)):
                assert abs(float(a) - float(b)) <= tol * (1 + abs(float(b))), \
                    f"{name} row {i}: spark {a}, duckdb {b}"
            else:
                assert a == b, f"{name} row {i}: spark {a!r}, duckdb {b!r}"


def test_fraud_demo_frames_identical(spark: object, tmp_path: Path) -> None:
    """The fraud example's frame (windows with lags, outcome-derived risk, row features):
    Spark and DuckDB give the same decisions, labels and features (floats to 1e-12)."""
    from valuechain.demo.fraud import generate_fraud

    project = tmp_path / "fraud"
    project.mkdir()
    (project / "valuechain.yaml").write_text(
        (ROOT / "examples" / "fraud" / "valuechain.yaml").read_text())
    generate_fraud(project / "data", rows=6_000, seed=3)
    loaded = load_spec(project)
    duck = build_frame(loaded, engine={"type": "duckdb", "threads": 1})
    sparked = build_frame(loaded, engine=SPARK, force=True)
    assert sparked.manifest["engine"] == "spark"
    want, got = _rows(duck.frame, "decision_id"), _rows(sparked.frame, "decision_id")
    assert len(want["decision_id"]) > 1_000
    _assert_frames_equal(got, want, 1e-12)
    assert sparked.manifest["rows"] == duck.manifest["rows"]
    assert sparked.manifest["label_delay"] == duck.manifest["label_delay"]


@pytest.mark.slow
def test_handbook_frame_on_spark_equals_duckdb_to_1e9(spark: object, tmp_path: Path) -> None:
    if not HANDBOOK.exists():
        pytest.skip(f"{HANDBOOK} is not present")
    project = tmp_path / "handbook"
    project.mkdir()
    spec = yaml.safe_load((ROOT / "examples" / "fraud-handbook" / "valuechain.yaml").read_text())
    spec["sources"]["transactions"]["path"] = str(HANDBOOK)
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    loaded = load_spec(project)
    as_of = datetime(2030, 1, 1)  # keep every row
    duck = build_frame(loaded, engine={"type": "duckdb"}, as_of=as_of)
    sparked = build_frame(loaded, engine=SPARK, as_of=as_of, force=True)
    want = pq.read_table(duck.frame).to_pandas().set_index("decision_id").sort_index()
    got = pq.read_table(sparked.frame).to_pandas().set_index("decision_id").sort_index()
    assert len(got) == len(want) == 1_754_155
    assert list(got.columns) == list(want.columns)
    assert (got.index == want.index).all()
    for column in want.columns:
        if want[column].dtype.kind in "fiub":
            diff = (got[column].astype(float) - want[column].astype(float)).abs().max()
            assert diff <= 1e-9, (column, diff)
        else:
            assert (got[column] == want[column]).all(), column


def test_bad_master_url_is_one_paragraph_with_the_fix() -> None:
    from valuechain.data.engines.spark import SparkConfig, spark_session

    with pytest.raises(EngineError) as err:
        spark_session(SparkConfig.model_validate({"type": "spark", "master": "locale[2]"}))
    message = str(err.value)
    assert "master 'locale[2]'" in message and "local[2]" in message
    assert "VALUECHAIN_SPARK_MASTER" in message and "\n" not in message


def test_missing_java_is_one_paragraph_with_the_fix(tmp_path: Path) -> None:
    """Without Java the engine says how to install it (in a fresh process: no JVM yet)."""
    code = (
        "from valuechain.data.engines import get_engine\n"
        "from valuechain.data.engines.spark import spark_session\n"
        "from valuechain.errors import EngineError\n"
        "try:\n"
        "    spark_session(get_engine('spark').config)\n"
        "except EngineError as err:\n"
        "    print('ERROR', err)\n"
    )
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java"),
           "PATH": str(tmp_path), "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    out = done.stdout.strip()
    assert out.startswith("ERROR The Spark engine needs a Java runtime"), done.stderr[-2000:]
    assert "openjdk-17-jre-headless" in out and "--engine duckdb" in out
    assert out.count("\n") == 0


def test_spark_kernel_through_the_driver_equals_duckdb(spark: object) -> None:
    """On a cluster (no shared temporary folder) tables go in with createDataFrame and come
    back with toArrow; a problem with windows, a lookup and a label (stages folded by a key
    dependency, a table broadcast) gives the DuckDB kernel's columns that way too."""
    from valuechain.data.engines.duckdb import DuckDBKernel
    from valuechain.data.engines.spark import SparkKernel
    from valuechain.data.pit import LabelPlan, LookupPlan, PitProblem, Window

    n = 60_000  # above the inline limit, so the local path would use files
    rows = list(range(n))
    points = pa.table({"__row": rows, "__t": [r * 1000 for r in rows], "__o": rows,
                       "cust": [r % 97 for r in rows], "card": [r % 194 for r in rows],
                       "amount": [float(r % 13) for r in rows]})
    dim = pa.table({"__t": [None, 5_000_000], "__o": [0, 1], "id": [1, 1], "tier": ["a", "b"]})
    outcomes = pa.table({"__t": [2_000_000, 9_000_000], "__o": [0, 1], "__e": [1_500, 8_000],
                         "cust": [1, 2]})
    problem = PitProblem(points=points, tables={"d": dim, "o": outcomes}, own="tx", windows=(
        Window(name="n", source="tx", key="cust", agg="count", window_us=50_000),
        Window(name="m", source="tx", key="card", agg="max", value="amount", window_us=90_000),
        Window(name="r", source="tx", key="cust", agg="rate", window_us=10**9, outcome=True)),
        lookups=(LookupPlan(name="tier", source="d", key="cust", on="id", column="tier"),),
        label=LabelPlan(kind="binary", horizon_us=10_000, outcome="o",
                        keys=(("cust", "cust"),)))
    kernel = SparkKernel(spark, 2)  # type: ignore[arg-type]
    kernel._local = False
    got = kernel.compute(problem)
    assert got.equals(DuckDBKernel(threads=1).compute(problem))
    assert [s.key for s in kernel.stats] == ["cust + card"]
