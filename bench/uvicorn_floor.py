"""The floor of any uvicorn-served Python service on this machine, for bench/gateway.py: a bare ASGI app
that answers every request with the stub's fixed body, under the same uvicorn (uvloop, httptools) the
gateway runs on. The gateway cannot be faster than this; the gap to it is the gateway's own work.

    python bench/uvicorn_floor.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from stub_upstream import CHAT

HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(CHAT)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": CHAT})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools", access_log=False,
                log_level="warning")  # fmt: skip
