"""valuechain: turn a predictive model into a decision rule a business can rely on.

The stages are functions at the top level (see :mod:`valuechain.api` and docs/python.md)::

    import valuechain as vc

    loaded = vc.load_spec("examples/fraud")
    built = vc.build(loaded)                      # BuildResult
    audited = vc.audit(loaded)                    # AuditResult
    run = vc.train(loaded, estimators={"my_lgbm": LGBMClassifier()})   # TrainResult
    decided = vc.decide(loaded)                   # DecideResult
    vc.report(loaded)                             # ReportResult
    vc.price_policy(scores, labels, costs, periods, capacity=150)       # PricedPolicy

Names are imported on first use, so ``import valuechain`` (and the command line) stays fast.

``audit``, ``train``, ``decide`` and ``report`` are also the names of the stages' packages
(``valuechain.train`` holds ``train_project``, ...). Python binds a package to its parent's
attribute when it is imported, so these four packages are made callable instead: calling
``vc.train(...)`` calls :func:`valuechain.api.train`, and ``inspect.signature(vc.train)`` is
that function's signature, while ``import valuechain.train`` and ``from valuechain.train
import train_project`` keep working as usual.

>>> import valuechain
>>> valuechain.__version__
'0.1.0'
>>> valuechain.DataError is valuechain.errors.DataError
True
"""

import importlib as _importlib
import inspect as _inspect
import sys as _sys
import types as _types
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from valuechain.errors import (
    ArtifactError,
    DataError,
    EngineError,
    ModelError,
    SpecError,
    ValuechainError,
)

if _TYPE_CHECKING:
    from valuechain.api import (
        SpecLike,
        audit,
        build,
        check,
        decide,
        load_spec,
        report,
        train,
    )
    from valuechain.audit import AuditResult, Finding
    from valuechain.data.build import BuildResult
    from valuechain.data.validate import CheckReport
    from valuechain.decide import DecideResult, Decisions, PricedPolicy, price_policy
    from valuechain.policy import CostModel
    from valuechain.report.html import ReportResult
    from valuechain.spec import LoadedSpec, Spec
    from valuechain.train import TrainResult

__version__ = "0.1.0"

_STAGE_PACKAGES = ("audit", "train", "decide", "report")
"""Stage functions whose name is also a subpackage: the subpackage is made callable."""


class _CallableStage(_types.ModuleType):
    """A stage's package that, called, runs the stage's function in :mod:`valuechain.api`."""

    def _function(self) -> _Any:
        return getattr(_importlib.import_module("valuechain.api"), self.__name__.rsplit(".")[-1])

    def __call__(self, *args: _Any, **kwargs: _Any) -> _Any:
        return self._function()(*args, **kwargs)

    @property
    def __signature__(self) -> _inspect.Signature:
        return _inspect.signature(self._function())


class _Valuechain(_types.ModuleType):
    """The top-level module: stage packages bound to it become callable."""

    def __setattr__(self, name: str, value: _Any) -> None:
        if name in _STAGE_PACKAGES and type(value) is _types.ModuleType:
            value.__class__ = _CallableStage
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Valuechain

_LAZY: dict[str, str] = {
    # stages (audit, train, decide and report: see _STAGE_PACKAGES)
    "load_spec": "valuechain.api",
    "check": "valuechain.api",
    "build": "valuechain.api",
    "price_policy": "valuechain.decide",
    "SpecLike": "valuechain.api",
    # what they return
    "LoadedSpec": "valuechain.spec",
    "Spec": "valuechain.spec",
    "CheckReport": "valuechain.data.validate",
    "BuildResult": "valuechain.data.build",
    "AuditResult": "valuechain.audit",
    "Finding": "valuechain.audit",
    "TrainResult": "valuechain.train",
    "DecideResult": "valuechain.decide",
    "ReportResult": "valuechain.report.html",
    "PricedPolicy": "valuechain.decide",
    # what price_policy takes
    "CostModel": "valuechain.policy",
    "Decisions": "valuechain.decide",
    # shipping: bundles and the registry
    "package": "valuechain.registry",
    "load_bundle": "valuechain.registry",
    "Registry": "valuechain.registry",
    "Bundle": "valuechain.registry",
    "PackageResult": "valuechain.registry",
    "PromotionError": "valuechain.registry",
}

__all__ = [
    "ArtifactError",
    "AuditResult",
    "BuildResult",
    "Bundle",
    "CheckReport",
    "CostModel",
    "DataError",
    "DecideResult",
    "Decisions",
    "EngineError",
    "Finding",
    "LoadedSpec",
    "ModelError",
    "PackageResult",
    "PricedPolicy",
    "PromotionError",
    "Registry",
    "ReportResult",
    "Spec",
    "SpecError",
    "SpecLike",
    "TrainResult",
    "ValuechainError",
    "__version__",
    "audit",
    "build",
    "check",
    "decide",
    "load_bundle",
    "load_spec",
    "package",
    "price_policy",
    "report",
    "train",
]


def __getattr__(name: str) -> _Any:
    """Import a public name on first use (PEP 562)."""
    if name in _STAGE_PACKAGES:  # importing binds the (callable) package to this module
        _importlib.import_module(f"{__name__}.{name}")
        return globals()[name]
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'valuechain' has no attribute '{name}'")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
