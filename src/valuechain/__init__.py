"""valuechain: turn a predictive model into a decision rule a business can rely on.

>>> import valuechain
>>> valuechain.__version__
'0.1.0'
"""

from __future__ import annotations

from valuechain.errors import DataError, EngineError, SpecError, ValuechainError

__version__ = "0.1.0"

__all__ = ["DataError", "EngineError", "SpecError", "ValuechainError", "__version__"]
