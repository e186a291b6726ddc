"""``valuechain train``: time-split evaluation, baselines first, calibrated candidates.

:func:`train_project` returns a :class:`TrainResult` (also ``runs/<run_id>/metrics.json``);
:func:`latest_run` finds the newest run; :class:`FrameRef` records the frame a run was made
from.
"""

from valuechain.train.provenance import FrameRef
from valuechain.train.result import (
    Calibration,
    CandidateMetrics,
    Difference,
    RandomVsTime,
    TrainResult,
    ValueInputs,
    Verdict,
)
from valuechain.train.runs import latest_run, list_runs
from valuechain.train.stage import TrainRun, train_project

__all__ = [
    "Calibration",
    "CandidateMetrics",
    "Difference",
    "FrameRef",
    "RandomVsTime",
    "TrainResult",
    "TrainRun",
    "ValueInputs",
    "Verdict",
    "latest_run",
    "list_runs",
    "train_project",
]
