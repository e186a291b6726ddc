"""What monitoring reads: the decisions table, the reference period, the signals format.

:func:`read_decisions` turns the decision log (the SQLite file of ``valuechain serve`` /
``valuechain score``, or a Parquet export of it) into one flat table, one row per decision:

=====================  =====================================================================
column                 meaning
=====================  =====================================================================
decision_id, key       the decision's id and its decision point's key (str)
time, time_us          decision time (``datetime64[us, UTC]``; µs since the epoch, int64)
bundle_version         the bundle that scored it; ``policy_version`` the policy that acted
score                  calibrated probability (float64)
policy_action, action  the policy's action before capacity; the action returned (str)
overflow               True when the capacity was full and the overflow rule applied
origin                 ``serve`` (online) or ``score`` (batch)
latency_ms             the sum of the logged stage latencies (NaN for batch rows: a batch
                       chunk's time is not one decision's latency)
latency_<stage>_ms     each logged stage (``features``, ``model``, ``policy``; NaN for batch)
<feature>              one column per model feature, in the model's column order (the order
                       of the logged ``features`` object): categoricals as str (booleans as
                       ``'True'``/``'False'``, as the models see them), numerics float64
event.<field>          every field of the logged event (ints int64, or float64 when a value
                       is missing; floats float64; text str)
=====================  =====================================================================

Reading is columnar: SQLite concatenates each chunk of rows into one delimited text block
in C (``group_concat``, chunks read in parallel threads), PyArrow parses it, and DuckDB
extracts every JSON field of a chunk in one pass (``json_extract_string`` with a list of
paths). No row is ever parsed with ``json.loads`` (only a few hundred sampled rows, to learn
the fields and their types). With ``cache=`` the flattened log is kept as Parquet and only
the rows appended since the last read are parsed (a daily monitor reads a month in seconds). A Parquet file written by :meth:`DecisionLog.export
<valuechain.serve.log.DecisionLog.export>` (JSON columns as text) or by ``valuechain score``
(``feature.<name>`` columns) gives the same columns.

:func:`load_reference` gives the production bundle's own out-of-sample period (its run's
test period): feature values, calibrated score, mature label, the action the bundle's policy
takes there and the time. ``valuechain package`` stores it in the bundle as
``reference.parquet`` (checksummed); for an older bundle without it, it is recomputed from
the run's stored predictions and the frame, refused when the frame is not the one the bundle
was trained on.

>>> import tempfile, pathlib
>>> from valuechain.serve.log import DecisionLog, DecisionRecord
>>> path = pathlib.Path(tempfile.mkdtemp()) / "decisions.sqlite"
>>> with DecisionLog(path) as log:
...     log.append_many([DecisionRecord.example(f"d{i}") for i in range(3)])
3
>>> table = read_decisions(path)
>>> table[["decision_id", "action", "amount", "event.transaction_id"]].to_dict("list")
{'decision_id': ['d0', 'd1', 'd2'], 'action': ['approve', 'approve', 'approve'], \
'amount': [12.5, 12.5, 12.5], 'event.transaction_id': ['t1', 't1', 't1']}
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from valuechain.errors import ArtifactError, DataError
from valuechain.monitor.kpis import signals_frame
from valuechain.policy.capacity import PERIOD_ANCHOR_US, capacity_period
from valuechain.sql import connect

if TYPE_CHECKING:
    from valuechain.registry.bundle import Bundle

__all__ = ["BASE_COLUMNS", "Reference", "load_reference", "read_decisions", "times_us",
           "window_index", "window_signals",
           "window_start"]

#: The fixed columns of the decisions table, before latencies, features and event fields.
BASE_COLUMNS: Final = ("decision_id", "key", "time", "time_us", "bundle_version",
                       "policy_version", "score", "policy_action", "action", "overflow",
                       "origin")
_RAW: Final = ("seq", "decision_id", "key", "time_us", "bundle_version", "policy_version",
               "score", "policy_action", "action", "overflow", "origin", "latency_us",
               "features", "event")
_RAW_TYPES: Final = {"seq": pa.int64(), "time_us": pa.int64(), "score": pa.float64(),
                     "overflow": pa.int64()}
_SEP: Final = "\x1f"  # ASCII unit separator: never in JSON text (escaped), never in ids
_CHUNK: Final = 100_000
_SAMPLE: Final = 400
_BATCH_ORIGINS: Final = frozenset({"score"})
_FIX = ("The log is written by `valuechain serve` and `valuechain score` "
        "(<workspace>/serve/decisions.sqlite); pass --log with its path, or a Parquet file "
        "written by `valuechain score` or DecisionLog.export")


# ----------------------------------------------------------------------------- signals

def window_index(decisions: pd.DataFrame, window_us: int) -> np.ndarray:
    """Each decision's window (``capacity_period`` of its time in ``window_us`` windows).

    >>> frame = pd.DataFrame({"time_us": [0, 86_400_000_000]})
    >>> (window_index(frame, 86_400_000_000) - window_index(frame, 86_400_000_000)[0]).tolist()
    [0, 1]
    """
    if window_us <= 0:
        raise DataError(f"`window_us` must be > 0 (µs), got {window_us!r}.")
    return np.asarray(capacity_period(times_us(decisions), int(window_us)), dtype=np.int64)


def times_us(decisions: pd.DataFrame) -> np.ndarray:
    """The decisions' times in µs since the epoch (``time_us``, else from ``time``)."""
    if "time_us" in decisions.columns:
        return decisions["time_us"].to_numpy(dtype=np.int64)
    return (pd.to_datetime(decisions["time"], utc=True).to_numpy(dtype="datetime64[us]")
            .astype(np.int64))


def window_start(index: np.ndarray | Sequence[int], window_us: int) -> pd.Series:
    """The start of each window index as ``datetime64[us, UTC]`` (anchor Monday 1970-01-05).

    >>> window_start([0, 1], 86_400_000_000).dt.strftime("%Y-%m-%d").tolist()
    ['1970-01-05', '1970-01-06']
    """
    us = PERIOD_ANCHOR_US + np.asarray(index, dtype=np.int64) * int(window_us)
    return pd.Series(us.astype("datetime64[us]")).dt.tz_localize("UTC")


def window_signals(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A signals table from dicts whose ``window`` is a window *index* (with ``window_us``).

    The index becomes the window start; ``lower``/``upper`` default to NaN, ``subject`` to
    ``""`` and ``status`` to ``"ok"``; the table itself is
    :func:`valuechain.monitor.kpis.signals_frame` (one definition of the format).

    >>> window_signals([{"window": 0, "window_us": 86_400_000_000, "section": "ops",
    ...                  "metric": "volume", "value": 3.0, "n": 3}]).to_dict("records")
    [{'window': Timestamp('1970-01-05 00:00:00+0000', tz='UTC'), 'section': 'ops', \
'metric': 'volume', 'subject': '', 'value': 3.0, 'lower': nan, 'upper': nan, 'n': 3, \
'status': 'ok'}]
    """
    records: list[dict[str, object]] = [
        {"window": PERIOD_ANCHOR_US + int(r["window"]) * int(r["window_us"]),
         "section": r["section"], "metric": r["metric"], "subject": r.get("subject", ""),
         "value": r["value"], "lower": r.get("lower", np.nan), "upper": r.get("upper", np.nan),
         "n": r["n"], "status": r.get("status", "ok")} for r in rows]
    return signals_frame(records)


# ----------------------------------------------------------------------------- reading

def read_decisions(log: Path | str, *, since: datetime | None = None,
                   until: datetime | None = None, origin: str | None = None,
                   cache: Path | str | None = None) -> pd.DataFrame:
    """The decision log as a flat table, one row per decision (columns: module docstring).

    Parameters
    ----------
    log : Path
        The decision log (SQLite, ``decisions.sqlite``) or a Parquet file written by
        ``valuechain score`` or :meth:`DecisionLog.export
        <valuechain.serve.log.DecisionLog.export>`.
    since, until : datetime, optional
        Keep decisions with ``since <= time < until`` (UTC when naive).
    origin : str, optional
        Keep only this origin (``"serve"`` or ``"score"``).
    cache : Path, optional
        A Parquet file holding the whole log already flattened (SQLite logs only): read
        it, flatten only the rows appended since (the log is append-only; rows are known
        by their rowid), and write it back atomically. A daily monitor then reads a month
        of decisions in seconds instead of re-parsing it. A cache of another log (its first
        decision differs) or with other column types is rebuilt.

    Returns
    -------
    pandas.DataFrame
        Ordered as journaled (``seq``); times are decision times.

    Raises
    ------
    ArtifactError
        When the file is missing, is not a decision log, or is damaged (naming the file).
    """
    path = Path(log)
    if not path.is_file():
        raise ArtifactError(f"{path}: no decision log there. {_FIX}.")
    lo = None if since is None else _us(since)
    hi = None if until is None else _us(until)
    if path.suffix.lower() in (".parquet", ".pq"):
        raw = _read_parquet(path, lo, hi, origin)
    elif cache is not None:
        return _select(_cached(path, Path(cache)), lo, hi, origin)
    else:
        raw = _read_sqlite(path, lo, hi, origin)
    return _flatten(raw, path)


_CACHE_KEY: Final = b"valuechain.decisions.cache"


def _select(frame: pd.DataFrame, lo: int | None, hi: int | None, origin: str | None
            ) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    t = frame["time_us"].to_numpy(dtype=np.int64)
    if lo is not None:
        keep &= t >= lo
    if hi is not None:
        keep &= t < hi
    if origin is not None:
        keep &= (frame["origin"] == origin).to_numpy(dtype=bool)
    out: pd.DataFrame = frame if keep.all() else frame[keep].reset_index(drop=True)
    return out


def _cached(path: Path, cache: Path) -> pd.DataFrame:
    """The whole log flattened, from ``cache`` plus the rows appended since."""
    from valuechain.io import write_parquet

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            head = conn.execute("SELECT decision_id, rowid FROM decisions ORDER BY rowid "
                                "LIMIT 1").fetchone()
            last = conn.execute("SELECT max(rowid) FROM decisions").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise _damaged(path, err) from err
    first = None if head is None else str(head[0])
    last_rowid = int(last or 0)
    identity = {"first": first, "last_rowid": last_rowid}
    old: pd.DataFrame | None = None
    after = 0
    if cache.is_file():
        try:
            meta = json.loads((pq.read_schema(cache).metadata or {}).get(_CACHE_KEY, b"{}"))
            if meta.get("first") == first and first is not None and (
                    int(meta.get("last_rowid", -1)) <= last_rowid):
                old = pq.read_table(cache).to_pandas()
                after = int(meta["last_rowid"])
        except (OSError, ValueError, pa.ArrowException):
            old = None  # an unreadable cache is rebuilt
    if old is not None and after == last_rowid:
        return old
    new = _flatten(_read_sqlite(path, None, None, None, after_rowid=after), path)
    if old is not None:
        shared = [c for c in new.columns if c in old.columns]
        if all(_kind(old[c]) == _kind(new[c]) for c in shared):
            frame = pd.concat([old, new], ignore_index=True) if len(new) else old
        else:  # another schema since (e.g. a feature changed type): rebuild
            frame = _flatten(_read_sqlite(path, None, None, None), path)
    else:
        frame = new
    assert isinstance(frame, pd.DataFrame)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           _CACHE_KEY: json.dumps(identity).encode()})
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(cache, table)
    return frame


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "time"
    return "text"


def _us(when: datetime) -> int:
    stamp = pd.Timestamp(when)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value // 1000)


def _where(lo: int | None, hi: int | None, origin: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if lo is not None:
        clauses.append("time_us >= ?")
        args.append(lo)
    if hi is not None:
        clauses.append("time_us < ?")
        args.append(hi)
    if origin is not None:
        clauses.append("origin = ?")
        args.append(origin)
    return "".join(f" AND {c}" for c in clauses), args


def _damaged(path: Path, err: BaseException) -> ArtifactError:
    return ArtifactError(f"{path}: cannot read the decision log ({err}). It is not a "
                         "valuechain decision log (SQLite with a `decisions` table) or it is "
                         f"damaged. {_FIX}.")


def _read_sqlite(path: Path, lo: int | None, hi: int | None, origin: str | None, *,
                 after_rowid: int = 0) -> pa.Table:
    where, args = _where(lo, hi, origin)
    if after_rowid:
        where += " AND rowid > ?"
        args.append(int(after_rowid))
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            names = {r[1] for r in conn.execute("PRAGMA table_info(decisions)")}
            missing = [c for c in _RAW if c not in names and c != "latency_us"]
            if missing:
                raise ArtifactError(f"{path}: not a valuechain decision log (table "
                                    f"`decisions` missing or without {missing}). {_FIX}.")
            first, last = conn.execute(
                f"SELECT min(rowid), max(rowid) FROM decisions WHERE 1{where}", args
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise _damaged(path, err) from err
    if first is None:
        return _empty_raw()
    starts = list(range(int(first) - 1, int(last), _CHUNK))
    threads = max(1, min(4, os.cpu_count() or 1, len(starts)))
    try:
        with ThreadPoolExecutor(threads) as pool:
            tables = list(pool.map(lambda a: _sqlite_chunk(path, a, where, args), starts))
    except sqlite3.DatabaseError as err:
        raise _damaged(path, err) from err
    table = pa.concat_tables([t for t in tables if t.num_rows])
    if table.num_rows == 0:
        return _empty_raw()
    seq = table["seq"].to_numpy()
    if len(seq) > 1 and not bool(np.all(seq[1:] > seq[:-1])):
        table = table.take(pc.sort_indices(table, [("seq", "ascending")]))
    return table


def _line_sql() -> str:
    """One ``printf`` per row (one pass; ``||`` would copy the growing line per column).

    Integers as ``%d``, the score as ``%!.17g`` (17 significant digits: the exact double),
    text as ``%s``.
    """
    spec = {"seq": "%d", "time_us": "%d", "overflow": "%d", "score": "%!.17g"}
    fmt = _SEP.join(spec.get(c, "%s") for c in _RAW)
    return f"printf('{fmt}', {', '.join(_RAW)})"


def _sqlite_chunk(path: Path, after: int, where: str, args: list[Any]) -> pa.Table:
    """Rows ``after < rowid <= after + _CHUNK`` as an Arrow table of the raw columns."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    try:
        bounds = [after, after + _CHUNK, *args]
        blob, count = conn.execute(
            f"SELECT CAST(group_concat({_line_sql()}, char(10)) AS BLOB), count(*) FROM "
            f"decisions WHERE rowid > ? AND rowid <= ?{where}", bounds).fetchone()
        if not count:
            return _empty_raw()
        try:
            table = pa_csv.read_csv(
                io.BytesIO(blob),
                read_options=pa_csv.ReadOptions(column_names=list(_RAW), use_threads=False),
                parse_options=pa_csv.ParseOptions(delimiter=_SEP, quote_char=False,
                                                  escape_char=False),
                convert_options=pa_csv.ConvertOptions(
                    column_types={c: _RAW_TYPES.get(c, pa.string()) for c in _RAW},
                    strings_can_be_null=False, quoted_strings_can_be_null=False))
        except pa.ArrowInvalid:
            table = None
        if table is None or table.num_rows != count:
            # A key holding a newline or the separator: read this chunk row by row.
            cur = conn.execute(f"SELECT {', '.join(_RAW)} FROM decisions WHERE rowid > ? AND "
                               f"rowid <= ?{where} ORDER BY rowid", bounds)
            columns = list(zip(*cur.fetchall(), strict=True))
            table = pa.table({c: pa.array(v, type=_RAW_TYPES.get(c, pa.string()))
                              for c, v in zip(_RAW, columns, strict=True)})
        return table
    finally:
        conn.close()


def _empty_raw() -> pa.Table:
    return pa.table({c: pa.array([], type=_RAW_TYPES.get(c, pa.string())) for c in _RAW})


def _read_parquet(path: Path, lo: int | None, hi: int | None, origin: str | None) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise _damaged(path, err) from err
    names = table.column_names
    if "features" in names and "event" in names:  # DecisionLog.export
        needed = [c for c in _RAW if c not in names]
        if needed:
            raise ArtifactError(f"{path}: a decision log export without the column(s) "
                                f"{needed}. {_FIX}.")
        table = table.select(list(_RAW))
        table = table.cast(pa.schema([(c, _RAW_TYPES.get(c, pa.string())) for c in _RAW]))
    elif any(n.startswith("feature.") for n in names) and "decision_id" in names:
        table = _from_scored(path, table)
    else:
        raise ArtifactError(f"{path}: neither a decision log export (columns `features`, "
                            "`event`) nor a `valuechain score` output (`feature.<name>` "
                            f"columns). {_FIX}.")
    mask = None
    for cond in (None if lo is None else pc.greater_equal(table["time_us"], lo),
                 None if hi is None else pc.less(table["time_us"], hi),
                 None if origin is None else pc.equal(table["origin"], origin)):
        if cond is not None:
            mask = cond if mask is None else pc.and_(mask, cond)
    return table if mask is None else table.filter(mask)


def _from_scored(path: Path, table: pa.Table) -> pa.Table:
    """A ``valuechain score`` output in the raw log layout (features/event as JSON text)."""
    frame = table.to_pandas()
    feats = [c for c in frame.columns if c.startswith("feature.")]
    first = list(frame.columns).index("decision_id")
    times = [c for c in frame.columns[:first]
             if pd.api.types.is_datetime64_any_dtype(frame[c])]
    if len(times) != 1:
        raise ArtifactError(f"{path}: a `valuechain score` output needs one time column "
                            f"before `decision_id`, found {times}. {_FIX}.")
    keys = [c for c in frame.columns[:first] if c not in times]
    stamp = pd.to_datetime(frame[times[0]], utc=True)
    time_us = stamp.to_numpy(dtype="datetime64[us]").astype(np.int64)
    event = frame[keys].copy()
    event[times[0]] = stamp.dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    out = {
        "seq": np.arange(1, len(frame) + 1, dtype=np.int64),
        "decision_id": frame["decision_id"].astype(str).to_numpy(),
        "key": (frame[keys].astype(str).agg("|".join, axis=1).to_numpy() if keys
                else frame["decision_id"].astype(str).to_numpy()),
        "time_us": time_us,
        "bundle_version": _meta(table, "bundle_version", len(frame)),
        "policy_version": _meta(table, "policy_version", len(frame)),
        "score": frame["score"].to_numpy(dtype=np.float64),
        "policy_action": frame["policy_action"].astype(str).to_numpy(),
        "action": frame["action"].astype(str).to_numpy(),
        "overflow": frame["overflow"].to_numpy(dtype=np.int64),
        "origin": np.full(len(frame), "score", dtype=object),
        "latency_us": np.full(len(frame), "{}", dtype=object),
        "features": frame[feats].rename(columns=lambda c: c[len("feature."):]).to_json(
            orient="records", lines=True).splitlines() if len(frame) else [],
        "event": event.to_json(orient="records", lines=True).splitlines() if len(frame)
        else [],
    }
    return pa.table({c: pa.array(out[c], type=_RAW_TYPES.get(c, pa.string())) for c in _RAW})


def _meta(table: pa.Table, name: str, n: int) -> np.ndarray:
    if name in table.column_names:
        return np.asarray(table[name].to_pandas().astype(str))
    meta = table.schema.metadata or {}
    value = meta.get(f"valuechain.{name}".encode(), b"").decode()
    return np.full(n, value, dtype=object)


# ----------------------------------------------------------------------------- flattening

def _sample(raw: pa.Table, column: str) -> list[dict[str, Any]]:
    """A few hundred parsed rows: spread over the table, plus the first of each bundle."""
    n = raw.num_rows
    if n == 0:
        return []
    idx = set(np.linspace(0, n - 1, min(n, _SAMPLE)).astype(int).tolist())
    versions = raw["bundle_version"]
    for version in pc.unique(versions).to_pylist():
        idx.add(int(pc.index(versions, version).as_py()))
    values = raw[column].take(pa.array(sorted(idx))).to_pylist()
    out = []
    for text in values:
        try:
            parsed = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(parsed, dict):
            out.append(parsed)
    return out


def _field_types(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Field -> ``str`` | ``bool`` | ``int`` | ``float`` | ``json``, in first-seen order."""
    kinds: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.items():
            seen = kinds.setdefault(str(key), set())
            if value is None:
                continue
            if isinstance(value, bool):
                seen.add("bool")
            elif isinstance(value, int):
                seen.add("int")
            elif isinstance(value, float):
                seen.add("float")
            elif isinstance(value, str):
                seen.add("str")
            else:
                seen.add("json")
    out = {}
    for key, seen in kinds.items():
        if "json" in seen:
            out[key] = "json"
        elif "str" in seen:
            out[key] = "str"
        elif seen == {"bool"}:
            out[key] = "bool"
        elif seen <= {"int"} and seen:
            out[key] = "int"
        else:
            out[key] = "float"
    return out


def _path(key: str) -> str:
    return "$." + json.dumps(key)


def _extract(con: Any, raw: pa.Table, column: str, types: Mapping[str, str], mode: str,
             prefix: str) -> dict[str, pa.Array]:
    """Each field of a JSON text column, in one DuckDB pass (one parse per row).

    ``mode="feature"``: str/bool -> str (``'True'``/``'False'``), numbers -> float64;
    ``mode="event"``: str -> str, bool -> bool, int -> int64, float -> float64, nested ->
    its JSON text.
    """
    if not types:
        return {}
    names = list(types)
    paths = "[" + ", ".join("'" + _path(k).replace("'", "''") + "'" for k in names) + "]"
    select = []
    for i, key in enumerate(names, start=1):
        kind, item = types[key], f"v[{i}]"
        if kind == "json":
            expr = f"CAST(j[{i}] AS VARCHAR)"
        elif kind == "bool":
            expr = (f"CASE {item} WHEN 'true' THEN 'True' WHEN 'false' THEN 'False' END"
                    if mode == "feature" else f"TRY_CAST({item} AS BOOLEAN)")
        elif kind == "str":
            expr = item
        elif kind == "int" and mode == "event":
            expr = f"TRY_CAST({item} AS BIGINT)"
        else:
            expr = f"TRY_CAST({item} AS DOUBLE)"
        select.append(f"{expr} AS c{i}")
    nested = any(types[k] == "json" for k in names)
    inner = f"json_extract_string({column}, {paths}) AS v" + (
        f", json_extract({column}, {paths}) AS j" if nested else "")
    con.register("src", raw.select([column]))
    try:
        out = con.sql(f"SELECT {', '.join(select)} FROM (SELECT {inner} FROM src)"
                      ).to_arrow_table()
    finally:
        con.unregister("src")
    return {prefix + k: out.column(i).combine_chunks() for i, k in enumerate(names)}


def _latency(con: Any, raw: pa.Table) -> dict[str, pa.Array]:
    rows = _sample(raw, "latency_us")
    stages = [k for k, kind in _field_types(rows).items() if kind in ("int", "float")]
    values = _extract(con, raw, "latency_us", dict.fromkeys(stages, "float"), "feature", "")
    batch = np.isin(raw["origin"].to_numpy(zero_copy_only=False), list(_BATCH_ORIGINS))
    out: dict[str, np.ndarray] = {}
    total = np.zeros(raw.num_rows)
    for stage in stages:
        ms = values[stage].to_numpy(zero_copy_only=False).astype(np.float64) / 1000.0
        ms[batch] = np.nan
        out[f"latency_{stage}_ms"] = ms
        total = total + np.nan_to_num(ms)
    total[batch] = np.nan
    if not stages:
        total[:] = np.nan
    return {name: pa.array(v, type=pa.float64(), from_pandas=True)
            for name, v in {"latency_ms": total, **out}.items()}


def _flatten(raw: pa.Table, path: Path) -> pd.DataFrame:
    """The raw columns, latencies, features and event fields as one pandas frame."""
    import duckdb

    cols: dict[str, Any] = {
        "decision_id": raw["decision_id"], "key": raw["key"],
        "time": pc.cast(raw["time_us"], pa.timestamp("us", tz="UTC")),
        "time_us": raw["time_us"], "bundle_version": raw["bundle_version"],
        "policy_version": raw["policy_version"], "score": raw["score"],
        "policy_action": raw["policy_action"], "action": raw["action"],
        "overflow": pc.not_equal(raw["overflow"], 0), "origin": raw["origin"]}
    con = connect()
    try:
        con.execute("SET enable_progress_bar = false")  # the CLI owns the terminal
        cols.update(_latency(con, raw))
        features = _extract(con, raw, "features", {
            k: (kind if kind in ("str", "bool") else "str" if kind == "json" else "float")
            for k, kind in _field_types(_sample(raw, "features")).items()}, "feature", "")
        event = _extract(con, raw, "event", _field_types(_sample(raw, "event")), "event",
                         "event.")
    except duckdb.Error as err:  # the JSON text is not JSON: a damaged log
        raise _damaged(path, err) from err
    finally:
        con.close()
    for name, array in [*features.items(), *event.items()]:
        if name not in cols:
            cols[name] = array
    frame: pd.DataFrame = pa.table(cols).to_pandas()
    for name, array in event.items():
        if pa.types.is_boolean(array.type) and array.null_count == 0:
            frame[name] = frame[name].astype(bool)
    return frame


# ----------------------------------------------------------------------------- reference

@dataclass(frozen=True)
class Reference:
    """The production bundle's reference period: what "no drift" looks like.

    Attributes
    ----------
    frame : pandas.DataFrame
        ``decision_id``, ``time`` (``datetime64[us, UTC]``), the feature columns in model
        order (categoricals as str, numerics float64), ``score`` (calibrated), ``label``
        (float, mature only) and ``action`` (the bundle's policy with its capacity).
    bundle_version : str
        The bundle it belongs to.
    period : str
        Which period it is, e.g. ``"test 2025-07-15..2025-07-30"``.
    """

    frame: pd.DataFrame
    bundle_version: str
    period: str

    @property
    def features(self) -> tuple[str, ...]:
        """The feature columns (everything but id, time, score, label and action)."""
        fixed = {"decision_id", "time", "score", "label", "action"}
        return tuple(c for c in self.frame.columns if c not in fixed)


def load_reference(bundle: Bundle, project: Path | str) -> Reference:
    """The bundle's own out-of-sample period (test, else validation) as a :class:`Reference`.

    Parameters
    ----------
    bundle : Bundle
        A loaded (checksum-verified) bundle.
    project : Path
        The project folder (or its ``valuechain.yaml``), for an older bundle without
        ``reference.parquet``: the reference is then recomputed from the run's stored
        predictions and the frame in its workspace.

    Raises
    ------
    ArtifactError
        When the bundle has no reference and the run's predictions are gone, or the frame
        in the workspace is not the one the bundle was trained on (its fingerprint differs
        from ``bundle.json``'s ``frame_fingerprint``).
    """
    from valuechain.registry.pack import REFERENCE, read_reference, reference_frame

    stored = bundle.path / REFERENCE
    if stored.is_file():
        frame, period = read_reference(stored)
        return Reference(frame=frame, bundle_version=bundle.version, period=period)
    loaded = bundle.spec(project)
    run_dir = loaded.workspace / "runs" / bundle.run_id
    fix = (f"Package the run again with this valuechain (`valuechain package --spec "
           f"{loaded.root}` stores the reference in the bundle), or train, decide and "
           "package a new version")
    if not (run_dir / "metrics.json").is_file():
        raise ArtifactError(f"bundle {bundle.version} ({bundle.path}) has no {REFERENCE} and "
                            f"its run {run_dir} is gone, so its reference period cannot be "
                            f"rebuilt. {fix}.")
    from valuechain.train.result import TrainResult

    run = TrainResult.load(run_dir, root=loaded.root)
    recorded = bundle.manifest.get("frame_fingerprint")
    built = reference_frame(loaded, run_dir, run, bundle.policy, bundle.capacity,
                            feature_names=bundle.feature_names,
                            expect_fingerprint=str(recorded) if recorded else None)
    if built is None:
        raise ArtifactError(f"bundle {bundle.version} ({bundle.path}) has no {REFERENCE}, and "
                            f"the frame in {loaded.workspace / 'build'} is not the one it was "
                            f"trained on (frame fingerprint {recorded}): its reference period "
                            f"cannot be rebuilt. Rebuild that frame (`valuechain build --spec "
                            f"{loaded.root} --as-of <the run's as_of> --force`), or: {fix}.")
    frame, period = built
    return Reference(frame=frame, bundle_version=bundle.version, period=period)
