"""Bundles and the registry: package, checksums, gates, promote/rollback, exact scores, crashes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.data.plan import make_plan
from valuechain.decide import decide_project
from valuechain.errors import ArtifactError, DataError, ModelError, ValuechainError
from valuechain.registry import (
    GATES,
    PromotionError,
    Registry,
    load_bundle,
    package,
    verify_bundle,
)
from valuechain.registry.index import SCHEMA
from valuechain.spec import load_spec
from valuechain.train import train_project

from .conftest import ROOT, small_fraud_project

SRC = str(ROOT / "src")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A decided fraud project with two runs: A (best: logistic) and B (best: lightgbm)."""
    from valuechain import api

    root = small_fraud_project(tmp_path_factory.mktemp("registry"), min_positives=3,
                               rows=60_000, seed=7)
    loaded = load_spec(root)
    api.audit(loaded)
    run_a = train_project(loaded, candidates=["prior", "rules", "logistic"])
    decide_project(loaded)
    run_b = train_project(loaded, candidates=["prior", "rules", "lightgbm"])
    decide_project(loaded)
    return {"root": root, "a": run_a.run_id, "b": run_b.run_id,
            "best_a": run_a.best_candidate, "best_b": run_b.best_candidate}


def clone(project: dict[str, object], tmp: Path) -> Path:
    """A copy of the project (spec, workspace without registry; data linked)."""
    root = Path(str(project["root"]))
    out = tmp / "clone"
    out.mkdir()
    shutil.copy(root / "valuechain.yaml", out / "valuechain.yaml")
    (out / "data").symlink_to(root / "data")
    shutil.copytree(root / ".valuechain", out / ".valuechain",
                    ignore=shutil.ignore_patterns("registry"))
    return out


def writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


# ------------------------------------------------------------------------------ package


def test_package_writes_an_immutable_bundle_and_is_idempotent(project: dict[str, object],
                                                              tmp_path: Path) -> None:
    root = Path(str(project["root"]))
    first = package(root, run=str(project["a"]), registry=tmp_path)
    assert (first.version, first.created, first.stage) == ("v1", True, "staging")
    assert first.path == tmp_path / "bundles" / "v1"
    files = set(first.files)
    for name in ("bundle.json", "checksums.json", "spec/valuechain.yaml", "features.json",
                 "model/candidate.json", "calibrator.json", "policy.yaml",
                 "frame_manifest.json", "metrics.json", "audit.json", "decide.json"):
        assert name in files or name == "decide.json", name
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)
    assert (first.path / "spec" / "valuechain.yaml").read_bytes() == (
        root / "valuechain.yaml").read_bytes()
    for path in first.path.rglob("*"):  # read-only: files 0444, folders 0555
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o555 if path.is_dir() else 0o444), (path, oct(mode))
    sums = json.loads((first.path / "checksums.json").read_text())
    assert set(sums["files"]) == files - {"checksums.json"}
    manifest = json.loads((first.path / "bundle.json").read_text())
    assert manifest["content_hash"] == first.content_hash
    assert manifest["run_id"] == project["a"] and manifest["candidate"] == project["best_a"]
    features = json.loads((first.path / "features.json").read_text())
    assert [f["name"] for f in features["features"]] == [
        f.name for f in load_spec(root).spec.features]
    assert {f["kind"] for f in features["features"]} == {"row", "window", "lookup"}

    again = package(root, run=str(project["a"]), registry=tmp_path)
    assert (again.version, again.created, again.content_hash) == (
        "v1", False, first.content_hash)
    other = package(root, run=str(project["b"]), registry=tmp_path)
    assert (other.version, other.created) == ("v2", True)
    assert other.content_hash != first.content_hash
    assert [v.version for v in Registry(tmp_path).versions()] == ["v1", "v2"]
    assert not list((tmp_path / "bundles").glob(".tmp-*"))


def test_package_refuses_a_run_without_a_policy(project: dict[str, object],
                                                tmp_path: Path) -> None:
    copy = clone(project, tmp_path)
    (copy / ".valuechain" / "runs" / str(project["b"]) / "policy.yaml").unlink()
    with pytest.raises(ArtifactError, match=r"policy\.yaml is missing.*valuechain decide"):
        package(copy, run=str(project["b"]))
    assert not (copy / ".valuechain" / "registry" / "bundles" / "v1").exists()
    with pytest.raises(ArtifactError, match=r"no such training run.*runs:"):
        package(copy, run="20990101-000000-ffffff")


def test_package_refuses_a_model_the_spec_no_longer_describes_or_a_pickle(
        project: dict[str, object], tmp_path: Path) -> None:
    copy = clone(project, tmp_path)
    spec = yaml.safe_load((copy / "valuechain.yaml").read_text())
    spec["features"] = [f for f in spec["features"] if f["name"] != "amount"]
    (copy / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(ArtifactError, match=r"reads \['amount'\], which are no longer "
                                            r"features.*valuechain train"):
        package(copy)
    shutil.copy(Path(str(project["root"])) / "valuechain.yaml", copy / "valuechain.yaml")
    manifest = copy / ".valuechain" / "runs" / str(project["b"]) / "candidates" / str(
        project["best_b"]) / "candidate.json"
    data = json.loads(manifest.read_text())
    data["state"].update(adapter="sklearn", persistence="joblib")
    os.chmod(manifest, 0o644)
    manifest.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="pickle"):
        package(copy)
    assert not list((copy / ".valuechain" / "registry" / "bundles").iterdir())


# ------------------------------------------------------------------------------ checksums


@pytest.mark.parametrize("tamper", ["edit_a_byte", "delete_a_file", "add_a_file"])
def test_a_tampered_bundle_refuses_to_load(project: dict[str, object], tmp_path: Path,
                                           tamper: str) -> None:
    result = package(Path(str(project["root"])), run=str(project["b"]),
                     registry=tmp_path / "reg")
    load_bundle(result.path)  # intact: loads
    bundle = tmp_path / "copy"
    shutil.copytree(result.path, bundle)
    writable(bundle)
    if tamper == "edit_a_byte":
        target = bundle / "calibrator.json"
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        expected = r"changed \(checksum differs\): calibrator\.json"
    elif tamper == "delete_a_file":
        (bundle / "model" / "model.txt").unlink()
        expected = r"missing: model/model\.txt"
    else:
        (bundle / "model" / "extra.txt").write_text("not from valuechain package")
        expected = r"not in checksums\.json \(added\): model/extra\.txt"
    with pytest.raises(ArtifactError, match=expected) as raised:
        load_bundle(bundle)
    assert "valuechain package --spec DIR" in str(raised.value)
    with pytest.raises(ArtifactError):
        verify_bundle(bundle)


# ------------------------------------------------------------------------------ gates


def test_every_failing_gate_is_named_with_its_figures(project: dict[str, object],
                                                      tmp_path: Path) -> None:
    copy = clone(project, tmp_path)
    run_dir = copy / ".valuechain" / "runs" / str(project["b"])
    best = str(project["best_b"])
    # (a) an unaccepted critical finding
    audit = json.loads((copy / ".valuechain" / "audit.json").read_text())
    audit["findings"].append({"id": "post_outcome_signature:status", "check":
                              "post_outcome_signature", "severity": "critical",
                              "features": ["status"], "evidence": {}, "accepted": False,
                              "explanation": "", "fix": ""})
    (copy / ".valuechain" / "audit.json").write_text(json.dumps(audit))
    # (b) the candidate only ties today's rule
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for v in metrics["verdicts"]:
        if v["candidate"] == best and v["baseline"] == "rules":
            v["verdict"] = "ties"
    os.chmod(run_dir / "metrics.json", 0o644)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    # (c) a policy decided on another candidate
    policy = yaml.safe_load((run_dir / "policy.yaml").read_text())
    policy["metadata"]["candidate"] = "prior"
    (run_dir / "policy.yaml").write_text(yaml.safe_dump(policy))
    # (d) no owner for operations
    spec = yaml.safe_load((copy / "valuechain.yaml").read_text())
    del spec["owners"]["operations"]
    for rule in spec.get("monitoring", {}).get("alerts", []):  # alert owners must exist
        if rule.get("owner") == "operations":
            rule["owner"] = "the review desk"
    (copy / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    result = package(copy)
    assert [g.name for g in result.gates] == list(GATES)
    assert not any(g.passed for g in result.gates)
    with pytest.raises(PromotionError) as raised:
        Registry(result.registry).promote(result.version)
    message = str(raised.value)
    assert "4 of 4 gates fail" in message
    assert "post_outcome_signature:status" in message and "audit.accept" in message
    assert "vs rules: ties (average_precision" in message
    assert "decided on run" in message and "candidate prior" in message
    assert "owners.operations" in message
    assert Registry(result.registry).production() is None

    code, output = cli("promote", result.version, "--spec", str(copy))
    assert code == 2 and "PromotionError" in output and "owners.operations" in output

    # accepting the finding in the spec (audit.accept) clears gate (a) on the next package
    spec["audit"] = {"accept": [{"id": "post_outcome_signature:status", "reason": "test",
                                 "by": "tester"}]}
    (copy / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    accepted = package(copy)
    assert accepted.version == "v2"
    assert {g.name: g.passed for g in accepted.gates}["audit"] is True


def test_a_project_never_audited_fails_the_audit_gate(project: dict[str, object],
                                                      tmp_path: Path) -> None:
    copy = clone(project, tmp_path)
    (copy / ".valuechain" / "audit.json").unlink()
    result = package(copy)
    gates = {g.name: g for g in result.gates}
    assert not gates["audit"].passed and "not audited" in gates["audit"].detail
    assert json.loads((result.path / "audit.json").read_text())["status"] == "not audited"
    assert all(gates[n].passed for n in ("beats_baselines", "policy", "owners"))
    with pytest.raises(PromotionError, match=r"1 of 4 gates fail\. - audit: not audited.*"
                                             r"valuechain audit"):
        Registry(result.registry).promote(result.version)


# ------------------------------------------------------------------------------ stages


def test_promote_archives_the_previous_version_and_rollback_brings_it_back(
        project: dict[str, object], tmp_path: Path) -> None:
    root = Path(str(project["root"]))
    v1 = package(root, run=str(project["a"]), registry=tmp_path)
    v2 = package(root, run=str(project["b"]), registry=tmp_path)
    registry = Registry(tmp_path)
    with pytest.raises(ArtifactError, match="nothing to roll back"):
        registry.rollback()
    first = registry.promote(v1.version)
    assert (first.version, first.previous, first.changed) == ("v1", None, True)
    assert not registry.promote("v1").changed  # already in production
    second = registry.promote(v2.version)
    assert (second.version, second.previous) == ("v2", "v1")
    assert {v.version: v.stage for v in registry.versions()} == {
        "v1": "archived", "v2": "production"}
    back = registry.rollback()
    assert (back.version, back.previous) == ("v1", "v2")
    assert {v.version: v.stage for v in registry.versions()} == {
        "v1": "production", "v2": "archived"}
    with pytest.raises(PromotionError, match="no earlier production version"):
        registry.rollback()
    assert registry.load().version == "v1"
    assert registry.get("production").version == "v1"
    assert registry.get("latest").version == "v2"
    actions = [(e["action"], e["version"], e["previous"]) for e in registry.history()]
    assert actions == [("package", "v1", None), ("package", "v2", None),
                       ("promote", "v1", None), ("promote", "v2", "v1"),
                       ("rollback", "v1", "v2")]
    with pytest.raises(ArtifactError, match=r"version 'v7' is not in the registry.*v1, v2"):
        registry.get("v7")


def test_registry_lists_versions_as_json(project: dict[str, object], tmp_path: Path) -> None:
    root = Path(str(project["root"]))
    reg = tmp_path / "reg"
    code, output = cli("package", "--spec", str(root), "--registry", str(reg), "--json")
    assert code == 0, output
    assert json.loads(output)["version"] == "v1"
    code, output = cli("promote", "v1", "--spec", str(root), "--registry", str(reg))
    assert code == 0 and "v1 is in production" in output
    code, output = cli("registry", "--spec", str(root), "--registry", str(reg), "--json")
    assert code == 0, output
    listed = json.loads(output)
    assert listed["production"] == "v1"
    (entry,) = listed["versions"]
    assert entry["stage"] == "production" and entry["run_id"] == project["b"]  # the latest
    assert entry["candidate"] == project["best_b"] and entry["gates_passed"] is True
    assert 0.5 < entry["test_auc"] <= 1 and 0 < entry["test_ap"] <= 1
    # decide.json is the latest run's (b): its savings are the bundle's headline
    assert entry["savings_vs"] == "rules" and isinstance(entry["savings"], float)
    assert [g["name"] for g in entry["gates"]] == list(GATES)
    code, output = cli("registry", "--spec", str(root), "--registry", str(reg))
    assert code == 0 and "production" in output
    code, output = cli("registry", "--spec", str(root), "--registry", str(reg), "--verify")
    assert code == 0 and "v1: ok" in output
    code, output = cli("registry", "--spec", str(root), "--registry", str(reg), "--history",
                       "--json")
    assert code == 0 and [e["action"] for e in json.loads(output)["events"]] == [
        "package", "promote"]
    code, output = cli("rollback", "--spec", str(root), "--registry", str(reg), "--json")
    assert code == 2 and json.loads(output)["type"] == "PromotionError"


def test_the_index_schema_is_documented() -> None:
    doc = (ROOT / "docs" / "registry.md").read_text()
    for line in SCHEMA.strip().splitlines():
        assert line.split("--")[0].strip() in doc, line


# ------------------------------------------------------------------------------ scoring


@pytest.mark.parametrize("which", ["a", "b"])
def test_bundle_scores_are_bit_identical_to_the_run(project: dict[str, object],
                                                    tmp_path: Path, which: str) -> None:
    root = Path(str(project["root"]))
    bundle = load_bundle(package(root, run=str(project[which]), registry=tmp_path).path)
    assert bundle.candidate == project[f"best_{which}"]
    run_dir = root / ".valuechain" / "runs" / str(project[which])
    predictions = pd.read_parquet(run_dir / "predictions_test.parquet")
    frame = pd.read_parquet(root / ".valuechain" / "build" / "frame.parquet")
    rows = frame.set_index("decision_id").loc[predictions["decision_id"]].reset_index()
    scores = bundle.score(rows[list(bundle.feature_names)])
    offline = predictions[f"score_{bundle.candidate}"].to_numpy()
    assert scores.dtype == np.float64 and np.array_equal(scores, offline)
    contributions = bundle.contributions(rows)
    assert contributions.shape == (len(rows), len(bundle.feature_names))
    raw = np.clip(bundle.raw_score(rows), 1e-15, 1 - 1e-15)
    log_odds = np.log(raw) - np.log1p(-raw)
    np.testing.assert_allclose(contributions.sum(axis=1) + bundle.bias(rows), log_odds,
                               atol=1e-7)
    assert np.abs(contributions).sum(axis=0).max() > 0

    # feature mappings (one online decision) score without pandas, bit for bit the same
    records = rows[list(bundle.feature_names)].to_dict("records")
    assert np.array_equal(bundle.score(records), offline)
    assert np.array_equal(bundle.contributions(records), contributions)
    for i in range(0, len(rows), max(1, len(rows) // 150)):
        one = bundle.score(records[i])
        assert one.shape == (1,)
        assert np.array_equal(one, bundle.score(rows.iloc[[i]]))
        assert np.array_equal(one, offline[i:i + 1])  # alone == in the offline batch
    odd = {**records[0], bundle.feature_names[0]: str(records[0][bundle.feature_names[0]])}
    assert np.array_equal(bundle.score(odd), bundle.score(pd.DataFrame([odd])))  # via pandas
    reasons = bundle.reasons(records[:5], top=3)
    assert len(reasons) == 5 and all(len(r) <= 3 for r in reasons)
    assert all(name in bundle.feature_names and value > 0 for r in reasons for name, value in r)
    with pytest.raises(DataError, match=bundle.feature_names[-1]):
        bundle.score({k: v for k, v in records[0].items() if k != bundle.feature_names[-1]})


def test_bundle_spec_plan_policy_and_capacity(project: dict[str, object],
                                              tmp_path: Path) -> None:
    root = Path(str(project["root"]))
    bundle = load_bundle(package(root, run=str(project["a"]), registry=tmp_path).path)
    assert bundle.version == "v1" and bundle.run_id == project["a"]
    assert bundle.capacity == ("review", 150, 86_400_000_000, "approve")
    assert bundle.policy.kind == "three_band"
    assert dict(bundle.policy.metadata)["run_id"] == project["a"]
    loaded = bundle.spec(root)
    assert loaded.root == root.resolve() and loaded.workspace == root.resolve() / ".valuechain"
    assert bundle.spec(root / "valuechain.yaml").path == loaded.path
    plan = bundle.plan(root)
    assert plan == make_plan(load_spec(root))
    assert set(bundle.feature_names) <= set(plan.feature_names)


# ------------------------------------------------------------------------------ processes


def _run(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "VALUECHAIN_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


PACKAGE = """
import json, pathlib, sys, time
from valuechain.registry import package
gate = pathlib.Path(sys.argv[4])  # imports done: wait until every process is ready
(gate.parent / f"ready-{sys.argv[5]}").touch()
while not gate.exists():
    time.sleep(0.005)
r = package(sys.argv[1], run=sys.argv[2], registry=sys.argv[3])
print(json.dumps({"version": r.version, "created": r.created, "hash": r.content_hash}))
"""


def test_concurrent_package_processes_keep_the_index_consistent(
        project: dict[str, object], tmp_path: Path) -> None:
    root = str(project["root"])
    runs = [str(project["a"]), str(project["b"]), str(project["a"]), str(project["b"])]
    sync = tmp_path / "sync"
    sync.mkdir()
    registry = tmp_path / "registry"
    procs = [_run(PACKAGE, root, run, str(registry), str(sync / "go"), str(i))
             for i, run in enumerate(runs)]
    deadline = time.monotonic() + 120
    while len(list(sync.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.01)
    (sync / "go").touch()  # all four start packaging at the same moment
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    by_run: dict[str, set[str]] = {}
    for run, out in zip(runs, outputs, strict=True):
        by_run.setdefault(run, set()).add(out["version"])
    assert all(len(v) == 1 for v in by_run.values())  # one version per content
    assert sum(o["created"] for o in outputs) == 2
    versions = Registry(registry).versions()
    assert sorted(v.version for v in versions) == ["v1", "v2"]
    for v in versions:
        load_bundle(v.path)
    with sqlite3.connect(registry / "index.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert sorted(p.name for p in (registry / "bundles").iterdir()) == ["v1", "v2"]


KILLED = """
import os, signal, sys
import valuechain.registry.pack as pkg
where = sys.argv[4]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if where == "before_rename":
    pkg.os.rename = die
else:
    real = pkg._fsync_dir
    pkg._fsync_dir = die
pkg.package(sys.argv[1], run=sys.argv[2], registry=sys.argv[3])
"""


def test_a_package_killed_before_the_rename_leaves_no_bundle(project: dict[str, object],
                                                             tmp_path: Path) -> None:
    root, run = str(project["root"]), str(project["a"])
    proc = _run(KILLED, root, run, str(tmp_path), "before_rename")
    proc.communicate(timeout=240)
    assert proc.returncode == -9
    bundles = tmp_path / "bundles"
    assert [p.name for p in bundles.iterdir() if not p.name.startswith(".tmp-")] == []
    assert len(list(bundles.glob(".tmp-*"))) == 1  # the dead process's temporary folder
    assert Registry(tmp_path).versions() == []
    result = package(root, run=run, registry=tmp_path)
    assert (result.version, result.created) == ("v1", True)
    assert not list(bundles.glob(".tmp-*"))  # cleaned: its process is gone


def test_a_package_killed_before_the_commit_is_not_listed(project: dict[str, object],
                                                          tmp_path: Path) -> None:
    root, run = str(project["root"]), str(project["a"])
    proc = _run(KILLED, root, run, str(tmp_path), "before_commit")
    proc.communicate(timeout=240)
    assert proc.returncode == -9
    assert Registry(tmp_path).versions() == []  # the transaction never committed
    assert (tmp_path / "bundles" / "v1").is_dir()  # renamed, but not in the index
    result = package(root, run=run, registry=tmp_path)
    assert result.version == "v2"  # a number whose folder exists is never reused
    assert [v.version for v in Registry(tmp_path).versions()] == ["v2"]
    checked = dict(Registry(tmp_path).verify())
    assert checked["v2"] is None and "not in the index" in str(checked["v1"])


def test_registry_errors_are_user_errors(project: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ValuechainError):
        Registry(tmp_path).load()
    with pytest.raises(ArtifactError, match="no latest version yet"):
        Registry(tmp_path).get("latest")
    with pytest.raises(ArtifactError, match="no bundle folder"):
        load_bundle(tmp_path / "nothing")
    (tmp_path / "index.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ArtifactError, match=r"index\.sqlite: the registry index cannot be read"):
        Registry(tmp_path).versions()
    with pytest.raises(ArtifactError, match=r"index\.sqlite: the registry index cannot be "
                                            "written"):
        package(Path(str(project["root"])), registry=tmp_path)
    assert not list((tmp_path / "bundles").glob("*"))  # nothing left behind


def test_the_demo_ships_the_bundle_and_prints_the_serve_command(project: dict[str, object],
                                                                tmp_path: Path) -> None:
    from valuechain.demo.fraud import ship

    copy = clone(project, tmp_path)
    shipped = ship(copy, "examples/fraud")
    assert (shipped.version, shipped.promoted, shipped.failing_gates) == ("v1", True, ())
    assert shipped.serve_command == "valuechain serve --spec examples/fraud"
    assert shipped.lines()[-1] == "next: valuechain serve --spec examples/fraud"
    assert Registry(copy / ".valuechain" / "registry").production().version == "v1"
    again = ship(copy, "examples/fraud")  # same run: same version, still in production
    assert (again.version, again.created, again.promoted) == ("v1", False, True)
    (copy / ".valuechain" / "audit.json").unlink()
    staged = ship(copy, "examples/fraud")  # new content (not audited): stays in staging
    assert (staged.version, staged.promoted, staged.failing_gates) == ("v2", False, ("audit",))
    assert staged.serve_command == "valuechain serve --spec examples/fraud --version v2"
    assert Registry(copy / ".valuechain" / "registry").production().version == "v1"


def test_gate_figures_from_plain_inputs(project: dict[str, object]) -> None:
    from valuechain.registry.gates import audit_gate, baselines_gate, policy_gate

    spec = load_spec(Path(str(project["root"]))).spec
    stale = audit_gate({"findings": [], "context": {"frame_fingerprint": "aaaa"}}, spec,
                       "bbbb")
    assert not stale.passed and "audit is of frame aaaa" in stale.detail
    assert "frame bbbb" in stale.detail and "valuechain audit" in stale.fix
    accepted = audit_gate({"findings": [{"id": "x", "severity": "critical", "accepted": True}],
                           "context": {}}, spec, "bbbb", "/p")
    assert accepted.passed and "1 critical accepted" in accepted.detail
    lonely = baselines_gate({"run_id": "r1", "candidates": {"lightgbm": {}}, "verdicts": []},
                            "lightgbm")
    assert not lonely.passed and "trained no baseline" in lonely.detail
    missing = baselines_gate({"run_id": "r1", "candidates": {"prior": {}, "lightgbm": {}},
                              "verdicts": []}, "lightgbm")
    assert not missing.passed and "vs prior: no verdict" in missing.detail
    assert not policy_gate(None, "r1", "lightgbm").passed


def test_parity_compares_the_bundle_scores(project: dict[str, object], tmp_path: Path) -> None:
    """`valuechain parity --version`: the bundle scores online features as it scores offline."""
    import json

    root = clone(project, tmp_path)
    package(root, run=str(project["b"]))
    code, out = cli("parity", "--spec", str(root), "--version", "latest", "--json")
    assert code == 0, out
    result = json.loads(out.splitlines()[-1])
    assert result["exact"] is True, result
    scores = [f for f in result["features"] if f["name"] == "(score)"]
    assert scores and scores[0]["compared"] > 100 and scores[0]["differing"] == 0, scores
    code, out = cli("parity", "--spec", str(root), "--version", "v9")
    assert code == 2 and "v9" in out and "Traceback" not in out, out
