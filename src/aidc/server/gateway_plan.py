"""The inference gateway beside the API (`aidc up`, on its own port) or alone (`aidc gateway`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator

import uvicorn

from aidc.gateway.app import GatewayApp, create_gateway_app
from aidc.gateway.config import GatewayConfig
from aidc.gateway.limits import load_limits
from aidc.gateway.protocol import CoalescingHttpToolsProtocol
from aidc.gateway.store_backplane import ServingBackplane
from aidc.gateway.telemetry_feed import LoopReader
from aidc.ports import Store
from aidc.services.auth import AuthService
from aidc.settings import Settings

log = logging.getLogger(__name__)


def gateway_config(settings: Settings) -> GatewayConfig:
    limits = load_limits(settings.gateway_limits) if settings.gateway_limits else None
    ident = f"{socket.gethostname()}:{settings.gateway_port}:{os.getpid()}"
    return GatewayConfig(gateway_id=ident, limits=limits) if limits else GatewayConfig(gateway_id=ident)


def server_config(settings: Settings, store: Store, auth: AuthService) -> uvicorn.Config:
    """uvicorn's settings for the gateway app; it serves a socket bound beforehand (see bind)."""
    return uvicorn.Config(
        create_gateway_app(ServingBackplane(store, auth), gateway_config(settings)),
        http=CoalescingHttpToolsProtocol,  # a response's head and body in one write
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )


def bind(host: str, port: int) -> socket.socket:
    """The gateway's listening socket, bound before anything starts, so that a port in use is one clear
    line rather than uvicorn's exit from inside the running event loop."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValueError(
            f"gateway port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "choose another with --gateway-port, or --no-gateway"
        ) from None
    sock.set_inheritable(True)
    return sock


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the API server it runs beside (it is stopped by that
    server's shutdown, after the gateway's last usage was written)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class GatewayRunner:
    """Serves the gateway app on the running event loop, started and stopped by the API's lifespan."""

    def __init__(self, settings: Settings, store: Store, auth: AuthService) -> None:
        self._server = _QuietServer(server_config(settings, store, auth))
        app = self._server.config.app
        assert isinstance(app, GatewayApp)
        # The control plane's telemetry reads the gateway's metrics through this (see telemetry_feed).
        self.metrics = LoopReader(app.metrics)
        self._task: asyncio.Task[None] | None = None
        self._port = settings.gateway_port
        self._socket = bind(settings.host, settings.gateway_port or 0)

    async def start(self) -> None:
        self.metrics.bind(asyncio.get_running_loop())
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():  # uvicorn exits when it cannot bind
                raise RuntimeError(f"the gateway cannot listen on port {self._port} (in use?)")
            await asyncio.sleep(0.02)
        log.info("gateway listening on port %s", self._port)

    async def stop(self) -> None:
        self.metrics.unbind()
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(BaseException):
            await self._task


def serve_gateway(settings: Settings) -> None:
    """`aidc gateway`: the gateway alone, on the control plane's database (tokens, deployments, usage).
    Run several behind a load balancer; each reports what it sees and the control plane sums them."""
    from aidc.control.clock import SystemClock
    from aidc.security.keys import load_or_create
    from aidc.server.build import AUDIT_KEY_FILE
    from aidc.services.audit_log import AuditLog
    from aidc.store.migrate import current_revision, head_revision
    from aidc.store.sql_store import SqlStore

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = settings.data_dir.expanduser().resolve()
    url = settings.database_url or f"sqlite:///{data_dir / 'aidc.db'}"
    if current_revision(url) != head_revision():
        raise ValueError(f"{url}: no aidc database at the current schema; start `aidc up` on it first")
    sock = bind(settings.host, settings.gateway_port or 0)
    audit_key = load_or_create(data_dir / AUDIT_KEY_FILE, settings.audit_key, "AIDC_AUDIT_KEY")
    store = SqlStore(url, audit_key=audit_key)
    clock = SystemClock()
    auth = AuthService(store, clock, AuditLog(store, clock))
    config = server_config(settings, store, auth)
    log.info("gateway on %s:%s, control plane database %s", settings.host, settings.gateway_port, data_dir)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        store.close()
