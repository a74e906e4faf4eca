"""Artifacts: chunk upload and download, versions, deletion."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from aidc.api.deps import MAX_ID, PrincipalDep, ServicesDep
from aidc.api.identity_schemas import (
    ArtifactCreate,
    ArtifactCreated,
    ArtifactDeleted,
    ArtifactDetailOut,
    ArtifactOut,
    MissingIn,
    MissingOut,
)
from aidc.api.responses import errors
from aidc.domain.artifacts import ArtifactKind, ArtifactVersion, Retention

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])
_ERRORS = errors(404)
TeamQuery = Annotated[str | None, Query(max_length=63, description="Default: your team")]
DIGEST = r"^[0-9a-f]{64}$"


def artifact_out(v: ArtifactVersion) -> ArtifactOut:
    files = len(json.loads(v.manifest).get("files", []))
    return ArtifactOut(
        name=v.name, team=v.team, version=v.version, kind=v.kind.value, size=v.size, files=files,
        metrics=dict(v.metrics), job_id=v.job_id, created_by=v.created_by, created_at=v.created_at,
    )  # fmt: skip


@router.post("/chunks/missing", response_model=MissingOut, responses=_ERRORS, summary="Which chunks to upload")
def missing(body: MissingIn, services: ServicesDep, principal: PrincipalDep) -> MissingOut:
    team = services.artifacts.team_of(principal, body.team)
    return MissingOut(team=team, missing=services.artifacts.missing(principal, team, body.digests))


@router.put(
    "/chunks/{digest}",
    status_code=204,
    responses=_ERRORS,
    summary="Upload one chunk (raw bytes that hash to the digest)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {}}}}},
)
async def put_chunk(
    request: Request,
    digest: Annotated[str, Path(pattern=DIGEST)],
    services: ServicesDep,
    principal: PrincipalDep,
    team: TeamQuery = None,
) -> Response:
    data = await request.body()
    await run_in_threadpool(services.artifacts.put_chunk, principal, team, digest, data)
    return Response(status_code=204)


@router.get(
    "/chunks/{digest}",
    responses={**_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
    response_class=Response,
    summary="Download one chunk (verified against its digest)",
)
def get_chunk(
    digest: Annotated[str, Path(pattern=DIGEST)], services: ServicesDep, principal: PrincipalDep, team: TeamQuery = None
) -> Response:
    data = services.artifacts.read_chunk(principal, team, digest)
    return Response(data, media_type="application/octet-stream")


@router.post("", status_code=201, response_model=ArtifactCreated, responses=_ERRORS, summary="Record a version")
def create(body: ArtifactCreate, services: ServicesDep, principal: PrincipalDep) -> ArtifactCreated:
    """After its chunks are uploaded: the next version of the named artifact. Retention runs at once."""
    version, removed = services.artifacts.create(
        principal,
        name=body.name,
        team=body.team,
        manifest=json.dumps(body.manifest),
        kind=ArtifactKind(body.kind),
        metrics=body.metrics,
        retention=Retention(body.keep_last, body.keep_best, body.metric, body.mode),
    )
    return ArtifactCreated(**artifact_out(version).model_dump(), retention_removed=removed)


@router.get("", response_model=list[ArtifactOut], responses=_ERRORS, summary="List artifact versions")
def list_artifacts(
    services: ServicesDep,
    principal: PrincipalDep,
    team: Annotated[str | None, Query(max_length=63, description="Default: every team you may read")] = None,
    name: Annotated[str | None, Query(max_length=128)] = None,
) -> list[ArtifactOut]:
    return [artifact_out(v) for v in services.artifacts.list(principal, team, name)]


@router.get("/{name}", response_model=ArtifactDetailOut, responses=_ERRORS, summary="One version, with its files")
def show(
    name: str,
    services: ServicesDep,
    principal: PrincipalDep,
    team: TeamQuery = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Default: the newest")] = None,
) -> ArtifactDetailOut:
    found = services.artifacts.get(principal, team, name, version)
    return ArtifactDetailOut(**artifact_out(found).model_dump(), manifest=json.loads(found.manifest))


@router.delete("/{name}", response_model=ArtifactDeleted, responses=_ERRORS, summary="Delete versions")
def delete(
    name: str,
    services: ServicesDep,
    principal: PrincipalDep,
    team: TeamQuery = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Default: every version")] = None,
) -> ArtifactDeleted:
    gone = services.artifacts.delete(principal, team, name, version)
    return ArtifactDeleted(versions=gone.versions, chunks_freed=gone.chunks_freed)
