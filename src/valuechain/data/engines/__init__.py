"""Engines compute a :class:`~valuechain.data.pit.PitProblem`; chosen by short name.

>>> sorted(ENGINES)
['duckdb', 'reference']
"""

from __future__ import annotations

from valuechain.data.engines.duckdb import DuckDBEngine
from valuechain.data.pit import Engine, ReferenceEngine
from valuechain.errors import EngineError

__all__ = ["ENGINES", "DuckDBEngine", "get_engine"]

ENGINES: dict[str, type[Engine]] = {"duckdb": DuckDBEngine, "reference": ReferenceEngine}


def get_engine(name: str = "duckdb") -> Engine:
    """The engine registered under ``name``."""
    try:
        return ENGINES[name]()
    except KeyError:
        raise EngineError(
            f"unknown engine '{name}'. Expected one of {sorted(ENGINES)}."
        ) from None
