"""Portable persistence: every candidate is a directory of JSON (and text) files, never pickle.

``candidate.json`` names the candidate, its format version, its feature set and its fitted
state (plain numbers and strings). Candidates with a native text format add their own file
(LightGBM writes ``model.txt``). Floats are written with ``repr`` precision, so a reload
predicts bit for bit what the fitted object predicted.

>>> import tempfile
>>> import pandas as pd
>>> from valuechain.models import FeatureSet, make_candidate
>>> frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0]})
>>> y = np.array([0, 0, 1, 0])
>>> prior = make_candidate("prior", FeatureSet(("amount",))).fit(frame, y, frame, y)
>>> with tempfile.TemporaryDirectory() as tmp:
...     prior.save(Path(tmp))
...     load_candidate(Path(tmp)).predict(frame).tolist()
[0.25, 0.25, 0.25, 0.25]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from valuechain.artifacts import fix_command, open_artifact
from valuechain.errors import ArtifactError
from valuechain.models.base import LOADERS, Candidate, FeatureSet

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "load_candidate",
    "read_json",
    "read_manifest",
    "write_json",
    "write_manifest",
]

MANIFEST = "candidate.json"
FORMAT_VERSION = 1


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as plain Python values (NaN becomes ``None``)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (a temporary file renamed into place).

    NumPy values become plain numbers and lists; NaN and infinities become ``null``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(data), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The JSON value stored at ``path``; an :class:`ArtifactError` naming it if unreadable.

    Read with :func:`valuechain.artifacts.open_artifact` (the one way stage outputs are
    opened): the message names the file, what is wrong and the command that trains again.
    """
    return open_artifact(Path(path), "json", rebuild=fix_command(None),
                         what="this saved model file")


def write_manifest(
    directory: Path, name: str, features: FeatureSet, state: dict[str, Any]
) -> None:
    """Write ``candidate.json``: the candidate's name, format version, features and state."""
    write_json(
        Path(directory) / MANIFEST,
        {
            "candidate": name,
            "format_version": FORMAT_VERSION,
            "features": features.to_dict(),
            "state": state,
        },
    )


def read_manifest(directory: Path, name: str | None = None) -> tuple[FeatureSet, dict[str, Any]]:
    """The feature set and state in ``directory/candidate.json`` (checked against ``name``)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"no saved candidate in {directory}: {MANIFEST} is missing. Fix: point at a "
            "directory written by a candidate's save(), e.g. runs/<id>/models/<name>/."
        )
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("features"), dict) or (
            not isinstance(data.get("state"), dict)):
        raise ArtifactError(
            f"{path} is damaged: expected an object with `candidate`, `format_version`, "
            "`features` and `state`. Fix: train again to write it anew, or restore the file."
        )
    found = data.get("candidate")
    version = data.get("format_version")
    if name is not None and found != name:
        raise ArtifactError(
            f"{path} holds candidate '{found}', not '{name}'. Fix: load it with "
            "valuechain.models.load_candidate(), which picks the right class."
        )
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format_version {version}; this valuechain reads {FORMAT_VERSION}. "
            "Fix: retrain with this version, or load it with the version that wrote it."
        )
    return FeatureSet.from_dict(data["features"]), dict(data["state"])


def load_candidate(directory: Path) -> Candidate:
    """The candidate saved in ``directory``, whatever its kind."""
    path = Path(directory) / MANIFEST
    data = read_json(path) if path.is_file() else None
    name = data.get("candidate") if isinstance(data, dict) else None
    if name is None:
        read_manifest(directory)  # raises the missing-file or damaged-file message
    state = data.get("state") if isinstance(data, dict) else None
    if isinstance(state, dict) and state.get("adapter") == "sklearn":
        from valuechain.models.sklearn import EstimatorCandidate

        return EstimatorCandidate.load(Path(directory))
    if name not in LOADERS:
        raise ArtifactError(
            f"{path} holds candidate '{name}', which this valuechain does not know. "
            f"Known: {sorted(LOADERS)}."
        )
    return LOADERS[name](Path(directory))
