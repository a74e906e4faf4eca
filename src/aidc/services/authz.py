"""The one place where permissions are checked."""

from __future__ import annotations

from aidc.domain.errors import PermissionDenied
from aidc.security.rbac import Action, Principal, is_allowed


def authorize(principal: Principal, action: Action) -> None:
    if not is_allowed(principal, action):
        raise PermissionDenied(f"{principal.name} ({principal.role}) may not {action}")
