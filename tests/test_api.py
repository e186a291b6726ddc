"""The Python API: paths or loaded specs in, typed results out, nothing printed, errors mapped."""

from __future__ import annotations

import doctest
import errno
import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import valuechain as vc
from valuechain.api import _boundary, _mapped

from .conftest import ROOT


@pytest.fixture()
def project(fraud_project: Path, tmp_path: Path) -> Path:
    """A private copy of the 20k-transaction fraud project."""
    shutil.copy(fraud_project / "valuechain.yaml", tmp_path / "valuechain.yaml")
    shutil.copytree(fraud_project / "data", tmp_path / "data")
    return tmp_path


def test_stages_take_a_path_or_a_loaded_spec_print_nothing_and_write_outputs(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loaded = vc.load_spec(project)
    assert vc.load_spec(loaded) is loaded
    assert vc.load_spec(str(project / "valuechain.yaml")).path == loaded.path
    checked = vc.check(project)
    assert isinstance(checked, vc.CheckReport) and checked.passed
    assert (loaded.workspace / "check.json").exists()
    seen: list[tuple[str, float]] = []
    built = vc.build(loaded, progress=lambda stage, done: seen.append((stage, done)))
    assert isinstance(built, vc.BuildResult) and built.rows.total == 20_000
    assert seen and seen[-1][1] == 1.0
    assert vc.build(str(project)).cached is True
    audited = vc.audit(loaded)
    assert isinstance(audited, vc.AuditResult)
    assert (loaded.workspace / "audit.json").exists()
    assert audited.context["frame_fingerprint"] == built.fingerprint
    if audited.findings:
        rows = audited.explain(audited.findings[0].id)
        assert isinstance(rows, pd.DataFrame)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_argument_errors_name_the_argument(project: Path) -> None:
    with pytest.raises(vc.SpecError, match=r"`spec`: expected a path"):
        vc.build(42)  # type: ignore[arg-type]
    with pytest.raises(vc.SpecError, match=r"`kind` 'bands'"):
        vc.decide(project, kind="bands")  # type: ignore[arg-type]
    with pytest.raises(vc.SpecError, match=r"`objective` 'profit'"):
        vc.decide(project, objective="profit")  # type: ignore[arg-type]
    with pytest.raises(vc.SpecError, match=r"either `spec`.*or `frame`"):
        vc.audit(project, frame=pd.DataFrame())
    with pytest.raises(vc.SpecError, match=r"`frame` needs `time_col` and `label_col`"):
        vc.audit(frame=pd.DataFrame({"t": [1]}))
    with pytest.raises(vc.SpecError, match=r"pass `spec`"):
        vc.audit()
    with pytest.raises(vc.ModelError, match=r"`estimators`: expected a mapping"):
        vc.train(project, estimators=["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(vc.DataError, match=r"`finding_id` 'nope': no such finding"):
        vc.AuditResult(findings=()).explain("nope")
    with pytest.raises(vc.ArtifactError, match=r"valuechain train"):
        vc.decide(project)


def test_audit_takes_a_dataframe_or_a_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    table = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3000, freq="h"),
                          "decision_id": [f"d{i}" for i in range(3000)],
                          "noise": rng.normal(size=3000), "copy": y, "y": y})
    from_frame = vc.audit(frame=table, time_col="t", label_col="y")
    assert {f.id for f in from_frame.findings if f.severity == "critical"} >= {
        "single_feature_power:copy"}
    assert not any("decision_id" in f.features for f in from_frame.findings)
    table.to_parquet(tmp_path / "flat.parquet")
    from_file = vc.audit(frame=tmp_path / "flat.parquet", time_col="t", label_col="y")
    assert [f.id for f in from_file.findings] == [f.id for f in from_frame.findings]
    assert from_file.context["frame"].endswith("flat.parquet")


def test_library_errors_are_mapped_at_the_boundary(tmp_path: Path) -> None:
    failing = pytest.raises(vc.EngineError, match=r"build: DuckDB failed \(CatalogException")
    with failing as info, _boundary("build"), duckdb.connect() as con:
        con.sql("SELECT * FROM no_such_table")
    assert isinstance(info.value.__cause__, duckdb.Error)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nope")
    with pytest.raises(vc.DataError, match=r"audit: DuckDB cannot read the data"), (
            _boundary("audit")), duckdb.connect() as con:
        con.sql(f"SELECT * FROM read_parquet('{tmp_path / 'bad.parquet'}')").fetchall()
    missing = OSError(errno.EACCES, "Permission denied", str(tmp_path / "frame.parquet"))
    mapped = _mapped(missing, "train")
    assert isinstance(mapped, vc.ArtifactError) and "frame.parquet (Permission denied)" in str(
        mapped)
    assert _mapped(KeyError("bug"), "train") is None  # bugs stay bugs
    with pytest.raises(KeyError), _boundary("train"):
        raise KeyError("bug")


@pytest.mark.slow
def test_python_walkthrough_runs_as_a_doctest(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/python.md: generate, check, build, audit, train (with your own estimators),
    decide, report and price a policy from plain arrays, under a minute."""
    monkeypatch.chdir(ROOT)
    started = time.perf_counter()
    result = doctest.testfile(str(ROOT / "docs" / "python.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                              raise_on_error=False, verbose=False, report=True)
    seconds = time.perf_counter() - started
    assert result.attempted >= 60
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
    print(f"docs/python.md: {result.attempted} examples in {seconds:.1f} s")
