"""Every error a client can cause becomes a JSON body naming the field and the problem; never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from aidc.api.schemas import ErrorOut, ProblemOut
from aidc.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied, TooManyRequests, Unauthenticated
from aidc.storage.errors import BackupError, StorageError

log = logging.getLogger(__name__)

# FastAPI prefixes the location of a body field with "body"; users know the field by its path in the spec.
_LOCATION_ROOTS = {"body", "query", "path", "header"}


def problems_from_pydantic(errors: list[Any]) -> list[ProblemOut]:
    problems = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in _LOCATION_ROOTS:
            loc = loc[1:]
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        problems.append(ProblemOut(field=".".join(loc), problem=msg))
    return problems


def _body(
    status: int, detail: str, problems: list[ProblemOut] | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    content = ErrorOut(detail=detail, errors=problems or []).model_dump()
    return JSONResponse(status_code=status, content=content, headers=dict(headers) if headers else None)


def _summary(problems: list[ProblemOut]) -> str:
    return "; ".join(f"{p.field}: {p.problem}" if p.field else p.problem for p in problems)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = problems_from_pydantic(list(exc.errors()))
        return _body(422, _summary(problems) or "invalid request", problems)

    @app.exception_handler(ValidationError)
    async def _pydantic(_: Request, exc: ValidationError) -> JSONResponse:
        problems = problems_from_pydantic(list(exc.errors()))
        return _body(422, _summary(problems), problems)

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        problems = [ProblemOut(field=p.field, problem=p.problem) for p in exc.problems]
        return _body(422, _summary(problems), problems)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _body(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _body(409, str(exc))

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        return _body(401, str(exc), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(PermissionDenied)
    async def _denied(_: Request, exc: PermissionDenied) -> JSONResponse:
        return _body(403, str(exc))

    @app.exception_handler(TooManyRequests)
    async def _too_many(_: Request, exc: TooManyRequests) -> JSONResponse:
        return _body(429, str(exc), headers={"Retry-After": str(round(exc.retry_after))})

    @app.exception_handler(BackupError)
    async def _backup(_: Request, exc: BackupError) -> JSONResponse:
        # A backup that fails its checks, or a key that does not fit: the operator's to act on, never a 500.
        return _body(409, str(exc))

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        # Not the client's doing (a corrupt chunk on the server's disk): say what, log it, 500.
        log.error("storage error on %s %s: %s", request.method, request.url.path, exc)
        return _body(500, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (not JSON, not UTF-8): invalid input
            problem = ProblemOut(field="body", problem="not valid JSON (UTF-8)")
            return _body(422, f"body: {problem.problem}", [problem])
        return _body(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _body(500, "internal error; the server log has the details")
