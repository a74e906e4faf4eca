"""The FastAPI application factory. It knows the services, never the store or the backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from aidc import __version__
from aidc.api.errors import install_error_handlers
from aidc.api.middleware import RequestContext
from aidc.api.routers import artifacts, audit, backups, cluster, identity, jobs, meta
from aidc.services.bundle import Services
from aidc.storage.chunks import CHUNK_SIZE

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(services: Services, lifespan: Lifespan | None = None, max_body_bytes: int = 1 << 20) -> FastAPI:
    @asynccontextmanager
    async def _no_lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="aidc",
        version=__version__,
        description="The control plane of an AI datacenter. Every /v1 endpoint needs `Authorization: Bearer TOKEN`.",
        lifespan=lifespan or _no_lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(meta.router)
    app.include_router(jobs.router)
    app.include_router(cluster.router)
    app.include_router(identity.router)
    app.include_router(audit.router)
    app.include_router(artifacts.router)
    app.include_router(backups.router)
    # A chunk upload is one raw chunk: its route takes that much, every other route `max_body_bytes`.
    limits = {"/v1/artifacts/chunks/": CHUNK_SIZE + 4096}
    app.add_middleware(RequestContext, max_body_bytes=max_body_bytes, limits=limits)
    return app
