"""Typed results of pricing a policy and of ``valuechain decide``.

:class:`PeriodSummary` (what a policy does over one period: cost, actions per capacity
period, the capacity check, savings against baselines with day-block intervals) is shared by
:func:`~valuechain.decide.price_policy` and :class:`DecideResult`, the decide stage's result:
written as ``<workspace>/decide.json`` (:meth:`DecideResult.to_json`, also what
``valuechain decide --json`` prints) and read back, validated, with
:meth:`DecideResult.load` — a missing or damaged file is a
:class:`~valuechain.errors.ArtifactError` (a ``DataError``) naming it and the command that
writes it again.

>>> import tempfile
>>> from pathlib import Path
>>> DecideResult.load(Path(tempfile.mkdtemp()))
Traceback (most recent call last):
...
valuechain.errors.ArtifactError: .../decide.json: the decide result is missing (deleted, moved, or never written). Run `valuechain decide --spec DIR` to write it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

from valuechain.train.provenance import FrameRef
from valuechain.train.result import finite, read_model

__all__ = [
    "ActionCounts",
    "CapacitySummary",
    "DecideResult",
    "PeriodSummary",
    "Savings",
    "Sensitivity",
]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class ActionCounts(_Part):
    """Rows given one action per capacity period: most, mean and total."""

    max: float
    mean: float
    total: int


class CapacitySummary(_Part):
    """The capacity check: rows with the limited action per period against the limit.

    ``*_used`` count after the overflow rule (what the team receives); ``requested_*``
    count what the policy's bands ask for before it (``None`` for a baseline).
    """

    limit: int | None
    max_used: float
    mean_used: float
    p50_used: float
    p90_used: float
    periods_over_limit: int
    periods: int
    used_per_period: list[int]
    requested_max: float | None = None
    requested_over_limit: int | None = None

    @property
    def within(self) -> bool:
        """Whether every period stays within the limit."""
        return self.periods_over_limit == 0


class Savings(_Part):
    """Money saved against a baseline (baseline cost - policy cost) over the period.

    ``low``/``high``: 95 % interval resampling whole decision days
    (:func:`~valuechain.evaluate.block_sum_interval`); ``per_day``: the total over the days
    with decisions. A weekly outreach list (:mod:`valuechain.decide.outreach`) resamples
    customers instead (``blocks: customers``; ``low_weeks``/``high_weeks`` resample weeks),
    gives ``per_period`` (per week) and ``per_day`` per calendar day.
    """

    value: float
    low: float | None
    high: float | None
    per_day: float


class PeriodSummary(_Part):
    """What a set of actions does over one period (realised costs, under the labels)."""

    expected_cost: float
    cost_per_1000: float
    decisions: int
    actions_per_period: dict[str, ActionCounts]
    capacity: CapacitySummary
    caught_positives: float
    positives: float
    savings: dict[str, Savings] | None = None


class Sensitivity(_Part):
    """The policy re-optimised with one cost scaled, priced on test."""

    cost: str
    factor: float
    policy: dict[str, Any]
    test_cost: float


class DecideResult(_Part):
    """Everything ``valuechain decide`` found (``<workspace>/decide.json``).

    Attributes
    ----------
    run_id, candidate
        The training run and the candidate whose calibrated scores were priced.
    frame : FrameRef or None
        The frame the run was trained on (checked to be the one built now).
    kind, objective
        The policy family and what it minimised on validation.
    policy : dict
        The chosen policy (as in ``policy.yaml``).
    validation, test : PeriodSummary
        The policy on each period; ``test.savings`` against each baseline.
    baselines : dict of str to PeriodSummary
        Each baseline on test.
    sensitivity, frontier, threshold_curve, value_chain
        Tables for the report.
    outreach : dict or None
        For a weekly list (``--kind top_n`` with the spec's ``outreach``): the action names,
        the cooldown and how the intervals resample (customers); ``None`` otherwise.
    """

    run_id: str
    candidate: str
    kind: str
    objective: str
    policy: dict[str, Any]
    validation: PeriodSummary
    test: PeriodSummary
    baselines: dict[str, PeriodSummary]
    sensitivity: list[Sensitivity]
    frontier: list[dict[str, Any]]
    threshold_curve: list[dict[str, Any]]
    value_chain: list[dict[str, str]]
    frame: FrameRef | None = None
    policy_file: str | None = None
    outreach: dict[str, Any] | None = None
    _workspace: Path | None = PrivateAttr(default=None)

    def at(self, workspace: Path) -> DecideResult:
        """This result, for the project whose workspace is ``workspace``."""
        self._workspace = Path(workspace)
        return self

    @property
    def policy_path(self) -> Path:
        """The ``policy.yaml`` written beside the run."""
        name = self.policy_file or f"runs/{self.run_id}/policy.yaml"
        return (self._workspace / name) if self._workspace is not None else Path(name)

    def to_json(self) -> dict[str, Any]:
        """``decide.json`` / ``valuechain decide --json`` (strict JSON: NaN as null)."""
        out: dict[str, Any] = finite(self.model_dump(mode="python"))
        if out.get("outreach") is None:  # only a weekly outreach list has it
            out.pop("outreach", None)
        for summary in (out["validation"], out["test"], *out["baselines"].values()):
            if summary.get("savings") is None:  # only the policy on test has savings
                summary.pop("savings", None)
            for key in ("requested_max", "requested_over_limit"):  # only the policy asks
                if summary["capacity"].get(key) is None:
                    summary["capacity"].pop(key, None)
        return out

    @property
    def body(self) -> dict[str, Any]:
        """The same as :meth:`to_json` (the former name)."""
        return self.to_json()

    @classmethod
    def load(cls, workspace: Path | str, *, root: Path | None = None) -> DecideResult:
        """Read and validate ``<workspace>/decide.json``.

        Raises
        ------
        ArtifactError
            When the file is missing, not JSON or incomplete; names the file and
            ``valuechain decide --spec DIR``.
        """
        folder = Path(workspace)
        result: DecideResult = read_model(cls, folder / "decide.json", stage="decide",
                                          root=root)
        return result.at(folder)
