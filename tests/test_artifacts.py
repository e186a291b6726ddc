"""valuechain.artifacts: the one way a stage output is opened, and runs/latest.

Each failure names the file, what is wrong with it and the command that writes it again.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from valuechain.artifacts import (
    damaged,
    fix_command,
    open_artifact,
    project_relative,
    writer_of,
)
from valuechain.errors import ArtifactError, DataError
from valuechain.train.runs import latest_run, list_runs

REBUILD = "valuechain train --spec shop"


def _error(path: Path, kind: str, **kw: object) -> str:
    with pytest.raises(ArtifactError) as raised:
        open_artifact(path, kind, rebuild=REBUILD, **kw)  # type: ignore[call-overload]
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and f"`{REBUILD}`" in message, message
    assert isinstance(raised.value, DataError)  # an ArtifactError is a DataError
    return message


def test_reads_each_kind(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"x": [1, 2]}')
    (tmp_path / "a.yaml").write_text("kind: three_band\nreview_at: 0.2\n")
    (tmp_path / "latest").write_text("r1\n")
    pd.DataFrame({"decision_id": ["a", "b"], "score": [0.1, 0.9]}).to_parquet(
        tmp_path / "a.parquet", index=False)
    assert open_artifact(tmp_path / "a.json", "json", rebuild=REBUILD, expect=dict) == {
        "x": [1, 2]}
    assert open_artifact(tmp_path / "a.yaml", "yaml", rebuild=REBUILD)["review_at"] == 0.2
    assert open_artifact(tmp_path / "latest", "text", rebuild=REBUILD) == "r1\n"
    table = open_artifact(tmp_path / "a.parquet", "parquet", rebuild=REBUILD,
                          columns=["decision_id"])
    assert list(table.columns) == ["decision_id", "score"] and len(table) == 2
    schema = open_artifact(tmp_path / "a.parquet", "schema", rebuild=REBUILD)
    assert isinstance(schema, pa.Schema) and schema.names == ["decision_id", "score"]


def test_missing_optional_and_directory(tmp_path: Path) -> None:
    message = _error(tmp_path / "metrics.json", "json", what="the training run")
    assert "the training run is missing" in message
    assert open_artifact(tmp_path / "decide.json", "json", rebuild=REBUILD,
                         optional=True) is None
    (tmp_path / "metrics.json").mkdir()
    message = _error(tmp_path / "metrics.json", "json", what="the training run")
    assert "a directory stands where the training run should be" in message


@pytest.mark.parametrize(("content", "kind", "expect", "needle"), [
    (b"", "json", None, "(empty)"),
    (b'{"run_id": "r1"', "json", None, "not valid JSON"),
    (b"\xff\xfe{}", "json", None, "not UTF-8 text: byte 0"),
    (b"[1, 2]", "json", dict, "expected a mapping (JSON object), found list [1, 2]"),
    (b"true", "json", dict, "expected a mapping (JSON object), found bool"),
    (b"null", "json", dict, "found nothing"),
    (b"kind: [\n", "yaml", None, "not valid YAML"),
    (b"- a\n", "yaml", dict, "expected a mapping"),
    (b"PAR1 not parquet", "parquet", None, "not a readable Parquet file"),
    (b"", "schema", None, "not a readable Parquet file"),
], ids=["empty", "cut_short", "not_utf8", "a_list", "a_bool", "null", "yaml_syntax",
        "yaml_list", "not_parquet", "empty_parquet"])
def test_damaged_files(content: bytes, kind: str, expect: type | None, needle: str,
                       tmp_path: Path) -> None:
    path = tmp_path / "artifact"
    path.write_bytes(content)
    message = _error(path, kind, expect=expect, what="the thing")
    assert "the thing is damaged" in message and needle in message, message
    assert "cut short, edited, or written by another version of valuechain" in message


def test_truncated_parquet_and_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "predictions_test.parquet"
    pd.DataFrame({"decision_id": list("abcdef"), "score": range(6)}).to_parquet(path)
    message = _error(path, "parquet", columns=["decision_id", "label", "cost"])
    assert "lacks the column(s) ['label', 'cost']" in message and "'score'" in message
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "not a readable Parquet file" in _error(path, "parquet")


def test_helpers() -> None:
    assert fix_command(Path("shop")) == "valuechain train --spec shop"
    assert fix_command(None, "decide") == "valuechain decide --spec DIR"
    assert writer_of("w/build/manifest.json") == "build"
    assert writer_of("w/runs/r1/candidates/x/candidate.json") == "train"
    assert writer_of("w/runs/r1/policy.yaml") == "decide"
    assert writer_of("w/runs/latest") == "train"
    assert writer_of("w/notes.md") is None
    error = damaged("a.json", "key `x` is missing", "valuechain audit", what="the audit")
    assert str(error).startswith("a.json: the audit is damaged (key `x` is missing)")


def test_project_relative(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    (root / "data").mkdir(parents=True)
    assert project_relative(root / "data" / "t.parquet", root) == "data/t.parquet"
    assert project_relative(str(root / "data" / ".." / "spec.yaml"), root) == "spec.yaml"
    outside = tmp_path / "elsewhere" / "t.parquet"
    assert project_relative(outside, root) == outside.as_posix()


# ------------------------------------------------------------------------ runs/latest
def _runs(tmp_path: Path, *ids: str) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    for run_id in ids:
        (runs / run_id).mkdir()
        (runs / run_id / "metrics.json").write_text(f'{{"run_id": "{run_id}"}}')
    return runs


def test_latest_without_a_pointer_is_the_newest_run(tmp_path: Path) -> None:
    assert latest_run(_runs(tmp_path)) is None
    runs = tmp_path / "runs"
    for run_id in ("20250101-000000-aaaaaa", "20250102-000000-bbbbbb"):
        (runs / run_id).mkdir()
        (runs / run_id / "metrics.json").write_text("{}")
    found = latest_run(runs)
    assert found is not None and found.name == "20250102-000000-bbbbbb"


def test_latest_naming_a_missing_run_names_it_and_the_fix(tmp_path: Path) -> None:
    runs = _runs(tmp_path, "20250101-000000-aaaaaa", "20250102-000000-bbbbbb")
    (runs / "latest").write_text("20250301-000000-gone00\n")
    with pytest.raises(ArtifactError) as raised:
        latest_run(runs, root=Path("shop"))
    message = str(raised.value)
    for needle in (f"{runs / 'latest'}: names run '20250301-000000-gone00'",
                   f"{runs / '20250301-000000-gone00'} is missing (deleted or moved)",
                   "Run `valuechain train --spec shop` to train a new run",
                   "the newest is '20250102-000000-bbbbbb'", "valuechain runs"):
        assert needle in message, message
    (runs / "20250101-000000-aaaaaa").rename(runs / "x")
    (runs / "20250102-000000-bbbbbb").rename(runs / "y")
    with pytest.raises(ArtifactError, match=r"to train a new run\.$"):
        latest_run(runs)  # no run left: only the command


@pytest.mark.parametrize("content", ["", "\n", "../other", "a/b", "..", "r1\nr2"])
def test_latest_that_names_no_run(content: str, tmp_path: Path) -> None:
    runs = _runs(tmp_path, "r1")
    (runs / "latest").write_text(content)
    with pytest.raises(ArtifactError, match="it should hold one run id"):
        latest_run(runs)


def test_list_runs_skips_damaged_metrics(tmp_path: Path) -> None:
    runs = _runs(tmp_path, "20250101-000000-aaaaaa", "20250102-000000-bbbbbb")
    (runs / "20250102-000000-bbbbbb" / "metrics.json").write_text("{not")
    assert [r["run_id"] for r in list_runs(runs)] == ["20250101-000000-aaaaaa"]
