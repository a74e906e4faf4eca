"""The one place where permissions are checked. A refusal is audited before it reaches the caller, and a
burst of refusals by one user raises a security event."""

from __future__ import annotations

import time
from typing import NoReturn

from aidc.domain.errors import NotFound, PermissionDenied
from aidc.security.rbac import Action, Principal, is_allowed, teams_allowed
from aidc.security.signals import BurstCounter
from aidc.services.audit_log import AuditLog

DENIAL_BURST = 20  # refusals of one user within DENIAL_WINDOW seconds that make a security event
DENIAL_WINDOW = 60.0


class Guard:
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self._denials = BurstCounter(DENIAL_BURST, DENIAL_WINDOW)

    def allowed(self, principal: Principal, action: Action, team: str | None = None) -> bool:
        return is_allowed(principal, action, team)

    def check(self, principal: Principal, action: Action, team: str | None = None, *, target: str = "") -> None:
        """Raise PermissionDenied (HTTP 403) unless `principal` may do `action` on something of `team`."""
        if not is_allowed(principal, action, team):
            self._refuse(principal, action, target or (f"team/{team}" if team else "cluster"))

    def check_anywhere(self, principal: Principal, action: Action, *, target: str) -> frozenset[str] | None:
        """The teams in which `principal` may do `action` (None: every team); PermissionDenied (403) when
        there is none: before asking about one thing, whether they may do this at all."""
        teams = teams_allowed(principal, action)
        if teams == frozenset():
            self._refuse(principal, action, target)
        return teams

    def _refuse(self, principal: Principal, action: Action, target: str) -> NoReturn:
        self.deny(principal, action, target)
        raise PermissionDenied(f"{principal.name} ({principal.roles}) may not {action}")

    def hide(self, principal: Principal, action: Action, kind: str, key: object) -> NotFound:
        """The NotFound to raise for something that exists but that `principal` may not even know of
        (another team's job): audited as a refusal, answered as absent (HTTP 404)."""
        self.deny(principal, action, f"{kind}/{key}")
        return NotFound(kind, key)

    def deny(self, principal: Principal, action: Action, target: str) -> None:
        self._audit.event(self._audit.entry(principal, str(action), target, outcome="denied"))
        if self._denials.hit(principal.name, time.monotonic()):
            detail = {"denials": DENIAL_BURST, "window_seconds": DENIAL_WINDOW}
            entry = self._audit.entry(principal, "security.denial_burst", f"user/{principal.name}", "alert", detail)
            self._audit.event(entry)
