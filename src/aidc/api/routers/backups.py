"""Backups of the control plane: create, list, verify (restoring is offline: `aidc backup restore`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from aidc.api.deps import PrincipalDep, ServicesDep
from aidc.api.identity_schemas import BackupCreate, BackupOut, BackupVerifyOut
from aidc.api.responses import errors

router = APIRouter(prefix="/v1/backups", tags=["backups"])
_ERRORS = errors(404, 409)
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"


@router.post("", status_code=201, response_model=BackupOut, responses=_ERRORS, summary="Back up now")
def create(body: BackupCreate, services: ServicesDep, principal: PrincipalDep) -> BackupOut:
    """Copies the database, keys and artifact chunks into one encrypted file at the backup target; returns
    when it is complete (written under a temporary name, then renamed)."""
    info = services.backups.create(principal, body.name)
    return BackupOut(
        name=info.name, target=info.url, size=info.size, created_at=info.created_at, members=len(info.members)
    )


@router.get("", response_model=list[BackupOut], responses=_ERRORS, summary="List backups, oldest first")
def list_backups(services: ServicesDep, principal: PrincipalDep) -> list[BackupOut]:
    return [
        BackupOut(name=b.name, target=b.url, size=b.size, created_at=b.created_at)
        for b in services.backups.list(principal)
    ]


@router.post("/{name}/verify", response_model=BackupVerifyOut, responses=_ERRORS, summary="Verify a backup")
def verify(name: Annotated[str, Path(pattern=NAME)], services: ServicesDep, principal: PrincipalDep) -> BackupVerifyOut:
    """Restores it into a temporary directory, checking every record and every member's SHA-256, then
    checks the database copy is sound. A wrong key or a changed byte is 409 naming the problem."""
    verified = services.backups.verify(principal, name)
    report = verified.report
    return BackupVerifyOut(
        name=name,
        ok=True,
        members=len(report.members),
        bytes=report.total_size,
        message=f"{report}; {verified.summary}",
    )
