"""Immutable, versioned bundles and the registry that promotes them (``valuechain package``)::

    from valuechain.registry import Registry, load_bundle, package

    result = package("examples/fraud")             # bundles/v1 in .valuechain/registry
    registry = Registry(result.registry)
    registry.promote(result.version)               # PromotionError naming failing gates
    bundle = load_bundle(registry.production().path)   # checksums verified first
    bundle.score(features)                         # the run's calibrated score, bit for bit

See docs/registry.md for the bundle layout, the index schema, the gates and the CLI.
"""

from valuechain.registry.bundle import Bundle, load_bundle, verify_bundle
from valuechain.registry.gates import GATES, Gate, PromotionError
from valuechain.registry.index import Promotion, Registry, VersionInfo
from valuechain.registry.pack import PackageResult, default_registry, package

__all__ = [
    "GATES",
    "Bundle",
    "Gate",
    "PackageResult",
    "Promotion",
    "PromotionError",
    "Registry",
    "VersionInfo",
    "default_registry",
    "load_bundle",
    "package",
    "verify_bundle",
]
