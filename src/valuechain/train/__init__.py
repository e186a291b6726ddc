"""``valuechain train``: time-split evaluation, baselines first, calibrated candidates."""

from valuechain.train.runs import latest_run, list_runs
from valuechain.train.stage import TrainRun, train_project

__all__ = ["TrainRun", "latest_run", "list_runs", "train_project"]
