"""Open a decision service: the bundle, the feature state, the decision log, the decider.

:func:`open_service` is what ``valuechain serve`` runs before it listens:

1. load the bundle (the registry's production version, or the one named) — its checksums
   are verified first;
2. open the feature state: ``memory`` (in-process) or ``redis://HOST:PORT/DB`` (shared by
   every replica);
3. warm it from the sources' recent history (in-process state always; a Redis state only
   when no replica has warmed it yet);
4. open the decision log and *replay its journal* into the state: the decisions this
   service logged (their events) and the outcome and dimension rows it received, in the
   order they were applied. The in-process state is thereby exactly what it was before a
   restart or a crash, capacity counts included; state writes are idempotent, so replaying
   into a Redis state that already holds them changes nothing (its capacity counts live in
   Redis and are not counted again).

The state after a ``SIGKILL`` is therefore consistent with the log: every acknowledged
decision is in the log and, after the restart, in the state; no decision that is not in the
log is in the state.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from valuechain.errors import DataError, SpecError
from valuechain.serve.decider import Decider
from valuechain.serve.log import DecisionLog
from valuechain.serve.metrics import Metrics
from valuechain.spec.loader import LoadedSpec

__all__ = ["CONFIG_ENV", "Service", "app_from_env", "open_service", "open_state", "replay"]

#: Environment variable carrying the service options to worker processes (``--workers``).
CONFIG_ENV = "VALUECHAIN_SERVE_CONFIG"


@dataclass
class Service:
    """Everything the app serves: the decider and what it is made of."""

    decider: Decider
    online: Any
    log: DecisionLog
    state_kind: str = "memory"
    metrics: Metrics = field(default_factory=Metrics)
    started: float = field(default_factory=time.time)
    replayed: int = 0
    warmed_rows: int = 0
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close the log (pending appends are finished) and the state."""
        self.log.close()
        for close in reversed(self.closers):
            close()


def open_state(url: str, namespace: str) -> tuple[Any, str]:
    """The state store named by ``url`` (``memory`` or ``redis://...``) and its kind."""
    if url == "memory":
        from valuechain.serve.state import MemoryState

        return MemoryState(), "memory"
    if url.startswith(("redis://", "rediss://", "unix://")):
        from valuechain.serve.redis_state import RedisState

        return RedisState(url, namespace=namespace), "redis"
    raise SpecError(f"`state` {url!r}: expected `memory` or a Redis URL such as "
                    "`redis://127.0.0.1:6379/0`.")


def replay(log: DecisionLog, decider: Decider, *, count_capacity: bool) -> int:
    """Apply the log's journal (origin ``serve``) to the decider's state; entries replayed.

    Decisions re-apply their event and, with ``count_capacity``, take back the capacity
    slot of every decision whose action is the capacity-limited one (an overflowed decision
    never held one). Outcome and dimension rows are applied again; rows the state refused
    when they arrived are refused again and skipped.
    """
    online, cap = decider.online, decider.capacity
    n = 0
    for entry in log.journal(origin="serve"):
        if entry.kind == "decision":
            event = online.check_event(entry.row)
            if count_capacity and cap is not None and entry.action == cap.action and (
                    entry.time_us is not None):
                assert decider.state is not None
                decider.state.take_capacity(cap.action, cap.period_start(entry.time_us),
                                            cap.limit)
            online.apply_event(event)
        else:
            apply = getattr(online, f"apply_{entry.kind}")
            try:
                apply(entry.source, entry.row)
            except DataError:
                continue
        n += 1
    return n


def open_service(spec: Path | str | LoadedSpec, *, version: str | None = None,
                 state: str = "memory", log_path: Path | None = None,
                 registry: Path | None = None, namespace: str | None = None,
                 model_threads: int | None = 1, capacity_limit: int | None = None,
                 log_sync: str = "full", reasons: str = "all") -> Service:
    """Load, warm and replay everything a decision service needs (see the module docstring).

    Parameters
    ----------
    spec : path or LoadedSpec
        The project (its sources are read to warm the state).
    version : str, optional
        The bundle version; default the registry's production version.
    state : str, default "memory"
        ``memory`` or a Redis URL (``redis://HOST:PORT/DB``).
    log_path : Path, optional
        The decision log; default ``<workspace>/serve/decisions.sqlite``.
    registry : Path, optional
        The registry root; default ``<workspace>/registry``.
    namespace : str, optional
        Redis key prefix; default ``valuechain:<project name>``.
    model_threads : int or None, default 1
        Threads the model predicts with (one row at a time: 1 is fastest); None keeps the
        bundle's.
    capacity_limit : int, optional
        Override the spec's capacity limit (see :class:`~valuechain.serve.decider.Decider`).
    log_sync : {"full", "normal"}, default "full"
        The decision log's sync mode (see :class:`~valuechain.serve.log.DecisionLog`).
    reasons : {"all", "flagged", "none"}, default "all"
        Which decisions get their top reasons (see :class:`~valuechain.serve.decider.Decider`).
    """
    from valuechain.registry import Registry, default_registry
    from valuechain.serve.features import OnlineFeatures
    from valuechain.spec.loader import load_spec

    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(Path(spec))
    reg = Registry(registry or default_registry(loaded))
    bundle = reg.load(version)
    params = getattr(bundle.model, "params", None)
    if model_threads is not None and isinstance(params, dict) and "num_threads" in params:
        params["num_threads"] = model_threads  # one row per request: one thread is fastest
    plan = bundle.plan(loaded.root)
    store, kind = open_state(state, namespace or f"valuechain:{loaded.spec.project.name}")
    online = OnlineFeatures(plan, store)
    warmed = 0
    if kind == "memory" or store.get_meta("warmed_until") is None:
        warmed = sum(online.warm().rows.values())
    log = DecisionLog(log_path or loaded.workspace / "serve" / "decisions.sqlite",
                      sync=log_sync)
    decider = Decider(bundle, online, log, state=store, capacity_limit=capacity_limit,
                      reasons=reasons)
    replayed = replay(log, decider, count_capacity=kind == "memory")
    closer = getattr(store, "close", None)
    return Service(decider=decider, online=online, log=log, state_kind=kind,
                   replayed=replayed, warmed_rows=warmed,
                   closers=[closer] if callable(closer) else [])


def app_from_env() -> Any:
    """The app of one worker process (``uvicorn --factory``), configured by :data:`CONFIG_ENV`."""
    from valuechain.serve.app import create_app, read_api_keys

    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise SpecError(f"{CONFIG_ENV} is not set; start workers with `valuechain serve`.")
    config = json.loads(raw)
    service = open_service(Path(config["spec"]), version=config.get("version"),
                           state=config.get("state", "memory"),
                           log_path=Path(config["log"]) if config.get("log") else None,
                           registry=Path(config["registry"]) if config.get("registry")
                           else None, capacity_limit=config.get("capacity_limit"),
                           reasons=config.get("reasons", "all"),
                           namespace=config.get("namespace"),
                           log_sync=config.get("log_sync", "full"))
    keys = read_api_keys(file=Path(config["api_keys_file"]) if config.get("api_keys_file")
                         else None)
    return create_app(service, api_keys=keys, max_body_bytes=int(config.get("max_body",
                                                                              64 * 1024)))
