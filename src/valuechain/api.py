"""The Python API: every stage as one function, for notebooks and scripts.

Each function takes the spec as a path (a ``valuechain.yaml`` file or the directory holding
it) or as the :class:`~valuechain.spec.LoadedSpec` that :func:`load_spec` returns, runs the
stage, writes its outputs into the project's workspace exactly as the command line does, and
returns the stage's typed result. Nothing prints; pass ``progress=callback`` (called with a
stage label and a fraction done) to follow a long stage. The ``valuechain`` command is a thin
layer over these functions.

==================  ===================================================  ====================
function            what it does                                         returns
==================  ===================================================  ====================
``load_spec``       read and validate ``valuechain.yaml``                ``LoadedSpec``
``check``           validate the spec against its data; the checklist    ``CheckReport``
``build``           the point-in-time frame and its manifest             ``BuildResult``
``audit``           leakage findings (project or a flat frame)           ``AuditResult``
``train``           baselines, our models and yours on time periods      ``TrainResult``
``decide``          the policy under costs and capacity, priced          ``DecideResult``
``report``          one self-contained HTML report                       ``ReportResult``
``price_policy``    the decide stage from plain arrays, no spec          ``PricedPolicy``
==================  ===================================================  ====================

Errors are :class:`~valuechain.errors.ValuechainError` subclasses whose messages name the
argument (```kind```), the spec field or the file, and the fix. Errors of the libraries
underneath (DuckDB, LightGBM, pydantic, PyYAML, Arrow, ``OSError`` on files) are mapped into
the tree at these functions, with the original as ``__cause__``.

>>> import valuechain as vc
>>> vc.decide("examples/fraud", kind="bands")
Traceback (most recent call last):
...
valuechain.errors.SpecError: `kind` 'bands': expected one of three_band, threshold, top_n.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from valuechain.errors import (
    ArtifactError,
    DataError,
    EngineError,
    ModelError,
    SpecError,
    ValuechainError,
)
from valuechain.spec.loader import LoadedSpec

if TYPE_CHECKING:
    from valuechain.audit import AuditResult
    from valuechain.data.build import BuildResult, EngineChoice
    from valuechain.data.validate import CheckReport
    from valuechain.decide import DecideResult
    from valuechain.report.html import ReportResult
    from valuechain.train import TrainResult

__all__ = ["SpecLike", "audit", "build", "check", "decide", "load_spec", "report", "train"]

SpecLike = str | os.PathLike[str] | LoadedSpec
"""A spec file, the directory holding ``valuechain.yaml``, or a loaded spec."""

Progress = Callable[[str, float], None]
Kind = Literal["three_band", "threshold", "top_n"]
Objective = Literal["expected", "realised"]

KINDS = ("three_band", "threshold", "top_n")
OBJECTIVES = ("expected", "realised")


# ------------------------------------------------------------------------ error boundary
def _mapped(err: BaseException, stage: str) -> ValuechainError | None:
    """``err`` as a ValuechainError when it comes from a library underneath, else None."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(err, duckdb.IOException | duckdb.InvalidInputException):
        return DataError(
            f"{stage}: DuckDB cannot read the data ({type(err).__name__}: {text}). Check the "
            "file it names (it must exist, be readable and be Parquet or CSV as declared), "
            "e.g. with `valuechain check`."
        )
    if duckdb is not None and isinstance(err, duckdb.Error):
        return EngineError(
            f"{stage}: DuckDB failed ({type(err).__name__}: {text}). If it names a source file "
            "or column, check that source against the spec (`valuechain check`); otherwise "
            "this is a valuechain bug: please report it with this message."
        )
    lightgbm = sys.modules.get("lightgbm.basic")
    if lightgbm is not None and isinstance(err, lightgbm.LightGBMError):
        return ModelError(f"{stage}: LightGBM failed ({text}).")
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(err, pydantic.ValidationError):
        return ArtifactError(
            f"{stage}: a stored stage output does not have the expected fields ({text}). "
            "Fix: run the stage that writes it again."
        )
    yaml = sys.modules.get("yaml")
    if yaml is not None and isinstance(err, yaml.YAMLError):
        return ArtifactError(f"{stage}: a stored YAML file cannot be parsed ({text}). Fix: "
                             "run the stage that writes it again.")
    arrow = sys.modules.get("pyarrow")
    if arrow is not None and isinstance(err, arrow.ArrowException):
        return DataError(f"{stage}: Arrow cannot read or convert the data ({text}). Check the "
                         "file it names, or run the stage that writes it again.")
    if isinstance(err, OSError):
        name = err.filename if err.filename is not None else "a file"
        return ArtifactError(f"{stage}: cannot read or write {name} ({err.strerror or text}). "
                             "Check that the path exists and is readable and writable.")
    return None


@contextmanager
def _boundary(stage: str) -> Iterator[None]:
    """Map the errors of libraries underneath into the valuechain tree."""
    try:
        yield
    except ValuechainError:
        raise
    except Exception as err:
        mapped = _mapped(err, stage)
        if mapped is None:
            raise
        raise mapped from err


def _loaded(spec: SpecLike) -> LoadedSpec:
    if isinstance(spec, LoadedSpec):
        return spec
    if not isinstance(spec, str | os.PathLike):
        raise SpecError(
            f"`spec`: expected a path to valuechain.yaml (or its directory) or a loaded spec, "
            f"got {type(spec).__name__}. Fix: pass e.g. 'examples/fraud' or "
            "valuechain.load_spec(...)."
        )
    from valuechain.spec import load_spec as read

    with _boundary("load_spec"):
        return read(Path(spec))


# ------------------------------------------------------------------------------- stages
def load_spec(spec: SpecLike) -> LoadedSpec:
    """Read and validate a spec.

    Parameters
    ----------
    spec : str, os.PathLike or LoadedSpec
        ``valuechain.yaml``, the directory holding it, or an already loaded spec (returned
        as is).

    Returns
    -------
    LoadedSpec
        The validated spec (``.spec``), its file (``.path``), workspace and content hash.

    Raises
    ------
    SpecError
        Naming the file, the line, the field and the fix.

    Examples
    --------
    >>> import valuechain as vc
    >>> vc.load_spec("examples/fraud").spec.label.name
    'is_fraud'
    """
    return _loaded(spec)


def check(spec: SpecLike) -> CheckReport:
    """Validate the spec against its data and answer the readiness checklist.

    Writes ``<workspace>/check.json``. A failed check is a result (``passed`` is False), not
    an error.

    Parameters
    ----------
    spec : str, os.PathLike or LoadedSpec
        The project.

    Returns
    -------
    CheckReport
        ``data_checks``, ``checklist`` and ``passed``.
    """
    from valuechain.data.validate import check_project
    from valuechain.io import write_json

    loaded = _loaded(spec)
    with _boundary("check"):
        result = check_project(loaded)
        write_json(loaded.workspace / "check.json", result.to_json())
    return result


def build(
    spec: SpecLike,
    *,
    as_of: datetime | None = None,
    engine: EngineChoice = None,
    force: bool = False,
    accept_early_times: bool = False,
    progress: Progress | None = None,
) -> BuildResult:
    """Build (or reuse) the point-in-time frame and its lineage manifest.

    Parameters
    ----------
    spec : str, os.PathLike or LoadedSpec
        The project.
    as_of : datetime, optional
        The extraction time; default the latest time in the sources.
    engine : str or mapping, optional
        An engine name (``"duckdb"``, ``"reference"``) or ``{"type": ..., options}``;
        default the spec's ``engine``, else DuckDB.
    force : bool
        Rebuild even when the inputs are unchanged.
    accept_early_times : bool
        Accept times at or before 1970-01-01 among later ones (refused by default: they are
        usually placeholders for a missing time).
    progress : callable, optional
        Called with ``(stage label, fraction done)``.

    Returns
    -------
    BuildResult
        Paths of the frame and the manifest, row counts, the frame's ``fingerprint``.
    """
    from valuechain.data.build import build_frame

    loaded = _loaded(spec)
    with _boundary("build"):
        return build_frame(loaded, as_of=as_of, engine=engine, force=force,
                           accept_early_times=accept_early_times, progress=progress)


def audit(
    spec: SpecLike | None = None,
    *,
    frame: pd.DataFrame | str | os.PathLike[str] | None = None,
    time_col: str | None = None,
    label_col: str | None = None,
    key_col: str | None = None,
    seed: int = 0,
    as_of: datetime | None = None,
    progress: Progress | None = None,
) -> AuditResult:
    """Find features that could carry information from after the decision.

    Either a project (``spec``: static checks on the spec and its sources, empirical checks
    on the built frame; writes ``<workspace>/audit.json``) or a flat table (``frame``, a
    DataFrame or a Parquet/CSV path, with ``time_col`` and ``label_col``; every other column
    but ``key_col`` is a feature).

    Returns
    -------
    AuditResult
        ``findings`` (most severe first), ``critical`` (unaccepted critical findings) and
        ``explain(finding_id)``, the rows behind one finding.

    Examples
    --------
    >>> import numpy as np, pandas as pd, valuechain as vc
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 2000)
    >>> table = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=2000, freq="h"),
    ...                       "signal": rng.normal(size=2000) + y, "copy": y, "y": y})
    >>> result = vc.audit(frame=table, time_col="t", label_col="y")
    >>> [f.id for f in result.findings if f.severity == "critical"]
    ['single_feature_power:copy']
    """
    from valuechain.audit import audit_frame, audit_project, load_flat
    from valuechain.io import write_json

    if frame is not None:
        if spec is not None:
            raise SpecError("pass either `spec` (audit a project) or `frame` (audit a flat "
                            "table), not both.")
        if time_col is None or label_col is None:
            raise SpecError("`frame` needs `time_col` and `label_col` (and optionally "
                            "`key_col`) to know which columns are not features.")
        with _boundary("audit"):
            source = "frame" if isinstance(frame, pd.DataFrame) else str(frame)
            table = frame if isinstance(frame, pd.DataFrame) else load_flat(Path(frame))
            result, _ = audit_frame(table, time_col, label_col, key_col, source=source,
                                    seed=seed, progress=progress)
        return result
    if spec is None:
        raise SpecError("pass `spec` (a project) or `frame` (a flat table) to audit.")
    loaded = _loaded(spec)
    with _boundary("audit"):
        result, _ = audit_project(loaded, seed=seed, as_of=as_of, progress=progress)
        write_json(loaded.workspace / "audit.json", result.to_json())
    return result


def train(
    spec: SpecLike,
    *,
    seed: int = 0,
    candidates: Sequence[str] | None = None,
    estimators: Mapping[str, Any] | None = None,
    backtest: int = 0,
    as_of: datetime | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train the baselines, our models and yours on time periods; calibrate; evaluate.

    Parameters
    ----------
    spec : str, os.PathLike or LoadedSpec
        The project (the frame is built first if needed).
    seed : int
        Seed of the models and the bootstrap.
    candidates : sequence of str, optional
        Built-in candidates to train (``prior``, ``rules``, ``logistic``, ``lightgbm``);
        default all that apply.
    estimators : mapping of str to estimator, optional
        Your scikit-learn compatible classifiers by name, e.g.
        ``{"my_lgbm": LGBMClassifier()}``: each is cloned, fitted on the training period and
        evaluated beside ours (see :func:`valuechain.models.as_candidate`).
    backtest : int
        Rolling-origin folds (0: none).
    as_of : datetime, optional
        Train on the frame built as of this time (default: the latest time in the sources;
        the same ``as_of`` as :func:`build`).
    progress : callable, optional
        Called with ``(stage label, fraction done)``.

    Returns
    -------
    TrainResult
        Metrics with intervals per candidate, verdicts against the baselines, the best
        candidate; the run is in ``<workspace>/runs/<run_id>/``.
    """
    from valuechain.train import train_project

    if estimators is not None and not isinstance(estimators, Mapping):
        raise ModelError(
            f"`estimators`: expected a mapping of name to estimator, got "
            f"{type(estimators).__name__}. Fix: pass e.g. {{'my_lgbm': LGBMClassifier()}}."
        )
    if isinstance(candidates, str):
        candidates = [c.strip() for c in candidates.split(",") if c.strip()]
    loaded = _loaded(spec)
    with _boundary("train"):
        return train_project(loaded, seed=seed, candidates=candidates, backtest_folds=backtest,
                             progress=progress, estimators=estimators, as_of=as_of)


def decide(
    spec: SpecLike,
    *,
    kind: Kind = "three_band",
    objective: Objective = "expected",
    seed: int = 0,
    progress: Progress | None = None,
) -> DecideResult:
    """Turn the latest run's scores into actions under costs and capacity; price them.

    Parameters
    ----------
    spec : str, os.PathLike or LoadedSpec
        The project (trained: ``train`` has written a run).
    kind : {"three_band", "threshold", "top_n"}
        Approve / review / decline bands, one threshold, or the top N per period.
    objective : {"expected", "realised"}
        Minimise the expected cost under the calibrated scores, or the realised cost.
    seed : int
        Seed of the bootstrap intervals.
    progress : callable, optional
        Called with ``(stage label, fraction done)``.

    Returns
    -------
    DecideResult
        The policy, its summaries on validation and test, savings against every baseline
        with intervals; ``policy.yaml`` is written into the run.
    """
    from valuechain.decide import decide_project

    if kind not in KINDS:
        raise SpecError(f"`kind` '{kind}': expected one of {', '.join(KINDS)}.")
    if objective not in OBJECTIVES:
        raise SpecError(f"`objective` '{objective}': expected one of {', '.join(OBJECTIVES)}.")
    loaded = _loaded(spec)
    with _boundary("decide"):
        return decide_project(loaded, kind=kind, objective=objective, seed=seed,
                              progress=progress)


def report(spec: SpecLike, *, out: str | os.PathLike[str] | None = None) -> ReportResult:
    """Write one self-contained HTML report from whatever stage outputs exist.

    Parameters
    ----------
    spec : str, os.PathLike or LoadedSpec
        The project.
    out : str or os.PathLike, optional
        The HTML file; default ``<workspace>/report.html``.

    Returns
    -------
    ReportResult
        The file written (``path``) and the status of every section.
    """
    from valuechain.report import render_report

    loaded = _loaded(spec)
    with _boundary("report"):
        return render_report(loaded, Path(out) if out is not None else None)

