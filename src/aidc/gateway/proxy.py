"""Forwarding one inference request: pick a replica, send, retry where allowed, relay the answer.

- Retries (aidc.gateway.retry): a connection error, a connection broken before the whole answer came, or
  a 5xx, only while nothing has been sent to the client, only to a replica not tried yet, within the
  model's retry budget and max attempts, after a jittered backoff no shorter than Retry-After.
- A non-streamed answer is read whole (its usage is metered, a failure is still retryable), then sent.
- A streamed answer (text/event-stream) is relayed event by event as it arrives; its status goes out
  with the first byte, after which nothing is retried: a failure mid-stream ends it with an error event.
- The whole request, streaming included, runs under the model's timeout (504 while nothing was sent, an
  error event ending a stream after), and stops when the client goes away; either way the upstream
  connection is closed, which makes the runtime stop generating.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aidc.gateway.config import GatewayConfig
from aidc.gateway.metering import Kind, StreamMeter, Usage, UsageLedger, usage_of_response
from aidc.gateway.metrics import GatewayMetrics
from aidc.gateway.policies import RouteRequest
from aidc.gateway.replicas import Dispatch, Replica
from aidc.gateway.responses import HOP_BY_HOP, GatewayError, Receive, Send, sse_error_event
from aidc.gateway.retry import Outcome, may_retry, parse_retry_after
from aidc.gateway.routing import ModelState, RouteTable
from aidc.gateway.upstream import ConnectFailed, UpstreamClient, UpstreamError, UpstreamResponse
from aidc.security.rbac import Principal

log = logging.getLogger(__name__)

PREFIX_CHARS = 1024  # prefix_affinity hashes this much of the conversation's start
WATCH_AFTER = 0.05  # seconds a plain request runs before the gateway watches for its client leaving
EVENT_STREAM = b"text/event-stream"
_UPSTREAM_HEADERS = {
    accept: ((b"content-type", b"application/json"), (b"accept", accept))
    for accept in (b"application/json", EVENT_STREAM)
}
CLOCK_SLACK = 0.001  # seconds: a request due to be watched this much later is watched now


@dataclass(slots=True)
class Call:
    """One inference request on its way through the gateway."""

    kind: Kind
    model: str
    state: ModelState
    principal: Principal
    team: str | None
    payload: dict[str, Any]
    body: bytes  # as sent upstream
    target: bytes  # path and query string
    stream: bool
    drop_usage_chunk: bool
    accept: bytes
    started: float  # monotonic seconds at arrival
    replica: str = ""  # the replica that answered (for metrics)
    status: int = 0  # what the client got
    responded: bool = False  # the status line went out: no retry, no error status any more
    streaming: bool = False  # the answer is an event stream being relayed
    done: bool = False  # the whole answer went out (a disconnect after this changes nothing)
    client_gone: bool = False
    timed_out: bool = False
    usage: Usage | None = None
    dispatch: Dispatch | None = None  # the attempt in flight, until finished
    watcher: asyncio.Task[None] | None = None  # watches for the client leaving and the timeout
    served: bool = False  # Proxy.serve returned: nothing to watch any more


def prefix_key(kind: Kind, payload: dict[str, Any]) -> str:
    """What prefix_affinity hashes: the start of the conversation, i.e. its messages up to and including
    the first user message (the later turns of a conversation all begin with it, so they reach the replica
    that has it cached), or the start of the prompt; at most PREFIX_CHARS characters."""
    if kind == "chat":
        parts: list[str] = []
        size = 0
        messages = payload.get("messages")
        for message in messages if isinstance(messages, list) else ():
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            text = f"{message.get('role', '')}:{content if isinstance(content, str) else ''}\n"
            parts.append(text)
            size += len(text)
            if size >= PREFIX_CHARS or message.get("role") == "user":
                break
        return "".join(parts)[:PREFIX_CHARS]
    prompt = payload.get("prompt" if kind == "completions" else "input")
    if isinstance(prompt, list):
        prompt = prompt[0] if prompt and isinstance(prompt[0], str) else json.dumps(prompt[:PREFIX_CHARS])
    return prompt[:PREFIX_CHARS] if isinstance(prompt, str) else ""


def _excerpt(body: bytes) -> str:
    """The upstream's error message, for ours."""
    try:
        data = json.loads(body)
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
        if isinstance(data, dict) and message is None:
            message = data.get("detail") or data.get("message")
        if isinstance(message, str):
            return message[:300]
    except (ValueError, AttributeError):
        pass
    return body[:300].decode("utf-8", "replace").strip()


def _relayed_headers(response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in response.headers if k not in HOP_BY_HOP]


class Proxy:
    def __init__(
        self,
        table: RouteTable,
        client: UpstreamClient,
        metrics: GatewayMetrics,
        ledger: UsageLedger,
        config: GatewayConfig,
        rng: random.Random,
    ) -> None:
        self.table = table
        self.client = client
        self.metrics = metrics
        self.ledger = ledger
        self.config = config
        self.rng = rng
        self._watchlist = _Watchlist()

    async def serve(self, call: Call, receive: Receive, send: Send) -> None:
        """Answer `call` (raises GatewayError when it must be answered with an error of the gateway's),
        within the model's timeout, and stop (closing the upstream request) if the client goes away.

        Both are watched by one task, which cancels this one. A stream gets it at once; a plain request
        only once it has run WATCH_AFTER seconds (most are answered sooner, and a task per request costs
        ~20 % of the gateway's throughput), so a client that leaves a long generation frees its replica
        within WATCH_AFTER seconds of leaving. The plain requests wait for that in one queue under one
        timer (a timer of their own each would cost ~5 % more)."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + call.state.route.timeout
        timer = ticket = None
        if call.stream:
            call.watcher = loop.create_task(_watch(receive, call, task, deadline))
        elif deadline > now + WATCH_AFTER:
            ticket = [call, receive, task, deadline]
            self._watchlist.add(loop, now + WATCH_AFTER, ticket)
        else:
            timer = loop.call_at(deadline, _start_watch, loop, call, receive, task, deadline)
        try:
            await self._forward(call, send)
        except asyncio.CancelledError:
            if not (call.client_gone or call.timed_out):
                raise
            task.uncancel()
            if call.timed_out:
                await self._timed_out(call, send)
        finally:
            call.served = True
            if ticket is not None:
                ticket.clear()  # let go of the request now: its watch is not needed any more
            if timer is not None:
                timer.cancel()
            watcher = call.watcher
            if watcher is not None and not watcher.done():
                watcher.cancel()

    def close(self) -> None:
        """Drop the requests waiting to be watched (at shutdown)."""
        self._watchlist.clear()

    async def _timed_out(self, call: Call, send: Send) -> None:
        self.metrics.error(call.model, call.replica, "timeout")
        message = f"The model {call.model} did not answer within {call.state.route.timeout:g} s."
        if not call.responded:
            raise GatewayError(504, message, code="timeout")
        if call.streaming and not call.done:
            call.done = True
            event = sse_error_event(message, "timeout")
            await send({"type": "http.response.body", "body": event, "more_body": False})

    async def _forward(self, call: Call, send: Send) -> None:
        state = call.state
        now = time.monotonic()
        state.budget.record_request(now)
        key = prefix_key(call.kind, call.payload) if state.route.policy == "prefix_affinity" else ""
        headers = _UPSTREAM_HEADERS.get(call.accept) or (
            (b"content-type", b"application/json"),
            (b"accept", call.accept),
        )
        tried: set[str] = set()
        attempt = 0
        failure: str | None = None
        while True:
            attempt += 1
            now = time.monotonic()
            replica = state.choose(RouteRequest(call.model, now, key, call.stream), tried)
            if replica is None:
                if failure is not None:
                    raise GatewayError(502, failure, code="upstream_error")
                self.metrics.error(call.model, "", "no_replica")
                raise GatewayError(
                    503, f"The model {call.model} has no ready replica now.", code="no_ready_replica", retry_after=1
                )
            tried.add(replica.id)
            call.replica = replica.id
            dispatch = call.dispatch = state.pool.start(replica.id, now)
            try:
                outcome, failure = await self._attempt(call, send, replica, dispatch, headers)
            except BaseException:
                self._finish(call, None if call.client_gone else False)
                raise
            if outcome is None:
                return
            if not await self._may_retry(state, outcome, attempt, tried):
                raise GatewayError(502, failure or "upstream failure", code="upstream_error")

    async def _attempt(
        self, call: Call, send: Send, replica: Replica, dispatch: Dispatch, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[Outcome | None, str | None]:
        """One attempt. Returns (None, None) once answered, or the failure's outcome and message (the
        dispatch is then finished)."""
        try:
            response = await self.client.request(replica.url, b"POST", call.target, call.body, headers)
        except UpstreamError as exc:
            return self._broken(call, dispatch, exc)
        status = response.status
        try:
            if 200 <= status < 300 and (response.header(b"content-type") or b"").startswith(EVENT_STREAM):
                await self._relay_stream(call, send, response, dispatch)
                return None, None
            call.state.pool.first_byte(dispatch, time.monotonic())
            body = response.read_nowait()  # a small answer came whole with its head
            if body is None:
                try:
                    body = await response.read()
                except UpstreamError as exc:
                    return self._broken(call, dispatch, exc)
        finally:
            response.close()
        if status >= 500:
            retry_after = parse_retry_after(_str(response.header(b"retry-after")), time.time())
            outcome = Outcome(status=status, retry_after=retry_after)
            message = f"replica {replica.id} answered {status}: {_excerpt(body)}"
            return self._failed(call, dispatch, outcome, "upstream_5xx", message)
        if status < 300:
            call.usage = usage_of_response(call.kind, call.payload, body)
        self._finish(call, status < 400 or None)
        call.status = status
        call.responded = call.done = True
        start_headers = [(k, v) for k, v in response.headers if k not in HOP_BY_HOP]
        start_headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": start_headers})
        await send({"type": "http.response.body", "body": body})
        return None, None

    async def _relay_stream(self, call: Call, send: Send, response: UpstreamResponse, dispatch: Dispatch) -> None:
        meter = StreamMeter(drop_usage_chunk=call.drop_usage_chunk)
        start_headers = [(k, v) for k, v in _relayed_headers(response) if k != b"cache-control"]
        start_headers += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
        call.status = response.status
        call.responded = call.streaming = True
        await send({"type": "http.response.start", "status": response.status, "headers": start_headers})
        first = True
        ok: bool | None = True
        ending = b""
        try:
            while True:
                chunk = await response.next_chunk()
                if chunk is None:
                    break
                out = meter.feed(chunk)
                if out:
                    if first:
                        first = False
                        now = time.monotonic()
                        call.state.pool.first_byte(dispatch, now)
                        self.metrics.time_to_first_token(call.model, now - call.started)
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            ending = meter.flush()
        except UpstreamError as exc:
            ok = False
            log.info("gateway: the stream of replica %s of %s broke: %s", call.replica, call.model, exc)
            self.metrics.error(call.model, call.replica, "broken")
            ending = meter.flush() + sse_error_event("The replica's stream broke off.", "upstream_error")
        except BaseException:
            # Cancelled: the client went away, or the model's timeout (then serve() ends the stream).
            call.usage = meter.result(call.kind, call.payload)
            self._finish(call, None if call.client_gone else False)
            raise
        call.usage = meter.result(call.kind, call.payload)
        self._finish(call, ok)
        call.done = True
        await send({"type": "http.response.body", "body": ending, "more_body": False})

    def _broken(self, call: Call, dispatch: Dispatch, exc: UpstreamError) -> tuple[Outcome, str]:
        """A connection error (the message for the client names the replica, not its address)."""
        log.debug("gateway: replica %s of %s: %s", dispatch.replica_id, call.model, exc)
        if isinstance(exc, ConnectFailed):
            kind, message = "connect", f"replica {dispatch.replica_id} could not be reached"
        else:
            kind, message = "broken", f"replica {dispatch.replica_id} closed the connection before answering"
        return self._failed(call, dispatch, Outcome(connection_error=True), kind, message)

    def _failed(self, call: Call, dispatch: Dispatch, outcome: Outcome, kind: str, message: str) -> tuple[Outcome, str]:
        self.metrics.error(call.model, dispatch.replica_id, kind)
        self._finish(call, False)
        return outcome, message

    async def _may_retry(self, state: ModelState, outcome: Outcome, attempt: int, tried: set[str]) -> bool:
        now = time.monotonic()
        if not state.pool.available(now, tried):
            return False
        config = self.config
        if not may_retry(
            outcome,
            False,
            attempt,
            state.budget,
            now=now,
            max_attempts=config.max_attempts,
            max_retry_after=config.max_retry_after,
        ):
            return False
        self.metrics.retry(state.model)
        delay = config.backoff.delay(attempt, self.rng, outcome.retry_after)
        if delay > 0:
            await asyncio.sleep(delay)
        return True

    def _finish(self, call: Call, ok: bool | None) -> None:
        """End the attempt in flight (once): the pool's bookkeeping, the report counters, passive ejection
        metrics."""
        dispatch = call.dispatch
        if dispatch is None:
            return
        call.dispatch = None
        pool = call.state.pool
        now = time.monotonic()
        replica_id = dispatch.replica_id
        breaker = pool.breaker_of(replica_id)
        if breaker is None:
            pool.finish(dispatch, now, ok=ok)
        else:
            ejections = breaker.ejections
            was_open = breaker.ejected_until is not None
            pool.finish(dispatch, now, ok=ok)
            if breaker.ejections > ejections:
                self.metrics.ejection(call.state.model, replica_id, "passive")
            elif was_open and breaker.ejected_until is None:
                self.metrics.readmission(call.state.model, replica_id, "passive")
        if ok is not None and replica_id.isdigit():
            counters = self.table.counters(int(replica_id))
            counters.requests += 1
            if ok:
                counters.latency_sum += now - dispatch.started_at
            else:
                counters.errors += 1


# [call, receive, its task, deadline]: what a watch needs; emptied when the request ends before
Ticket = list[Any]


def _start_watch(
    loop: asyncio.AbstractEventLoop, call: Call, receive: Receive, task: asyncio.Task[Any], deadline: float
) -> None:
    if not (call.served or call.done):
        call.watcher = loop.create_task(_watch(receive, call, task, deadline))


class _Watchlist:
    """Plain requests to watch once they have run WATCH_AFTER seconds, in order of arrival (so in order of
    when they are due), under one timer: adding one costs an append, not a timer of its own. A request
    that ends empties its ticket (so that nothing of it is kept until its turn comes); empty tickets are
    dropped when their turn comes."""

    __slots__ = ("_loop", "_queue", "_timer")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[tuple[float, Ticket]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, loop: asyncio.AbstractEventLoop, due: float, ticket: Ticket) -> None:
        if loop is not self._loop:
            self.clear()
            self._loop = loop
        self._queue.append((due, ticket))
        if self._timer is None:
            self._timer = loop.call_at(due, self._fire)

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer = None
        queue = self._queue
        now = loop.time() + CLOCK_SLACK  # the loop's clock may tick in whole milliseconds
        while queue and queue[0][0] <= now:
            ticket = queue.popleft()[1]
            if ticket:
                call, receive, task, deadline = ticket
                _start_watch(loop, call, receive, task, deadline)
        if queue:
            self._timer = loop.call_at(queue[0][0], self._fire)

    def clear(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._loop = None


async def _watch(receive: Receive, call: Call, task: asyncio.Task[Any], deadline: float) -> None:
    """Cancel the request's task when its client disconnects before the answer is complete, or when the
    model's timeout is up. (Once the answer is complete uvicorn's receive() says "disconnect" too: then
    `done` is set and nothing happens.)"""
    try:
        async with asyncio.timeout_at(deadline):
            message = await receive()
    except TimeoutError:
        if not call.done:
            call.timed_out = True
            task.cancel()
        return
    if message["type"] == "http.disconnect" and not call.done:
        call.client_gone = True
        task.cancel()


def _str(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
