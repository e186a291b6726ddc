"""A corpus of bad inputs, as users make them: never a traceback, always the file and field.

Each case runs one command through the CLI and asserts its exit code (2 for a user mistake,
3 for an internal error), that no Python traceback reaches the user, and that the message names
the file and the field (or the artifact and the command that writes it again). One small
fraud world is generated, built, trained and decided once per module; each damaged-artifact
case works on a fresh copy of its workspace.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from valuechain.cli import app

from .conftest import small_fraud_project

runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def text_of(result: Result) -> str:
    out = result.output
    with contextlib.suppress(ValueError):  # stderr not captured separately
        out += result.stderr
    return out


def assert_clear(result: Result, code: int, *needles: str) -> str:
    text = text_of(result)
    assert result.exit_code == code, text
    assert "Traceback" not in text, text
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"unexpected exception {result.exception!r}: {text}")
    flat = " ".join(text.split())
    dense = "".join(text.split())  # a long path wrapped by the 80-column terminal
    for needle in needles:
        assert needle in flat or "".join(needle.split()) in dense, f"{needle!r} not in {flat}"
    return flat


# ------------------------------------------------------------------------ the small world
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A trained and decided fraud project of 60,000 payments (its workspace kept as a copy)."""
    root = tmp_path_factory.mktemp("corpus")
    project = small_fraud_project(root / "project", min_positives=3)
    done = run("generate", "fraud", "--out", str(project / "data"), "--rows", "60000", "--json")
    assert done.exit_code == 0, done.output
    for args in (("build",), ("train", "--candidates", "prior,rules,logistic"), ("decide",)):
        done = run(*args, "--spec", str(project), "--json")
        assert done.exit_code == 0, done.output
    shutil.copytree(project / ".valuechain", root / "workspace.bak")
    yield project


@pytest.fixture
def project(world: Path) -> Path:
    """The world's project with its trained workspace restored (cases damage it in place)."""
    shutil.rmtree(world / ".valuechain", ignore_errors=True)
    shutil.copytree(world.parent / "workspace.bak", world / ".valuechain")
    return world


@pytest.fixture
def fresh(world: Path, tmp_path: Path) -> Path:
    """The same spec and data, nothing built yet."""
    shutil.copy(world / "valuechain.yaml", tmp_path / "valuechain.yaml")
    (tmp_path / "data").symlink_to(world / "data")
    return tmp_path


def spec_text(world: Path) -> str:
    return (world / "valuechain.yaml").read_text()


# ------------------------------------------------------------------------ spec
def _edit(data: dict, path: tuple, value: object) -> dict:
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


SPEC_EDITS: list[tuple[str, tuple, object, tuple[str, ...]]] = [
    ("huge_horizon", ("label", "horizon"), "99999999999999999d",
     ("valuechain.yaml", "label.horizon", "longer than 36,500 days")),
    ("zero_horizon", ("label", "horizon"), "0d",
     ("valuechain.yaml", "label.horizon", "longer than zero")),
    ("horizon_without_unit", ("label", "horizon"), 7, ("valuechain.yaml", "label.horizon")),
    ("infinite_latency", ("decision", "latency_budget_ms"), float("inf"),
     ("valuechain.yaml", "decision.latency_budget_ms", "finite")),
    ("nan_latency", ("decision", "latency_budget_ms"), float("nan"),
     ("valuechain.yaml", "decision.latency_budget_ms")),
    ("huge_capacity", ("value", "capacity", "review", "limit"), 10**30,
     ("valuechain.yaml", "value.capacity.review.limit", "1000000000000")),
    ("negative_capacity", ("value", "capacity", "review", "limit"), -1,
     ("valuechain.yaml", "value.capacity.review.limit")),
    ("zero_capacity_period", ("value", "capacity", "review", "per"), "0d",
     ("valuechain.yaml", "value.capacity.review.per", "longer than zero")),
    ("huge_capacity_period", ("value", "capacity", "review", "per"), "99999999999w",
     ("valuechain.yaml", "value.capacity.review.per")),
    ("huge_embargo", ("split", "embargo"), "1e400d", ("valuechain.yaml", "split.embargo")),
    ("unknown_field", ("label", "horizn"), "7d",
     ("valuechain.yaml", "label.horizn", "check its spelling")),
    ("percentile_above_one", ("value", "capacity", "review", "percentile"), 2,
     ("valuechain.yaml", "value.capacity.review.percentile")),
    ("horizon_in_months", ("label", "horizon"), "3mo",
     ("valuechain.yaml", "label.horizon", "write days")),
    ("capacity_as_text", ("value", "capacity", "review", "limit"), "lots",
     ("valuechain.yaml", "value.capacity.review.limit")),
    ("negative_latency", ("decision", "latency_budget_ms"), -5,
     ("valuechain.yaml", "decision.latency_budget_ms")),
    ("no_actions", ("decision", "actions"), [], ("valuechain.yaml", "decision.actions")),
    ("feature_is_a_number", ("features", 0), 3,
     ("valuechain.yaml", "features.0", "expected a feature")),
    ("unknown_label_source", ("label", "source"), "chargebackz",
     ("valuechain.yaml", "label.source", "unknown source 'chargebackz'")),
]


@pytest.mark.parametrize("case", SPEC_EDITS, ids=[c[0] for c in SPEC_EDITS])
def test_spec_field(case: tuple, world: Path, tmp_path: Path) -> None:
    _, path, value, needles = case
    data = _edit(yaml.safe_load(spec_text(world)), path, value)
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert_clear(run("check", "--spec", str(tmp_path)), 2, "SpecError", *needles)


def test_huge_window_in_a_feature(world: Path, tmp_path: Path) -> None:
    text = spec_text(world)
    data = yaml.safe_load(text)
    data["features"].append({"name": "forever", "aggregate": "count", "key": "customer_id",
                             "window": "99999999999999999d"})
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert_clear(run("build", "--spec", str(tmp_path)), 2, "valuechain.yaml",
                 "features.", "window")


def _write_raw(tmp_path: Path, content: bytes) -> Path:
    (tmp_path / "valuechain.yaml").write_bytes(content)
    return tmp_path


RAW: list[tuple[str, Callable[[Path, str], Path], tuple[str, ...]]] = [
    ("missing_file", lambda d, t: d / "nowhere" / "valuechain.yaml",
     ("no such spec file", "valuechain.yaml")),
    ("directory_without_spec", lambda d, t: d, ("no such spec file", "valuechain.yaml")),
    ("spec_is_a_directory",
     lambda d, t: (d / "valuechain.yaml").mkdir() or d / "valuechain.yaml",
     ("valuechain.yaml",)),
    ("not_utf8", lambda d, t: _write_raw(d, t.encode() + b"\nowner: \xff\xfe\n"),
     ("valuechain.yaml", "not UTF-8", "Save the spec as UTF-8")),
    ("yaml_syntax", lambda d, t: _write_raw(d, t.replace("label:\n", "label:\n  - [\n").encode()),
     ("valuechain.yaml", "line", "not valid YAML")),
    ("a_list", lambda d, t: _write_raw(d, b"- a\n- b\n"), ("valuechain.yaml", "mapping")),
    ("empty", lambda d, t: _write_raw(d, b""), ("valuechain.yaml",)),
    ("duplicate_top_level_key",
     lambda d, t: _write_raw(d, (t + "\nlabel: {column: x, horizon: 1d}\n").encode()),
     ("valuechain.yaml", "field `label`", "written twice", "lines ")),
    ("tab_indented", lambda d, t: _write_raw(d, t.replace("  horizon: 60d", "\thorizon: 60d"
                                                          ).encode()),
     ("valuechain.yaml", "line", "not valid YAML")),
    ("binary_file", lambda d, t: _write_raw(d, bytes(range(256)) * 4),
     ("valuechain.yaml",)),
    ("duplicate_nested_key",
     lambda d, t: _write_raw(d, t.replace("  horizon: 60d", "  horizon: 60d\n  horizon: 6d"
                                          ).encode()),
     ("valuechain.yaml", "field `label.horizon`", "written twice")),
]


@pytest.mark.parametrize("case", RAW, ids=[c[0] for c in RAW])
def test_unreadable_or_malformed_spec(case: tuple, world: Path, tmp_path: Path) -> None:
    _, make, needles = case
    target = make(tmp_path, spec_text(world))
    assert_clear(run("check", "--spec", str(target)), 2, "SpecError", *needles)


def test_duplicate_key_names_both_lines(world: Path, tmp_path: Path) -> None:
    text = spec_text(world).replace("  horizon: 60d", "  horizon: 60d\n  horizon: 6d")
    (tmp_path / "valuechain.yaml").write_text(text)
    first = text.splitlines().index("  horizon: 60d") + 1
    assert_clear(run("check", "--spec", str(tmp_path)), 2,
                 f"lines {first} and {first + 1}", "'horizon'")


def test_zero_capacity_trains(fresh: Path) -> None:
    data = yaml.safe_load((fresh / "valuechain.yaml").read_text())
    data["value"]["capacity"]["review"]["limit"] = 0
    (fresh / "valuechain.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    assert_clear(run("build", "--spec", str(fresh), "--json"), 0)
    assert_clear(run("train", "--spec", str(fresh), "--candidates", "prior,rules",
                     "--json"), 0)


# ------------------------------------------------------------------------ stage order
def test_decide_before_train(fresh: Path) -> None:
    assert_clear(run("decide", "--spec", str(fresh)), 2, "ArtifactError",
                 "no training run yet", "valuechain train")


def test_report_before_anything(fresh: Path) -> None:
    """The report card is written with what exists, each absent stage marked missing."""
    result = run("report", "--spec", str(fresh), "--json")
    assert_clear(result, 0)
    status = {s["id"]: s["status"] for s in json.loads(result.stdout)["sections"]}
    assert status["framing"] == "ok" and status["provenance"] == "missing"


def test_audit_before_build_builds_the_frame(fresh: Path) -> None:
    """audit (like train) builds the frame it needs: stage order is not a user error."""
    assert_clear(run("audit", "--spec", str(fresh), "--json"), 0)
    assert (fresh / ".valuechain" / "build" / "frame.parquet").exists()


STAGE_ORDER: list[Any] = [
    ("decide_after_costs_changed", lambda d: d["value"]["costs"].update(false_negative="2 * amount"),
     ("decide",), ("ArtifactError", "value.costs.false_negative", "valuechain train")),
    ("decide_after_rule_changed", lambda d: d["value"].update(baseline_policy="amount > 100"),
     ("decide",), ("ArtifactError", "value.baseline_policy", "valuechain train")),
    ("decide_without_capacity", lambda d: d["value"].pop("capacity"),
     ("decide",), ("SpecError", "value", "value.capacity")),
    ("decide_unknown_kind", lambda d: None, ("decide", "--kind", "bands"),
     ("SpecError", "`--kind` 'bands'", "three_band")),
    ("decide_unknown_objective", lambda d: None, ("decide", "--objective", "profit"),
     ("SpecError", "`--objective` 'profit'", "realised")),
    ("train_unknown_candidate", lambda d: None, ("train", "--candidates", "prior,forest"),
     ("ModelError", "unknown candidate 'forest'")),
]


@pytest.mark.parametrize("case", STAGE_ORDER, ids=[c[0] for c in STAGE_ORDER])
def test_stage_after_a_change(case: tuple, project: Path, tmp_path: Path) -> None:
    """A later stage run after the spec changed under it, or with a wrong flag: exit 2."""
    _, edit, args, needles = case
    data = yaml.safe_load(spec_text(project))
    edit(data)
    spec = project / "valuechain.yaml"
    original = spec.read_text()
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        assert_clear(run(*args, "--spec", str(project)), 2, *needles)
    finally:
        spec.write_text(original)


def test_decide_after_an_earlier_rebuild(project: Path) -> None:
    """A frame rebuilt with another --as-of after training: decide names both frames."""
    assert_clear(run("build", "--spec", str(project), "--as-of", "2025-06-01", "--force",
                     "--json"), 0)
    assert_clear(run("decide", "--spec", str(project)), 2, "ArtifactError", "trained on frame",
                 "valuechain train --spec")


def test_audit_a_flat_table_without_its_columns(project: Path) -> None:
    frame = str(_build(project) / "frame.parquet")
    assert_clear(run("audit", "--frame", frame), 2, "--time-col", "--label-col")
    assert_clear(run("audit", "--frame", frame, "--time-col", "when", "--label-col", "is_fraud"),
                 2, "--time-col", "'when'", "is not a column")


# ------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data of a 5,000-payment fraud world, for the cases that break a table."""
    from valuechain.demo.fraud import generate_fraud

    data = tmp_path_factory.mktemp("small") / "data"
    generate_fraud(data, rows=5_000, seed=7)
    return data


@pytest.fixture
def data_project(small: Path, world: Path, tmp_path: Path) -> Path:
    """A project over the small world; each table a symlink until a case replaces it."""
    shutil.copy(world / "valuechain.yaml", tmp_path / "valuechain.yaml")
    (tmp_path / "data").mkdir()
    for table in small.iterdir():
        (tmp_path / "data" / table.name).symlink_to(table)
    return tmp_path


def _read(project: Path, table: str) -> Any:
    import pandas as pd

    return pd.read_parquet(project / "data" / f"{table}.parquet")


def _replace(project: Path, table: str, frame: Any, suffix: str = "parquet", **kw: Any) -> Path:
    """Write ``frame`` as the project's own copy of ``table`` (never through the symlink)."""
    target = project / "data" / f"{table}.{suffix}"
    (project / "data" / f"{table}.parquet").unlink()
    if suffix == "csv":
        frame.to_csv(target, index=False, **kw)
    else:
        frame.to_parquet(target, index=False)
    return target


def _garbage(project: Path, table: str) -> None:
    target = project / "data" / f"{table}.parquet"
    target.unlink()
    target.write_bytes(b"PAR1 this is not a Parquet file")


def _spec(project: Path, edit: Callable[[dict], object]) -> None:
    path = project / "valuechain.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _mutate(table: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    def apply(project: Path) -> None:
        _replace(project, table, change(_read(project, table)))

    return apply


def _set(column: str, rows: slice, value: object) -> Callable[[Any], Any]:
    def change(frame: Any) -> Any:
        frame[column] = frame[column].astype(object)
        frame.loc[frame.index[rows], column] = value
        return frame

    return change


def _as_text(column: str, fmt: Callable[[Any], str]) -> Callable[[Any], Any]:
    def change(frame: Any) -> Any:
        frame[column] = [fmt(v) for v in frame[column]]
        return frame

    return change


def _label_column(values: Callable[[Any], Any]) -> Callable[[Path], None]:
    """The label as a column `flag` of the payments (no outcome source), with ``values``."""
    def apply(project: Path) -> None:
        frame = _read(project, "transactions")
        frame["flag"] = values(frame)
        _replace(project, "transactions", frame)

        def edit(d: dict) -> None:
            d["label"] = {"name": "is_fraud", "column": "flag", "horizon": "60d"}
            d["features"] = [f for f in d["features"] if f.get("of") != "label"]
        _spec(project, edit)

    return apply


def _offsets(frame: Any) -> Any:
    """ISO text with a +02:00 offset on every other row (the same instants)."""
    import pandas as pd

    utc = pd.to_datetime(frame["ts"]).dt.tz_localize("UTC")
    frame["ts"] = [(t.tz_convert("Europe/Paris") if i % 2 else t).isoformat()
                   for i, t in enumerate(utc)]
    return frame


def _offsets_and_naive(frame: Any) -> Any:
    """ISO text, every other value with a UTC offset and the others without one."""
    import pandas as pd

    frame["ts"] = [t.isoformat() + ("+02:00" if i % 2 else "")
                   for i, t in enumerate(pd.to_datetime(frame["ts"]))]
    return frame


def _known_before_opened(project: Path) -> None:
    """Chargebacks opened 5 days before their report, three of them opened after it."""
    import pandas as pd

    frame = _read(project, "chargebacks")
    reported = pd.to_datetime(frame["reported_at"])
    frame["opened_at"] = reported - pd.Timedelta(days=5)
    frame.loc[frame.index[:3], "opened_at"] = reported.iloc[:3] + pd.Timedelta(days=1)
    _replace(project, "chargebacks", frame)
    _spec(project, lambda d: d["sources"]["chargebacks"].update(
        event_time="opened_at", available_at="reported_at"))


def _no_header(project: Path) -> None:
    _replace(project, "transactions", _read(project, "transactions"), "csv", header=False)
    _spec(project, lambda d: d["sources"]["transactions"].update(
        path="data/transactions.csv"))


def _decimal_commas(project: Path) -> None:
    frame = _read(project, "transactions")
    frame["amount"] = [f"{v:.2f}".replace(".", ",") for v in frame["amount"]]
    _replace(project, "transactions", frame, "csv", sep=";")
    _spec(project, lambda d: d["sources"]["transactions"].update(
        path="data/transactions.csv"))


def _duplicate_terminals(frame: Any) -> Any:
    import pandas as pd

    twin = frame.head(3).copy()
    twin["merchant_category"] = "gambling"
    return pd.concat([frame, twin], ignore_index=True)


#: name, damage (project -> None), command, exit code, what the message names
DATA: list[Any] = [
    pytest.param("text_in_a_numeric_column",
                 _mutate("transactions", _as_text("amount", lambda v: f"{v:.2f} USD")),
                 ("build",), 2, ("transactions", "amount")),
    pytest.param("decimal_commas_in_a_csv", _decimal_commas, ("build",), 2,
                 ("transactions", "amount")),
    pytest.param("null_in_a_key", _mutate("transactions", _set("transaction_id", slice(0, 3),
                                                               None)),
                 ("build",), 2, ("transactions", "transaction_id", "null")),
    pytest.param("duplicate_keys_in_a_dimension", _mutate("terminals", _duplicate_terminals),
                 ("build",), 2, ("terminals", "terminal_id")),
    pytest.param("label_of_two", _label_column(lambda f: [2] + [0] * (len(f) - 1)),
                 ("build",), 2, ("flag", "2")),
    pytest.param("label_of_minus_one", _label_column(lambda f: [-1] + [0] * (len(f) - 1)),
                 ("build",), 2, ("flag", "-1")),
    pytest.param("nan_in_the_label", _label_column(lambda f: [float("nan")] + [0.0] * (
        len(f) - 1)), ("build",), 2, ("flag",)),
    pytest.param("empty_outcome_table", _mutate("chargebacks", lambda f: f.head(0)),
                 ("build",), 2, ("chargebacks",)),
    pytest.param("empty_decision_source", _mutate("transactions", lambda f: f.head(0)),
                 ("build",), 2, ("transactions",)),
    pytest.param("rows_dated_1970", _mutate("transactions", _set(
        "ts", slice(0, 3), __import__("pandas").Timestamp("1970-01-01 00:00:00"))),
                 ("build",), 2, ("transactions", "ts", "1970")),
    pytest.param("a_row_dated_2100", _mutate("transactions", _set(
        "ts", slice(0, 1), __import__("pandas").Timestamp("2100-01-01 00:00:00"))),
                 ("build",), 2, ("transactions", "ts", "2100", "--as-of")),
    pytest.param("mixed_utc_offsets", _mutate("transactions", _offsets),
                 ("build",), 2, ("transactions", "ts", "offset")),
    pytest.param("offsets_and_naive_times_mixed", _mutate("transactions", _offsets_and_naive),
                 ("build",), 2, ("transactions", "ts", "offset")),
    pytest.param("rows_dated_1970_accepted", _mutate("transactions", _set(
        "ts", slice(0, 3), __import__("pandas").Timestamp("1970-01-01 00:00:00"))),
                 ("build", "--accept-early-times"), 0, ()),
    pytest.param("outcome_known_before_it_happened", _known_before_opened, ("build",), 2,
                 ("chargebacks", "opened_at", "reported_at")),
    pytest.param("csv_without_header", _no_header, ("build",), 2,
                 ("transactions", "header")),
    pytest.param("missing_source_file",
                 lambda p: (p / "data" / "terminals.parquet").unlink(), ("build",), 2,
                 ("valuechain.yaml", "sources.terminals.path", "does not exist")),
    pytest.param("source_not_parquet", lambda p: _garbage(p, "customers"), ("build",), 2,
                 ("sources.customers.path", "customers")),
    pytest.param("time_column_missing", _mutate("transactions", lambda f: f.drop(columns="ts")),
                 ("build",), 2, ("transactions", "'ts'")),
    pytest.param("time_column_of_integers",
                 _mutate("transactions", lambda f: f.assign(ts=f["ts"].astype("int64"))),
                 ("build",), 2, ("transactions", "'ts'", "BIGINT")),
    pytest.param("time_column_of_words",
                 _mutate("transactions", _as_text("ts", lambda v: "yesterday")),
                 ("build",), 2, ("transactions", "'ts'", "not a timestamp")),
    pytest.param("key_column_missing",
                 _mutate("chargebacks", lambda f: f.drop(columns="transaction_id")),
                 ("build",), 2, ("chargebacks", "transaction_id")),
    pytest.param("feature_column_missing",
                 _mutate("transactions", lambda f: f.drop(columns="channel")),
                 ("build",), 2, ("channel",)),
    pytest.param("lookup_column_missing",
                 _mutate("customer_profiles", lambda f: f.drop(columns="risk_tier")),
                 ("build",), 2, ("customer_profiles", "risk_tier")),
]


@pytest.mark.parametrize(("name", "damage", "args", "code", "needles"), [
    c if hasattr(c, "marks") else pytest.param(*c, id=c[0]) for c in DATA],
    ids=[c.values[0] for c in DATA])
def test_bad_data(name: str, damage: Callable[[Path], None], args: tuple[str, ...], code: int,
                  needles: tuple[str, ...], data_project: Path) -> None:
    damage(data_project)
    assert_clear(run(*args, "--spec", str(data_project)), code, *needles)


def test_explain_an_unknown_finding(data_project: Path) -> None:
    assert_clear(run("audit", "--spec", str(data_project), "--explain", "no_such:finding"), 2,
                 "--explain", "'no_such:finding'", "no such finding")


def test_guest_checkouts_without_a_split_entity_train(world: Path, tmp_path: Path) -> None:
    """`split.entity` (card_id) empty on some rows: each such row is its own entity."""
    shutil.copy(world / "valuechain.yaml", tmp_path / "valuechain.yaml")
    (tmp_path / "data").mkdir()
    for table in (world / "data").iterdir():
        (tmp_path / "data" / table.name).symlink_to(table)
    _mutate("transactions", _set("card_id", slice(0, None, 10), None))(tmp_path)
    result = run("train", "--spec", str(tmp_path), "--candidates", "prior,rules", "--json")
    assert_clear(result, 0)
    test = json.loads(result.stdout)["candidates"]["rules"]["test"]
    assert test["card_precision_at_k"] is not None, test


def test_outcome_rows_without_a_time_are_counted(data_project: Path) -> None:
    """Outcome rows with a null time are left out, and the manifest (and report) count them."""
    _mutate("chargebacks", _set("reported_at", slice(0, 4), None))(data_project)
    result = run("build", "--spec", str(data_project), "--json")
    assert_clear(result, 0)
    manifest = json.loads((data_project / ".valuechain" / "build" / "manifest.json").read_text())
    assert sum(manifest["dropped"]["chargebacks"].values()) == 4, manifest["dropped"]
    report = run("report", "--spec", str(data_project), "--json")
    html = Path(json.loads(report.stdout)["report"]).read_text()
    assert 'data-key="build-dropped"' in html and "chargebacks" in html


def test_a_far_future_row_is_accepted_with_as_of(data_project: Path) -> None:
    """The documented way to accept a row dated after the extraction: pass --as-of."""
    import pandas as pd

    _mutate("transactions", _set("ts", slice(0, 1), pd.Timestamp("2100-01-01")))(data_project)
    result = run("build", "--spec", str(data_project), "--as-of", "2025-09-29", "--json")
    assert_clear(result, 0)
    assert json.loads(result.stdout)["as_of"].startswith("2025-09-29")


# ------------------------------------------------------------------------ damaged artifacts
def _run_dir(project: Path) -> Path:
    runs = project / ".valuechain" / "runs"
    return runs / (runs / "latest").read_text().strip()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _build(project: Path) -> Path:
    return project / ".valuechain" / "build"


def _best(project: Path) -> str:
    return str(json.loads((_run_dir(project) / "metrics.json").read_text())["best_candidate"])


def _edit_json(path: Path, key: tuple[str, ...], value: object) -> None:
    data = json.loads(path.read_text())
    _edit(data, key, value)
    path.write_text(json.dumps(data))


def _drop_column(path: Path, column: str) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    pq.write_table(table.drop_columns([column]), path)


def _duplicate_ids(path: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(path).to_pandas()
    table.loc[1, "decision_id"] = table.loc[0, "decision_id"]
    table.to_parquet(path, index=False)


TRAIN = ("train", "--candidates", "prior")
#: name, damage, command, exit code, what the message names (exit 0: the stage recovers by
#: rebuilding what it reads, as the cache is keyed on fingerprints)
DAMAGE: list[Any] = [
    ("truncated_metrics", lambda p: _truncate(_run_dir(p) / "metrics.json"), ("decide",), 2,
     ("ArtifactError", "metrics.json", "valuechain train")),
    ("metrics_not_an_object", lambda p: (_run_dir(p) / "metrics.json").write_text("[1, 2]"),
     ("decide",), 2, ("ArtifactError", "metrics.json")),
    ("metrics_without_candidates",
     lambda p: (_run_dir(p) / "metrics.json").write_text(json.dumps({"run_id": "x"})),
     ("decide",), 2, ("ArtifactError", "metrics.json")),
    ("deleted_validation_predictions",
     lambda p: (_run_dir(p) / "predictions_validation.parquet").unlink(), ("decide",), 2,
     ("ArtifactError", "predictions_validation.parquet", "valuechain train")),
    ("truncated_test_predictions",
     lambda p: _truncate(_run_dir(p) / "predictions_test.parquet"), ("decide",), 2,
     ("ArtifactError", "predictions_test.parquet")),
    ("deleted_build_manifest", lambda p: (_build(p) / "manifest.json").unlink(), TRAIN, 0, ()),
    ("truncated_frame", lambda p: _truncate(_build(p) / "frame.parquet"), TRAIN, 0, ()),
    ("deleted_frame", lambda p: (_build(p) / "frame.parquet").unlink(), TRAIN, 0, ()),
    ("deleted_run_frame_manifest", lambda p: (_run_dir(p) / "frame_manifest.json").unlink(),
     ("decide",), 0, ()),
    ("latest_points_at_missing_run",
     lambda p: (p / ".valuechain" / "runs" / "latest").write_text("20990101-000000-gone"),
     ("decide",), 2, ("ArtifactError", "runs/latest", "names run '20990101-000000-gone'",
                      "is missing", "valuechain train --spec")),
    ("latest_points_at_missing_run_in_report",
     lambda p: (p / ".valuechain" / "runs" / "latest").write_text("20990101-000000-gone"),
     ("report",), 1, ("runs/latest", "20990101-000000-gone")),
    ("latest_points_outside_runs",
     lambda p: (p / ".valuechain" / "runs" / "latest").write_text("../../etc"),
     ("decide",), 2, ("ArtifactError", "runs/latest", "one run id", "valuechain train")),
    ("latest_is_empty", lambda p: (p / ".valuechain" / "runs" / "latest").write_text("\n"),
     ("decide",), 2, ("ArtifactError", "runs/latest", "one run id")),
    ("latest_not_utf8", lambda p: (p / ".valuechain" / "runs" / "latest").write_bytes(b"\xff\xfe"),
     ("decide",), 2, ("ArtifactError", "runs/latest", "not UTF-8")),
    ("deleted_latest_pointer", lambda p: (p / ".valuechain" / "runs" / "latest").unlink(),
     ("decide",), 0, ()),
    ("deleted_metrics", lambda p: (_run_dir(p) / "metrics.json").unlink(), ("decide",), 2,
     ("ArtifactError", "metrics.json", "is missing", "valuechain train")),
    ("metrics_is_a_directory",
     lambda p: ((_run_dir(p) / "metrics.json").unlink(), (_run_dir(p) / "metrics.json").mkdir()),
     ("decide",), 2, ("ArtifactError", "metrics.json", "a directory stands where")),
    ("metrics_not_utf8", lambda p: (_run_dir(p) / "metrics.json").write_bytes(b"{\xff}"),
     ("decide",), 2, ("ArtifactError", "metrics.json", "not UTF-8", "valuechain train")),
    ("metrics_empty", lambda p: (_run_dir(p) / "metrics.json").write_text(""),
     ("decide",), 2, ("ArtifactError", "metrics.json", "empty", "valuechain train")),
    ("metrics_wrong_type", lambda p: _edit_json(_run_dir(p) / "metrics.json",
                                                  ("best_candidate",), [1, 2]),
     ("decide",), 2, ("ArtifactError", "metrics.json", "best_candidate", "valuechain train")),
    ("metrics_other_frame", lambda p: _edit_json(_run_dir(p) / "metrics.json",
                                                   ("frame", "fingerprint"), "0" * 32),
     ("decide",), 2, ("ArtifactError", "trained on frame 00000000", "valuechain train")),
    ("metrics_without_time_column", lambda p: _edit_json(_run_dir(p) / "metrics.json",
                                                           ("frame", "time_column"), None),
     ("decide",), 2, ("ArtifactError", "metrics.json", "time_column", "valuechain train")),
    ("predictions_without_scores", lambda p: _drop_column(
        _run_dir(p) / "predictions_test.parquet", "score_" + _best(p)), ("decide",), 2,
     ("ArtifactError", "predictions_test.parquet", "lacks the column", "score_",
      "valuechain train")),
    ("predictions_duplicate_ids", lambda p: _duplicate_ids(
        _run_dir(p) / "predictions_validation.parquet"), ("decide",), 2,
     ("ArtifactError", "predictions_validation.parquet", "decision_id", "valuechain train")),
    ("predictions_empty_file", lambda p: (_run_dir(p) / "predictions_test.parquet"
                                          ).write_bytes(b""), ("decide",), 2,
     ("ArtifactError", "predictions_test.parquet", "Parquet", "valuechain train")),
    ("corrupt_build_manifest_at_decide",
     lambda p: (_build(p) / "manifest.json").write_text("{not"), ("decide",), 2,
     ("ArtifactError", "manifest.json", "build manifest", "not valid JSON",
      "valuechain build --spec", "--force")),
    ("deleted_build_manifest_at_decide", lambda p: (_build(p) / "manifest.json").unlink(),
     ("decide",), 2, ("ArtifactError", "manifest.json", "the build manifest is missing",
                      "valuechain build --spec")),
    ("build_manifest_without_frame", lambda p: _edit_json(_build(p) / "manifest.json",
                                                           ("frame",), None),
     ("decide",), 2, ("ArtifactError", "manifest.json", "`frame`", "valuechain build")),
    ("build_manifest_a_list", lambda p: (_build(p) / "manifest.json").write_text("[]"),
     ("decide",), 2, ("ArtifactError", "manifest.json", "expected a mapping")),
    ("frame_deleted_at_decide", lambda p: (_build(p) / "frame.parquet").unlink(),
     ("decide",), 2, ("ArtifactError", "frame.parquet", "missing", "valuechain train")),
    ("frame_replaced_at_decide", lambda p: _drop_column(_build(p) / "frame.parquet", "amount"),
     ("decide",), 2, ("ArtifactError", "frame.parquet", "fingerprint",
                      "valuechain build --spec")),
    ("runs_folder_is_a_file", lambda p: (shutil.rmtree(p / ".valuechain" / "runs"),
                                         (p / ".valuechain" / "runs").write_text("x")),
     ("decide",), 2, ("ArtifactError", "no training run yet", "valuechain train")),
    ("decide_json_a_list_in_report", lambda p: (p / ".valuechain" / "decide.json"
                                                ).write_text("[1]"),
     ("report",), 1, ("decide.json", "expected a mapping", "valuechain decide")),
    ("decide_json_deleted_in_report", lambda p: (p / ".valuechain" / "decide.json").unlink(),
     ("report",), 0, ()),
    ("build_manifest_truncated_in_report", lambda p: _truncate(_build(p) / "manifest.json"),
     ("report",), 1, ("manifest.json", "not valid JSON", "valuechain build")),
    ("check_json_damaged_in_report", lambda p: (p / ".valuechain" / "check.json"
                                                ).write_text("{"), ("report",), 1,
     ("check.json", "not valid JSON", "valuechain check")),
    ("audit_json_damaged_in_report", lambda p: (p / ".valuechain" / "audit.json"
                                                ).write_text("nul"), ("report",), 1,
     ("audit.json", "not valid JSON", "valuechain audit")),
    ("truncated_frame_in_report", lambda p: _truncate(_build(p) / "frame.parquet"),
     ("report",), 1, ("frame.parquet", "the built frame is damaged", "valuechain build")),
    ("damaged_metrics_in_runs_list", lambda p: _truncate(_run_dir(p) / "metrics.json"),
     ("runs",), 0, ()),
    ("truncated_decide_json_in_report", lambda p: _truncate(p / ".valuechain" / "decide.json"),
     ("report",), 1, ("decide.json",)),
    ("truncated_metrics_in_report", lambda p: _truncate(_run_dir(p) / "metrics.json"),
     ("report",), 1, ("metrics.json",)),
    pytest.param(
        "corrupt_build_manifest", lambda p: (_build(p) / "manifest.json").write_text("{not"),
        TRAIN, 0, (), id="corrupt_build_manifest"),
]


@pytest.mark.parametrize(("name", "damage", "args", "code", "needles"), [
    c if hasattr(c, "marks") else pytest.param(*c, id=c[0]) for c in DAMAGE])
def test_damaged_artifact(name: str, damage: Callable[[Path], None], args: tuple[str, ...],
                          code: int, needles: tuple[str, ...], project: Path) -> None:
    damage(project)
    assert_clear(run(*args, "--spec", str(project)), code, *needles)


# ------------------------------------------------------------------------ policy.yaml
POLICY_EDITS: list[tuple[str, dict, tuple[str, ...]]] = [
    ("review_at_above_one", {"review_at": 1.5}, ("review_at", "outside [0, 1]")),
    ("decline_at_negative", {"review_at": -0.5, "decline_at": -0.2},
     ("review_at", "outside [0, 1]")),
    ("review_at_nan", {"review_at": float("nan")}, ("review_at", "NaN")),
    ("decline_below_review", {"review_at": 0.5, "decline_at": 0.1},
     ("review_at", "decline_at")),
    ("threshold_not_a_number", {"review_at": "high"}, ("review_at", "expected a number")),
]


@pytest.mark.parametrize("case", POLICY_EDITS, ids=[c[0] for c in POLICY_EDITS])
def test_policy_yaml_edited(case: tuple, project: Path) -> None:
    from valuechain.errors import ArtifactError
    from valuechain.policy.policies import load_policy

    _, edit, needles = case
    path = _run_dir(project) / "policy.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(edit)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ArtifactError) as raised:
        load_policy(path)
    message = " ".join(str(raised.value).split())
    for needle in ("policy.yaml", "valuechain decide", *needles):
        assert needle in message, message


def test_saved_policy_loads_with_infinite_band(project: Path) -> None:
    from valuechain.policy.policies import load_policy

    policy = load_policy(_run_dir(project) / "policy.yaml")
    assert policy.kind == "three_band"


# ------------------------------------------------------------------------ internal errors
def _explode(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom in a stage")


def test_internal_error_is_one_paragraph_with_a_log(fresh: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import valuechain.api

    monkeypatch.setattr(valuechain.api, "build", _explode)
    flat = assert_clear(run("build", "--spec", str(fresh)), 3, "InternalError",
                        "internal error: RuntimeError: boom in a stage",
                        "This is a bug in valuechain, not your input", "--debug")
    logs = list((fresh / ".valuechain" / "logs").glob("*.log"))
    assert len(logs) == 1 and str(logs[0]) in flat
    logged = logs[0].read_text()
    assert "Traceback" in logged and "RuntimeError: boom in a stage" in logged


def test_internal_error_json(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import valuechain.api

    monkeypatch.setattr(valuechain.api, "build", _explode)
    result = run("build", "--spec", str(fresh), "--json")
    assert result.exit_code == 3
    out = json.loads(result.stdout)
    assert out["type"] == "InternalError" and Path(out["log"]).exists()
    assert "Traceback" not in result.stdout


def test_debug_prints_the_traceback(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import valuechain.api

    monkeypatch.setattr(valuechain.api, "build", _explode)
    result = run("--debug", "build", "--spec", str(fresh))
    assert result.exit_code == 3
    assert "Traceback" in text_of(result) and "boom in a stage" in text_of(result)
    assert not (fresh / ".valuechain" / "logs").exists()


def test_user_error_stays_exit_2_under_debug(fresh: Path) -> None:
    assert_clear(run("--debug", "decide", "--spec", str(fresh)), 2, "no training run yet")


def test_project_moved_after_training(project: Path) -> None:
    """Runs record paths relative to the project: a moved folder still decides and reports."""
    moved = project.parent / "moved"
    project.rename(moved)
    try:
        assert_clear(run("decide", "--spec", str(moved), "--json"), 0)
        result = run("report", "--spec", str(moved), "--json")
        assert_clear(result, 0)
        statuses = {s["id"]: s["status"] for s in json.loads(result.stdout)["sections"]}
        assert statuses["evaluation"] in ("ok", "warn") and statuses["decide"] in ("ok", "warn"), \
            statuses
        for written in (_run_dir(moved) / "metrics.json", _run_dir(moved) / "frame_manifest.json",
                        moved / ".valuechain" / "decide.json"):
            assert str(project) not in written.read_text(), written
    finally:
        moved.rename(project)


# ------------------------------------------------------------------------ random mutations
_POOL: list[object] = [None, -1, 0, 10**30, -(10**30), "", "x", float("nan"), float("inf"),
                       [], {}, "99999999999999999d", "0d", True, "1e400d", [1, "a"],
                       {"a": None}, "\xff\x00", 1.5]


def _leaves(node: object, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        out: list[tuple] = [path] if path else []
        for key, value in node.items():
            out += _leaves(value, (*path, key))
        return out
    if isinstance(node, list):
        out = [path]
        for index, value in enumerate(node):
            out += _leaves(value, (*path, index))
        return out
    return [path]


@pytest.mark.parametrize("seed", range(4))
def test_random_spec_mutations_never_traceback(seed: int, world: Path, tmp_path: Path) -> None:
    """Replace or delete random fields of a valid spec: a spec loads or is a SpecError."""
    import random

    from valuechain import api
    from valuechain.errors import ValuechainError

    rng = random.Random(seed)
    base = yaml.safe_load(spec_text(world))
    for trial in range(25):
        data = yaml.safe_load(spec_text(world))
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(_leaves(data))
            parent = data
            for part in path[:-1]:
                parent = parent[part]
            if rng.random() < 0.2 and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = rng.choice(_POOL)
        target = tmp_path / f"m{trial}" / "valuechain.yaml"
        target.parent.mkdir()
        target.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        try:
            api.load_spec(target)
        except ValuechainError as err:
            assert "valuechain.yaml" in str(err), str(err)
        except Exception as err:  # the point of the test
            raise AssertionError(f"mutation {trial} of seed {seed} ({data != base}) raised "
                                 f"{type(err).__name__}: {err}") from err


# ------------------------------------------------------------------------ random data mutations
#: The tables the fraud spec reads, and the columns it reads in each (damaged more often).
_TABLES = {"transactions": ("transaction_id", "ts", "amount", "customer_id", "card_id",
                            "terminal_id", "channel", "shipping_country"),
           "chargebacks": ("transaction_id", "reported_at"),
           "customer_profiles": ("customer_id", "valid_from", "risk_tier", "verified_phone"),
           "terminals": ("terminal_id", "merchant_category"),
           "customers": ("customer_id", "segment")}


def _mutation(rng: Any, table: str, frame: Any) -> tuple[str, Any]:
    """One random damage to a table: what was done, and the damaged table."""
    import numpy as np
    import pandas as pd

    read = [c for c in _TABLES[table] if c in frame.columns]
    column = rng.choice(read if read and rng.random() < 0.8 else list(frame.columns))
    rows = max(1, len(frame) // 10)
    picked = frame.index[np.random.default_rng(rng.randrange(2**32)).choice(
        len(frame), size=min(rows, len(frame)), replace=False)] if len(frame) else frame.index
    kind = rng.choice(["drop", "text", "nulls", "nan_inf", "duplicates", "shift", "empty"])
    frame = frame.copy()
    if kind == "drop":
        frame = frame.drop(columns=column)
    elif kind == "text":
        frame[column] = frame[column].astype(str)
    elif kind == "nulls":
        frame[column] = frame[column].astype(object)
        frame.loc[picked, column] = None
    elif kind == "nan_inf":
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
                   and not pd.api.types.is_bool_dtype(frame[c])]
        column = rng.choice(numeric) if numeric else column
        frame[column] = frame[column].astype(float if numeric else object)
        frame.loc[picked, column] = rng.choice([float("nan"), float("inf"), -float("inf")])
    elif kind == "duplicates":
        frame = pd.concat([frame, frame.loc[picked]], ignore_index=True)
    elif kind == "shift":
        times = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
        column = rng.choice(times) if times else column
        if times:
            frame.loc[picked, column] += pd.Timedelta(days=rng.choice([-20_000, -400, 400,
                                                                       20_000]))
    else:
        frame = frame.head(0)
    return f"{kind} {column}", frame


@pytest.mark.parametrize("seed", range(3))
def test_random_data_mutations_never_traceback(seed: int, small: Path, world: Path,
                                               tmp_path: Path) -> None:
    """Damage random tables at random: build succeeds (0) or is a clear user error (2).

    Never a traceback, never exit 3, and an exit 2 names the spec or the damaged table.
    """
    import random

    rng = random.Random(seed)
    vague = []
    for trial in range(4):
        project = tmp_path / f"t{trial}"
        project.mkdir()
        shutil.copy(world / "valuechain.yaml", project / "valuechain.yaml")
        (project / "data").mkdir()
        for table in small.iterdir():
            (project / "data" / table.name).symlink_to(table)
        done = []
        for table in rng.sample(sorted(_TABLES), rng.randint(1, 2)):
            what, frame = _mutation(rng, table, _read(project, table))
            _replace(project, table, frame)
            done.append(f"{table}: {what}")
        result = run("build", "--spec", str(project))
        text = " ".join(text_of(result).split())
        context = f"seed {seed} trial {trial} ({'; '.join(done)}): exit {result.exit_code}"
        assert result.exit_code in (0, 2), f"{context}: {text}"
        assert "Traceback" not in text, f"{context}: {text}"
        if result.exit_code == 2 and "valuechain.yaml" not in text and not any(
                d.split(":")[0] in text for d in done):
            vague.append(f"{context}: names no file: {text[:200]}")
    assert not vague, " | ".join(vague)
