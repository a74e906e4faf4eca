"""The audit log: list and verify."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from aidc.api.deps import MAX_SEQ, PrincipalDep, ServicesDep
from aidc.api.identity_schemas import AuditRecordOut, AuditVerifyOut
from aidc.api.responses import errors

router = APIRouter(prefix="/v1/audit", tags=["audit"])
_ERRORS = errors()


@router.get("", response_model=list[AuditRecordOut], responses=_ERRORS, summary="List audit records")
def list_records(
    services: ServicesDep,
    principal: PrincipalDep,
    since: datetime | None = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=63, description='An action, or a prefix ending in "."')] = None,
    after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[AuditRecordOut]:
    """Records in order (oldest first); page with `after_seq` = the last seq seen."""
    records = services.audit.list(principal, since=since, actor=actor, action=action, after_seq=after_seq, limit=limit)
    return [
        AuditRecordOut(
            seq=r.seq,
            at=r.at,
            actor=r.actor,
            action=r.action,
            target=r.target,
            outcome=r.outcome,
            request_id=r.request_id,
            detail=dict(r.detail),
            prev_hash=r.prev_hash,
            hash=r.hash,
        )
        for r in records
    ]


@router.post("/verify", response_model=AuditVerifyOut, responses=_ERRORS, summary="Verify the audit chain")
def verify(services: ServicesDep, principal: PrincipalDep) -> AuditVerifyOut:
    """Walks every record: ok, or the first record edited, removed or reordered (and a head signature that
    does not match, when records were cut off the end)."""
    verdict = services.audit.verify(principal)
    return AuditVerifyOut(
        ok=verdict.ok, records=verdict.records, seq=verdict.seq, problem=verdict.problem, message=str(verdict)
    )
