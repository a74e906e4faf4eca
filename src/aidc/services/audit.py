"""Reading the audit log: list records and verify the chain, for those who may (admins and operators)."""

from __future__ import annotations

from datetime import datetime

from aidc.domain.errors import FieldProblem, InvalidInput
from aidc.domain.identity import AuditRecord
from aidc.ports import Store
from aidc.security import audit as chain
from aidc.security.rbac import Action, Principal
from aidc.services.authz import Guard

MAX_LIST = 10_000


class AuditService:
    """Reading the log: for principals that may (admins and operators)."""

    def __init__(self, store: Store, key: bytes, guard: Guard) -> None:
        self._store = store
        self._key = key
        self._guard = guard

    def list(
        self,
        principal: Principal,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        self._guard.check(principal, Action.AUDIT_READ, target="audit")
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput([FieldProblem("limit", f"must be between 1 and {MAX_LIST}")])
        with self._store.unit_of_work(read_only=True) as uow:
            return uow.audit.list(since=since, actor=actor, action=action, after_seq=after_seq, limit=limit)

    def verify(self, principal: Principal) -> chain.Verdict:
        """Walk the whole chain; the verdict names the first record edited, removed or reordered."""
        self._guard.check(principal, Action.AUDIT_READ, target="audit")
        with self._store.unit_of_work(read_only=True) as uow:
            return chain.verify(uow.audit.scan(), self._key, uow.audit.head_signature())
