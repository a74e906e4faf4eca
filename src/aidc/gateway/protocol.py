"""The HTTP/1.1 server protocol to serve the gateway with: uvicorn's httptools protocol, with a response's
head and body sent in one system call.

uvicorn writes a response's head when the app sends `http.response.start` and its body when it sends
`http.response.body`: two system calls, two TCP segments and two wake-ups of the client for every
answer. On loopback a write costs several times what the gateway's own work for a request does. Here
what uvicorn writes is held until the response is complete (then it leaves at once, in one write) or
until the end of the event loop's turn, whichever comes first: the head of a stream and each event
relayed leave at the end of the turn they were sent in. Nothing waits for more data.

    uvicorn.Config(app, loop="uvloop", http=CoalescingHttpToolsProtocol, ...)
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport(asyncio.Transport):
    """A transport that holds what is written until `flush()`, or else until the event loop's next turn,
    then writes it at once (the rest of the Transport interface is the wrapped transport's own). Closing
    it sends what is held first; aborting it drops that."""

    __slots__ = ("_loop", "_pending", "_timer", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._timer: asyncio.Handle | None = None  # the flush at the end of this turn

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        if not data:
            return
        pending = self._pending
        if pending is None:
            self._pending = [bytes(data)]
            self._timer = self._loop.call_soon(self._turn_ended)
        else:
            pending.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Write what is held now."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if self._transport.is_closing():
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        else:
            self._transport.writelines(pending)  # one writev, no copy of a large body

    def _turn_ended(self) -> None:
        self._timer = None
        self.flush()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        pending = self._pending
        return self._transport.get_write_buffer_size() + (sum(map(len, pending)) if pending else 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a CoalescingTransport, flushed as soon as a response is complete
    (uvicorn calls on_response_complete right after writing its last bytes)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))

    def on_response_complete(self) -> None:
        transport = self.transport
        if isinstance(transport, CoalescingTransport):
            transport.flush()
        super().on_response_complete()
