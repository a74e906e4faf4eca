"""Writing the audit log: append in the caller's transaction, or alone for refusals and security events."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aidc.domain.identity import AuditEntry
from aidc.ports import Clock, Store, UnitOfWork
from aidc.security.rbac import Principal

log = logging.getLogger(__name__)

SYSTEM = "aidc"  # the actor of what the control plane does by itself


class AuditLog:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def entry(
        self,
        principal: Principal | None,
        action: str,
        target: str,
        outcome: str = "ok",
        detail: Mapping[str, Any] | None = None,
        *,
        actor: str | None = None,
        request_id: str | None = None,
    ) -> AuditEntry:
        """An entry for `principal` (or `actor` when nobody signed in), with its request id and client address."""
        extra: dict[str, Any] = dict(detail or {})
        if principal is not None and principal.client:
            extra.setdefault("client", principal.client)
        if principal is not None and principal.token_id is not None:
            extra.setdefault("token", principal.token_id)
        return AuditEntry(
            at=self._clock.now(),
            actor=actor or (principal.name if principal is not None else SYSTEM),
            action=action,
            target=target,
            outcome=outcome,
            request_id=request_id or (principal.request_id if principal is not None else None) or "",
            detail=extra,
        )

    def append(self, uow: UnitOfWork, entry: AuditEntry) -> None:
        """In the caller's unit of work: the record commits (or rolls back) with the change it describes."""
        uow.audit.append(entry)

    def event(self, entry: AuditEntry) -> None:
        """Alone, in its own transaction: for refusals and security events, whose request changes nothing.
        A failure to record is logged, never raised: the refusal itself must still reach the caller."""
        try:
            with self._store.unit_of_work() as uow:
                uow.audit.append(entry)
                uow.commit()
        except Exception:
            log.exception("could not append the audit record %s %s", entry.action, entry.target)
        if entry.outcome != "ok":
            log.warning("security event: %s %s by %s (%s)", entry.action, entry.target, entry.actor, entry.outcome)
