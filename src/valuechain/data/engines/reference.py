"""The reference engine: DuckDB reads the sources, the slow oracle computes the features.

Decision points, times and expressions are resolved exactly as the DuckDB engine does
(:mod:`valuechain.data.engines.resolve`); windows, lookups and labels come from
:class:`~valuechain.data.pit.ReferenceKernel`, a direct transcription of the definitions in
:mod:`valuechain.data.pit`. Slow (it loops over every point and row): for tests and small
data; the conformance suite compares every engine with it.

>>> from valuechain.data.engines import get_engine
>>> get_engine("reference").config
ReferenceConfig(type='reference')
"""

from __future__ import annotations

from typing import ClassVar

from valuechain.data.engines.base import EngineConfig, EngineOutput, Progress
from valuechain.data.engines.resolve import output, resolve
from valuechain.data.pit import ReferenceKernel
from valuechain.data.plan import Plan
from valuechain.data.sources import Catalog
from valuechain.sql import connect

__all__ = ["ReferenceConfig", "ReferenceEngine"]


class ReferenceConfig(EngineConfig):
    """The reference engine takes no options."""

    type: str = "reference"


class ReferenceEngine:
    """Slow, obviously correct engine (tests and small data)."""

    name: ClassVar[str] = "reference"
    Config: ClassVar[type[EngineConfig]] = ReferenceConfig

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = (config if isinstance(config, ReferenceConfig)
                       else ReferenceConfig.model_validate({}))

    def execute(self, plan: Plan, progress: Progress | None = None) -> EngineOutput:
        con = connect()
        try:
            con.execute("SET threads = 1")
            resolved = resolve(plan, Catalog(plan, con=con), progress, reference_points=True)
        finally:
            con.close()
        return output(plan, resolved, ReferenceKernel().compute(resolved.problem))
