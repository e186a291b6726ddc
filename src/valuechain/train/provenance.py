"""Which frame a run was made from, and whether it is still the frame in the workspace.

``valuechain build`` writes ``<workspace>/build/frame.parquet`` and ``build/manifest.json``;
the manifest records the frame's ``cache_key`` (spec, source files, ``--as-of``, engine) and
its ``fingerprint`` (a blake2b hash of the frame file's bytes). A training run copies both
into the ``frame`` block of its ``metrics.json`` (:class:`FrameRef`, with the frame's path
relative to the workspace, so a project folder can move). Every later stage compares:

- :func:`current_frame` reads the manifest and checks that the frame file on disk is the one
  the manifest describes (a frame replaced by hand is refused);
- :func:`check_same_frame` refuses a run made from another frame (for instance after
  ``valuechain build --as-of <earlier> --force``) with one paragraph naming both
  fingerprints and the command that fixes it.

>>> run = FrameRef(path="build/frame.parquet", fingerprint="aa11", cache_key="k1",
...                rows={"mature": 10})
>>> check_same_frame(run, run, run_id="r1", root=Path("."))
>>> later = FrameRef(path="build/frame.parquet", fingerprint="bb22", cache_key="k2",
...                  rows={"mature": 8})
>>> check_same_frame(run, later, run_id="r1", root=Path("."))
Traceback (most recent call last):
...
valuechain.errors.ArtifactError: run r1 was trained on frame aa11 (cache key k1, 10 rows), but build/frame.parquet is now frame bb22 (cache key k2, 8 rows): ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from valuechain.artifacts import damaged, fix_command, open_artifact
from valuechain.data.sources import fingerprint
from valuechain.errors import ArtifactError

__all__ = ["FrameRef", "check_same_frame", "current_frame", "fix_command"]

#: Where ``valuechain build`` writes the frame and its manifest, inside the workspace.
FRAME = Path("build") / "frame.parquet"
MANIFEST = Path("build") / "manifest.json"


class FrameRef(BaseModel):
    """The frame a stage output was made from (the ``frame`` block of ``metrics.json``).

    Attributes
    ----------
    path : str
        The frame file, relative to the workspace (``build/frame.parquet``).
    fingerprint : str or None
        blake2b-16 hex of the frame file's bytes; ``None`` only in runs written before
        valuechain recorded it (such runs are refused: train again).
    cache_key : str or None
        The build's cache key (spec, sources, ``--as-of``, engine).
    rows : dict
        The build's row counts (``mature``, ``immature``, ``positive``, ...).
    time_origin : str or None
        Midnight of the frame's first decision day (ISO): capacity periods and bootstrap
        days are counted from it, so train and decide cut the same periods.
    time_column : str or None
        The frame's decision time column (kept in the run's predictions).
    id_column : str
        The decision identity column, first in the frame and in the predictions.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    path: str
    fingerprint: str | None = None
    cache_key: str | None = None
    rows: dict[str, int] = {}
    time_origin: str | None = None
    time_column: str | None = None
    id_column: str = "decision_id"

    def describe(self) -> str:
        """``frame <fingerprint> (cache key <key>, <n> rows)``."""
        rows = self.rows.get("mature")
        counted = f", {rows:,} rows" if isinstance(rows, int) else ""
        return f"frame {self.fingerprint or '(unrecorded)'} (cache key {self.cache_key}{counted})"


def _read_manifest(workspace: Path, root: Path) -> dict[str, Any]:
    path = workspace / MANIFEST
    rebuild = fix_command(root, "build", "--force")
    data: dict[str, Any] = open_artifact(path, "json", rebuild=rebuild, expect=dict,
                                         what="the build manifest")
    if not isinstance(data.get("frame"), dict):
        raise damaged(path, "no `frame` block", rebuild, what="the build manifest")
    return data


def current_frame(workspace: Path, *, root: Path, manifest: dict[str, Any] | None = None
                  ) -> FrameRef:
    """The frame now in ``workspace``, checked against its manifest.

    Parameters
    ----------
    workspace : Path
        The project's workspace (``.valuechain`` by default).
    root : Path
        The project folder (the spec's directory), for the commands the errors print.
    manifest : dict, optional
        The manifest already read (e.g. returned by ``build_frame``); read from disk when
        omitted.

    Raises
    ------
    ArtifactError
        When the manifest or the frame file is missing or unreadable, or the file's
        fingerprint differs from the one the manifest records (the file was replaced).
    """
    fix, rebuild = fix_command(root), fix_command(root, "build", "--force")
    data = manifest if manifest is not None else _read_manifest(workspace, root)
    frame_path = workspace / FRAME
    if not frame_path.exists():
        raise ArtifactError(f"{frame_path}: the built frame is missing. Run `{fix}` (it builds "
                            "the frame again).")
    actual = fingerprint([frame_path])
    block = data.get("frame", {})
    recorded = block.get("fingerprint") if isinstance(block, dict) else None
    if recorded is not None and recorded != actual:
        raise ArtifactError(
            f"{frame_path}: the file's fingerprint is {actual}, but {workspace / MANIFEST} "
            f"records {recorded}: the frame was replaced or changed after it was built. Run "
            f"`{rebuild}` to build it again, then train.")
    rows = data.get("rows") if isinstance(data.get("rows"), dict) else {}
    return FrameRef(path=FRAME.as_posix(), fingerprint=actual,
                    cache_key=data.get("cache_key"),
                    rows={k: int(v) for k, v in (rows or {}).items() if isinstance(v, int)})


def check_same_frame(run: FrameRef, current: FrameRef, *, run_id: str, root: Path) -> None:
    """Refuse when the run was made from another frame than the one now built.

    Raises
    ------
    ArtifactError
        One paragraph naming both frames (fingerprint, cache key, rows) and the command
        that fixes it (``valuechain train --spec DIR``).
    """
    fix = fix_command(root)
    if run.fingerprint is not None and run.fingerprint == current.fingerprint:
        return
    if run.fingerprint is None:
        raise ArtifactError(
            f"run {run_id} does not record which frame it was trained on (it was written by "
            f"an older valuechain); the frame now built is {current.describe()[6:]}. Run "
            f"`{fix}` to train on it, then decide again.")
    why = ("the frame was rebuilt since (another `--as-of`, changed sources or spec)"
           if run.cache_key != current.cache_key else
           "the frame file changed under the same cache key (replaced or edited by hand)")
    raise ArtifactError(
        f"run {run_id} was trained on {run.describe()}, but {current.path} is now "
        f"{current.describe()}: {why}, so the run's scores, labels and costs no longer "
        f"describe it and pricing them would mix two frames. Run `{fix}` to train on the "
        "current frame, then decide again (or rebuild the frame the run was made from).")
