"""The point-in-time join of a randomized assignment onto the built frame.

The spec's ``treatment:`` block names a source (the outreach history), its entity ``key``,
the ``time`` column holding the decision time of each listing, the group ``column`` and its
``treated`` / ``control`` values. A frame row (a decision point ``(key, t)``) has an
assignment exactly when a source row has the same key and ``time == t``; any other row of
the source (a listing at another time, a customer whose row is not in the frame because
its label is immature) is not joined. Only assigned rows train and evaluate uplift.

The *known propensity* of a row is the treated share of its randomization cell: the rows
with the same ``time`` (and the same ``strata`` values, when the spec names the columns
the randomization was stratified by). Cells holding only treated or only control rows
carry no contrast and are dropped (counted in :class:`Assignment`).

>>> frame = pd.DataFrame({"customer_id": [1, 2, 3, 4],
...                       "decision_time": pd.to_datetime(["2024-01-01"] * 4)})
>>> history = pd.DataFrame({"customer_id": [1, 2, 3, 9], "week": pd.to_datetime(
...     ["2024-01-01"] * 4), "group": ["treated", "control", "treated", "treated"]})
>>> a = join_assignment(frame, history, key="customer_id", time="week", column="group",
...                     time_column="decision_time")
>>> a.frame["customer_id"].tolist(), a.frame["treated"].tolist(), a.frame["propensity"].tolist()
([1, 2, 3], [1, 0, 1], [0.75, 0.75, 0.75])
>>> a.unmatched_source
1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from valuechain.data.sources import Catalog
from valuechain.errors import DataError, SpecError
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import Treatment
from valuechain.sql import quote_ident

__all__ = ["Assignment", "assignment_for", "join_assignment", "read_treatment", "treatment_of"]


@dataclass(frozen=True)
class Assignment:
    """Frame rows with their randomized assignment.

    Attributes
    ----------
    frame : pandas.DataFrame
        The matched frame rows (frame order), plus ``treated`` (0/1), ``propensity`` (the
        treated share of the row's cell) and ``stratum`` (the cell's label).
    frame_rows : int
        Rows of the frame given.
    source_rows : int
        Rows of the assignment history read.
    unmatched_source : int
        History rows with no frame row of the same key and time (immature or outside the
        frame).
    dropped_single_group : int
        Matched rows dropped because their cell holds only one group.
    """

    frame: pd.DataFrame
    frame_rows: int
    source_rows: int
    unmatched_source: int
    dropped_single_group: int

    @property
    def rows(self) -> int:
        """Assigned rows kept."""
        return len(self.frame)

    def to_json(self) -> dict[str, int]:
        """Counts, for ``uplift.json``."""
        treated = int(self.frame["treated"].sum()) if len(self.frame) else 0
        return {"frame_rows": self.frame_rows, "source_rows": self.source_rows,
                "assigned_rows": self.rows, "treated": treated,
                "control": self.rows - treated, "unmatched_source": self.unmatched_source,
                "dropped_single_group": self.dropped_single_group}


def treatment_of(loaded: LoadedSpec) -> Treatment:
    """The spec's ``treatment:`` block; a :class:`SpecError` saying how to add it."""
    block = loaded.spec.treatment
    if block is None:
        raise SpecError(
            f"{loaded.path.name}: no `treatment:` block, so there is no randomized history "
            "to learn the effect of the action from. Add one naming the history source, e.g. "
            "`treatment: {source: outreach, key: customer_id, time: week, column: group, "
            "treated: treated, control: control}` (docs/uplift.md).")
    if block.source not in loaded.spec.sources:
        raise SpecError(
            f"{loaded.where('treatment', 'source')}: source '{block.source}' is not declared "
            f"under `sources` (declared: {', '.join(sorted(loaded.spec.sources))}). Declare "
            "the assignment history as a source, or name one that is.")
    return block


def read_treatment(loaded: LoadedSpec) -> pd.DataFrame:
    """The assignment history (key, time, group and strata columns) of the spec's source.

    Raises
    ------
    SpecError
        No ``treatment:`` block, or its source is not declared.
    DataError
        A named column is missing from the source.
    """
    block = treatment_of(loaded)
    catalog = Catalog(loaded, open_all=False)
    catalog.open(block.source)
    view = quote_ident(f"src_{block.source}")
    have = [row[0] for row in catalog.con.execute(f"DESCRIBE {view}").fetchall()]
    wanted = [block.key, block.time, block.column, *block.strata]
    for field, name in [("key", block.key), ("time", block.time), ("column", block.column),
                        *(("strata", s) for s in block.strata)]:
        if name not in have:
            raise DataError(
                f"{loaded.where('treatment', field)}: column '{name}' is not in source "
                f"'{block.source}' ({loaded.spec.sources[block.source].path}); its columns "
                f"are {', '.join(have)}. Fix `treatment.{field}`.")
    cols = ", ".join(quote_ident(c) for c in dict.fromkeys(wanted))
    out: pd.DataFrame = catalog.con.execute(f"SELECT {cols} FROM {view}").fetchdf()
    return out


def _naive_utc(values: pd.Series, what: str) -> pd.Series:
    try:
        times = pd.to_datetime(values)
    except (ValueError, TypeError) as err:
        raise DataError(f"{what} holds values that are not times ({err}); the assignment's "
                        "time must be the decision time of the listing.") from None
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times.astype("datetime64[us]")


def join_assignment(
    frame: pd.DataFrame,
    history: pd.DataFrame,
    *,
    key: str,
    time: str,
    column: str,
    time_column: str,
    treated: str = "treated",
    control: str = "control",
    strata: Sequence[str] = (),
    where: str = "treatment",
) -> Assignment:
    """Join ``history`` onto ``frame`` where the key matches and ``time`` equals the decision time.

    Parameters
    ----------
    frame : pandas.DataFrame
        The built frame (one row per decision point).
    history : pandas.DataFrame
        The assignment history: ``key``, ``time``, ``column`` and the ``strata`` columns.
    key, time, column : str
        Entity key (a column of both), the history's time column, its group column.
    time_column : str
        The frame's decision time column.
    treated, control : str
        The two values of ``column``.
    strata : sequence of str
        History columns the randomization was stratified by (cells are time x strata).
    where : str
        Where the block is written, for messages.

    Raises
    ------
    DataError
        When the key is not a frame column, ``column`` holds missing or other values, or a
        key has two rows at one time.
    """
    if key not in frame.columns:
        raise DataError(f"{where}: the key '{key}' is not a column of the built frame "
                        f"(columns: {', '.join(map(str, frame.columns[:12]))}, ...). Name the "
                        "decision points' key in `treatment.key`.")
    groups = history[column]
    missing = int(groups.isna().sum())
    if missing:
        raise DataError(f"{where}: column '{column}' is missing on {missing:,} of "
                        f"{len(history):,} history rows; every row must say '{treated}' or "
                        f"'{control}'. Fix the source, or filter those rows out of it.")
    other = sorted(set(groups.astype(str)) - {treated, control})
    if other:
        raise DataError(
            f"{where}: column '{column}' holds values {other[:5]} besides '{treated}' and "
            f"'{control}' ({int((~groups.astype(str).isin([treated, control])).sum()):,} "
            "rows). Fix `treatment.treated` / `treatment.control` to the values written.")
    h = history.copy()
    h["__t"] = _naive_utc(h[time], f"{where}: column '{time}'")
    if h["__t"].isna().any():
        raise DataError(f"{where}: column '{time}' is missing on "
                        f"{int(h['__t'].isna().sum()):,} history rows.")
    dup = h.duplicated([key, "__t"])
    if dup.any():
        first = h[dup].iloc[0]
        raise DataError(f"{where}: {int(dup.sum()):,} history rows repeat a (key, time) pair, "
                        f"e.g. {key}={first[key]!r} at {first['__t']}; a decision point has "
                        "one assignment. Deduplicate the source.")
    h["treated"] = (h[column].astype(str) == treated).astype(np.int8)
    h["stratum"] = h["__t"].dt.strftime("%Y-%m-%dT%H:%M")
    for name in strata:
        h["stratum"] = h["stratum"] + "|" + h[name].astype(str)
    # the design's propensity: the treated share of the whole randomization cell
    h["propensity"] = h.groupby("stratum")["treated"].transform("mean").astype(np.float64)
    f = frame.copy()
    f["__t"] = _naive_utc(f[time_column], f"frame column '{time_column}'")
    f["__row"] = np.arange(len(f))
    keep = [key, "__t", "treated", "stratum", "propensity"]
    try:
        merged = f.merge(h[keep], on=[key, "__t"], how="inner", validate="many_to_one")
    except (ValueError, TypeError) as err:
        raise DataError(f"{where}: the key '{key}' cannot be matched between the frame and "
                        f"the history ({err}); give both the same type.") from None
    merged = merged.sort_values("__row", kind="stable")
    share = merged["propensity"]
    single = (share <= 0) | (share >= 1)
    kept = merged[~single].drop(columns=["__t"]).rename(columns={"__row": "frame_row"})
    kept = kept.reset_index(drop=True)
    return Assignment(frame=kept, frame_rows=len(frame), source_rows=len(history),
                      unmatched_source=len(h) - len(merged),
                      dropped_single_group=int(single.sum()))


def assignment_for(loaded: LoadedSpec, frame: pd.DataFrame, time_column: str) -> Assignment:
    """:func:`join_assignment` of the spec's ``treatment:`` source onto a built frame."""
    block = treatment_of(loaded)
    history = read_treatment(loaded)
    where = loaded.where("treatment")
    assigned = join_assignment(
        frame, history, key=block.key, time=block.time, column=block.column,
        time_column=time_column, treated=block.treated, control=block.control,
        strata=block.strata, where=where)
    if assigned.rows == 0:
        raise DataError(
            f"{where}: none of the {len(history):,} rows of source '{block.source}' matches a "
            f"decision point of the frame ({len(frame):,} rows) on '{block.key}' with "
            f"'{block.time}' equal to the decision time. Check that `treatment.time` holds "
            "the decision time of each listing (e.g. the Monday 00:00 of the list), and that "
            "the frame was built for the same period (`valuechain build`).")
    return assigned
