"""The HTTP decision service (FastAPI): decide, report outcomes and dimensions, health, metrics.

:func:`create_app` wraps a :class:`Service` (a bundle, its online features, a decision log
and a :class:`~valuechain.serve.decider.Decider`) in an ASGI app:

=====================  =========================================================================
``POST /v1/decide``    the raw decision event (a JSON object) -> decision id, score, action,
                       policy and bundle versions, top reasons, capacity note, latency per stage
``POST /v1/outcomes``  ``{"source": ..., "rows": [...]}``: outcome rows (e.g. chargebacks)
``POST /v1/dimensions`` ``{"source": ..., "rows": [...]}``: dimension updates (profiles ...)
``GET /health``        liveness and what is served (no key needed)
``GET /metrics``       Prometheus text (see :mod:`valuechain.serve.metrics`)
``GET /openapi.json``  the OpenAPI schema (no key needed); ``/docs`` renders it
=====================  =========================================================================

Every other request needs an API key, in ``X-API-Key`` or ``Authorization: Bearer``
(``401`` without a valid one). A body larger than ``max_body_bytes`` gets ``413``. A body
that is not what the endpoint expects gets ``422`` with one readable message naming the field
(never a traceback); a decision log that cannot commit gets ``503`` and changes nothing.

Requests whose events update the same state keys (the same customer, card, device ...) are
decided one after the other, in arrival order, so a second payment of a card sees the first
one in its features even when both arrive within the same millisecond.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from valuechain import __version__
from valuechain.errors import ArtifactError, DataError, SpecError, ValuechainError
from valuechain.serve.metrics import Metrics
from valuechain.serve.service import Service

__all__ = [
    "DEFAULT_MAX_BODY",
    "PUBLIC_PATHS",
    "DecisionOut",
    "UpdateIn",
    "UpdateOut",
    "create_app",
    "read_api_keys",
]

logger = logging.getLogger("valuechain.serve")

#: Largest request body accepted by default (bytes).
DEFAULT_MAX_BODY = 64 * 1024
#: Paths answered without an API key.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
DecideBody = Callable[[bytes], Awaitable[tuple[int, bytes]]]


# ---------------------------------------------------------------------- API models (docs)


class ReasonOut(BaseModel):
    feature: str = Field(description="Feature name.")
    value: Any = Field(description="Its value for this event.")
    contribution: float = Field(description="Its contribution to the score (log-odds).")


class DecisionOut(BaseModel):
    """The answer of ``POST /v1/decide``."""

    model_config = ConfigDict(json_schema_extra={"example": {
        "decision_id": "6f1c0d7e2b4a4c8f9d3e5a7b1c2d4e6f", "key": "tx-000123",
        "time": "2025-09-28T12:00:00.000000Z", "score": 0.0131, "action": "approve",
        "policy_action": "approve", "overflow": False, "capacity_note": None,
        "reasons": [{"feature": "cust_count_1h", "value": 1, "contribution": -0.41}],
        "bundle_version": "v1", "policy_version": "three_band@3a9f0c1d2e4b",
        "latency_us": {"features": 180, "model": 240, "policy": 12, "log": 420,
                       "total": 870}}})

    decision_id: str = Field(description="Unique id of the decision (the log's primary key).")
    key: str = Field(description="The decision point's key (e.g. the transaction id).")
    time: str = Field(description="Decision time (the event's own time), ISO-8601 UTC.")
    score: float = Field(description="Calibrated probability.")
    action: str = Field(description="The action to take (after the capacity rule).")
    policy_action: str = Field(description="The policy's action before capacity.")
    overflow: bool = Field(description="True when the capacity was full and the spec's "
                           "overflow rule chose `action`.")
    capacity_note: str | None = Field(description="Why the overflow rule applied.")
    reasons: list[ReasonOut] = Field(description="Top features by absolute contribution.")
    bundle_version: str
    policy_version: str
    latency_us: dict[str, int] = Field(description="Microseconds per stage: features, "
                                       "model, policy, log, total.")


class UpdateIn(BaseModel):
    """Rows of one outcome or dimension source, applied to the feature state in order."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "source": "chargebacks", "rows": [{"chargeback_id": "cb-1", "transaction_id": "tx-9",
                                           "reported_at": "2025-09-28T12:00:00Z"}]}})

    source: str = Field(min_length=1, description="The spec's source name.")
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=10_000,
                                       description="Rows with the source's columns.")


class UpdateOut(BaseModel):
    accepted: int = Field(description="Rows journaled and applied.")


class ErrorOut(BaseModel):
    detail: str = Field(description="What is wrong and how to fix it.")
    type: str = Field(description="DataError, SpecError, Unauthorized, TooLarge, ...")


# ---------------------------------------------------------------------- the service


def read_api_keys(env: Mapping[str, str] | None = None, file: Path | None = None
                  ) -> frozenset[str]:
    """API keys from ``VALUECHAIN_API_KEYS`` (comma-separated) and a file (one per line).

    The file may also be named by ``VALUECHAIN_API_KEYS_FILE``; blank lines and ``#``
    comments are ignored.

    >>> sorted(read_api_keys({"VALUECHAIN_API_KEYS": "a1, b2,"}))
    ['a1', 'b2']
    """
    env = os.environ if env is None else env
    keys = {k.strip() for k in env.get("VALUECHAIN_API_KEYS", "").split(",") if k.strip()}
    path = file or (Path(env["VALUECHAIN_API_KEYS_FILE"])
                    if env.get("VALUECHAIN_API_KEYS_FILE") else None)
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise SpecError(f"API key file {path}: cannot read it ({err}); give a file with "
                            "one key per line.") from err
        keys |= {line.strip() for line in text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")}
    return frozenset(keys)


def _error(status: int, kind: str, detail: str,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "type": kind}, status_code=status,
                        headers=dict(headers or {}))


class _Gate:
    """Pure-ASGI middleware: request counters, API-key check, body size limit."""

    def __init__(self, app: ASGIApp, keys: frozenset[str], max_body: int,
                 metrics: Metrics, decide: DecideBody | None = None) -> None:
        self.app = app
        self.keys = tuple(k.encode("utf-8") for k in keys)
        self.max_body = max_body
        self.metrics = metrics
        self.decide = decide

    def _authorised(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        given: bytes | None = None
        for name, value in headers:
            if name == b"x-api-key":
                given = value.strip()
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
        if not given:
            return False
        ok = False
        for key in self.keys:  # compare with every key: no early exit, constant time each
            ok |= hmac.compare_digest(given, key)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        started = time.perf_counter()
        status_box = [500]

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = int(message["status"])
            await send(message)

        try:
            headers = scope.get("headers", [])
            if path not in PUBLIC_PATHS and not self._authorised(headers):
                await _error(401, "Unauthorized", "missing or invalid API key: send it in the "
                             "`X-API-Key` header or as `Authorization: Bearer <key>`.",
                             {"WWW-Authenticate": "Bearer"})(scope, receive, counting_send)
                return
            length = next((v for n, v in headers if n == b"content-length"), None)
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await self._too_large(scope, receive, counting_send)
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body:
                        raise _TooLarge
                return message

            try:
                if self.decide is not None and path == "/v1/decide" and (
                        scope.get("method") == "POST"):
                    # the hot path straight from the gate: the same handler as the FastAPI
                    # route (which documents it), without routing and request objects
                    await self._decide(limited_receive, counting_send, self.decide)
                else:
                    await self.app(scope, limited_receive, counting_send)
            except _TooLarge:
                await self._too_large(scope, receive, counting_send)
        finally:
            endpoint = path if path.startswith(("/v1/", "/health", "/metrics")) else "other"
            self.metrics.inc("valuechain_requests_total", endpoint=endpoint,
                             status=str(status_box[0]))
            self.metrics.observe("valuechain_request_duration_seconds",
                                 time.perf_counter() - started, endpoint=endpoint)

    @staticmethod
    async def _decide(receive: Receive, send: Send, decide: DecideBody) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        status, payload = await decide(b"".join(chunks))
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode("ascii"))]})
        await send({"type": "http.response.body", "body": payload})

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _error(413, "TooLarge", f"request body over {self.max_body:,} bytes; send "
                     "smaller requests (one event per decision, at most 10,000 rows per "
                     "update).")(scope, receive, send)


class _TooLarge(Exception):
    pass


class _Answer(Exception):
    """An error answer of ``POST /v1/decide`` (status, type, detail)."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.body = _error_body(kind, detail)


def _error_body(kind: str, detail: str) -> bytes:
    """The JSON of :func:`_error` (same encoding as ``JSONResponse``)."""
    return json.dumps({"detail": detail, "type": kind}, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


class _LogUnavailable(Exception):
    pass


class _KeyGuard:
    """Per-key ordering: requests sharing a state key run one after the other (FIFO)."""

    def __init__(self) -> None:
        self._tails: dict[tuple[str, str], asyncio.Future[None]] = {}

    @asynccontextmanager
    async def hold(self, keys: Iterable[tuple[str, str]]) -> Any:
        loop = asyncio.get_running_loop()
        mine: asyncio.Future[None] = loop.create_future()
        waits = []
        owned = sorted(set(keys))
        for key in owned:
            previous = self._tails.get(key)
            if previous is not None and not previous.done():
                waits.append(previous)
            self._tails[key] = mine
        try:
            for previous in waits:
                await asyncio.shield(previous)
            yield
        finally:
            mine.set_result(None)
            for key in owned:
                if self._tails.get(key) is mine:
                    del self._tails[key]


class _DryState:
    """A state store that reads through to the real one and drops every write."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def write(self, items: Any, trims: Any = ()) -> None:
        return None

    def set_meta(self, name: str, value: str) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)


def dry_run(online: Any, kind: str, source: str, rows: list[dict[str, Any]]) -> None:
    """Apply outcome or dimension rows to a copy of ``online`` whose state drops writes.

    Raises the :class:`~valuechain.errors.DataError` a row would raise, before anything is
    journaled or written, so a request with one bad row changes nothing.
    """
    dry = copy.copy(online)
    dry.state = _DryState(online.state)
    apply = getattr(dry, f"apply_{kind}")
    for i, row in enumerate(rows):
        try:
            apply(source, row)
        except DataError as err:
            raise DataError(f"`rows.{i}`: {err} No row of this request was applied.") from err


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for problem in err.errors():
        loc = ".".join(str(p) for p in problem.get("loc", ()) if p != "body") or "body"
        parts.append(f"`{loc}`: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) + "."


def create_app(service: Service, *, api_keys: Iterable[str],
               max_body_bytes: int = DEFAULT_MAX_BODY,
               reasons_thread: bool | None = None,
               switch_interval: float | None = None) -> FastAPI:
    """The ASGI app serving ``service``; ``api_keys`` must not be empty.

    Examples
    --------
    >>> create_app(None, api_keys=[])  # type: ignore[arg-type]
    Traceback (most recent call last):
    ...
    valuechain.errors.SpecError: the service needs at least one API key...
    """
    keys = frozenset(api_keys)
    if not keys:
        raise SpecError("the service needs at least one API key: set VALUECHAIN_API_KEYS "
                        "(comma-separated) or give a key file (`--api-keys-file`, one key per "
                        "line).")
    decider, log, metrics = service.decider, service.log, service.metrics
    if switch_interval is None and os.environ.get("VALUECHAIN_SWITCH_INTERVAL"):
        switch_interval = float(os.environ["VALUECHAIN_SWITCH_INTERVAL"])
    if reasons_thread is None:  # measured: as many or more decisions/s and a lower p99
        # than inline in every same-run comparison, for ~0.2-0.5 ms more CPU (docs/serving.md)
        reasons_thread = os.environ.get("VALUECHAIN_REASONS_THREAD", "1") != "0"
    guard = _KeyGuard()
    metrics.set("valuechain_bundle_info", 1, bundle_version=decider.bundle.version,
                policy_version=decider.policy_version)
    observe = metrics.observe

    reasons_pool = ThreadPoolExecutor(1, thread_name_prefix="valuechain-reasons") \
        if reasons_thread else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        switch = sys.getswitchinterval()
        if switch_interval is not None:
            # a thread that wants the GIL (the log's writer with a committed batch, a
            # finished TreeSHAP call) waits up to this long while the loop works
            sys.setswitchinterval(switch_interval)
        try:
            yield
        finally:
            sys.setswitchinterval(switch)
            if reasons_pool is not None:
                reasons_pool.shutdown(wait=True)
            service.close()

    app = FastAPI(title="valuechain decision service", version=__version__,
                  description="Decide events with a packaged valuechain bundle; every "
                  "decision is logged durably before it is returned.", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, "ValidationError", _validation_message(err))

    @app.exception_handler(_LogUnavailable)
    async def _unavailable(_: Request, err: _LogUnavailable) -> JSONResponse:
        return _error(503, "LogUnavailable", str(err))

    @app.exception_handler(ValuechainError)
    async def _user_error(_: Request, err: ValuechainError) -> JSONResponse:
        return _error(422, type(err).__name__, str(err))

    @app.exception_handler(Exception)
    async def _internal(_: Request, err: Exception) -> JSONResponse:
        logger.exception("internal error")
        return _error(500, "InternalError", f"internal error ({type(err).__name__}); the "
                      "service log has the traceback. The request changed nothing.")

    event_schema = {"type": "object", "additionalProperties": True,
                    "description": "The raw decision event: the decision source's columns "
                    "(its keys, its event time and the fields the features read)."}
    plan = getattr(service.online, "plan", None)
    own = getattr(plan, "own", None)
    if plan is not None and own:
        try:
            required = sorted(plan.required_columns().get(own, ()))
            event_schema["required"] = required
        except Exception:  # documentation only
            pass

    async def decide_body(body: bytes) -> tuple[int, bytes]:
        """Status and JSON body of ``POST /v1/decide`` for a request body (never raises but
        for cancellation: user errors are 422, an unloggable decision 503, a bug 500)."""
        try:
            return 200, await _decide(body)
        except _Answer as answer:
            return answer.status, answer.body
        except ValuechainError as err:  # DataError (the event) -> 422
            return 422, _error_body(type(err).__name__, str(err))
        except Exception as err:
            logger.exception("internal error")
            return 500, _error_body("InternalError", f"internal error ({type(err).__name__}); "
                                    "the service log has the traceback. The request changed "
                                    "nothing.")

    async def _decide(body: bytes) -> bytes:
        try:
            event = json.loads(body)
        except ValueError as err:
            raise _Answer(422, "ValidationError", f"body: not valid JSON ({err}); send the "
                          "event as one JSON object.") from None
        if not isinstance(event, dict):
            raise _Answer(422, "ValidationError", "body: expected one JSON object with the "
                          f"event's fields, got {type(event).__name__}.")
        async with guard.hold(decider.guard_keys(event)):
            if reasons_pool is None:
                pending = decider.prepare(event)  # DataError -> 422
            else:
                # features, score, policy and capacity on the event loop (they read and
                # count shared state); the reasons (LightGBM's TreeSHAP, C code that releases
                # the GIL) on the other core while the loop serves other requests
                scored = decider.start(event)  # DataError -> 422
                try:
                    t_reasons = time.perf_counter_ns()
                    contrib = (await asyncio.get_running_loop().run_in_executor(
                        reasons_pool, decider.contributions, scored)
                        if decider.wants_reasons(scored) else decider.contributions(scored))
                    pending = decider.finish(scored, contrib,
                                             time.perf_counter_ns() - t_reasons)
                except BaseException:
                    decider.abandon(scored)
                    raise
            started = time.perf_counter_ns()
            try:
                await log.append_async(pending.record)
            except ArtifactError as err:
                decider.abandon(pending)
                logger.error("decision log: %s", err)
                raise _Answer(503, "LogUnavailable", f"the decision could not be logged, so "
                              f"it is not taken: {err}") from None
            except BaseException:
                decider.abandon(pending)
                raise
            log_ns = time.perf_counter_ns() - started
            decision = decider.commit(pending, log_ns // 1000)
        lat = decision.latency_us
        observe("valuechain_stage_duration_seconds", lat["features"] / 1e6, stage="features")
        observe("valuechain_stage_duration_seconds", lat["model"] / 1e6, stage="model")
        observe("valuechain_stage_duration_seconds", lat["policy"] / 1e6, stage="policy")
        observe("valuechain_stage_duration_seconds", log_ns / 1e9, stage="log")
        metrics.inc("valuechain_decisions_total", action=decision.action)
        if decision.overflow:
            metrics.inc("valuechain_capacity_overflow_total", action=decision.policy_action)
        return json.dumps(decision.to_json(), separators=(",", ":")).encode("utf-8")

    @app.post("/v1/decide", response_model=None, summary="Decide one event",
              responses={200: {"model": DecisionOut}, 401: {"model": ErrorOut},
                         413: {"model": ErrorOut}, 422: {"model": ErrorOut},
                         503: {"model": ErrorOut}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": event_schema}}}})
    async def decide(request: Request) -> Response:
        status, payload = await decide_body(await request.body())
        return Response(payload, status_code=status, media_type="application/json")

    async def _update(kind: str, body: UpdateIn) -> UpdateOut:
        online = service.online
        check = getattr(online, f"check_{kind}", None)
        rows = [check(body.source, r) if check else r for r in body.rows]
        if check is None:
            dry_run(online, kind, body.source, rows)  # DataError -> 422, nothing written
        try:
            await asyncio.wrap_future(log.append_updates(kind, body.source, rows))
        except ArtifactError as err:
            raise _LogUnavailable(f"the rows could not be journaled, so none was applied: "
                                  f"{err}") from err
        apply = getattr(online, f"apply_{kind}")
        for row in rows:
            apply(body.source, row)
        metrics.inc("valuechain_updates_total", len(rows), kind=kind)
        return UpdateOut(accepted=len(rows))

    @app.post("/v1/outcomes", response_model=UpdateOut, summary="Report outcomes",
              responses={401: {"model": ErrorOut}, 413: {"model": ErrorOut},
                         422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
    async def outcomes(body: UpdateIn) -> UpdateOut:
        """Outcome rows (e.g. chargebacks) as they are reported: they feed outcome features."""
        return await _update("outcome", body)

    @app.post("/v1/dimensions", response_model=UpdateOut, summary="Update dimensions",
              responses={401: {"model": ErrorOut}, 413: {"model": ErrorOut},
                         422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
    async def dimensions(body: UpdateIn) -> UpdateOut:
        """Dimension rows (e.g. a customer profile valid from a time) for as-of lookups."""
        return await _update("dimension", body)

    @app.get("/health", summary="Liveness and what is served")
    async def health() -> dict[str, Any]:
        stats = log.stats
        return {"status": "ok", "bundle_version": decider.bundle.version,
                "policy_version": decider.policy_version, "state": service.state_kind,
                "decisions_logged": stats.records, "log_batches": stats.batches,
                "replayed": service.replayed,
                "uptime_seconds": round(time.time() - service.started, 3)}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    async def metrics_text() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        components["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"ApiKey": []}, {"Bearer": []}]
        for path in PUBLIC_PATHS & set(schema.get("paths", {})):
            for op in schema["paths"][path].values():
                op["security"] = []
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(_GateMiddleware, keys=keys, max_body=max_body_bytes, metrics=metrics,
                       decide=decide_body)
    return app


class _GateMiddleware(_Gate):
    def __init__(self, app: ASGIApp, *, keys: frozenset[str], max_body: int,
                 metrics: Metrics, decide: DecideBody | None = None) -> None:
        super().__init__(app, keys, max_body, metrics, decide)
