"""The FastAPI application factory. It knows the services, never the store or the backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from aidc import __version__
from aidc.api.errors import install_error_handlers
from aidc.api.middleware import RequestContext
from aidc.api.routers import (
    artifacts,
    audit,
    backups,
    cluster,
    energy,
    identity,
    jobs,
    meta,
    serving,
    simulations,
    telemetry,
)
from aidc.api.schemas import ErrorOut, ProblemOut
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
    app.include_router(telemetry.router)
    app.include_router(serving.router)
    app.include_router(energy.router)
    app.include_router(simulations.router)
    # A chunk upload is one raw chunk: its route takes that much, every other route `max_body_bytes`.
    limits = {"/v1/artifacts/chunks/": CHUNK_SIZE + 4096}
    app.add_middleware(RequestContext, max_body_bytes=max_body_bytes, limits=limits)
    app.openapi = lambda: _with_common_errors(app)  # type: ignore[method-assign]
    return app


# What any route may answer besides its own responses, all with the ErrorOut body: the body cap and a NUL
# in the query (middleware) everywhere; sign-in failures and their rate limit wherever a token is needed (the
# API and /metrics: Prometheus scrapes with a bearer token, as series name jobs, users and nodes).
_EVERYWHERE = {"413": "Request body too large", "422": "Invalid input: the field and the problem"}
_WITH_TOKEN = {"401": "Missing, invalid or expired token", "403": "Not allowed", "429": "Too many failed sign-ins"}


def _with_common_errors(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the errors every route can answer declared, and FastAPI's own 422
    schema replaced by ours (the handlers turn every validation error into ErrorOut)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    schema.setdefault("components", {}).setdefault("schemas", {})
    schema["components"]["schemas"].setdefault(
        "ErrorOut", ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    schema["components"]["schemas"].setdefault("ProblemOut", ProblemOut.model_json_schema())
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            common = _EVERYWHERE | (_WITH_TOKEN if path.startswith("/v1/") or path == "/metrics" else {})
            for status, description in common.items():
                if status == "422" or status not in responses:
                    responses[status] = {
                        "description": responses.get(status, {}).get("description", description),
                        **error,
                    }
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    app.openapi_schema = schema
    return schema
