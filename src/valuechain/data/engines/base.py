"""The engine interface, engine configuration and the registry of engines by short name.

An engine executes a :class:`~valuechain.data.plan.Plan` end to end, from the source files
to one row per decision point, and returns an :class:`EngineOutput`. Each engine class has
a short ``name``, a strict pydantic ``Config`` (its options; ``extra="forbid"``) and is built
from a validated config: ``DuckDBEngine(DuckDBConfig(threads=2))``.

Engines are chosen by short name, as Feast chooses offline stores: :data:`ENGINES` maps a name
to a ``"module:Class"`` path, imported on first use. A third party registers its own with
:func:`register_engine`, or names the class path directly in the spec
(``engine: {type: "my_pkg.engines:PolarsEngine", ...}``).

>>> engine = get_engine({"type": "duckdb", "threads": 2, "memory_limit": "8GB"})
>>> engine.name, engine.config.threads, engine.config.memory_limit
('duckdb', 2, '8GB')
>>> get_engine({"type": "duckdb", "thread": 2}, where="valuechain.yaml, field `engine`")
Traceback (most recent call last):
...
valuechain.errors.SpecError: valuechain.yaml, field `engine`: engine 'duckdb' does not take these settings: - thread: Extra inputs are not permitted ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from valuechain.data.plan import Plan
from valuechain.errors import EngineError, SpecError

__all__ = [
    "ENGINES",
    "Engine",
    "EngineConfig",
    "EngineOutput",
    "Progress",
    "engine_class",
    "get_engine",
    "register_engine",
]

Progress = Callable[[str, float], None]


class EngineConfig(BaseModel):
    """Options common to every engine: only ``type`` (its short name or class path).

    Subclass it for an engine's own options; unknown options are refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


@dataclass(frozen=True)
class EngineOutput:
    """What an engine returns for a plan.

    ``frame`` has one row per decision point (immature ones too) in decision order (time,
    then keys), with the plan's id columns, its time column, every feature by name,
    ``__label`` (the label) and ``__t`` (the decision time, int64 epoch microseconds).
    ``as_of_us`` is the plan's ``as_of`` or, without one, the latest time in the sources;
    ``aware`` tells whether times are UTC instants (time-zone aware data) or wall-clock;
    ``dropped_no_time`` counts decision rows without a time; ``dropped`` maps a source to
    ``{reason: rows}`` for every row left out of the build (recorded in the manifest);
    ``label_delay_us`` and ``label_delay_basis`` are the outcome delay ``d`` and how it was
    found (:func:`valuechain.data.pit.label_delay`): a label is mature iff
    ``t + horizon + d <= as_of``.
    """

    frame: pa.Table
    as_of_us: int
    aware: bool
    dropped_no_time: int = 0
    dropped: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    label_delay_us: int = 0
    label_delay_basis: str = "none"


@runtime_checkable
class Engine(Protocol):
    """Executes a :class:`~valuechain.data.plan.Plan`; see the module docstring."""

    name: ClassVar[str]
    Config: ClassVar[type[EngineConfig]]
    config: EngineConfig

    def execute(self, plan: Plan, progress: Progress | None = None) -> EngineOutput: ...


ENGINES: dict[str, str] = {
    "duckdb": "valuechain.data.engines.duckdb:DuckDBEngine",
    "reference": "valuechain.data.engines.reference:ReferenceEngine",
    "spark": "valuechain.data.engines.spark:SparkEngine",
}
"""Short name -> ``"module:Class"``; extend with :func:`register_engine`."""


def register_engine(name: str, target: str | type[Any]) -> None:
    """Register an engine class (or its ``"module:Class"`` path) under a short ``name``.

    Examples
    --------
    >>> register_engine("duckdb2", "valuechain.data.engines.duckdb:DuckDBEngine")
    >>> get_engine("duckdb2").name
    'duckdb'
    >>> del ENGINES["duckdb2"]
    """
    if isinstance(target, type):
        target = f"{target.__module__}:{target.__qualname__}"
    if ":" not in target:
        raise EngineError(f"engine '{name}': expected a 'module:Class' path, got '{target}'.")
    ENGINES[name] = target


def engine_class(kind: str, *, where: str = "engine.type") -> type[Any]:
    """The class registered as ``kind``, or imported from a ``"module:Class"`` path."""
    path = ENGINES.get(kind, kind if ":" in kind else None)
    if path is None:
        raise SpecError(
            f"{where}: unknown engine '{kind}'. Expected one of {sorted(ENGINES)}, or a "
            "class path 'package.module:Class' of a third-party engine."
        )
    module_name, _, attr = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise EngineError(
            f"{where}: engine '{kind}' points to {path}, which cannot be imported ({err}). "
            "Install the package that provides it or fix the path."
        ) from None
    for needed in ("name", "Config", "execute"):
        if not hasattr(cls, needed):
            raise EngineError(
                f"{where}: {path} is not an engine: it has no `{needed}`. An engine class "
                "has `name`, `Config` (an EngineConfig subclass) and `execute(plan)`."
            )
    return cls  # type: ignore[no-any-return]


def _problem(error: Any) -> str:
    got = "" if error["type"] == "missing" else f" (got {error.get('input')!r})"
    return f"- {'.'.join(str(p) for p in error['loc'])}: {error['msg']}{got}."


def _settings(value: str | Mapping[str, Any] | EngineConfig | None) -> dict[str, Any]:
    if value is None:
        return {"type": "duckdb"}
    if isinstance(value, str):
        return {"type": value}
    if isinstance(value, EngineConfig):
        return value.model_dump()
    return dict(value)


def get_engine(value: str | Mapping[str, Any] | EngineConfig | None = None, *,
               where: str = "engine") -> Engine:
    """An engine built from a short name, a settings mapping or a config.

    Parameters
    ----------
    value : str, mapping, EngineConfig or None
        ``"duckdb"``; ``{"type": "duckdb", "threads": 2}``; a config; None for DuckDB
        with its defaults.
    where : str
        Where the settings come from (a spec field or ``--engine``), for messages.

    Raises
    ------
    SpecError
        Unknown engine, or settings its ``Config`` refuses (each problem named).
    EngineError
        A class path that cannot be imported or is not an engine.

    Examples
    --------
    >>> get_engine("reference").name
    'reference'
    """
    settings = _settings(value)
    kind = settings.get("type") or "duckdb"
    settings["type"] = kind
    cls = engine_class(str(kind), where=where)
    try:
        config = cls.Config.model_validate(settings)
    except ValidationError as err:
        problems = " ".join(_problem(e) for e in err.errors())
        raise SpecError(
            f"{where}: engine '{kind}' does not take these settings: {problems} Expected the "
            f"fields of {cls.Config.__name__}: {sorted(cls.Config.model_fields)}."
        ) from None
    engine = cls(config)
    return engine  # type: ignore[no-any-return]
