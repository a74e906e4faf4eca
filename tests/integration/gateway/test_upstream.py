"""The gateway's HTTP/1.1 client against small servers on loopback ports that answer in each of the ways
HTTP allows: Content-Length, chunked, until the connection closes; keep-alive, and a server that closes an
idle connection (the next request goes out again on a new one)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from aidc.gateway.upstream import ConnectFailed, Origin, ResponseBroken, UpstreamClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """(head, body) of the next request, None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def _run(handler: Handler, scenario: Callable[[str, list[int]], Awaitable[None]]) -> list[int]:
    """Serve `handler` on a loopback port, run `scenario(url, connections)`; returns the connection log
    (one entry per accepted connection)."""
    connections: list[int] = []

    async def main() -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(len(connections))
            try:
                await handler(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await scenario(f"http://127.0.0.1:{port}", connections)

    asyncio.run(main())
    return connections


async def _keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while (request := await _read_request(reader)) is not None:
        head, body = request
        answer = b"echo:" + head.split(b" ")[1] + b":" + body
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s" % (len(answer), answer)
        )
        await writer.drain()


def test_a_keep_alive_connection_carries_many_requests_and_sends_host_and_length() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await _read_request(reader)) is not None:
            seen.append(request[0])
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    async def scenario(url: str, connections: list[int]) -> None:
        client = UpstreamClient()
        for i in range(5):
            response = await client.request(url, b"POST", b"/v1/x?q=1", b'{"i":%d}' % i, [(b"x-a", b"b")])
            assert (response.status, await response.read()) == (200, b"ok")
            response.close()
        await client.aclose()

    assert _run(handler, scenario) == [0]
    head = seen[0].decode().lower()
    assert head.startswith("post /v1/x?q=1 http/1.1\r\n")
    assert "host: 127.0.0.1:" in head
    assert "content-length: 7\r\n" in head
    assert "x-a: b\r\n" in head


def test_a_chunked_body_is_read_chunk_by_chunk_as_it_arrives() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        writer.write(b"6\r\nfirst\n\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"5\r\nlast\n\r\n0\r\n\r\n")
        await writer.drain()

    async def scenario(url: str, connections: list[int]) -> None:
        client = UpstreamClient()
        response = await client.request(url, b"POST", b"/", b"{}")
        assert response.header(b"content-type") == b"text/event-stream"
        assert await response.next_chunk() == b"first\n"  # before the server sent the rest
        release.set()
        rest = b""
        while (chunk := await response.next_chunk()) is not None:
            rest += chunk
        assert rest == b"last\n"
        response.close()
        await client.aclose()

    _run(handler, scenario)


def test_a_body_delimited_by_the_end_of_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    async def scenario(url: str, connections: list[int]) -> None:
        client = UpstreamClient()
        for _ in range(2):
            response = await client.request(url, b"GET", b"/")
            assert await response.read() == b"all of it"
            response.close()
        await client.aclose()

    assert _run(handler, scenario) == [0, 1]  # not reused: the server closed it


def test_an_idle_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        assert request is not None
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        # then close the idle keep-alive connection, as servers do after their keep-alive timeout

    async def scenario(url: str, connections: list[int]) -> None:
        client = UpstreamClient()
        for _ in range(3):
            response = await client.request(url, b"POST", b"/", b"{}")
            assert await response.read() == b"ok"
            response.close()
            await asyncio.sleep(0.01)  # the server's close reaches us (or not: both must work)
        await client.aclose()

    assert len(_run(handler, scenario)) == 3


def test_a_response_left_before_its_end_does_not_leave_its_connection_for_reuse() -> None:
    left = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if left.is_set():
            await _keep_alive(reader, writer)
            return
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nthe first part")
        await writer.drain()
        await reader.read()  # until the client closes the connection

    async def scenario(url: str, connections: list[int]) -> None:
        client = UpstreamClient()
        response = await client.request(url, b"POST", b"/", b"{}")
        assert await response.next_chunk() == b"the first part"
        response.close()  # the rest not read: the connection is closed, not kept
        assert client.idle_connections() == 0
        left.set()
        response = await client.request(url, b"POST", b"/", b"{}")
        assert await response.read() == b"echo:/:{}"
        response.close()
        assert client.idle_connections() == 1
        await client.aclose()

    assert _run(handler, scenario) == [0, 1]


def test_a_connection_broken_mid_response_is_reported() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()

    async def scenario(url: str, connections: list[int]) -> None:
        client = UpstreamClient()
        response = await client.request(url, b"POST", b"/", b"{}")
        with pytest.raises(ResponseBroken, match="closed the connection"):
            await response.read()
        response.close()
        await client.aclose()

    _run(handler, scenario)


def test_a_refused_connection_is_a_connect_failure() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        client = UpstreamClient(connect_timeout=1.0)
        with pytest.raises(ConnectFailed, match=r"cannot connect to 127\.0\.0\.1"):
            await client.request(f"http://127.0.0.1:{port}", b"GET", b"/")
        await client.aclose()

    asyncio.run(scenario())


def test_origins() -> None:
    assert Origin.parse("http://10.0.0.5:8000").host_header == b"10.0.0.5:8000"
    assert Origin.parse("https://example.org").port == 443
    assert Origin.parse("http://[::1]:9").host_header == b"[::1]:9"
    with pytest.raises(ValueError, match="not an http"):
        Origin.parse("ftp://x")
