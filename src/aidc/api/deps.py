"""Request dependencies: the services and the authenticated principal."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from aidc.security.rbac import Principal
from aidc.services.bundle import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(
    request: Request, services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    client = request.client.host if request.client else None
    request_id = getattr(request.state, "request_id", None)
    # Known tokens are checked in memory on the event loop; only an unknown one, or a use worth writing
    # down (a new client address, the last-used time), costs a thread and the database.
    principal = services.auth.cached(authorization, client)
    if principal is None:
        principal = await run_in_threadpool(services.auth.authenticate, authorization, client, request_id)
    return replace(principal, request_id=request_id, client=client)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
