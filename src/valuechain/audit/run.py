"""Run the audit on a built project or on a flat table, and explain a finding with rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from valuechain.artifacts import fix_command, open_artifact, project_relative
from valuechain.audit.empirical import AuditFrame, empirical_findings, feature_power
from valuechain.audit.findings import AuditResult, Finding
from valuechain.audit.static import static_findings
from valuechain.data.build import build_frame
from valuechain.data.sources import Catalog, datetime_to_us
from valuechain.errors import DataError
from valuechain.spec.durations import to_micros
from valuechain.spec.loader import LoadedSpec
from valuechain.sql import connect, quote_ident, quote_literal

__all__ = ["DECISION_ID", "audit_frame", "audit_project", "explain", "load_flat"]

DECISION_ID = "decision_id"
"""The decision identity column `valuechain build` writes first; never audited as a feature."""


def audit_project(loaded: LoadedSpec, *, seed: int = 0, as_of: datetime | None = None,
                  progress: Callable[[str, float], None] | None = None,
                  ) -> tuple[AuditResult, AuditFrame]:
    """Static checks on the spec and its sources, empirical checks on the built frame.

    ``as_of``: the frame built as of that time (default: the latest time in the sources).
    ``progress(step, fraction)`` is told each step (the build, the static checks, each
    feature and probe model of the empirical checks), ``fraction`` from 0 to 1.
    """
    def tell(step: str, done: float) -> None:
        if progress is not None:
            progress(step, done)

    spec = loaded.spec
    tell("build (or reuse) the frame", 0.0)
    built = build_frame(loaded, as_of=as_of)
    frame = open_artifact(built.frame, "parquet", what="the built frame",
                          rebuild=fix_command(loaded.root, "build", "--force"))
    manifest = built.manifest["frame"]
    horizon = to_micros(spec.label.horizon)
    features = [f.name for f in spec.features]
    data = AuditFrame.prepare(frame, manifest["time_column"], spec.label.name, features,
                              key_col=(manifest["id_columns"] or [None])[0],
                              embargo_us=horizon)
    periods = [(p.name, datetime_to_us(p.start), datetime_to_us(p.end))
               for p in (spec.split.periods if spec.split else [])]
    tell("static checks on the spec and sources", 0.1)
    catalog = Catalog(loaded)
    found = static_findings(loaded, catalog)
    empirical, context = empirical_findings(
        data, periods=periods, horizon_us=horizon, seed=seed,
        progress=lambda step, done: tell(step, 0.2 + 0.8 * done))
    result = AuditResult.of(found + empirical, spec.audit.accept, {
        **context, "mode": "project", "frame": project_relative(built.frame, loaded.root),
        "frame_fingerprint": getattr(built, "fingerprint", None),
        "cache_key": built.manifest.get("cache_key")})
    return replace(result, data=data, loaded=loaded), data


def load_flat(path: str | Path) -> pd.DataFrame:
    """Read a Parquet or CSV table; a DataError naming the file if it cannot be read.

    >>> load_flat("no/such/table.parquet")
    Traceback (most recent call last):
    ...
    valuechain.errors.DataError: no/such/table.parquet: no such file. Point `frame` at ...
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file. Point `frame` at the Parquet or CSV table to "
                        "audit.")
    reader = "read_parquet" if path.suffix.lower() in (".parquet", ".pq") else "read_csv"
    try:
        with connect() as con:
            return pd.DataFrame(con.sql(f"SELECT * FROM {reader}({quote_literal(path)})").df())
    except duckdb.Error as err:
        raise DataError(f"{path}: could not read it ({str(err).splitlines()[0]}). Check that "
                        "it is a Parquet file (.parquet) or a CSV file with a header.") from err


def audit_frame(
    frame: pd.DataFrame,
    time_col: str,
    label_col: str,
    key_col: str | None = None,
    *,
    source: str = "frame",
    seed: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> tuple[AuditResult, AuditFrame]:
    """Audit a pre-joined table: every column but time, label, key and ``decision_id``
    (the identity `valuechain build` gives each decision row) is a feature."""
    for role, column in (("time_col", time_col), ("label_col", label_col),
                         ("key_col", key_col)):
        if column is not None and column not in frame.columns:
            raise DataError(
                f"{source}: `{role}` '{column}' is not a column. Expected one of "
                f"{list(frame.columns)}."
            )
    try:
        pd.to_datetime(frame[time_col])
    except (ValueError, TypeError):
        raise DataError(
            f"{source}: `time_col` '{time_col}' does not hold timestamps (e.g. "
            f"{frame[time_col].iloc[0]!r}). Point it to the decision time column."
        ) from None
    features = [c for c in frame.columns
                if c not in (time_col, label_col, key_col, DECISION_ID)]
    data = AuditFrame.prepare(frame, time_col, label_col, features, key_col=key_col)
    found, context = empirical_findings(data, seed=seed, progress=progress)
    result = AuditResult.of(found, (), {**context, "mode": "frame", "frame": source})
    return replace(result, data=data), data


def explain(finding: Finding, data: AuditFrame, loaded: LoadedSpec | None = None,
            limit: int = 20) -> pd.DataFrame:
    """Rows that show the problem behind ``finding``."""
    frame = data.frame
    base = [c for c in (data.key_col, data.time_col) if c]
    columns = [*base, *finding.features, data.label_col]
    if finding.check in ("single_feature_power", "post_outcome_signature"):
        name = finding.features[0]
        power = feature_power(data, name)
        if finding.check == "post_outcome_signature":
            value = finding.evidence["value"]
            chosen = np.flatnonzero(np.asarray(power.labels) == value)
            mask = (power.codes > 0) if value == "<present>" else (
                power.codes == (chosen[0] if len(chosen) else 0))
        else:
            mask = power.rates[power.codes] >= np.quantile(power.rates[power.codes], 0.99)
        return frame.loc[mask, columns].head(limit)
    if finding.check == "later_values":
        name = finding.features[0]
        later = pd.to_datetime(frame[name]) > pd.to_datetime(frame[data.time_col])
        return frame.loc[later.to_numpy(), columns].head(limit)
    if finding.check == "identifier":
        name = finding.features[0]
        return (frame.groupby(name)[data.label_col].agg(["count", "mean"])
                .sort_values("count", ascending=False).head(limit).reset_index())
    if finding.check == "unversioned_dimension" and loaded is not None:
        spec = loaded.spec
        feature = next(f for f in spec.features if f.name == finding.features[0])
        lookup = feature.lookup  # type: ignore[union-attr]
        own = spec.event_source or ""
        catalog = Catalog(loaded)
        t_col = spec.sources[own].event_time
        dim_t = finding.evidence["time_column"]
        q = quote_ident
        return pd.DataFrame(catalog.con.sql(
            f"SELECT p.{q(lookup.key)}, p.{q(t_col or '')} AS decision_time, d.{q(dim_t)}, "
            f"d.{q(lookup.column)} FROM {catalog.view(own)} p JOIN "
            f"{catalog.view(lookup.source)} d ON p.{q(lookup.key)} = "
            f"d.{q(lookup.on or lookup.key)} WHERE d.{q(dim_t)} > p.{q(t_col or '')} "
            f"LIMIT {int(limit)}").df())
    if finding.check == "undeclared_delay" and loaded is not None:
        return _later_rows(finding, Catalog(loaded), limit)
    return pd.DataFrame({"finding": [finding.id], "evidence": [dict(finding.evidence)]})


def _later_rows(finding: Finding, catalog: Catalog, limit: int) -> pd.DataFrame:
    """Rows of the source whose later time column is furthest after the event time."""
    name, event, column = (str(finding.evidence[k]) for k in ("source", "event_time", "column"))
    keys = [k for k in catalog.sources[name].keys if k not in (event, column)]
    q = quote_ident
    t_event, _ = catalog.time_us(name, event, "sources", name, "event_time")
    t_col, _ = catalog.time_us(name, column, "sources", name)
    shown = ", ".join(q(c) for c in (*keys, event, column))
    return pd.DataFrame(catalog.con.sql(
        f"SELECT {shown}, to_microseconds(({t_col} - {t_event})::BIGINT) AS delay "
        f"FROM {catalog.view(name)} WHERE {t_col} > {t_event} "
        f"ORDER BY {t_col} - {t_event} DESC LIMIT {int(limit)}").df())
