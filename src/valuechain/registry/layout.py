"""What a bundle folder holds, its checksums and its content hash (one definition each).

A bundle is a folder of plain files (JSON, YAML, LightGBM text; never a pickle)::

    bundle.json            identity: version, content hash, run, candidate, features, capacity
    checksums.json         sha256 of every other file (the file list itself)
    spec/valuechain.yaml   the spec as written (byte copy)
    features.json          the resolved feature definitions (the build plan's features)
    model/                 the chosen candidate as persisted by train (candidate.json, ...)
    calibrator.json        the candidate's calibration map
    policy.yaml            the decided policy (written by ``valuechain decide``)
    frame_manifest.json    lineage of the frame the run was trained on
    metrics.json           the run's metrics (every candidate, verdicts, splits)
    decide.json            the decision stage's result for this run (when it is the latest)
    audit.json             the leakage audit, or ``{"status": "not audited"}``
    reference.parquet      the run's out-of-sample period (test, else validation): features,
                           calibrated score, mature label, the policy's action, time — what
                           ``valuechain monitor`` compares live decisions with

:func:`content_hash` hashes every file but ``bundle.json`` and ``checksums.json`` (path and
sha256 of the bytes), so packaging the same run twice gives the same hash whatever the
version number or the time.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "policy.yaml").write_text("kind: threshold\\n")
>>> sums = file_checksums(folder)
>>> list(sums), len(sums["policy.yaml"])
(['policy.yaml'], 64)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

__all__ = [
    "AUDIT",
    "BUNDLE_JSON",
    "CALIBRATOR",
    "CHECKSUMS",
    "DECIDE",
    "FEATURES",
    "FORMAT_VERSION",
    "FRAME_MANIFEST",
    "METRICS",
    "MODEL_DIR",
    "POLICY",
    "SPEC_FILE",
    "content_hash",
    "file_checksums",
    "sha256_file",
]

FORMAT_VERSION: Final = 1
BUNDLE_JSON: Final = "bundle.json"
CHECKSUMS: Final = "checksums.json"
SPEC_FILE: Final = "spec/valuechain.yaml"
FEATURES: Final = "features.json"
MODEL_DIR: Final = "model"
CALIBRATOR: Final = "calibrator.json"
POLICY: Final = "policy.yaml"
FRAME_MANIFEST: Final = "frame_manifest.json"
METRICS: Final = "metrics.json"
DECIDE: Final = "decide.json"
AUDIT: Final = "audit.json"

#: Files outside the content hash: they name the version, which the content does not decide.
IDENTITY: Final = (BUNDLE_JSON, CHECKSUMS)


def sha256_file(path: Path) -> str:
    """sha256 hex digest of the file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_checksums(folder: Path) -> dict[str, str]:
    """``relative/posix/path -> sha256`` of every file under ``folder`` but checksums.json."""
    out = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != CHECKSUMS:
            out[rel] = sha256_file(path)
    return out


def content_hash(checksums: dict[str, str]) -> str:
    """sha256 over ``path sha256`` lines of the content files (identity files left out).

    >>> content_hash({"a.json": "11", "bundle.json": "22"}) == content_hash({"a.json": "11"})
    True
    """
    digest = hashlib.sha256()
    for rel in sorted(checksums):
        if rel not in IDENTITY:
            digest.update(f"{rel} {checksums[rel]}\n".encode())
    return digest.hexdigest()
