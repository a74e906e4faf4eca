"""ASGI plumbing and OpenAI-shaped errors: {"error": {"message", "type", "param", "code"}}, so the
openai SDK raises the class that goes with the status (401 AuthenticationError, 403
PermissionDeniedError, 404 NotFoundError, 400 BadRequestError, 429 RateLimitError, 5xx
InternalServerError)."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}
# Upstream response headers that describe the upstream connection, not the response.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"content-length",
        b"server",
        b"date",
    }
)


class GatewayError(Exception):
    """A request the gateway answers with an error of its own."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.headers = tuple(headers)


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> bytes:
    error = {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "param": param, "code": code}
    return json.dumps({"error": error}).encode()


def retry_after_header(seconds: float) -> tuple[bytes, bytes]:
    return (b"retry-after", b"%d" % max(1, math.ceil(seconds)))


async def send_body(
    send: Send, status: int, body: bytes, content_type: bytes = JSON, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    start_headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: GatewayError) -> None:
    headers = list(error.headers)
    if error.retry_after is not None:
        headers.append(retry_after_header(error.retry_after))
    body = error_body(error.status, error.message, param=error.param, code=error.code)
    await send_body(send, error.status, body, headers=headers)


def sse_error_event(message: str, code: str) -> bytes:
    """An error inside a stream whose status was already sent (the openai SDK raises APIError on it)."""
    error = {"message": message, "type": "server_error", "param": None, "code": code}
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None
