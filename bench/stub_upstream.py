"""A fast OpenAI-shaped stub replica for bench/gateway.py: answers every request in one write.

POST /v1/chat/completions (and any other POST) -> a fixed chat completion with usage (a 500 with
STUB_FAIL=1); GET -> a models list.
Plain asyncio protocol, HTTP/1.1 keep-alive, so that the stub costs as little as possible and the proxy in
front of it is what a benchmark measures. Listens on 127.0.0.1:$AIDC_PORT (or argv[1]).

    python bench/stub_upstream.py [PORT]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import cast

CHAT = json.dumps(
    {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
MODELS = json.dumps(
    {"object": "list", "data": [{"id": "stub", "object": "model", "created": 0, "owned_by": "aidc"}]}
).encode()


def _response(body: bytes, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


# STUB_FAIL=1: every POST answers 500 (a broken release, for canary tests); readiness still passes.
FAILING = os.environ.get("STUB_FAIL") == "1"
ERROR = json.dumps({"error": {"message": "stub told to fail", "type": "server_error"}}).encode()
CHAT_RESPONSE = _response(ERROR, "500 Internal Server Error") if FAILING else _response(CHAT)
MODELS_RESPONSE = _response(MODELS)


class Stub(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(MODELS_RESPONSE if head.startswith("GET") else CHAT_RESPONSE)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Stub, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio is fine, only slower
        pass
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["AIDC_PORT"])))
