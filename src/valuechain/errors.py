"""The exception tree of valuechain.

Every error valuechain raises on purpose is a :class:`ValuechainError`; catch that one class
to handle anything a user can cause or fix::

    ValuechainError            root: every error a user can cause or fix
    ├── SpecError              valuechain.yaml (or an argument standing for it) is malformed
    │                          or inconsistent; also a ValueError
    ├── DataError              data does not match what the spec or the call says; also a
    │   │                      ValueError
    │   └── ArtifactError      a stage output on disk (frame, run, model, policy) is missing,
    │                          unreadable, damaged, or not the one this stage was made from
    ├── ModelError             an estimator or a saved candidate cannot be used as a candidate
    ├── EngineError            an engine could not compute what was asked
    └── PromotionError         (valuechain.registry) a bundle cannot move to production: a
                               gate fails, or there is nothing to roll back to

``SpecError`` and ``DataError`` are also :class:`ValueError` (as scikit-learn's
``NotFittedError`` is both a ``ValueError`` and an ``AttributeError``): code that already
catches ``ValueError`` around a call keeps working, and a ``SpecError`` raised inside a
pydantic validator is reported with the spec's file and line like any other field error.

Errors of the libraries underneath (DuckDB, LightGBM, pydantic, PyYAML, ``OSError`` on the
files valuechain reads and writes) are mapped into this tree where a stage starts, with the
original chained as ``__cause__`` for debugging.

Every message names the file, the field, column or argument, what was expected and how to fix
it. Library messages speak of arguments, written in backticks (```time_col```); the CLI
rewrites those to its flags (```--time-col```) with :func:`with_flags` before printing the
message (never a traceback) and exiting with status 2.

>>> issubclass(DataError, ValueError) and issubclass(ArtifactError, DataError)
True
>>> try:
...     raise DataError("`time_col` 'ts' is not a column of the frame.")
... except ValuechainError as err:
...     print(with_flags(err, {"time_col": "--time-col"}))
`--time-col` 'ts' is not a column of the frame.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "ArtifactError",
    "DataError",
    "EngineError",
    "ModelError",
    "SpecError",
    "ValuechainError",
    "with_flags",
]


class ValuechainError(Exception):
    """Root of every error valuechain raises on purpose.

    Examples
    --------
    >>> issubclass(SpecError, ValuechainError) and issubclass(EngineError, ValuechainError)
    True
    """


class SpecError(ValuechainError, ValueError):
    """The decision spec (or an argument standing for a spec field) is malformed or inconsistent.

    The message names the file, the line and the field (``valuechain.yaml, line 12, field
    `label.horizon```), or the argument of the call, and the fix.
    """


class DataError(ValuechainError, ValueError):
    """Data does not match what the spec or the call declares (columns, types, labels, rows)."""


class ArtifactError(DataError):
    """A stage output on disk is missing, unreadable, damaged, or stale.

    Raised when a stage reads what an earlier stage wrote (the frame, a run, a saved model, a
    policy) and it is absent, cannot be parsed, or its fingerprint is not the one this stage
    was made from. The message names the file (and both fingerprints) and the command that
    writes it again.
    """


class ModelError(ValuechainError):
    """An estimator or a saved candidate cannot be used as a candidate.

    For example: an estimator without ``predict_proba``, one fitted on other columns than the
    frame's features, an unknown candidate name, or a package a candidate needs is missing.
    """


class EngineError(ValuechainError):
    """An engine failed to compute a frame (the engine's own error is the ``__cause__``)."""


_ARGUMENT = re.compile(r"(?<!field )`([A-Za-z_][A-Za-z0-9_]*)`")


def with_flags(err: ValuechainError, flags: Mapping[str, str]) -> ValuechainError:
    """The same error, with argument names in backticks rewritten to command-line flags.

    Library messages name arguments in backticks (```time_col```); a command line calls them
    flags (```--time-col```). Only backticked names found in ``flags`` change, and never
    after the word ``field`` (spec messages say ``field `engine```), so spec fields and column
    names in backticks are left alone.

    Parameters
    ----------
    err : ValuechainError
        The error raised by a library call.
    flags : mapping of str to str
        Argument name -> flag, e.g. ``{"time_col": "--time-col"}``.

    Returns
    -------
    ValuechainError
        A new error of the same class with the rewritten message (``err`` itself when nothing
        changes), its ``__cause__`` set to ``err``.

    Examples
    --------
    >>> str(with_flags(SpecError("`kind` 'x': expected `three_band`."), {"kind": "--kind"}))
    "`--kind` 'x': expected `three_band`."
    >>> str(with_flags(SpecError("valuechain.yaml, field `engine`: ..."), {"engine": "--engine"}))
    'valuechain.yaml, field `engine`: ...'

    """
    text = str(err)
    new = _ARGUMENT.sub(lambda m: f"`{flags.get(m.group(1), m.group(1))}`", text)
    if new == text:
        return err
    try:
        out = type(err)(new)
    except TypeError:  # a subclass with its own constructor: keep its class's meaning
        out = ValuechainError(new)
    out.__cause__ = err
    return out
