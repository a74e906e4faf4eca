"""Request dependencies: the services and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from aidc.security.rbac import Principal
from aidc.services.bundle import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_principal(services: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return services.auth.authenticate(authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
