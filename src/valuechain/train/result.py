"""The typed result of ``valuechain train``: one model for ``metrics.json``, ``--json``, report.

:class:`TrainResult` is what :func:`~valuechain.train.train_project` returns, what
:class:`~valuechain.train.runs.RunWriter` writes as ``runs/<run_id>/metrics.json``
(:meth:`TrainResult.to_metrics`), what ``valuechain train --json`` prints
(:meth:`TrainResult.to_json`) and what later stages read back (:meth:`TrainResult.load`),
validated: a missing, truncated or hand-edited file is a
:class:`~valuechain.errors.ArtifactError` (a ``DataError``) naming the file and the command
that writes it again, never a ``KeyError``.

Metric values are floats; an undefined one (an AUC with one class) is ``NaN`` in memory and
``null`` in the file (strict JSON). The parts the report only draws (curves, reliability
tables, per-period metrics, backtest folds) stay plain mappings.

>>> import json, tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> (folder / "metrics.json").write_text('{"run_id": "r1"}')
16
>>> TrainResult.load(folder)
Traceback (most recent call last):
...
valuechain.errors.ArtifactError: .../metrics.json: the training run is damaged (not a complete training run: missing: created_at, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from valuechain.artifacts import damaged, fix_command, open_artifact
from valuechain.train.provenance import FrameRef

__all__ = [
    "Calibration",
    "CandidateMetrics",
    "Difference",
    "RandomVsTime",
    "TrainResult",
    "ValueInputs",
    "Verdict",
    "finite",
    "read_model",
]

Metrics = dict[str, float | None]


def finite(value: Any) -> Any:
    """NaN and infinities become null so the JSON written is strict.

    >>> finite({"a": float("nan"), "b": [1.0, float("inf")]})
    {'a': None, 'b': [1.0, None]}
    """
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class Calibration(_Part):
    """How a candidate's scores were calibrated on validation, and the ECE on test."""

    method: str
    ece_before: float | None
    ece_after: float | None
    reason: str | None = None


class CandidateMetrics(_Part):
    """One candidate: what it is, its metrics (with ``_low``/``_high`` intervals) per role."""

    describe: dict[str, Any]
    validation: Metrics
    test: Metrics
    calibration: Calibration


class Difference(_Part):
    """A paired difference ``candidate - baseline`` with its day-block interval."""

    value: float | None
    low: float | None
    high: float | None


class Verdict(_Part):
    """A candidate against a baseline on the headline metric, on test."""

    candidate: str
    baseline: str
    metric: str
    difference: Difference
    verdict: Literal["beats", "ties", "loses"]
    intervals_overlap: bool


class RandomVsTime(_Part):
    """The best candidate's AUC on a random split of the same rows, beside the time split."""

    candidate: str
    auc_time_split: float | None
    auc_random_split: float | None
    gap: float | None
    explanation: str


class ValueInputs(_Part):
    """The spec's cost and rule expressions the run stored per row in its predictions.

    ``decide`` prices the stored columns; it refuses when the spec's expressions changed
    since the run (the stored numbers would no longer be the spec's).
    """

    costs: dict[str, str] = {}
    baseline_policy: str | None = None


class TrainResult(_Part):
    """Everything one training run measured (``runs/<run_id>/metrics.json``).

    Attributes
    ----------
    run_id, created_at, spec_hash, seed
        Identity of the run.
    frame : FrameRef
        The frame the run was trained on (path relative to the workspace, fingerprint,
        cache key, rows).
    value : ValueInputs
        The cost and rule expressions stored per row with the predictions.
    candidates : dict of str to CandidateMetrics
        Every candidate (baselines included) with validation and test metrics.
    verdicts : list of Verdict
        Every model against every baseline on the headline metric.
    best_candidate : str
        The model chosen on validation.
    random_vs_time : RandomVsTime
        The best model on a random split beside the time split.
    splits, features, per_period, reliability, curves, backtest
        Plain mappings for the report.
    """

    run_id: str
    created_at: str
    spec_hash: str
    seed: int
    headline_metric: str
    frame: FrameRef
    value: ValueInputs = ValueInputs()
    splits: dict[str, Any]
    features: dict[str, Any]
    candidates: dict[str, CandidateMetrics]
    verdicts: list[Verdict]
    best_candidate: str
    random_vs_time: RandomVsTime
    per_period: dict[str, list[dict[str, Any]]]
    reliability: dict[str, Any]
    curves: dict[str, Any]
    backtest: dict[str, Any] | None = None
    seconds: float | None = None
    _run_dir: Path | None = PrivateAttr(default=None)

    @property
    def run_dir(self) -> str:
        """The run's folder (where it was written or read from)."""
        return str(self._run_dir) if self._run_dir is not None else ""

    def at(self, run_dir: Path) -> TrainResult:
        """This result, located in ``run_dir``."""
        self._run_dir = Path(run_dir)
        return self

    def to_metrics(self) -> dict[str, Any]:
        """The body of ``metrics.json`` (strict JSON: ``NaN`` written as ``null``)."""
        out: dict[str, Any] = finite(self.model_dump(mode="python"))
        return out

    @property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` as a mapping (the same as :meth:`to_metrics`)."""
        return self.to_metrics()

    def to_json(self) -> dict[str, Any]:
        """What ``valuechain train --json`` prints: the run, candidates, verdicts, gap."""
        out: dict[str, Any] = finite({
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "seed": self.seed,
            "frame": self.frame.model_dump(),
            "best_candidate": self.best_candidate,
            "candidates": {name: {"validation": c.validation, "test": c.test}
                           for name, c in self.candidates.items()},
            "verdicts": [v.model_dump() for v in self.verdicts],
            "random_vs_time": self.random_vs_time.model_dump(),
        })
        return out

    @classmethod
    def load(cls, run_dir: Path | str, *, root: Path | None = None) -> TrainResult:
        """Read and validate ``<run_dir>/metrics.json``.

        Parameters
        ----------
        run_dir : Path
            The run's folder.
        root : Path, optional
            The project folder, to print the exact command that trains again.

        Raises
        ------
        ArtifactError
            When the file is missing, not JSON, or not a complete run; the message names
            the file, what is wrong and ``valuechain train --spec DIR``.
        """
        folder = Path(run_dir)
        result: TrainResult = read_model(cls, folder / "metrics.json", stage="train", root=root)
        return result.at(folder)


def read_model(model: type[Any], path: Path, *, stage: str, root: Path | None) -> Any:
    """``model`` validated from the JSON file ``path``; an ArtifactError naming it when broken."""
    command = fix_command(root, stage)
    kind = "training run" if stage == "train" else f"{stage} result"
    data = open_artifact(path, "json", rebuild=command, expect=dict, what=f"the {kind}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        missing = [".".join(map(str, e["loc"])) for e in err.errors() if e["type"] == "missing"]
        wrong = [f"{'.'.join(map(str, e['loc']))} ({e['msg'].lower()})" for e in err.errors()
                 if e["type"] != "missing"]
        what = "; ".join(part for part in (
            f"missing: {', '.join(missing[:6])}" if missing else "",
            f"wrong: {', '.join(wrong[:4])}" if wrong else "") if part)
        raise damaged(path, f"not a complete {kind}: {what}", command,
                      what=f"the {kind}") from None
