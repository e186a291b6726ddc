"""Opening what an earlier stage wrote: one function, one kind of message.

A stage output a later stage reads (the build manifest and ``frame.parquet``, a run's
``metrics.json`` and ``predictions_*.parquet``, ``runs/latest``, a saved candidate's JSON,
``decide.json``, ``audit.json``, ``check.json``) is opened through :func:`open_artifact`.
When the file is missing, unreadable, cut short, edited into something else, or lacks a
column, it raises one :class:`~valuechain.errors.ArtifactError` whose message has the same
three parts every time::

    <the file>: <what it is> <what is wrong with it>. Run `<the command that rebuilds it>` ...

A stage that finds something wrong *inside* a file it read (a field out of range, a duplicate
id) says so with :func:`damaged`, in the same words. :func:`fix_command` spells the command
that writes a stage's output again for a project, and :func:`project_relative` turns a path
into the form stage outputs record (relative to the project folder when inside it), so a
project folder moved after training keeps working.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "metrics.json").write_text('{"run_id": "r1"')
>>> open_artifact(folder / "metrics.json", "json", rebuild="valuechain train --spec DIR")
Traceback (most recent call last):
...
valuechain.errors.ArtifactError: .../metrics.json: this file is damaged (not valid JSON: ...
>>> open_artifact(folder / "decide.json", "json", rebuild="valuechain decide", optional=True)
>>> _ = (folder / "latest").write_text("r1\\n")
>>> open_artifact(folder / "latest", "text", rebuild="valuechain train").strip()
'r1'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal, overload

from valuechain.errors import ArtifactError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["WRITERS", "ArtifactKind", "damaged", "fix_command", "open_artifact",
           "project_relative", "writer_of"]

ArtifactKind = Literal["json", "yaml", "parquet", "schema", "text"]

#: The stage that writes each stage output (by file name): its command rebuilds the file.
WRITERS: dict[str, str] = {
    "check.json": "check",
    "manifest.json": "build",
    "frame.parquet": "build",
    "audit.json": "audit",
    "metrics.json": "train",
    "frame_manifest.json": "train",
    "predictions_*.parquet": "train",
    "candidate.json": "train",
    "model.txt": "train",
    "calibrators/*.json": "train",
    "latest": "train",
    "policy.yaml": "decide",
    "decide.json": "decide",
}

_TYPE_WORDS: dict[type, str] = {dict: "a mapping (JSON object)", list: "a list", str: "text"}


def fix_command(root: Path | None, stage: str = "train", extra: str = "") -> str:
    """The command that writes a stage's output again for the project in ``root``.

    >>> fix_command(Path("shop"), "build", "--force")
    'valuechain build --spec shop --force'
    >>> fix_command(None)
    'valuechain train --spec DIR'
    """
    where = str(root) if root is not None else "DIR"
    return f"valuechain {stage} --spec {where}" + (f" {extra}" if extra else "")


def writer_of(path: Path | str) -> str | None:
    """The stage whose command writes the stage output ``path`` (``None`` if unknown).

    >>> writer_of("ws/runs/r1/predictions_test.parquet"), writer_of("ws/decide.json")
    ('train', 'decide')
    >>> writer_of("ws/runs/r1/calibrators/lightgbm.json"), writer_of("notes.txt") is None
    ('train', True)
    """
    target = PurePath(path)
    for pattern, stage in WRITERS.items():
        if target.match(pattern):
            return stage
    return None


def damaged(path: Path | str, problem: str, rebuild: str, *, what: str = "this file"
            ) -> ArtifactError:
    """The error for a stage output whose content is wrong: file, problem, command.

    >>> str(damaged("runs/r1/metrics.json", "key `run_id` is missing", "valuechain train"))
    'runs/r1/metrics.json: this file is damaged (key `run_id` is missing): it was cut short, \
edited, or written by another version of valuechain. Run `valuechain train` to write it again.'
    """
    return ArtifactError(
        f"{path}: {what} is damaged ({problem}): it was cut short, edited, or written by "
        f"another version of valuechain. Run `{rebuild}` to write it again.")


def project_relative(path: Path | str, root: Path) -> str:
    """``path`` as stage outputs record it: relative to ``root`` (POSIX) when inside it.

    >>> project_relative(Path("/p/data/a.parquet"), Path("/p"))
    'data/a.parquet'
    >>> project_relative("/elsewhere/a.parquet", Path("/p"))
    '/elsewhere/a.parquet'
    """
    target = Path(path)
    try:
        return target.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return target.as_posix()


@overload
def open_artifact(path: Path, kind: Literal["parquet"], *, rebuild: str,
                  what: str = ..., expect: type | None = ..., columns: Sequence[str] | None = ...,
                  optional: Literal[False] = ...) -> pd.DataFrame: ...
@overload
def open_artifact(path: Path, kind: Literal["schema"], *, rebuild: str,
                  what: str = ..., expect: type | None = ..., columns: Sequence[str] | None = ...,
                  optional: Literal[False] = ...) -> pa.Schema: ...
@overload
def open_artifact(path: Path, kind: Literal["text"], *, rebuild: str, what: str = ...,
                  expect: type | None = ..., columns: Sequence[str] | None = ...,
                  optional: Literal[False] = ...) -> str: ...
@overload
def open_artifact(path: Path, kind: ArtifactKind, *, rebuild: str, what: str = ...,
                  expect: type | None = ..., columns: Sequence[str] | None = ...,
                  optional: bool = ...) -> Any: ...
def open_artifact(
    path: Path,
    kind: ArtifactKind,
    *,
    rebuild: str,
    what: str = "this file",
    expect: type | None = None,
    columns: Sequence[str] | None = None,
    optional: bool = False,
) -> Any:
    """Read a stage output; an :class:`~valuechain.errors.ArtifactError` if it is not usable.

    Parameters
    ----------
    path : Path
        The file.
    kind : {"json", "yaml", "parquet", "schema", "text"}
        How to read it. Parquet is returned as a pandas DataFrame; ``schema`` reads only a
        Parquet file's footer and returns its ``pyarrow.Schema`` (for readers that scan the
        file themselves, e.g. with DuckDB, and must not load it whole).
    rebuild : str
        The command that writes the file again (e.g. ``valuechain train --spec shop``, see
        :func:`fix_command`); every message ends with it.
    what : str, default "this file"
        What the file is, for the message (``"the build manifest"``).
    expect : type, optional
        The type the parsed JSON/YAML document must have (``dict``, ``list``).
    columns : sequence of str, optional
        Parquet: columns the table must have.
    optional : bool, default False
        Return ``None`` when the file does not exist (a stage not run yet) instead of raising.

    Returns
    -------
    Any
        The parsed document, the table (``pandas.DataFrame``) or the text; ``None`` for an
        optional file that does not exist.

    Raises
    ------
    ArtifactError
        Naming the file, what is wrong (missing, a directory, unreadable, not JSON/YAML/
        Parquet, the wrong type, missing columns) and ``rebuild``.
    """
    path = Path(path)
    if not path.exists():
        if optional:
            return None
        raise ArtifactError(f"{path}: {what} is missing (deleted, moved, or never written). "
                            f"Run `{rebuild}` to write it.")
    if path.is_dir():
        raise ArtifactError(f"{path}: a directory stands where {what} should be. Remove the "
                            f"directory, then run `{rebuild}` to write the file.")
    if kind in ("parquet", "schema"):
        return _parquet(path, rebuild, what, columns, load=kind == "parquet")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise damaged(path, f"not UTF-8 text: byte {err.start}", rebuild, what=what) from None
    except OSError as err:
        raise ArtifactError(f"{path}: {what} cannot be read ({err.strerror or err}). Check "
                            f"its permissions, or run `{rebuild}` to write it again.") from None
    if kind == "text":
        return text
    if kind == "json":
        try:
            data = json.loads(text)
        except ValueError as err:
            problem = "empty" if not text.strip() else f"not valid JSON: {err}"
            raise damaged(path, problem, rebuild, what=what) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            first = " ".join(str(err).split())[:160]
            raise damaged(path, f"not valid YAML: {first}", rebuild, what=what) from None
    if expect is not None and (not isinstance(data, expect) or isinstance(data, bool)):
        found = "nothing" if data is None else f"{type(data).__name__} {data!r:.40}"
        raise damaged(path, f"expected {_TYPE_WORDS.get(expect, expect.__name__)}, found "
                      f"{found}", rebuild, what=what)
    return data


def _parquet(path: Path, rebuild: str, what: str, columns: Sequence[str] | None, *,
             load: bool) -> Any:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        names = schema.names
        missing = [c for c in (columns or ()) if c not in names]
        if missing:
            raise ArtifactError(
                f"{path}: {what} lacks the column(s) {missing} (it has {names}): it was written "
                f"by another version of valuechain, or edited. Run `{rebuild}` to write it "
                "again.")
        return pd.read_parquet(path) if load else schema
    except ArtifactError:
        raise
    except (OSError, ValueError, EOFError, pa.ArrowException) as err:
        first = " ".join(str(err).split())[:160] or type(err).__name__
        raise damaged(path, f"not a readable Parquet file: {first}", rebuild,
                      what=what) from None
