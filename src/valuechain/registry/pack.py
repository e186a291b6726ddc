"""``valuechain package``: a training run and its policy as one immutable, versioned bundle.

The bundle's files are written into a temporary folder beside the bundles (``.tmp-<pid>-*``,
invisible to the registry), checksummed, made read-only and renamed into place as
``bundles/v<N>`` inside the index transaction that records version ``N``. A crash before the
rename leaves only the temporary folder (removed by the next ``package`` once its process is
gone); a crash between the rename and the commit leaves a folder the index does not list
(never loaded through the registry; its number is not reused).

Packaging is idempotent: the same run (same files) gives the same content hash, and
packaging it again returns the existing version (``created`` is False) instead of a new one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from valuechain import __version__
from valuechain.artifacts import open_artifact
from valuechain.errors import ArtifactError, ModelError, SpecError
from valuechain.expressions import Expression
from valuechain.models.persist import read_manifest
from valuechain.policy import load_policy
from valuechain.registry.bundle import verify_bundle
from valuechain.registry.gates import Gate, evaluate_gates
from valuechain.registry.index import Registry, now
from valuechain.registry.layout import (
    AUDIT,
    BUNDLE_JSON,
    CALIBRATOR,
    CHECKSUMS,
    DECIDE,
    FEATURES,
    FORMAT_VERSION,
    FRAME_MANIFEST,
    METRICS,
    MODEL_DIR,
    POLICY,
    SPEC_FILE,
    content_hash,
    file_checksums,
    sha256_file,
)
from valuechain.spec.loader import LoadedSpec, load_spec
from valuechain.train.provenance import fix_command
from valuechain.train.result import TrainResult
from valuechain.train.runs import latest_run

__all__ = ["REFERENCE", "PackageResult", "bundle_gates", "default_registry", "package",
           "plan_features", "read_reference", "reference_frame"]

#: The bundle's reference period for monitoring (its run's test period): features, score,
#: label, the policy's action, time. Checksummed like every bundle file; older bundles lack it.
REFERENCE = "reference.parquet"
_PERIOD_KEY = b"valuechain.reference.period"

NOT_AUDITED: dict[str, Any] = {"status": "not audited",
                               "fix": "run `valuechain audit --spec DIR`, then package again"}


@dataclass(frozen=True)
class PackageResult:
    """What :func:`package` wrote (or found already packaged).

    Attributes
    ----------
    version : str
        ``v<N>`` in the registry.
    path : Path
        The bundle folder.
    content_hash : str
        sha256 of the bundle's content (the same run gives the same hash).
    created : bool
        False when this content was already packaged (``version`` is the existing one).
    run_id, candidate : str
        The run packaged and its chosen candidate.
    files : tuple of str
        Every file of the bundle, relative to its folder.
    bytes : int
        Total size of the files.
    seconds : float
        Time taken.
    gates : tuple of Gate
        The promotion gates as the bundle stands (``valuechain promote`` evaluates them
        again).
    stage : str
        The version's stage (``staging`` when just packaged).
    registry : Path
        The registry folder.
    """

    version: str
    path: Path
    content_hash: str
    created: bool
    run_id: str
    candidate: str
    files: tuple[str, ...]
    bytes: int
    seconds: float
    gates: tuple[Gate, ...]
    stage: str
    registry: Path

    @property
    def gates_passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_json(self) -> dict[str, Any]:
        """What ``valuechain package --json`` prints."""
        return {"version": self.version, "path": str(self.path),
                "content_hash": self.content_hash, "created": self.created,
                "run_id": self.run_id, "candidate": self.candidate, "files": list(self.files),
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "stage": self.stage,
                "registry": str(self.registry), "gates_passed": self.gates_passed,
                "gates": [g.to_json() for g in self.gates]}


def default_registry(loaded: LoadedSpec) -> Path:
    """``<workspace>/registry`` (``<project>/.valuechain/registry`` by default)."""
    return loaded.workspace / "registry"


def _run_dir(loaded: LoadedSpec, run: str | None) -> Path:
    runs = loaded.workspace / "runs"
    train = fix_command(loaded.root)
    if run is None:
        found = latest_run(runs)
        if found is None:
            raise ArtifactError(f"{runs}: no training run to package. Run `{train}`, then "
                                f"`{fix_command(loaded.root, 'decide')}`, then package.")
        return found
    folder = runs / run
    if "/" in run or run.startswith(".") or not (folder / "metrics.json").is_file():
        known = sorted(p.parent.name for p in runs.glob("[0-9]*/metrics.json"))
        raise ArtifactError(f"`run` {run!r}: no such training run in {runs} (runs: "
                            f"{', '.join(known) or 'none'}). `valuechain runs --spec "
                            f"{loaded.root}` lists them.")
    return folder


def _jsonable(value: Any) -> Any:
    if isinstance(value, Expression):
        return value.text
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return value.as_posix()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def plan_features(loaded: LoadedSpec, numeric: tuple[str, ...], categorical: tuple[str, ...]
                  ) -> dict[str, Any]:
    """The resolved feature definitions (``features.json``): the build plan's features.

    Each feature with its kind (``row``, ``window``, ``lookup``) and every field the engines
    compute it from (expressions as written, durations in microseconds), in spec order; the
    decision points and the label; and the model's inputs (numeric, then categorical).
    """
    from valuechain.data.plan import make_plan

    plan = make_plan(loaded)
    kinds = [("row", f) for f in plan.row_features] + [("window", f) for f in plan.windows] + [
        ("lookup", f) for f in plan.lookups]
    kinds.sort(key=lambda kf: kf[1].index)
    features = [{"kind": kind, **_jsonable(f)} for kind, f in kinds]
    for entry in features:
        entry.pop("index", None)
    return {"features": features, "decision_points": _jsonable(plan.points),
            "label": _jsonable(plan.label),
            "model_inputs": {"numeric": list(numeric), "categorical": list(categorical)}}


def _dump(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n",
                    encoding="utf-8")


def _read_json(path: Path, rebuild: str = "valuechain package --spec DIR") -> Any:
    return open_artifact(path, "json", rebuild=rebuild, expect=dict)


def _seal(folder: Path) -> None:
    """fsync every file, make files 0444 and folders 0555 (deepest first)."""
    for path in sorted(folder.rglob("*"), key=lambda p: -len(p.parts)):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(path, 0o444)
        else:
            os.chmod(path, 0o555)
    os.chmod(folder, 0o555)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            os.chmod(path, 0o755)
    shutil.rmtree(folder, ignore_errors=True)


def _clean_stale(bundles: Path) -> None:
    """Remove temporary folders left by ``package`` processes that no longer run."""
    for tmp in bundles.glob(".tmp-*"):
        try:
            pid = int(tmp.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            _remove(tmp)


def _write_content(tmp: Path, loaded: LoadedSpec, run_dir: Path, run: TrainResult
                   ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every content file of the bundle; returns the model's (numeric, categorical) inputs."""
    best = run.best_candidate
    model_dir = run_dir / "candidates" / best
    features, state = read_manifest(model_dir)
    if state.get("adapter") == "sklearn" and state.get("persistence") != "skops":
        raise ModelError(
            f"{model_dir}: candidate '{best}' was saved with {state.get('persistence')} (a "
            "pickle), which a bundle never holds: it loads only with the same library "
            "versions and runs code on load. Make the estimator persistable with skops (see "
            "valuechain.models.as_candidate), train and decide again, then package.")
    names = {f.name for f in loaded.spec.features}
    unknown = [c for c in features.columns if c not in names]
    if unknown:
        raise ArtifactError(
            f"run {run.run_id}'s candidate '{best}' reads {unknown}, which are no longer "
            f"features of {loaded.path.name}: the spec changed since the run. Run "
            f"`{fix_command(loaded.root)}` and `{fix_command(loaded.root, 'decide')}` with the "
            "current spec, then package.")
    shutil.copytree(model_dir, tmp / MODEL_DIR)
    (tmp / SPEC_FILE).parent.mkdir(parents=True)
    shutil.copyfile(loaded.path, tmp / SPEC_FILE)
    shutil.copyfile(run_dir / "calibrators" / f"{best}.json", tmp / CALIBRATOR)
    shutil.copyfile(run_dir / "policy.yaml", tmp / POLICY)
    shutil.copyfile(run_dir / "frame_manifest.json", tmp / FRAME_MANIFEST)
    shutil.copyfile(run_dir / "metrics.json", tmp / METRICS)
    _dump(tmp / FEATURES, plan_features(loaded, features.numeric, features.categorical))
    audit = loaded.workspace / "audit.json"
    if audit.is_file():
        shutil.copyfile(audit, tmp / AUDIT)
    else:
        _dump(tmp / AUDIT, NOT_AUDITED)
    _write_reference(tmp, loaded, run_dir, run, (*features.numeric, *features.categorical))
    decided = loaded.workspace / "decide.json"
    if decided.is_file():
        body = _read_json(decided, fix_command(loaded.root, "decide"))
        if isinstance(body, dict) and body.get("run_id") == run.run_id:
            shutil.copyfile(decided, tmp / DECIDE)
    return features.numeric, features.categorical


def reference_frame(loaded: LoadedSpec, run_dir: Path, run: TrainResult, policy: Any,
                    capacity: tuple[str, int, int, str] | None, *,
                    feature_names: tuple[str, ...],
                    expect_fingerprint: str | None = None) -> tuple[pd.DataFrame, str] | None:
    """The run's out-of-sample period as the monitoring reference, and its name.

    The run's stored test predictions (validation when the test period is empty): decision
    id, time, calibrated score of the chosen candidate and the mature label, joined with the
    frame's feature values (model order; categoricals as the models read them, str;
    numerics float64) and the action the policy takes with its capacity (periods from
    :func:`~valuechain.policy.capacity.capacity_period`).

    Returns None when the frame in the workspace is not the run's (its fingerprint differs
    from ``expect_fingerprint``, default the run's own): the reference would mix two frames.
    """
    from valuechain.data.sources import fingerprint
    from valuechain.models.base import text_matrix
    from valuechain.policy.capacity import apply_with_capacity, capacity_period
    from valuechain.train.context import DAY_US, times_us

    frame_path = loaded.workspace / run.frame.path
    expected = expect_fingerprint or run.frame.fingerprint
    if not frame_path.is_file() or expected is None or fingerprint([frame_path]) != expected:
        return None
    best, time_col = run.best_candidate, run.frame.time_column or ""
    id_col = run.frame.id_column
    preds, role = None, ""
    for role in ("test", "validation"):
        path = run_dir / f"predictions_{role}.parquet"
        if path.is_file():
            table = open_artifact(path, "parquet", rebuild=fix_command(loaded.root),
                                  columns=[id_col, time_col, "label", f"score_{best}"],
                                  what=f"the {role} predictions of run {run.run_id}")
            if len(table):
                preds = table
                break
    if preds is None:
        return None
    wanted = pd.Index(preds[id_col].astype(str))
    body = pq.read_table(frame_path, columns=[id_col, *feature_names]).to_pandas()
    body = body.set_index(body[id_col].astype(str)).reindex(wanted)
    out = pd.DataFrame({"decision_id": wanted.to_numpy(dtype=object)})
    t_us = times_us(preds[time_col])
    out["time"] = pd.Series(t_us.astype("datetime64[us]")).dt.tz_localize("UTC")
    categorical = [c for c in feature_names if not pd.api.types.is_numeric_dtype(body[c])
                   or pd.api.types.is_bool_dtype(body[c])]
    texts = text_matrix(body, categorical) if categorical else None
    for name in feature_names:
        if name in categorical:
            assert texts is not None
            out[name] = pd.array(texts[:, categorical.index(name)], dtype="str")
        else:
            out[name] = body[name].to_numpy(dtype=np.float64, na_value=np.nan)
    scores = preds[f"score_{best}"].to_numpy(dtype=np.float64)
    out["score"] = scores
    out["label"] = preds["label"].to_numpy(dtype=np.float64)
    per_us = capacity[2] if capacity else DAY_US
    out["action"] = pd.array(apply_with_capacity(
        policy, scores, capacity_period(t_us, per_us), capacity[1] if capacity else None,
        capacity[3] if capacity else "approve"), dtype="str")
    period: dict[str, Any] = next(
        (p for p in run.splits.get("periods", []) if p.get("name") == role), {})
    start, end = str(period.get("start", ""))[:10], str(period.get("end", ""))[:10]
    return out, f"{role} {start}..{end}"


def read_reference(path: Path) -> tuple[pd.DataFrame, str]:
    """A bundle's ``reference.parquet`` and the name of its period."""
    table = open_artifact(path, "parquet", rebuild="valuechain package --spec DIR",
                          what="the bundle's reference period")
    meta = pq.read_schema(path).metadata or {}
    return table, meta.get(_PERIOD_KEY, b"").decode()


def _write_reference(tmp: Path, loaded: LoadedSpec, run_dir: Path, run: TrainResult,
                     feature_names: tuple[str, ...]) -> None:
    """``reference.parquet`` when the run's frame is still the one built (else no file)."""
    from valuechain.spec.durations import to_micros
    from valuechain.train.context import spec_capacity

    found = spec_capacity(loaded)
    capacity = None if found is None else (found[0], int(found[1].limit),
                                           to_micros(found[1].per), str(found[1].overflow))
    built = reference_frame(loaded, run_dir, run, load_policy(run_dir / "policy.yaml"),
                            capacity, feature_names=feature_names)
    if built is None:
        return
    frame, period = built
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           _PERIOD_KEY: period.encode()})
    pq.write_table(table, tmp / REFERENCE, compression="zstd")


def _headline(loaded: LoadedSpec, folder: Path, run: TrainResult) -> dict[str, Any]:
    test = run.candidates[run.best_candidate].test
    out: dict[str, Any] = {"test_auc": test.get("roc_auc"), "test_ap": test.get(
        "average_precision"), "savings": None, "savings_vs": None,
        "currency": loaded.spec.value.currency if loaded.spec.value else None}
    if (folder / DECIDE).is_file():
        savings = (_read_json(folder / DECIDE).get("test") or {}).get("savings") or {}
        for name in ("rules", "approve_all"):
            if isinstance(savings.get(name), dict):
                out["savings"], out["savings_vs"] = savings[name].get("value"), name
                break
    return out


def bundle_gates(path: Path) -> tuple[Gate, ...]:
    """The promotion gates of the bundle at ``path``, from its verified files."""
    folder = Path(path)
    verify_bundle(folder)
    metrics = _read_json(folder / METRICS)
    audit = _read_json(folder / AUDIT)
    manifest = _read_json(folder / BUNDLE_JSON)
    spec = load_spec(folder / SPEC_FILE).spec
    policy = load_policy(folder / POLICY) if (folder / POLICY).is_file() else None
    return evaluate_gates(spec=spec, metrics=metrics, audit=audit, policy=policy,
                          candidate=str(manifest.get("candidate")))


def package(spec: str | os.PathLike[str] | LoadedSpec, *, run: str | None = None,
            registry: Path | str | None = None) -> PackageResult:
    """Package a training run and its decided policy as an immutable, versioned bundle.

    Parameters
    ----------
    spec : str, os.PathLike or LoadedSpec
        The project (``valuechain.yaml`` or its folder).
    run : str, optional
        The run id (``valuechain runs`` lists them); default the latest run.
    registry : Path, optional
        The registry folder; default ``<workspace>/registry``.

    Returns
    -------
    PackageResult
        The version (new, or the existing one holding the same content), its folder, content
        hash, files, size and gates.

    Raises
    ------
    ArtifactError
        When there is no run, the run has no ``policy.yaml`` (run ``valuechain decide``), or
        its files are missing or damaged.
    ModelError
        When the chosen candidate was saved as a pickle.

    Examples
    --------
    >>> result = package("examples/fraud")  # doctest: +SKIP
    >>> result.version, result.created  # doctest: +SKIP
    ('v1', True)
    """
    started = time.perf_counter()
    if isinstance(spec, LoadedSpec):
        loaded = spec
    elif isinstance(spec, str | os.PathLike):
        loaded = load_spec(Path(spec))
    else:
        raise SpecError(f"`spec`: expected a path to valuechain.yaml (or its folder) or a "
                        f"loaded spec, got {type(spec).__name__}.")
    run_dir = _run_dir(loaded, run)
    result = TrainResult.load(run_dir, root=loaded.root)
    if not (run_dir / "policy.yaml").is_file():
        raise ArtifactError(
            f"{run_dir / 'policy.yaml'} is missing: run {result.run_id} has no decided policy, "
            "and a bundle ships the model with its policy. Run "
            f"`{fix_command(loaded.root, 'decide')}` (it decides on the latest run), then "
            "package.")
    for needed in (run_dir / "candidates" / result.best_candidate / "candidate.json",
                   run_dir / "calibrators" / f"{result.best_candidate}.json",
                   run_dir / "frame_manifest.json"):
        if not needed.is_file():
            raise ArtifactError(f"{needed} is missing: run {result.run_id} is incomplete. Run "
                                f"`{fix_command(loaded.root)}` to train again, then decide "
                                "and package.")
    reg = Registry(registry if registry is not None else default_registry(loaded))
    reg.bundles.mkdir(parents=True, exist_ok=True)
    _clean_stale(reg.bundles)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=reg.bundles))
    published: Path | None = None  # renamed into place, but the index row not committed yet
    try:
        numeric, categorical = _write_content(tmp, loaded, run_dir, result)
        chash = content_hash(file_checksums(tmp))
        headline = _headline(loaded, tmp, result)
        policy = load_policy(tmp / POLICY)
        gates = evaluate_gates(spec=loaded.spec, metrics=_read_json(tmp / METRICS),
                               audit=_read_json(tmp / AUDIT), policy=policy,
                               candidate=result.best_candidate, root=str(loaded.root))
        with reg.transaction() as conn:
            row = conn.execute("SELECT version FROM versions WHERE content_hash = ?",
                               (chash,)).fetchone()
            if row is not None:
                _remove(tmp)
                info = reg.get(row["version"])
                return _result(info.version, info.path, chash, False, result, reg,
                               info.stage, started)
            numbers = [int(r[0]) for r in conn.execute("SELECT number FROM versions")]
            numbers += [int(p.name[1:]) for p in reg.bundles.glob("v*") if p.name[1:].isdigit()]
            version = f"v{max(numbers, default=0) + 1}"
            created_at = now()
            _dump(tmp / BUNDLE_JSON, {
                "format_version": FORMAT_VERSION, "version": version, "content_hash": chash,
                "created_at": created_at, "valuechain": __version__,
                "project": loaded.spec.project.name, "run_id": result.run_id,
                "candidate": result.best_candidate, "run_created_at": result.created_at,
                "spec_sha256": sha256_file(tmp / SPEC_FILE), "spec_hash": loaded.hash,
                "run_spec_hash": result.spec_hash,
                "frame_fingerprint": result.frame.fingerprint,
                "feature_names": [*numeric, *categorical],
                "policy": {"kind": policy.kind, "version": policy.to_dict()["version"]},
                "headline": headline, "gates": [g.to_json() for g in gates]})
            _dump(tmp / CHECKSUMS, {"algorithm": "sha256", "files": file_checksums(tmp)})
            _seal(tmp)
            final = reg.bundles / version
            os.rename(tmp, final)
            published = final
            _fsync_dir(reg.bundles)
            conn.execute(
                "INSERT INTO versions (version, number, content_hash, stage, created_at, "
                "run_id, candidate, spec_hash, test_auc, test_ap, savings, savings_vs, "
                "currency, gates_passed, gates, path) VALUES (?, ?, ?, 'staging', ?, ?, ?, ?, "
                "?, ?, ?, ?, ?, ?, ?, ?)",
                (version, int(version[1:]), chash, created_at, result.run_id,
                 result.best_candidate, loaded.hash, headline["test_auc"],
                 headline["test_ap"], headline["savings"], headline["savings_vs"],
                 headline["currency"], int(all(g.passed for g in gates)),
                 json.dumps([g.to_json() for g in gates]), f"bundles/{version}"))
            conn.execute("INSERT INTO events (at, action, version, previous, detail) VALUES "
                         "(?, 'package', ?, NULL, ?)", (created_at, version,
                                                        f"run {result.run_id}"))
        published = None  # committed
        return _result(version, final, chash, True, result, reg, "staging", started, gates)
    except BaseException:
        for folder in (tmp, published):
            if folder is not None and folder.exists():
                _remove(folder)
        raise


def _result(version: str, path: Path, chash: str, created: bool, run: TrainResult,
            reg: Registry, stage: str, started: float,
            gates: tuple[Gate, ...] | None = None) -> PackageResult:
    sums = json.loads((path / CHECKSUMS).read_text())["files"]
    files = tuple(sorted([*sums, CHECKSUMS]))
    size = sum((path / f).stat().st_size for f in files)
    return PackageResult(version=version, path=path, content_hash=chash, created=created,
                         run_id=run.run_id, candidate=run.best_candidate, files=files,
                         bytes=size, seconds=time.perf_counter() - started,
                         gates=gates if gates is not None else bundle_gates(path), stage=stage,
                         registry=reg.root)
