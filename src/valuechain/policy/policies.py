"""Decision policies: turn scores into actions, saved as a versioned ``policy.yaml``.

Three policies, each a frozen dataclass with a ``kind``, an ``apply(scores, periods=None)``
returning one action name per row, ``to_dict`` / ``from_dict`` and ``save`` / ``load``:

- :class:`Threshold`: ``score < threshold`` gets ``below``, the rest ``at_or_above``;
- :class:`ThreeBand`: ``score < review_at`` approve, ``review_at <= score < decline_at``
  review, ``score >= decline_at`` decline (action names configurable);
- :class:`TopN`: in each period the ``n`` highest scores at or above ``min_score`` get
  ``action`` (ties broken by row order: the earlier row ranks first), the rest ``other``.

Thresholds may be ``-inf`` or ``inf`` (a band that takes every row or none). A policy
wraps the calibrated model's scores; it is a separate artifact with free-form ``metadata``
(run id, calibration, the capacity it was fitted for).

Each action name has a cost *role* (``approve``, ``review`` or ``decline``, see
:mod:`valuechain.policy.costs`), given by the ``roles`` property: by position for
:class:`ThreeBand`; for :class:`Threshold` ``below`` approves and ``at_or_above`` declines
unless it is named ``review``; for :class:`TopN` ``other`` approves and ``action`` reviews
unless it is named ``decline``.

>>> import tempfile, pathlib
>>> policy = ThreeBand(review_at=0.2, decline_at=0.9, metadata={"run_id": "r1"})
>>> policy.apply([0.1, 0.2, 0.5, 0.95]).tolist()
['approve', 'review', 'review', 'decline']
>>> path = policy.save(pathlib.Path(tempfile.mkdtemp()) / "policy.yaml")
>>> load_policy(path) == policy
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, Self, TypeAlias

import numpy as np
import numpy.typing as npt
import yaml

from valuechain.errors import ArtifactError, DataError, SpecError
from valuechain.io import write_text
from valuechain.spec.durations import format_duration, parse_duration

__all__ = [
    "POLICY_VERSION",
    "Policy",
    "ThreeBand",
    "Threshold",
    "TopN",
    "load_policy",
    "period_codes",
    "policy_from_dict",
    "rank_within_period",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Actions = npt.NDArray[np.str_]

#: Version written to and expected in ``policy.yaml``.
POLICY_VERSION: Final = 1
_COMMON = ("version", "kind", "metadata")


# ---------------------------------------------------------------- inputs shared by policies


def check_scores(scores: npt.ArrayLike, what: str = "scores") -> F64:
    """Scores as a 1-D float array; NaN or infinite scores are refused."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise DataError(f"{what} must be one score per row, got an array of shape {s.shape}")
    bad = int(np.count_nonzero(np.isnan(s)))
    if bad:
        raise DataError(f"{bad} of {len(s)} {what} are NaN; a model must score every row. "
                        "Check missing-value handling before scoring.")
    return s


def period_codes(periods: npt.ArrayLike, n: int) -> tuple[I64, int]:
    """Period ids as codes ``0..P-1`` (in sorted id order) and the number of periods ``P``.

    Examples
    --------
    >>> codes, count = period_codes([20, 10, 20], 3)
    >>> codes.tolist(), count
    ([1, 0, 1], 2)
    """
    p = np.asarray(periods)
    if p.shape != (n,):
        raise DataError(f"periods has shape {p.shape} for {n} scores; give one period id per "
                        "row (e.g. the day number of the decision time).")
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    uniq, codes = np.unique(p, return_inverse=True)
    return codes.astype(np.int64).reshape(n), len(uniq)


def rank_within_period(scores: F64, codes: I64) -> I64:
    """0-based rank of each row within its period, highest score first, ties by row order.

    Examples
    --------
    >>> rank_within_period(np.array([0.5, 0.9, 0.5, 0.1]), np.array([0, 0, 0, 1])).tolist()
    [1, 0, 2, 0]
    """
    n = len(scores)
    order = np.lexsort((np.arange(n), -scores, codes))
    sorted_codes = codes[order]
    first = np.ones(n, dtype=bool)
    first[1:] = sorted_codes[1:] != sorted_codes[:-1]
    positions = np.arange(n, dtype=np.int64)
    start = np.maximum.accumulate(np.where(first, positions, 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = positions - start
    return rank


def _names(*names: str) -> Actions:
    return np.array(names, dtype=np.str_)


# ---------------------------------------------------------------- field validation


def _where(kind: str, name: str) -> str:
    return f"policy `{kind}` field `{name}`"


def _number(kind: str, name: str, value: Any, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise SpecError(f"{_where(kind, name)}: expected a number, got {value!r}; {fix}.")
    out = float(value)
    if math.isnan(out):
        raise SpecError(f"{_where(kind, name)}: NaN is not a threshold; {fix}.")
    return out


def _action(kind: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{_where(kind, name)}: expected an action name such as 'approve', got "
                        f"{value!r}.")
    return value


def _distinct(kind: str, names: tuple[str, ...]) -> None:
    if len(set(names)) != len(names):
        raise SpecError(f"policy `{kind}`: action names {list(names)} repeat; give each band "
                        "its own action.")


def _metadata(kind: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{_where(kind, 'metadata')}: expected a mapping such as "
                        f"{{run_id: ...}}, got {value!r}.")
    return dict(value)


# ---------------------------------------------------------------- shared behaviour


class _PolicyBase:
    """YAML round trip shared by every policy (subclasses give ``_fields``/``_build``)."""

    kind: ClassVar[str]
    _KEYS: ClassVar[tuple[str, ...]]
    metadata: Mapping[str, Any]

    def _fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Plain data as written to ``policy.yaml``: version, kind, fields, metadata."""
        return {"version": POLICY_VERSION, "kind": self.kind, **self._fields(),
                "metadata": dict(self.metadata)}

    def to_yaml(self) -> str:
        """The ``policy.yaml`` text."""
        try:
            return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        except yaml.YAMLError as exc:
            raise SpecError(f"{_where(self.kind, 'metadata')}: values must be plain YAML "
                            f"(strings, numbers, lists, mappings): {exc}") from exc

    def save(self, path: str | Path) -> Path:
        """Write ``policy.yaml`` atomically; a directory gets ``policy.yaml`` inside it."""
        target = Path(path)
        if target.is_dir():
            target = target / "policy.yaml"
        write_text(target, self.to_yaml())
        return target

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a policy from :meth:`to_dict` output, checking every field."""
        if not isinstance(data, Mapping):
            raise SpecError(f"a policy must be a mapping with `kind`, got {type(data).__name__}")
        version = data.get("version", POLICY_VERSION)
        if version != POLICY_VERSION:
            raise SpecError(f"policy `version` {version!r} is not supported; this valuechain "
                            f"reads version {POLICY_VERSION}. Re-run `valuechain decide`.")
        if data.get("kind") != cls.kind:
            raise SpecError(f"policy `kind` is {data.get('kind')!r}, expected {cls.kind!r}; "
                            "use load_policy to read any kind.")
        unknown = sorted(set(data) - set(cls._KEYS) - set(_COMMON))
        if unknown:
            raise SpecError(f"policy `{cls.kind}`: unknown fields {unknown}; allowed: "
                            f"{', '.join(cls._KEYS + _COMMON)}.")
        return cls._build({k: data[k] for k in cls._KEYS if k in data},
                          _metadata(cls.kind, data.get("metadata")))

    @classmethod
    def _build(cls, values: dict[str, Any], metadata: dict[str, Any]) -> Self:
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a ``policy.yaml`` of this kind."""
        return cls.from_dict(_read(Path(path)))


def _read(path: Path) -> dict[str, Any]:
    from valuechain.artifacts import fix_command, open_artifact

    if path.is_dir():
        path = path / "policy.yaml"
    data: dict[str, Any] = open_artifact(path, "yaml", rebuild=fix_command(None, "decide"),
                                         what="the policy file", expect=dict)
    return data


def _required(kind: str, values: Mapping[str, Any], name: str, example: str) -> Any:
    if name not in values:
        raise SpecError(f"{_where(kind, name)} is missing; add it, e.g. `{name}: {example}`.")
    return values[name]


# ---------------------------------------------------------------- the policies


@dataclass(frozen=True)
class Threshold(_PolicyBase):
    """Two actions split at one score: ``score < threshold`` gets ``below``.

    Examples
    --------
    >>> Threshold(0.5).apply([0.2, 0.5, 0.7]).tolist()
    ['approve', 'decline', 'decline']
    >>> Threshold(0.5, at_or_above="review").roles
    {'approve': 'approve', 'review': 'review'}
    """

    kind: ClassVar[str] = "threshold"
    _KEYS: ClassVar[tuple[str, ...]] = ("threshold", "below", "at_or_above")

    threshold: float
    below: str = "approve"
    at_or_above: str = "decline"
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        fix = "give the score from which rows get the `at_or_above` action"
        object.__setattr__(self, "threshold", _number(self.kind, "threshold", self.threshold,
                                                      fix))
        _action(self.kind, "below", self.below)
        _action(self.kind, "at_or_above", self.at_or_above)
        _distinct(self.kind, self.actions)
        object.__setattr__(self, "metadata", _metadata(self.kind, self.metadata))

    @property
    def actions(self) -> tuple[str, str]:
        """Action names from the low score side to the high one."""
        return (self.below, self.at_or_above)

    @property
    def roles(self) -> dict[str, str]:
        """Action name -> cost role."""
        high = "review" if self.at_or_above == "review" else "decline"
        return {self.below: "approve", self.at_or_above: high}

    def apply(self, scores: npt.ArrayLike, periods: npt.ArrayLike | None = None) -> Actions:
        """One action per row (``periods`` is accepted for a uniform call and not used)."""
        s = check_scores(scores)
        names = _names(*self.actions)
        return names[(s >= self.threshold).astype(np.int64)]

    def _fields(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "below": self.below,
                "at_or_above": self.at_or_above}

    @classmethod
    def _build(cls, values: dict[str, Any], metadata: dict[str, Any]) -> Self:
        _required(cls.kind, values, "threshold", "0.5")
        return cls(**values, metadata=metadata)


@dataclass(frozen=True)
class ThreeBand(_PolicyBase):
    """Approve / review / decline bands: ``review_at <= score < decline_at`` is reviewed.

    ``review_at == decline_at`` is a valid two-band policy (nothing is reviewed).

    Examples
    --------
    >>> band = ThreeBand(review_at=0.3, decline_at=0.8, actions=("allow", "check", "block"))
    >>> band.apply([0.29, 0.3, 0.8]).tolist()
    ['allow', 'check', 'block']
    >>> band.roles
    {'allow': 'approve', 'check': 'review', 'block': 'decline'}
    """

    kind: ClassVar[str] = "three_band"
    _KEYS: ClassVar[tuple[str, ...]] = ("review_at", "decline_at", "actions")

    review_at: float
    decline_at: float
    actions: tuple[str, str, str] = ("approve", "review", "decline")
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        review_at = _number(self.kind, "review_at", self.review_at,
                            "give the lowest score that is reviewed")
        decline_at = _number(self.kind, "decline_at", self.decline_at,
                             "give the lowest score that is declined")
        if review_at > decline_at:
            raise SpecError(f"policy `three_band`: `review_at` ({review_at:g}) is above "
                            f"`decline_at` ({decline_at:g}); the review band lies below the "
                            "decline band, so give review_at <= decline_at.")
        actions = self.actions
        if isinstance(actions, str) or not isinstance(actions, list | tuple) or len(
                actions) != 3:
            raise SpecError(f"{_where(self.kind, 'actions')}: expected three names (low, "
                            f"middle, high band), e.g. [approve, review, decline], got "
                            f"{actions!r}.")
        for name in actions:
            _action(self.kind, "actions", name)
        object.__setattr__(self, "review_at", review_at)
        object.__setattr__(self, "decline_at", decline_at)
        object.__setattr__(self, "actions", tuple(actions))
        _distinct(self.kind, self.actions)
        object.__setattr__(self, "metadata", _metadata(self.kind, self.metadata))

    @property
    def roles(self) -> dict[str, str]:
        """Action name -> cost role (by band: approve, review, decline)."""
        return dict(zip(self.actions, ("approve", "review", "decline"), strict=True))

    def apply(self, scores: npt.ArrayLike, periods: npt.ArrayLike | None = None) -> Actions:
        """One action per row (``periods`` is accepted for a uniform call and not used)."""
        s = check_scores(scores)
        band = (s >= self.review_at).astype(np.int64) + (s >= self.decline_at)
        return _names(*self.actions)[band]

    def _fields(self) -> dict[str, Any]:
        return {"review_at": self.review_at, "decline_at": self.decline_at,
                "actions": list(self.actions)}

    @classmethod
    def _build(cls, values: dict[str, Any], metadata: dict[str, Any]) -> Self:
        _required(cls.kind, values, "review_at", "0.2")
        _required(cls.kind, values, "decline_at", "0.9")
        if "actions" in values and isinstance(values["actions"], list):
            values["actions"] = tuple(values["actions"])
        return cls(**values, metadata=metadata)


@dataclass(frozen=True)
class TopN(_PolicyBase):
    """In each period, the ``n`` highest scores at or above ``min_score`` get ``action``.

    Ties are broken by row order (the earlier row ranks first); ``per`` records the period
    length (``'1d'``, ``'7d'``) that the period ids passed to :meth:`apply` stand for.

    Examples
    --------
    >>> top = TopN(n=1, per="7d", action="contact", other="skip")
    >>> top.apply([0.4, 0.9, 0.4, 0.3], periods=[1, 1, 2, 2]).tolist()
    ['skip', 'contact', 'contact', 'skip']
    >>> TopN(n=2, per="1d", min_score=0.5).apply([0.4, 0.9, 0.6], periods=[0, 0, 0]).tolist()
    ['approve', 'review', 'review']
    """

    kind: ClassVar[str] = "top_n"
    _KEYS: ClassVar[tuple[str, ...]] = ("n", "per", "min_score", "action", "other")

    n: int
    per: str
    min_score: float | None = None
    action: str = "review"
    other: str = "approve"
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer) or self.n < 0:
            raise SpecError(f"{_where(self.kind, 'n')}: expected a whole number >= 0 (cases "
                            f"actioned per period), got {self.n!r}.")
        object.__setattr__(self, "n", int(self.n))
        try:
            per = format_duration(parse_duration(self.per))
        except ValueError as exc:
            raise SpecError(f"{_where(self.kind, 'per')}: {exc}") from exc
        object.__setattr__(self, "per", per)
        if self.min_score is not None:
            object.__setattr__(self, "min_score", _number(
                self.kind, "min_score", self.min_score,
                "give the lowest score that may be actioned, or leave it out"))
        _action(self.kind, "action", self.action)
        _action(self.kind, "other", self.other)
        _distinct(self.kind, self.actions)
        object.__setattr__(self, "metadata", _metadata(self.kind, self.metadata))

    @property
    def actions(self) -> tuple[str, str]:
        """Action names: the rest (``other``), then the top of each period (``action``)."""
        return (self.other, self.action)

    @property
    def roles(self) -> dict[str, str]:
        """Action name -> cost role."""
        top = "decline" if self.action == "decline" else "review"
        return {self.other: "approve", self.action: top}

    def apply(self, scores: npt.ArrayLike, periods: npt.ArrayLike | None = None) -> Actions:
        """One action per row; ``periods`` (one id per row) is required."""
        s = check_scores(scores)
        if periods is None:
            raise DataError("a top-N policy ranks within periods: pass `periods`, one id per "
                            "row (e.g. the week number); for one ranking over all rows pass "
                            "a constant.")
        codes, _ = period_codes(periods, len(s))
        chosen = rank_within_period(s, codes) < self.n
        if self.min_score is not None:
            chosen &= s >= self.min_score
        return _names(*self.actions)[chosen.astype(np.int64)]

    def _fields(self) -> dict[str, Any]:
        return {"n": self.n, "per": self.per, "min_score": self.min_score,
                "action": self.action, "other": self.other}

    @classmethod
    def _build(cls, values: dict[str, Any], metadata: dict[str, Any]) -> Self:
        _required(cls.kind, values, "n", "150")
        _required(cls.kind, values, "per", "1d")
        return cls(**values, metadata=metadata)


Policy: TypeAlias = Threshold | ThreeBand | TopN
_KINDS: Final[dict[str, type[Threshold] | type[ThreeBand] | type[TopN]]] = {
    cls.kind: cls for cls in (Threshold, ThreeBand, TopN)
}


def policy_from_dict(data: Mapping[str, Any]) -> Policy:
    """Any policy from its :meth:`to_dict` form, dispatched on ``kind``.

    Examples
    --------
    >>> policy_from_dict({"version": 1, "kind": "threshold", "threshold": 0.4})
    Threshold(threshold=0.4, below='approve', at_or_above='decline', metadata={})
    """
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind not in _KINDS:
        raise SpecError(f"policy `kind` {kind!r} is unknown; use one of "
                        f"{', '.join(_KINDS)}.")
    return _KINDS[str(kind)].from_dict(data)


def load_policy(path: str | Path) -> Policy:
    """Read any ``policy.yaml`` (a file, or a directory holding one)."""
    target = Path(path)
    data = _read(target)
    try:
        policy = policy_from_dict(data)
    except SpecError as exc:
        raise ArtifactError(f"{target}: {exc} The file was edited or written by another "
                            "version; run `valuechain decide --spec DIR` to write it again."
                            ) from exc
    # a saved policy thresholds calibrated probabilities: each finite threshold lies in [0, 1]
    # (-inf / inf stand for a band that takes every row or none)
    for name in ("threshold", "review_at", "decline_at"):
        value = getattr(policy, name, None)
        if value is not None and math.isfinite(value) and not 0.0 <= value <= 1.0:
            raise ArtifactError(
                f"{target}: {_where(policy.kind, name)} is {value:g}, outside [0, 1]; a saved "
                "policy thresholds calibrated probabilities (or is -inf / inf for a band that "
                "takes every row or none). The file was edited by hand or damaged; run "
                "`valuechain decide --spec DIR` to write it again."
            )
    return policy
