"""The pure permission evaluator: may this role perform this action? One table, checked in one place.

Users, teams and scoped roles arrive with the security issue; today every token is an admin token, and the
table already names the actions so that adding roles changes data, not call sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    JOB_SUBMIT = "job.submit"
    JOB_READ = "job.read"
    JOB_CANCEL = "job.cancel"
    QUEUE_READ = "queue.read"
    QUEUE_WRITE = "queue.write"
    NODE_READ = "node.read"


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


_READ = frozenset({Action.JOB_READ, Action.QUEUE_READ, Action.NODE_READ})

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.VIEWER: _READ,
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the name of the token's owner and its role."""

    name: str
    role: Role
    token_id: int | None = None


def is_allowed(principal: Principal, action: Action) -> bool:
    return action in ROLE_ACTIONS.get(principal.role, frozenset())
