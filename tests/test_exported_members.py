"""The public API of ``import valuechain`` is exactly ``__all__`` (as httpx tests its own)."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import types

import valuechain
import valuechain.api


def _public_attributes() -> set[str]:
    """Public names bound on the module once everything is imported, submodules aside."""
    for name in valuechain.__all__:
        getattr(valuechain, name)
    return {
        name for name, value in vars(valuechain).items()
        if not name.startswith("_")
        and (not isinstance(value, types.ModuleType) or callable(value))
    }


def test_all_is_sorted_and_unique() -> None:
    names = [n for n in valuechain.__all__ if n != "__version__"]
    assert names == sorted(names, key=lambda n: (n[0].islower(), n))
    assert len(set(valuechain.__all__)) == len(valuechain.__all__)


def test_every_public_member_is_exported_and_vice_versa() -> None:
    exported = {n for n in valuechain.__all__ if not n.startswith("_")}
    assert _public_attributes() == exported
    listed = {n for n in dir(valuechain) if not n.startswith("_")}
    modules = {n for n in listed - exported
               if isinstance(getattr(valuechain, n), types.ModuleType)}
    assert listed - modules == exported


def test_every_exported_member_is_importable_and_comes_from_valuechain() -> None:
    namespace: dict[str, object] = {}
    exec(f"from valuechain import {', '.join(valuechain.__all__)}", namespace)
    for name in valuechain.__all__:
        value = namespace[name]
        assert value is getattr(valuechain, name)
        module = getattr(value, "__module__", None) or getattr(value, "__name__", "")
        if name not in ("__version__", "SpecLike"):
            assert str(module).startswith("valuechain"), (name, module)


def test_the_stages_are_functions_with_the_api_signatures() -> None:
    for name in ("load_spec", "check", "build", "audit", "train", "decide", "report"):
        stage = getattr(valuechain, name)
        assert callable(stage), name
        assert inspect.signature(stage) == inspect.signature(getattr(valuechain.api, name))
    assert "estimators" in inspect.signature(valuechain.train).parameters
    assert valuechain.price_policy is importlib.import_module("valuechain.decide").price_policy


def test_stage_packages_stay_importable_beside_the_functions() -> None:
    import valuechain.train as train_package
    from valuechain.audit import audit_project
    from valuechain.train import train_project

    assert train_package is valuechain.train and train_package.train_project is train_project
    assert valuechain.audit.audit_project is audit_project
    assert isinstance(valuechain.report, types.ModuleType) and callable(valuechain.report)


def test_import_is_light() -> None:
    code = ("import sys, valuechain; heavy = [m for m in ('pandas', 'duckdb', 'sklearn', "
            "'lightgbm') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
