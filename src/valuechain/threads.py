"""How many threads the compute libraries may use.

``VALUECHAIN_THREADS`` overrides the default (all cores). Tests running in parallel workers
set it to 1 so that OpenMP pools do not fight over the same cores.

>>> isinstance(threads(), int) and threads() >= 1
True
"""

from __future__ import annotations

import os

__all__ = ["threads"]


def threads() -> int:
    """Threads for DuckDB, LightGBM and friends."""
    value = os.environ.get("VALUECHAIN_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return os.cpu_count() or 1
