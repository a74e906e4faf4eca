"""The gateway's server transport: what is written for a response leaves in one write, when the response is
complete or else at the end of the event loop's turn."""

from __future__ import annotations

import asyncio
from typing import Any

from aidc.gateway.protocol import CoalescingTransport


class _Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0


def _run(scenario: Any) -> None:
    async def main() -> None:
        inner = _Recorder()
        await scenario(inner, CoalescingTransport(inner, asyncio.get_running_loop()))

    asyncio.run(main())


def test_writes_of_one_turn_leave_together_at_its_end() -> None:
    async def scenario(inner: _Recorder, transport: CoalescingTransport) -> None:
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"ok")
        transport.write(b"")  # nothing to send: no write
        assert inner.writes == []
        assert transport.get_write_buffer_size() == 40
        await asyncio.sleep(0)
        assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
        transport.write(b"data: 1\n\n")  # the next turn's writes make the next write
        await asyncio.sleep(0)
        assert inner.writes[1:] == [b"data: 1\n\n"]
        assert transport.get_extra_info("peername") == ("127.0.0.1", 5)

    _run(scenario)


def test_a_flush_writes_at_once_and_the_turn_has_nothing_left_to_write() -> None:
    async def scenario(inner: _Recorder, transport: CoalescingTransport) -> None:
        transport.write(b"head ")
        transport.write(b"body")
        transport.flush()  # as when the response is complete
        assert inner.writes == [b"head body"]
        transport.flush()
        await asyncio.sleep(0)
        assert inner.writes == [b"head body"]

    _run(scenario)


def test_close_sends_what_is_buffered_first_and_abort_drops_it() -> None:
    async def scenario(inner: _Recorder, transport: CoalescingTransport) -> None:
        transport.write(b"last words")
        transport.close()
        assert inner.writes == [b"last words"]
        assert inner.closed
        assert transport.is_closing()
        await asyncio.sleep(0)
        assert inner.writes == [b"last words"]  # not twice

    _run(scenario)

    async def aborted(inner: _Recorder, transport: CoalescingTransport) -> None:
        transport.write(b"never sent")
        transport.abort()
        await asyncio.sleep(0)
        assert inner.writes == []
        assert inner.aborted

    _run(aborted)


def test_what_is_buffered_for_a_connection_that_went_away_is_dropped() -> None:
    async def scenario(inner: _Recorder, transport: CoalescingTransport) -> None:
        transport.write(b"too late")
        inner.closed = True  # the peer left meanwhile
        await asyncio.sleep(0)
        assert inner.writes == []

    _run(scenario)
