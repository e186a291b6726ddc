"""Run directories: written whole into a temporary folder, then renamed into place.

``<workspace>/runs/<run_id>/`` holds ``candidates/<name>/`` (portable model files),
``calibrators/<name>.json``, ``metrics.json``, ``predictions_validation.parquet``,
``predictions_test.parquet`` and ``frame_manifest.json``; ``runs/latest`` names the newest.
A crash leaves at most a ``.tmp-*`` folder, never a half-written run.

The predictions files hold one row per decision of the period, ``decision_id`` first (the
frame's decision identity), then the frame's id and time columns, ``label``, every per-row
input later stages price (``cost_false_negative``, ``cost_false_positive``, ``cost_review``,
``rule``) and ``score_<candidate>`` / ``raw_<candidate>``: ``decide`` reads them alone and
never joins the frame again. Nothing in a run names an absolute path, so a project folder
can move after training.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from valuechain.artifacts import damaged, fix_command, open_artifact
from valuechain.errors import ArtifactError
from valuechain.io import write_json, write_text
from valuechain.models import Calibrator, Candidate
from valuechain.train.result import TrainResult, finite

__all__ = ["RunWriter", "finite", "latest_run", "list_runs", "recorded_seed"]

#: The file in ``runs/`` naming the newest published run.
LATEST = "latest"

#: The decision identity column (made by `valuechain build`), first in every predictions file.
ID_COLUMN = "decision_id"


class RunWriter:
    """Collects one run's files in a temporary folder; :meth:`finish` publishes it."""

    def __init__(self, runs: Path, *, spec_hash: str, seed: int) -> None:
        runs.mkdir(parents=True, exist_ok=True)
        self.runs = runs
        now = datetime.now(UTC)
        self.run_id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        self.created_at = now.isoformat(timespec="seconds")
        self.spec_hash, self.seed = spec_hash, seed
        self.tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=runs))

    def save_candidate(self, name: str, model: Candidate, calibrator: Calibrator) -> None:
        folder = self.tmp / "candidates" / name
        folder.mkdir(parents=True, exist_ok=True)
        model.save(folder)
        write_json(self.tmp / "calibrators" / f"{name}.json", calibrator.to_dict())

    def save_predictions(self, role: str, frame: pd.DataFrame) -> None:
        frame.to_parquet(self.tmp / f"predictions_{role}.parquet", index=False)

    def finish(self, result: TrainResult, manifest: dict[str, Any]) -> tuple[str, Path]:
        """Write ``metrics.json`` and the frame manifest, then publish the run."""
        write_json(self.tmp / "metrics.json", result.to_metrics())
        write_json(self.tmp / "frame_manifest.json", manifest)
        final = self.runs / self.run_id
        os.replace(self.tmp, final)
        os.chmod(final, 0o755)
        write_text(self.runs / LATEST, self.run_id + "\n")
        return self.run_id, final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def latest_run(runs: Path, *, root: Path | None = None) -> Path | None:
    """The newest published run directory in ``runs``; ``None`` when there is none.

    The run named by ``runs/latest`` (written when a run is published); without that file,
    the newest folder holding a ``metrics.json`` (run ids start with their UTC creation
    time, so the newest sorts last). This is the one rule: ``decide`` and the report both
    use it.

    Parameters
    ----------
    runs : Path
        The workspace's ``runs`` folder.
    root : Path, optional
        The project folder, to print the exact command that trains again.

    Raises
    ------
    ArtifactError
        When ``runs/latest`` names a run whose folder is missing (deleted or moved) or does
        not name a run at all: the message names the pointer, the run, the newest run still
        there and the fix. Another run is never picked silently in its place.

    Examples
    --------
    >>> import tempfile
    >>> runs = Path(tempfile.mkdtemp())
    >>> latest_run(runs) is None
    True
    >>> for run_id in ("20250101-000000-aaaaaa", "20250102-000000-bbbbbb"):
    ...     (runs / run_id).mkdir()
    ...     _ = (runs / run_id / "metrics.json").write_text("{}")
    >>> latest_run(runs).name
    '20250102-000000-bbbbbb'
    >>> _ = (runs / "latest").write_text("20250101-000000-aaaaaa")
    >>> latest_run(runs).name
    '20250101-000000-aaaaaa'
    >>> _ = (runs / "latest").write_text("20240101-000000-gone00")
    >>> latest_run(runs)
    Traceback (most recent call last):
    ...
    valuechain.errors.ArtifactError: .../latest: names run '20240101-000000-gone00', but ...
    """
    pointer = runs / LATEST
    published = sorted(p.parent for p in runs.glob("[0-9]*/metrics.json"))
    if not pointer.exists():
        return published[-1] if published else None
    fix = fix_command(root)
    what = "the pointer to the latest run"
    name = open_artifact(pointer, "text", rebuild=fix, what=what).strip()
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\n" in name:
        raise damaged(pointer, f"it should hold one run id, found {name[:60]!r}", fix,
                      what=what)
    candidate = runs / name
    if candidate.is_dir():
        return candidate
    others = (f", or write the id of a run that is still there into {pointer} (the newest is "
              f"'{published[-1].name}'; `valuechain runs --spec DIR` lists them)"
              if published else "")
    raise ArtifactError(
        f"{pointer}: names run '{name}', but {candidate} is missing (deleted or moved), so "
        f"there is no latest run to read. Run `{fix}` to train a new run{others}.")


def list_runs(runs: Path) -> list[dict[str, Any]]:
    """Published runs, newest first: id, time, best candidate and its test headline."""
    out = []
    for folder in sorted(runs.glob("[0-9]*"), reverse=True):
        try:
            metrics = open_artifact(folder / "metrics.json", "json", expect=dict,
                                    rebuild=fix_command(None))
        except ArtifactError:
            continue  # no metrics.json (yet), or damaged: not a run to list
        if "run_id" not in metrics:
            continue
        best = metrics.get("best_candidate")
        headline = metrics.get("headline_metric", "average_precision")
        test = metrics.get("candidates", {}).get(best, {}).get("test", {})
        out.append({"run_id": metrics["run_id"], "created_at": metrics.get("created_at"),
                    "candidates": sorted(metrics.get("candidates", {})), "best": best,
                    "headline_metric": headline, "test": test.get(headline),
                    "roc_auc": test.get("roc_auc"), "path": str(folder)})
    return out


def recorded_seed(runs: Path) -> int | None:
    """The seed of the latest run in ``runs`` (None when there is no readable run).

    ``valuechain train`` and ``decide`` reuse it when ``--seed`` is not given, so the command
    run after ``valuechain demo fraud`` (seed 7) reproduces the demo's numbers.

    >>> import tempfile, json
    >>> runs = Path(tempfile.mkdtemp())
    >>> recorded_seed(runs) is None
    True
    >>> (runs / "20250101-000000-aaaaaa").mkdir()
    >>> _ = (runs / "20250101-000000-aaaaaa" / "metrics.json").write_text(
    ...     json.dumps({"run_id": "20250101-000000-aaaaaa", "seed": 7}))
    >>> recorded_seed(runs)
    7
    """
    try:
        folder = latest_run(runs)
    except ArtifactError:
        return None
    if folder is None:
        return None
    try:
        metrics = open_artifact(folder / "metrics.json", "json", expect=dict,
                                rebuild=fix_command(None))
    except ArtifactError:
        return None
    seed = metrics.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None
