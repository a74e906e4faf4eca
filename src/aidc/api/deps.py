"""Request dependencies: the services and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from aidc.security.rbac import Principal
from aidc.services.bundle import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(services: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    # Known tokens are checked in memory on the event loop; only an unknown one costs a thread and a query.
    principal = services.auth.cached(authorization)
    if principal is not None:
        return principal
    return await run_in_threadpool(services.auth.authenticate, authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
