"""Health, readiness and published schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aidc import __version__
from aidc.api.deps import PrincipalDep, ServicesDep
from aidc.api.schemas import HealthOut
from aidc.domain.jobs import JobSpec

router = APIRouter(tags=["meta"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness (no auth)")
def healthz() -> HealthOut:
    return HealthOut(status="ok", detail={"version": __version__})


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}}, summary="Readiness (no auth)")
def readyz(services: ServicesDep) -> Any:
    ready, detail = services.ready()
    body = HealthOut(status="ready" if ready else "not ready", detail=dict(detail))
    return JSONResponse(status_code=200 if ready else 503, content=body.model_dump())


@router.get("/v1/schemas/jobspec", summary="JSON Schema of a job spec")
def jobspec_schema(_: PrincipalDep) -> dict[str, Any]:
    return jobspec_json_schema()


def jobspec_json_schema() -> dict[str, Any]:
    schema = JobSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://aidc.dev/schemas/jobspec.json"
    return schema
