"""Request dependencies: the services and the authenticated principal."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from starlette.concurrency import run_in_threadpool

from aidc.domain.errors import PermissionDenied
from aidc.security.rbac import Principal
from aidc.services.bundle import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


# The dashboard's sign-in: the API token in an HttpOnly, SameSite=Strict cookie (`aidc.web`). A write signed
# in by the cookie alone must also carry DASHBOARD_HEADER, which a form or link from another site cannot send.
SESSION_COOKIE = "aidc_session"
DASHBOARD_HEADER = "X-Aidc-Dashboard"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cookie_authorization(request: Request) -> str | None:
    """`Bearer <token>` from the dashboard's cookie, None without one. Raises PermissionDenied for a write
    that has the cookie but not the dashboard's header."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    if request.method not in _SAFE_METHODS and request.headers.get(DASHBOARD_HEADER) != "1":
        raise PermissionDenied(f"a write signed in by the dashboard's cookie needs the {DASHBOARD_HEADER}: 1 header")
    return f"Bearer {token}"


async def get_principal(
    request: Request, services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    client = request.client.host if request.client else None
    request_id = getattr(request.state, "request_id", None)
    if authorization is None:
        authorization = cookie_authorization(request)
    # Known tokens are checked in memory on the event loop; only an unknown one, or a use worth writing
    # down (a new client address, the last-used time), costs a thread and the database.
    principal = services.auth.cached(authorization, client)
    if principal is None:
        principal = await run_in_threadpool(services.auth.authenticate, authorization, client, request_id)
    return replace(principal, request_id=request_id, client=client)


PrincipalDep = Annotated[Principal, Depends(get_principal)]

# Ids are 32-bit on PostgreSQL (INTEGER columns); a larger number names nothing, and must not reach the
# database as an overflow. Sequence numbers and byte offsets are 64-bit.
MAX_ID = 2**31 - 1
MAX_SEQ = 2**63 - 1
MAX_OFFSET = 2**53  # far past any log file, and exact in a JSON number
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
TokenId = Annotated[int, Path(ge=1, le=MAX_ID)]
