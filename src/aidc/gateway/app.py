"""The gateway's ASGI app: OpenAI's inference endpoints, /v1/models, /metrics and /healthz.

A plain ASGI callable (no framework on the hot path). Serve it with uvicorn's uvloop and httptools, best
on aidc.gateway.protocol's transport, which sends a response's head and body in one write
(`uvicorn.Config(app, loop="uvloop", http=CoalescingHttpToolsProtocol, access_log=False)`); its lifespan
starts and stops the route refresh, the readiness checks, the reports and the upstream connections.

A request: authenticate (from the backplane's memory, else its database off the event loop, one check at
a time per token and address) -> read and check the body -> may the caller use this model (403) -> is it
served (404) -> rate limits (429) -> proxy.Proxy (503 no ready replica, 502 after failed retries, 504
timeout) -> usage and metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread

from aidc.domain.errors import TooManyRequests, Unauthenticated
from aidc.gateway.backplane import Backplane, charged_team, may_scrape
from aidc.gateway.config import GatewayConfig
from aidc.gateway.limits import Admission, RateLimiter, load_limits
from aidc.gateway.metering import Kind, UsageLedger, with_usage_requested
from aidc.gateway.metrics import GatewayMetrics
from aidc.gateway.probes import Prober
from aidc.gateway.proxy import Call, Proxy
from aidc.gateway.reporter import Reporter
from aidc.gateway.responses import (
    GatewayError,
    Receive,
    Scope,
    Send,
    send_body,
    send_error,
)
from aidc.gateway.routing import RouteTable
from aidc.gateway.upstream import UpstreamClient
from aidc.security.rbac import Principal, may_infer

__all__ = ["GatewayApp", "GatewayConfig", "create_gateway_app", "load_limits"]

log = logging.getLogger(__name__)

INFERENCE: dict[str, Kind] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
REQUIRED = {"chat": "messages", "completions": "prompt", "embeddings": "input"}
STARTUP_ROUTES_TIMEOUT = 10.0  # seconds the first routes may take before the gateway starts without them
WWW_AUTHENTICATE = (b"www-authenticate", b"Bearer")
# (text, index) -> (value, end), StopIteration when no JSON value starts there (the C scanner; untyped)
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def create_gateway_app(backplane: Backplane, config: GatewayConfig | None = None) -> GatewayApp:
    """The gateway as an ASGI app; its lifespan runs its background work."""
    return GatewayApp(backplane, config or GatewayConfig())


class GatewayApp:
    def __init__(self, backplane: Backplane, config: GatewayConfig) -> None:
        self.backplane = backplane
        self.config = config
        rng = random.Random(config.seed)
        self.table = RouteTable(
            health=config.health, budget=config.budget, rng=rng, probe_failures=config.probe_failures
        )
        self.limiter = RateLimiter(config.limits)
        self.ledger = UsageLedger()
        self.metrics = GatewayMetrics(self.table)
        self.client = UpstreamClient(connect_timeout=config.connect_timeout)
        self._probe_client = UpstreamClient(
            connect_timeout=min(config.connect_timeout, config.probe_timeout), max_idle_per_origin=2
        )
        self.prober = Prober(self.table, self._probe_client, self.metrics, timeout=config.probe_timeout)
        self.reporter = Reporter(
            backplane, self.table, self.prober, self.ledger, self.limiter, self.client, config.gateway_id
        )
        self.proxy = Proxy(self.table, self.client, self.metrics, self.ledger, config, random.Random(rng.random()))
        self._tasks: list[asyncio.Task[None]] = []
        # Token checks in flight, by (Authorization, client address): see _authenticate_slowly.
        self._checks: dict[tuple[str | None, str | None], asyncio.Future[Principal | None]] = {}

    # ------------------------------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            inference = INFERENCE.get(scope["path"])
            if inference is not None and scope["method"] == "POST":  # the hot path: one coroutine less
                await self._inference(inference, scope, receive, send)
            else:
                await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        inference = INFERENCE.get(path)
        try:
            if inference is not None:
                if method != "POST":
                    raise GatewayError(405, f"Use POST for {path}.", headers=[(b"allow", b"POST")])
                await self._inference(inference, scope, receive, send)
                return
            if method not in ("GET", "HEAD"):
                raise GatewayError(405 if _known(path) else 404, f"No {method} {path} here.")
            if path == "/healthz":
                await send_body(send, 200, b'{"status":"ok"}')
            elif path == "/v1/models" or path.startswith("/v1/models/"):
                await self._models(scope, send, path.removeprefix("/v1/models").removeprefix("/"))
            elif path == "/metrics":
                await self._metrics(scope, send)
            else:
                raise GatewayError(404, f"Unknown path {path}; the gateway serves OpenAI's /v1 endpoints.")
        except GatewayError as exc:
            await send_error(send, exc)

    # ------------------------------------------------------------------------------------- inference

    async def _inference(self, kind: Kind, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        model = ""  # the metrics' label: a served model's name only (not whatever a client sends)
        call: Call | None = None
        status = 500
        try:
            authorization, host = _credentials(scope)
            principal = self.backplane.cached(authorization, host)
            if principal is None:
                principal = await self._authenticate_slowly(authorization, host)
            message = await receive()
            if message["type"] == "http.disconnect":
                status = 499
                return
            body: bytes = message.get("body", b"")
            if message.get("more_body", False):
                whole = await _read_rest(receive, body, self.config.max_body_bytes)
                if whole is None:
                    status = 499
                    return
                body = whole
            elif len(body) > self.config.max_body_bytes:
                raise GatewayError(413, f"The request body is larger than {self.config.max_body_bytes} bytes.")
            payload, stream = _parse(kind, body)
            asked: str = payload["model"]
            if not may_infer(principal, asked):
                raise GatewayError(
                    403, f"You may not call the model {asked} (roles: {principal.roles}).", code="permission_denied"
                )
            state = self.table.get(asked)
            if state is None:
                raise GatewayError(
                    404, f"The model {asked} does not exist or is not served.", param="model", code="model_not_found"
                )
            model = asked
            team = charged_team(principal)
            token_id = principal.token_id
            admission = self.limiter.admit(
                token_id if token_id is not None else principal.name, token_id, team, started
            )
            if not isinstance(admission, Admission):
                self.metrics.rate_limited(admission.scope, admission.limit)
                raise GatewayError(
                    429, admission.message, code="rate_limit_exceeded", retry_after=admission.retry_after
                )
            drop_usage_chunk = False
            if stream and kind != "embeddings":
                changed = with_usage_requested(body, payload)
                if changed is not None:
                    body, drop_usage_chunk = changed, True
            query = scope.get("query_string")
            raw_path: bytes = scope["raw_path"]
            call = Call(
                kind,
                model,
                state,
                principal,
                team,
                payload,
                body,
                raw_path + b"?" + query if query else raw_path,
                stream,
                drop_usage_chunk,
                b"text/event-stream" if stream else b"application/json",
                started,
            )
            try:
                await self.proxy.serve(call, receive, send)
            finally:
                usage = call.usage
                self.limiter.release(admission, usage.total if usage is not None else 0, time.monotonic())
                if usage is not None:
                    self.ledger.add(time.time(), token_id, principal.name, team, model, usage)
                    self.metrics.tokens(model, usage.prompt_tokens, usage.completion_tokens)
            status = 499 if call.client_gone else call.status
        except GatewayError as exc:
            status = exc.status
            if call is None or not call.responded:
                await send_error(send, exc)
        except Exception:
            log.exception("gateway: request for %s failed", model or "?")
            if call is None or not call.responded:
                await send_error(send, GatewayError(500, "The gateway failed on this request.", code="internal_error"))
        finally:
            if call is not None:
                self.metrics.served(model, call.replica, status, time.monotonic() - started)
            else:
                self.metrics.request(model, "", status)

    async def _authenticate(self, scope: Scope) -> Principal:
        authorization, host = _credentials(scope)
        principal = self.backplane.cached(authorization, host)
        if principal is not None:
            return principal
        return await self._authenticate_slowly(authorization, host)

    async def _authenticate_slowly(self, authorization: str | None, host: str | None) -> Principal:
        """A token not in the backplane's memory: checked by its database, off the event loop.

        Requests with the same token from the same address while one of them is being checked wait for
        that check (it takes a scrypt, ~50 ms of CPU) instead of each starting its own: when a busy
        token's cache entry expires, every request in flight would. They share a success; after a
        failure each is checked on its own, so that each failure is audited and counted as before."""
        key = (authorization, host)
        shared = self._checks.get(key)
        if shared is not None:
            principal = await asyncio.shield(shared)
            if principal is not None:
                return principal
        own = None
        if key not in self._checks:
            own = self._checks[key] = asyncio.get_running_loop().create_future()
        principal = None
        try:
            principal = await self._check(authorization, host)
            return principal
        finally:
            if own is not None:
                del self._checks[key]
                own.set_result(principal)  # None: failed (or cancelled), the waiters check on their own

    async def _check(self, authorization: str | None, host: str | None) -> Principal:
        try:
            return await anyio.to_thread.run_sync(self.backplane.authenticate, authorization, host)
        except Unauthenticated as exc:
            raise GatewayError(401, str(exc), code="invalid_api_key", headers=[WWW_AUTHENTICATE]) from None
        except TooManyRequests as exc:
            raise GatewayError(429, str(exc), code="too_many_attempts", retry_after=exc.retry_after) from None
        except Exception:
            log.exception("gateway: authentication failed")
            raise GatewayError(
                503, "Authentication is unavailable now; retry shortly.", code="auth_unavailable"
            ) from None

    # ------------------------------------------------------------------------------------ the others

    async def _models(self, scope: Scope, send: Send, model: str) -> None:
        principal = await self._authenticate(scope)
        if model:
            state = self.table.get(model)
            if state is None or not may_infer(principal, model):
                raise GatewayError(
                    404, f"The model {model} does not exist or is not served.", param="model", code="model_not_found"
                )
            await send_body(send, 200, json.dumps(_model_object(model, state.created)).encode())
            return
        data = [
            _model_object(state.model, state.created)
            for state in sorted(self.table.models(), key=lambda s: s.model)
            if may_infer(principal, state.model)
        ]
        await send_body(send, 200, json.dumps({"object": "list", "data": data}).encode())

    async def _metrics(self, scope: Scope, send: Send) -> None:
        principal = await self._authenticate(scope)
        if not may_scrape(principal):
            raise GatewayError(403, "Reading the gateway's metrics needs the node.read permission.")
        await send_body(send, 200, self.metrics.render(), content_type=self.metrics.content_type.encode())

    # ------------------------------------------------------------------------------------- lifespan

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("gateway: startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        """Take the routes and check the replicas once (so the first requests find them ready), then start
        the background work."""
        try:
            async with asyncio.timeout(STARTUP_ROUTES_TIMEOUT):
                await self.reporter.refresh_routes(probe=False)
        except TimeoutError:
            log.warning(
                "gateway: no routes from the control plane within %g s; starting without", STARTUP_ROUTES_TIMEOUT
            )
        try:
            await self.prober.probe(self.table.targets())
        except Exception:
            log.exception("gateway: the first readiness checks failed")
        loop = asyncio.get_running_loop()
        config = self.config
        self._tasks = [
            loop.create_task(self.reporter.run_routes(config.route_refresh_interval), name="gateway-routes"),
            loop.create_task(self.prober.run(config.probe_interval), name="gateway-probes"),
            loop.create_task(self.reporter.run_reports(config.report_interval), name="gateway-reports"),
        ]

    async def stop(self) -> None:
        """Stop the background work, send the last report and usage, close the upstream connections."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.proxy.close()
        await self.prober.aclose()
        await self.reporter.final_flush()
        await self.client.aclose()
        await self._probe_client.aclose()


def _credentials(scope: Scope) -> tuple[str | None, str | None]:
    """The Authorization header and the client's address."""
    authorization = None
    for key, value in scope["headers"]:
        if key == b"authorization":
            authorization = value.decode("latin-1")
            break
    client = scope.get("client")
    return authorization, client[0] if client else None


async def _read_rest(receive: Receive, first: bytes, limit: int) -> bytes | None:
    """The request body that began with `first` and goes on, or None when the client went away first."""
    parts = [first]
    size = len(first)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, f"The request body is larger than {limit} bytes.")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _loads(body: bytes) -> Any:
    """json.loads(body), quicker for the usual body: a UTF-8 object without whitespace around it (then
    json.loads' encoding detection and whitespace matching have nothing to do). Anything else, errors
    included, is json.loads' own."""
    if body[:1] == b"{" and body[1:2] != b"\x00":  # UTF-8 by JSON's detection (RFC 8259, 4627)
        try:
            text = body.decode("utf-8", "surrogatepass")
            value, end = _SCAN(text, 0)
        except (ValueError, StopIteration):
            pass
        else:
            if end == len(text):
                return value
    return json.loads(body)


def _parse(kind: Kind, body: bytes) -> tuple[dict[str, Any], bool]:
    """The request's JSON object and whether it asks for a stream; 400 naming the field otherwise."""
    try:
        payload = _loads(body)
    except (ValueError, UnicodeDecodeError):
        raise GatewayError(400, "We could not parse the JSON body of your request.", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise GatewayError(400, "The request body must be a JSON object.", code="invalid_json")
    model = payload.get("model")
    if model is None:
        raise GatewayError(400, "You must provide a model parameter.", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, "model must be a non-empty string.", param="model", code="invalid_type")
    required = REQUIRED[kind]
    if payload.get(required) is None:
        raise GatewayError(
            400, f"Missing required parameter: '{required}'.", param=required, code="missing_required_parameter"
        )
    if kind == "chat" and (not isinstance(payload["messages"], list) or not payload["messages"]):
        raise GatewayError(400, "messages must be a non-empty array.", param="messages", code="invalid_type")
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise GatewayError(400, "stream must be a boolean.", param="stream", code="invalid_type")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise GatewayError(400, "stream_options must be an object.", param="stream_options", code="invalid_type")
    return payload, bool(stream) and kind != "embeddings"


def _model_object(model: str, created: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created, "owned_by": "aidc"}


def _known(path: str) -> bool:
    return path in ("/healthz", "/metrics", "/v1/models") or path.startswith("/v1/models/")
