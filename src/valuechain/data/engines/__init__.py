"""Engines execute a build :class:`~valuechain.data.plan.Plan`; chosen by short name.

See :mod:`valuechain.data.engines.base` for the interface and the registry, and
``docs/engines.md`` for how to write and register an engine.

>>> sorted(ENGINES)
['duckdb', 'reference', 'spark']
>>> get_engine("duckdb").name
'duckdb'
"""

from __future__ import annotations

from valuechain.data.engines.base import (
    ENGINES,
    Engine,
    EngineConfig,
    EngineOutput,
    engine_class,
    get_engine,
    register_engine,
)
from valuechain.data.engines.duckdb import DuckDBConfig, DuckDBEngine, DuckDBKernel
from valuechain.data.engines.reference import ReferenceConfig, ReferenceEngine
from valuechain.data.engines.spark import SparkConfig, SparkEngine

__all__ = [
    "ENGINES",
    "DuckDBConfig",
    "DuckDBEngine",
    "DuckDBKernel",
    "Engine",
    "EngineConfig",
    "EngineOutput",
    "ReferenceConfig",
    "ReferenceEngine",
    "SparkConfig",
    "SparkEngine",
    "engine_class",
    "get_engine",
    "register_engine",
]
