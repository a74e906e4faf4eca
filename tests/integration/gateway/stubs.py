"""Stub model replicas for the gateway's integration tests: small OpenAI-like HTTP/1.1 servers on loopback
ports (asyncio + httptools, each on its own event loop in a thread), with knobs a test turns (slow,
failing, not ready, gated or endless streams, streams that break) and what they saw (requests per model,
bodies, a closed connection).

They answer like the real runtimes do: JSON with `usage`; streams as SSE chunks ending in `data: [DONE]`,
with the usage-only chunk when asked for `stream_options.include_usage` (like OpenAI and vLLM) unless
`usage_in_stream` is off (like llama-cpp-python's server, which sends none)."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

CONTENT = ("Hello", " from", " the", " stub")
PROMPT_TOKENS = 11
DIMENSIONS = 384
REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    def __init__(self, stub: StubReplica) -> None:
        self.stub = stub
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.Event()
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.busy = False  # an inference request is being answered

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.stub._connections.add(self)
        self._worker = asyncio.get_running_loop().create_task(self._serve())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        self.stub._connections.discard(self)
        if self.busy:
            self.stub.disconnected.set()
        if self._worker is not None:
            self._worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        path = httptools.parse_url(self._url).path.decode()
        self._queue.put_nowait(_Request(method, path, self._headers, b"".join(self._body)))

    async def _serve(self) -> None:
        while True:
            request = await self._queue.get()
            await self.stub._handle(self, request)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def respond(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        reason = REASONS.get(status, "Other")
        head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
        self.write(head.encode() + body)


@dataclass
class StubReplica:
    """One replica. Knobs may be changed from the test's thread at any time."""

    name: str
    delay: float = 0.0  # seconds before answering an inference request
    usage_in_stream: bool = True
    fail_status: int | None = None  # answer inference requests with this status
    ready: bool = True  # the readiness path answers 200 (else 503)
    gate: threading.Event | None = None  # streams wait for it before their last content chunk
    endless: bool = False  # streams send a chunk every 20 ms until the client goes away
    break_after: int | None = None  # streams: close the connection after this many content chunks
    # What it saw
    requests: collections.Counter[str] = field(default_factory=collections.Counter)  # inference, by model
    bodies: list[dict[str, Any]] = field(default_factory=list)
    probes: int = 0
    disconnected: threading.Event = field(default_factory=threading.Event)  # closed while answering
    gate_open_at_last_chunk: bool | None = None
    _connections: set[_Connection] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _stopping: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def start(self) -> StubReplica:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        self.port = sock.getsockname()[1]
        started = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()

            async def serve() -> None:
                stopping = self._stopping = asyncio.Event()
                server = await loop.create_server(lambda: _Connection(self), sock=sock)
                started.set()
                await stopping.wait()
                server.close()
                for conn in list(self._connections):
                    if conn.transport is not None:
                        conn.transport.abort()
                await asyncio.sleep(0)  # their connection_lost
                others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in others:
                    task.cancel()
                await asyncio.gather(*others, return_exceptions=True)

            try:
                loop.run_until_complete(serve())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"stub-{self.name}", daemon=True)
        self._thread.start()
        assert started.wait(5), "the stub did not start"
        return self

    def stop(self) -> None:
        """Stop listening and cut every connection (idempotent)."""
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(5)

    # ------------------------------------------------------------------------------------- handling

    async def _handle(self, conn: _Connection, request: _Request) -> None:
        if request.method == "GET":
            if request.path == "/health":
                self.probes += 1
                conn.respond(200 if self.ready else 503, b'{"status":"ok"}' if self.ready else b'{"status":"no"}')
            elif request.path == "/v1/models":
                conn.respond(200, b'{"object":"list","data":[]}')
            else:
                conn.respond(404, b'{"detail":"not found"}')
            return
        conn.busy = True
        try:
            await self._infer(conn, request)
        finally:
            conn.busy = False

    async def _infer(self, conn: _Connection, request: _Request) -> None:
        payload = json.loads(request.body)
        self.bodies.append(payload)
        self.requests[payload.get("model", "")] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status is not None:
            conn.respond(self.fail_status, json.dumps({"error": {"message": f"{self.name} is failing"}}).encode())
            return
        if request.path in ("/v1/chat/completions", "/v1/completions"):
            chat = request.path == "/v1/chat/completions"
            if payload.get("stream"):
                await self._stream(conn, payload, chat)
            else:
                conn.respond(200, json.dumps(_completion(payload, chat, self.name)).encode())
        elif request.path == "/v1/embeddings":
            conn.respond(200, json.dumps(_embeddings(payload)).encode())
        else:
            conn.respond(404, b'{"detail":"not found"}')

    async def _stream(self, conn: _Connection, payload: dict[str, Any], chat: bool) -> None:
        conn.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")

        def event(data: dict[str, Any] | str) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            frame = f"data: {text}\n\n".encode()
            conn.write(b"%x\r\n%s\r\n" % (len(frame), frame))

        model = payload.get("model", "")
        if self.endless:
            while not conn.closed.is_set():
                event(_chunk(model, chat, "tick", self.name))
                try:
                    await asyncio.wait_for(conn.closed.wait(), 0.02)
                except TimeoutError:
                    continue
            return
        if chat:
            event(_chunk(model, chat, "", self.name, role=True))
        for sent, text in enumerate(CONTENT):
            if self.break_after is not None and sent >= self.break_after:
                assert conn.transport is not None
                conn.transport.abort()
                return
            if sent == len(CONTENT) - 1 and self.gate is not None:
                gate = self.gate
                await asyncio.get_running_loop().run_in_executor(None, gate.wait, 10.0)
                self.gate_open_at_last_chunk = gate.is_set()
            event(_chunk(model, chat, text, self.name))
        event(_chunk(model, chat, None, self.name, finish=True))
        options = payload.get("stream_options") or {}
        if self.usage_in_stream and options.get("include_usage"):
            event({"id": "s", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": _usage()})
        event("[DONE]")
        conn.write(b"0\r\n\r\n")


def _usage() -> dict[str, int]:
    return {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(CONTENT), "total_tokens": PROMPT_TOKENS + 4}


def _chunk(
    model: str, chat: bool, text: str | None, name: str, *, role: bool = False, finish: bool = False
) -> dict[str, Any]:
    if chat:
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
        if text:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "finish_reason": "stop" if finish else None}
        return {"id": f"chatcmpl-{name}", "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [choice]}  # fmt: skip
    choice = {"index": 0, "text": text or "", "finish_reason": "stop" if finish else None}
    return {"id": f"cmpl-{name}", "object": "text_completion", "created": 0, "model": model, "choices": [choice]}


def _completion(payload: dict[str, Any], chat: bool, name: str) -> dict[str, Any]:
    text = "".join(CONTENT)
    model = payload.get("model", "")
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        kind = "text_completion"
    return {"id": f"x-{name}", "object": kind, "created": 0, "model": model, "choices": [choice], "usage": _usage(),
            "system_fingerprint": name}  # fmt: skip


def _embeddings(payload: dict[str, Any]) -> dict[str, Any]:
    inputs = payload["input"] if isinstance(payload["input"], list) else [payload["input"]]
    vector = [((i % 7) - 3) / 10 for i in range(DIMENSIONS)]
    if payload.get("encoding_format") == "base64":
        encoded: Any = base64.b64encode(struct.pack(f"<{DIMENSIONS}f", *vector)).decode()
    else:
        encoded = vector
    data = [{"object": "embedding", "index": i, "embedding": encoded} for i in range(len(inputs))]
    return {"object": "list", "model": payload.get("model"), "data": data,
            "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}}  # fmt: skip
