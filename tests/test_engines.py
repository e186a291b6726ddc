"""The engine boundary: the registry, configs, third-party class paths and a broken engine
failing the conformance suite (the suite itself runs over every engine in
tests/test_engine_conformance.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from valuechain.data.build import build_frame
from valuechain.data.engines import ENGINES, get_engine, register_engine
from valuechain.errors import EngineError, SpecError
from valuechain.expressions import parse_expression
from valuechain.spec import load_spec
from valuechain.testing import check_engine, engine_checks

from .toy_engine import ToyEngine, interpret

TOY = "tests.toy_engine:ToyEngine"


class _ReversedTies(ToyEngine):
    """A broken engine: tied events ordered against their keys."""

    name = "broken"

    def _tie(self, table: pa.Table, keys: tuple[str, ...]) -> list[int]:
        return [-o for o in super()._tie(table, keys)]


def test_a_broken_engine_fails_naming_the_check() -> None:
    checks = {c.name: c for c in engine_checks()}
    with pytest.raises(AssertionError) as err:
        checks["tied_events"].run(_ReversedTies)
    message = str(err.value)
    assert "conformance check 'tied_events' failed for engine 'broken'" in message
    assert "expected [10, 110, 111]" in message
    with pytest.raises(AssertionError, match="check 'own_source_windows' failed"):
        check_engine(_ReversedTies, max_examples=150, skip=["tied_events"])


def test_check_engine_runs_every_check() -> None:
    seen: list[str] = []

    class Counting(ToyEngine):
        def execute(self, plan, progress=None):  # type: ignore[no-untyped-def]
            seen.append(plan.locator.file)
            return super().execute(plan, progress)

    check_engine(Counting, max_examples=2)
    # at least one example of each of the 3 property checks, and the 6 explicit cases
    assert len(seen) >= 3 + 6


def test_registry_short_names_and_class_paths(tmp_path: Path) -> None:
    assert sorted(ENGINES) == ["duckdb", "reference", "spark"]
    assert get_engine(TOY).name == "toy"
    register_engine("toy", TOY)
    try:
        assert get_engine({"type": "toy"}).name == "toy"
        with pytest.raises(SpecError, match="engine 'toy' does not take these settings"):
            get_engine({"type": "toy", "threads": 2})
        project = _project(tmp_path, engine={"type": "toy"})
        built = build_frame(load_spec(project), as_of=datetime(2030, 1, 1))
        assert built.manifest["engine"] == "toy"
        reference = build_frame(load_spec(project), engine="reference", force=True,
                                as_of=datetime(2030, 1, 1))
        # same frame (the toy's row features are int64 where DuckDB's are int32)
        assert (pq.read_table(reference.frame).to_pylist()
                == pq.read_table(built.frame).to_pylist())
    finally:
        del ENGINES["toy"]
    with pytest.raises(SpecError, match="unknown engine 'toy'"):
        get_engine("toy")
    with pytest.raises(EngineError, match="is not an engine"):
        get_engine("valuechain.data.plan:Plan")


def _project(folder: Path, engine: dict[str, object]) -> Path:
    pq.write_table(pa.table({
        "id": [1, 2, 3], "ts": pa.array([0, 3_600_000_000, 7_200_000_000], pa.timestamp("us")),
        "card": [7, 7, 8], "amount": [10.0, 20.0, 5.0], "y": [0, 1, 0]}), folder / "tx.parquet")
    spec = {
        "project": {"name": "toy"},
        "decision": {"statement": "s", "owner": "o", "moment": "m", "actions": ["a", "b"]},
        "decision_points": {"source": "tx"},
        "sources": {"tx": {"path": "tx.parquet", "keys": ["id"], "event_time": "ts"}},
        "label": {"column": "y", "horizon": "1h"},
        "features": [{"name": "big", "expr": "CASE WHEN amount > 15 THEN 1 ELSE 0 END"},
                     {"name": "n_2h", "aggregate": "count", "key": "card", "window": "2h"}],
        "engine": engine,
    }
    (folder / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    return folder


def test_toy_interpreter_refuses_what_it_does_not_know() -> None:
    expr = parse_expression("regexp_matches(s, '^a')", where="f")
    with pytest.raises(EngineError, match="unsupported function or operator"):
        interpret(expr.tree, {"s": "abc"})
    assert interpret(parse_expression("NULL > 1 OR TRUE", where="f").tree, {}) is True
    assert interpret(parse_expression("NULL > 1 AND TRUE", where="f").tree, {}) is None


def test_engines_doc_examples_run() -> None:
    import doctest

    root = Path(__file__).resolve().parents[1]
    result = doctest.testfile(str(root / "docs" / "engines.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0
