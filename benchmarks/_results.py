"""Shared by the benchmark scripts: machine description and RESULTS.md sections."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def machine_info(modules: tuple[str, ...] = ("pandas", "numpy", "numba", "duckdb",
                                             "lightgbm")) -> dict[str, Any]:
    """Platform, CPU model, cores, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"platform": platform.platform(), "cpu": cpu,
                            "cores": os.cpu_count(), "python": platform.python_version()}
    for name in modules:
        try:
            info[name] = getattr(__import__(name), "__version__", "?")
        except ImportError:
            info[name] = None
    return info


def write_section(title: str, section: str, path: Path = RESULTS_MD) -> Path:
    """Replace (or append) the section whose heading line is ``title`` (e.g. '## audit')."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == title), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        rest = "\n".join(lines[end:])
        new = "\n".join(lines[:start]).rstrip("\n")
        new = (new + "\n\n" if new else "") + section + ("\n" + rest if rest else "")
    path.write_text(new.rstrip("\n") + "\n")
    return path
