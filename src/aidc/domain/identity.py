"""Who may use the cluster, as stored: users, teams, role bindings, API tokens, and audit entries.

Plain records; what a role allows is decided in aidc.security.rbac, never here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Users and teams are named like Kubernetes namespaces or Slurm accounts, so the names travel.
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
NAME_RULE = "1-63 characters: lower-case letters, digits, '.', '_' or '-', starting and ending with a letter or digit"


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid user or team name, or None."""
    return None if NAME_PATTERN.match(name) else f"{name!r} is not a valid name ({NAME_RULE})"


@dataclass(frozen=True)
class User:
    name: str
    created_at: datetime
    disabled_at: datetime | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True)
class Team:
    name: str
    created_at: datetime


@dataclass(frozen=True)
class RoleBindingRecord:
    """`user` has `role` in `team` (None: the whole cluster)."""

    id: int
    user: str
    role: str
    team: str | None
    created_at: datetime
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str  # a label for people
    user: str
    prefix: str
    token_hash: str
    created_at: datetime
    scopes: tuple[str, ...] | None = None  # None: whatever the user may do
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    clients: tuple[str, ...] = ()  # client addresses it was used from
    revoked: bool = False


@dataclass(frozen=True)
class AuditEntry:
    """One thing to append to the audit log; the store gives it its place in the chain."""

    at: datetime
    actor: str
    action: str
    target: str
    outcome: str  # "ok", "denied", "failed"
    request_id: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


GENESIS = "0" * 64  # the prev_hash of the first audit record


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit entry in its place in the chain (aidc.security.audit): `seq` counts from 1, `prev_hash` is
    the hash of the record before, `hash` this record's own."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    request_id: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""
