"""Run directories: written whole into a temporary folder, then renamed into place.

``<workspace>/runs/<run_id>/`` holds ``candidates/<name>/`` (portable model files),
``calibrators/<name>.json``, ``metrics.json``, ``predictions_validation.parquet``,
``predictions_test.parquet`` and ``frame_manifest.json``; ``runs/latest`` names the newest.
A crash leaves at most a ``.tmp-*`` folder, never a half-written run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from valuechain.io import write_json, write_text
from valuechain.models import Calibrator, Candidate

__all__ = ["RunWriter", "finite", "latest_run", "list_runs"]


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

    def finish(self, metrics: dict[str, Any], manifest: dict[str, Any]) -> tuple[str, Path]:
        body = {"run_id": self.run_id, "created_at": self.created_at,
                "spec_hash": self.spec_hash, "seed": self.seed, **metrics}
        write_json(self.tmp / "metrics.json", finite(body))
        write_json(self.tmp / "frame_manifest.json", manifest)
        final = self.runs / self.run_id
        os.replace(self.tmp, final)
        os.chmod(final, 0o755)
        write_text(self.runs / "latest", self.run_id + "\n")
        return self.run_id, final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def finite(value: Any) -> Any:
    """NaN and infinities become null so metrics.json is strict JSON."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def latest_run(runs: Path) -> Path | None:
    """The newest published run directory, if any."""
    pointer = runs / "latest"
    if pointer.exists():
        candidate = runs / pointer.read_text().strip()
        if candidate.is_dir():
            return candidate
    return None


def list_runs(runs: Path) -> list[dict[str, Any]]:
    """Published runs, newest first: id, time, best candidate and its test headline."""
    out = []
    for folder in sorted(runs.glob("[0-9]*"), reverse=True):
        path = folder / "metrics.json"
        if not path.exists():
            continue
        metrics = json.loads(path.read_text())
        best = metrics.get("best_candidate")
        headline = metrics.get("headline_metric", "average_precision")
        test = metrics.get("candidates", {}).get(best, {}).get("test", {})
        out.append({"run_id": metrics["run_id"], "created_at": metrics["created_at"],
                    "candidates": sorted(metrics.get("candidates", {})), "best": best,
                    "headline_metric": headline, "test": test.get(headline),
                    "roc_auc": test.get("roc_auc"), "path": str(folder)})
    return out
