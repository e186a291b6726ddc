"""Shared fixtures: small generated worlds and paths to the shared data."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

# Tests run in two xdist workers on two cores: one thread each keeps OpenMP pools from
# fighting over the same cores (a 5-10x slowdown for LightGBM otherwise).
os.environ.setdefault("VALUECHAIN_THREADS", "1")



def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that starts Spark runs in one xdist worker (``--dist loadgroup``), so the
    suite starts one JVM, not one per worker."""
    for item in items:
        if item.path.name.startswith("test_spark_") or "spark" in getattr(
                item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("spark"))


ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def fraud_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/fraud with a small generated world (20k transactions)."""
    from valuechain.demo.fraud import generate_fraud

    project = tmp_path_factory.mktemp("fraud")
    shutil.copy(ROOT / "examples" / "fraud" / "valuechain.yaml", project / "valuechain.yaml")
    generate_fraud(project / "data", rows=20_000, seed=3)
    return project


@pytest.fixture(scope="session")
def train_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/fraud over a 150k-transaction world (train/decide tests)."""
    return small_fraud_project(tmp_path_factory.mktemp("train"), min_positives=10,
                               rows=150_000, seed=5)


def small_fraud_project(project: Path, *, min_positives: int, rows: int | None = None,
                        seed: int = 5) -> Path:
    """examples/fraud's spec in ``project`` with ``split.min_positives`` lowered for a small
    world (few frauds per period), and with ``rows`` its generated data."""
    import yaml

    from valuechain.demo.fraud import generate_fraud

    project.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load((ROOT / "examples" / "fraud" / "valuechain.yaml").read_text())
    spec["split"]["min_positives"] = min_positives
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if rows is not None:
        generate_fraud(project / "data", rows=rows, seed=seed)
    return project


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as a module (the benchmarks are scripts, not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
