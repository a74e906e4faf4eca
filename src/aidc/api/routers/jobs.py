from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from aidc.api.deps import MAX_ID, MAX_OFFSET, JobId, PrincipalDep, ServicesDep
from aidc.api.responses import errors
from aidc.api.schemas import JobDetailOut, JobOut
from aidc.api.views import job_detail_out, job_out
from aidc.domain.jobs import JobSpec, JobState

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
_ERRORS = errors(404, 409)


@router.post(
    "",
    status_code=201,
    response_model=JobOut,
    responses=_ERRORS,
    summary="Submit a job",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}},
        }
    },
)
async def submit(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    """The job is stored (committed) before this returns; it is PENDING until the scheduler starts it."""
    # The hot path of the API: the body is parsed and validated in one pass by pydantic-core, and the
    # answer is serialized once (no second validation of the response model).
    spec = JobSpec.model_validate_json(await request.body())
    job = await run_in_threadpool(services.jobs.submit, principal, spec)
    return Response(job_out(job).model_dump_json(), status_code=201, media_type="application/json")


@router.get("", response_model=list[JobOut], responses=_ERRORS, summary="List jobs")
def list_jobs(
    services: ServicesDep,
    principal: PrincipalDep,
    state: Annotated[list[JobState] | None, Query(description="Repeat to match several states")] = None,
    queue: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[JobOut]:
    """The newest `limit` jobs that match, oldest first."""
    return [job_out(j) for j in services.jobs.list(principal, states=state, queue=queue, limit=limit)]


@router.get("/{job_id}", response_model=JobDetailOut, responses=_ERRORS, summary="Show a job and its attempts")
def show(job_id: JobId, services: ServicesDep, principal: PrincipalDep) -> JobDetailOut:
    return job_detail_out(services.jobs.get(principal, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, responses=_ERRORS, summary="Cancel a job")
def cancel(job_id: JobId, services: ServicesDep, principal: PrincipalDep) -> JobOut:
    """A running job is sent SIGTERM, then SIGKILL after the grace period."""
    return job_out(services.jobs.cancel(principal, job_id))


@router.get(
    "/{job_id}/logs",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"text/plain": {}}}},
    summary="Read a job's output",
)
def logs(
    job_id: JobId,
    services: ServicesDep,
    principal: PrincipalDep,
    attempt: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Default: the latest attempt")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=16 << 20)] = 1 << 20,
) -> Response:
    """Output bytes from `offset`. Headers: X-Aidc-Attempt, X-Aidc-Next-Offset (pass it back as `offset` to
    follow), X-Aidc-Complete ("true" once the attempt has ended and all its output was read)."""
    chunk = services.jobs.logs(principal, job_id, attempt, offset, limit)
    return Response(
        content=chunk.data,
        media_type="text/plain; charset=utf-8",
        headers={
            "X-Aidc-Attempt": str(chunk.attempt),
            "X-Aidc-Next-Offset": str(chunk.next_offset),
            "X-Aidc-Complete": "true" if chunk.complete else "false",
        },
    )
