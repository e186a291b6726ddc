"""A small packaged fraud project for the service tests, built once per test session.

``packaged_project(base)`` generates a 60k-transaction fraud world under ``base``, builds,
audits, trains (LightGBM and the baselines), decides, packages and promotes it; later calls
in the same session return the same folder. ``event(i, ...)`` makes decision events after
the world's last payment with fresh customer, card and device ids.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .conftest import small_fraud_project
from .redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
API_KEY = "test-key-123"
LIVE_DAY = "2025-09-29"


def packaged_project(base: Path, rows: int = 60_000) -> Path:
    """The project folder (built on first use; a marker file makes later calls free)."""
    project = base / "serve-fraud"
    marker = project / ".packaged"
    if marker.exists():
        return project
    os.environ.setdefault("VALUECHAIN_THREADS", "1")
    import valuechain as vc
    from valuechain.registry import Registry, package

    small_fraud_project(project, min_positives=10, rows=rows, seed=5)
    vc.build(project)
    vc.audit(project)
    vc.train(project, candidates=["prior", "rules", "lightgbm"])
    vc.decide(project)
    result = package(project)
    Registry(result.registry).promote(result.version)
    marker.write_text(result.version)
    return project


def event(i: int, *, review: bool = False, hour: int = 14, customer: int | None = None,
          day: str = LIVE_DAY, minute: int | None = None) -> dict[str, Any]:
    """A payment after the world's data; ``review=True`` gives one the policy reviews.

    Fresh ids (customer, card, device) keep the score independent of other test events:
    an amount of 300 shipped to another country at 14:00 scores in the review band of the
    bundle built above, 20 shipped at home is approved.
    """
    ident = 900_000_000 + i
    second = i % 3600 if minute is None else minute * 60
    return {"transaction_id": 50_000_000 + i, "ts": f"{day}T{hour:02d}:{second // 60:02d}:"
            f"{second % 60:02d}", "customer_id": customer or ident, "card_id": ident,
            "terminal_id": 300000053, "device_id": ident, "amount": 300.0 if review else 20.0,
            "billing_country": "DE", "shipping_country": "NG" if review else "DE",
            "channel": "web", "status": "approved"}


class LiveServer:
    """``valuechain serve`` in a subprocess on a free port (stopped on exit)."""

    def __init__(self, project: Path, *args: str, log: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-c", "from valuechain.cli import main; main()", "serve",
               "--spec", str(project), "--port", str(self.port), *args]
        if log is not None:
            cmd += ["--log", str(log)]
        self.env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}"
                    f"{os.environ.get('PYTHONPATH', '')}", "VALUECHAIN_API_KEYS": API_KEY,
                    "VALUECHAIN_THREADS": "1", **(env or {})}
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def wait(self, timeout: float = 180.0) -> LiveServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read() if self.proc.stdout else ""
                raise RuntimeError(f"server exited with {self.proc.returncode}: {out}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LiveServer:
        return self.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


HEADERS = {"X-API-Key": API_KEY}
