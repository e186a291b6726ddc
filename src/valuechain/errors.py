"""The exception tree of valuechain.

::

    ValuechainError            root: every error a user can cause or fix
    ├── SpecError              valuechain.yaml is malformed or inconsistent
    ├── DataError              a source does not match what the spec says
    └── EngineError            an engine could not compute what was asked

Every message names the file, the field or column, what was expected and how to fix it.
The CLI prints the message, never a traceback, and exits with status 2.
"""

from __future__ import annotations

__all__ = ["DataError", "EngineError", "SpecError", "ValuechainError"]


class ValuechainError(Exception):
    """Root of every error valuechain raises on purpose."""


class SpecError(ValuechainError):
    """The decision spec is malformed or inconsistent."""


class DataError(ValuechainError):
    """A data source does not match what the spec declares."""


class EngineError(ValuechainError):
    """An engine failed to compute a frame."""
