"""ASGI middleware: a request id on every request and response, and a cap on request body size.

Pure ASGI rather than BaseHTTPMiddleware, so streaming responses pass through untouched and a body
is counted as it arrives (a client that sends no Content-Length, or lies in it, is still cut off)."""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # a client's id is kept only if it is harmless in logs


class _TooLarge(Exception):
    pass


def _error(status: int, detail: str) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"detail": detail, "errors": []}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, body


class RequestContext:
    """Sets `scope["state"]["request_id"]` (the client's X-Request-ID when sane, else a new one), echoes it
    in the response, and answers 413 to a body over `max_body_bytes` (`limits` may raise it for paths
    that take large bodies, by prefix)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limits = limits or {}
        # Request ids: a random prefix per process and a counter; unique without a syscall per request.
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def _limit(self, path: str) -> int:
        for prefix, limit in self.limits.items():
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if given and _SAFE_ID.match(given) else f"{self._prefix}-{next(self._counter):x}"
        scope.setdefault("state", {})["request_id"] = request_id
        if "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b""):
            await self._send_error(send, request_id, 422, "NUL characters are not allowed in the path or the query")
            return
        limit = self._limit(scope.get("path", ""))
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(send, request_id, limit)
            return

        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, counted_receive, send_with_id)
        except _TooLarge:
            if not started:
                await self._refuse(send, request_id, limit)

    @classmethod
    async def _refuse(cls, send: Send, request_id: str, limit: int) -> None:
        await cls._send_error(send, request_id, 413, f"request body too large: at most {limit:,} bytes")

    @staticmethod
    async def _send_error(send: Send, request_id: str, status: int, detail: str) -> None:
        start, body = _error(status, detail)
        start["headers"].append((REQUEST_ID_HEADER.encode(), request_id.encode()))
        await send(start)
        await send({"type": "http.response.body", "body": body})
