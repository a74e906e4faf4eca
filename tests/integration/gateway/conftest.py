"""The gateway served by uvicorn (uvloop, httptools) on a loopback port, in front of stub replicas
(tests/integration/gateway/stubs.py), with an in-memory fake Backplane.

FakeBackplane stands in for the control plane's services (token authentication, deployments' routes,
reports and usage), which are wired to the gateway and tested separately: here it answers from dicts and
records what the gateway tells it, so that a test can wait for a report or a usage record (it is told on
each one, no polling)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import openai
import pytest
import uvicorn

from aidc.domain.errors import Unauthenticated
from aidc.domain.serving import GatewayReport, UsageRecord
from aidc.gateway.app import GatewayApp, create_gateway_app
from aidc.gateway.backplane import ModelRoute, Upstream
from aidc.gateway.config import GatewayConfig
from aidc.gateway.health import HealthConfig
from aidc.gateway.limits import Limits
from aidc.gateway.protocol import CoalescingHttpToolsProtocol
from aidc.security.rbac import Binding, Principal, Role
from tests.integration.gateway.stubs import StubReplica

PRINCIPALS = {
    "tok-alice": Principal("alice", (Binding(Role.MEMBER, "ml"),), token_id=1, teams=frozenset({"ml"})),
    "tok-bob": Principal("bob", (Binding(Role.MEMBER, "ml"),), token_id=2, teams=frozenset({"ml"})),
    "tok-other-only": Principal(
        "carol", (Binding(Role.INFERENCE, "ml", models=("other",)),), token_id=3, teams=frozenset({"ml"})
    ),
    "tok-viewer": Principal("victor", (Binding(Role.VIEWER, "ml"),), token_id=4, teams=frozenset({"ml"})),
    "tok-admin": Principal("admin", (Binding(Role.ADMIN),), token_id=5),
}


class FakeBackplane:
    """In memory; see the module's docstring."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._routes: list[ModelRoute] = []
        self._seen: set[str] = set()
        self.reports: dict[int, GatewayReport] = {}
        self.usage: list[UsageRecord] = []
        self.route_calls = 0
        self.authentications = 0  # calls of authenticate (the slow path: the database, scrypt)
        self.auth_delay = 0.0  # seconds each of them takes

    def cached(self, authorization: str | None, client: str | None) -> Principal | None:
        token = _token(authorization)
        with self._lock:
            return PRINCIPALS.get(token) if token in self._seen else None

    def authenticate(self, authorization: str | None, client: str | None) -> Principal:
        with self._lock:
            self.authentications += 1
        if self.auth_delay:
            time.sleep(self.auth_delay)
        token = _token(authorization)
        if token is None:
            raise Unauthenticated("no API token (send Authorization: Bearer TOKEN)")
        principal = PRINCIPALS.get(token)
        if principal is None:
            raise Unauthenticated("unknown API token")
        with self._lock:
            self._seen.add(token)
        return principal

    def routes(self) -> Sequence[ModelRoute]:
        with self._lock:
            self.route_calls += 1
            self._lock.notify_all()
            return list(self._routes)

    def set_routes(self, routes: Sequence[ModelRoute]) -> None:
        with self._lock:
            self._routes = list(routes)

    def report(self, reports: Sequence[GatewayReport]) -> None:
        with self._lock:
            for r in reports:
                self.reports[r.job_id] = r
            self._lock.notify_all()

    def record_usage(self, records: Sequence[UsageRecord]) -> None:
        with self._lock:
            self.usage.extend(records)
            self._lock.notify_all()

    def wait_for(self, predicate: Callable[[FakeBackplane], Any], timeout: float = 10.0, what: str = "") -> None:
        """Wait until `predicate(self)` holds; re-checked on each call from the gateway."""
        with self._lock:
            assert self._lock.wait_for(lambda: predicate(self), timeout), f"timed out waiting for {what}"

    def ready(self, job_id: int) -> bool:
        """The last report on the replica says it is ready."""
        report = self.reports.get(job_id)
        return report is not None and report.ready

    def ejected(self, job_id: int) -> bool:
        """The last report on the replica says it is not ready."""
        report = self.reports.get(job_id)
        return report is not None and not report.ready

    def next_routes_call(self) -> Callable[[FakeBackplane], bool]:
        """A predicate true once the gateway has asked for the routes again (after a change)."""
        with self._lock:
            mark = self.route_calls
        return lambda b: b.route_calls >= mark + 2

    def tokens_used(self, token_id: int) -> tuple[int, int, int]:
        with self._lock:
            mine = [r for r in self.usage if r.token_id == token_id]
            return (
                sum(r.requests for r in mine),
                sum(r.prompt_tokens for r in mine),
                sum(r.completion_tokens for r in mine),
            )


def _token(authorization: str | None) -> str | None:
    if not authorization or not authorization.startswith("Bearer "):
        return None
    return authorization.removeprefix("Bearer ").strip()


def route(
    model: str,
    *stubs: StubReplica | str,
    policy: str = "round_robin",
    timeout: float = 30.0,
    canary: Sequence[StubReplica] = (),
    canary_weight: float = 0.0,
    first_job: int = 100,
) -> ModelRoute:
    """A route to the stubs (or bare urls), with job ids first_job, first_job + 1, ..."""
    upstreams = [
        Upstream(first_job + i, s if isinstance(s, str) else s.url, 1, canary=s in canary) for i, s in enumerate(stubs)
    ]
    return ModelRoute(model, model, policy, timeout, "/health", tuple(upstreams), canary_weight)


FAST = GatewayConfig(
    gateway_id="test-gateway",
    route_refresh_interval=0.05,
    probe_interval=0.1,
    probe_timeout=0.5,
    report_interval=0.05,
    connect_timeout=1.0,
    health=HealthConfig(failure_threshold=2, base_ejection=0.5, max_ejection=1.0),
    seed=7,
)


@dataclass
class Gateway:
    app: GatewayApp
    backplane: FakeBackplane
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    clients: list[openai.OpenAI] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str = "tok-alice") -> openai.OpenAI:  # noqa: S107 (a test token)
        c = openai.OpenAI(base_url=f"{self.url}/v1", api_key=token, max_retries=0, timeout=20)
        self.clients.append(c)
        return c

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.server.should_exit = True
        self.thread.join(10)


def serve(app: GatewayApp, backplane: FakeBackplane) -> Gateway:
    """Serve `app` the way the gateway is meant to be served (uvicorn, uvloop, httptools' protocol with its
    writes joined: aidc.gateway.protocol) on a socket bound here; returns once its lifespan has started
    (told by the lifespan's own message, not by polling)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    started = threading.Event()
    outcome: list[str] = []

    async def observed(scope: Any, receive: Any, send: Any) -> None:
        async def tell(message: Any) -> None:
            if message["type"] in ("lifespan.startup.complete", "lifespan.startup.failed"):
                outcome.append(message["type"])
                started.set()
            await send(message)

        await app(scope, receive, tell if scope["type"] == "lifespan" else send)

    config = uvicorn.Config(
        observed, loop="uvloop", http=CoalescingHttpToolsProtocol, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="gateway", daemon=True)
    thread.start()
    assert started.wait(15), "the gateway's lifespan did not start"
    assert outcome == ["lifespan.startup.complete"], outcome
    return Gateway(app, backplane, sock.getsockname()[1], server, thread)


@pytest.fixture
def backplane() -> FakeBackplane:
    return FakeBackplane()


@pytest.fixture
def stubs() -> Iterator[Callable[..., StubReplica]]:
    """Start stub replicas: stubs("a", delay=0.05)."""
    started: list[StubReplica] = []

    def start(name: str, **knobs: Any) -> StubReplica:
        stub = StubReplica(name, **knobs).start()
        started.append(stub)
        return stub

    yield start
    for stub in started:
        if stub.gate is not None:
            stub.gate.set()
        stub.stop()


@pytest.fixture
def gateway(backplane: FakeBackplane) -> Iterator[Callable[..., Gateway]]:
    """Start a gateway: gateway(route(...), ..., limits=Limits(...)). Its lifespan has taken the routes and
    checked the replicas once before it answers the first request."""
    running: list[Gateway] = []

    def start(*routes: ModelRoute, limits: Limits | None = None, **overrides: Any) -> Gateway:
        backplane.set_routes(routes)
        config = replace(FAST, limits=limits or Limits(), **overrides)
        gw = serve(create_gateway_app(backplane, config), backplane)
        running.append(gw)
        return gw

    yield start
    for gw in running:
        gw.stop()


@pytest.fixture
def free_url() -> str:
    """The address of a port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
