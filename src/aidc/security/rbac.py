"""The pure permission evaluator: may this principal perform this action on something of this team?

A principal holds role bindings, each "role in scope" where the scope is the whole cluster or one team.
One table says what each role may do; `is_allowed` is the only rule that reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Action(StrEnum):
    JOB_SUBMIT = "job.submit"
    JOB_READ = "job.read"
    JOB_CANCEL = "job.cancel"
    QUEUE_READ = "queue.read"
    QUEUE_WRITE = "queue.write"
    NODE_READ = "node.read"
    NODE_WRITE = "node.write"  # drain, cordon, return to service
    ARTIFACT_READ = "artifact.read"
    ARTIFACT_WRITE = "artifact.write"
    USER_READ = "user.read"  # users, teams and their bindings
    USER_WRITE = "user.write"  # create and disable users, teams, bindings; tokens of other users
    AUDIT_READ = "audit.read"
    BACKUP = "backup"  # create, list, verify backups of the control plane and artifacts
    MODEL_INFER = "model.infer"  # call the inference gateway


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    MEMBER = "member"
    VIEWER = "viewer"
    INFERENCE = "inference"


_READ = frozenset({Action.JOB_READ, Action.QUEUE_READ, Action.NODE_READ, Action.ARTIFACT_READ, Action.USER_READ})

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.OPERATOR: frozenset(Action) - {Action.USER_WRITE, Action.BACKUP},
    Role.MEMBER: _READ | {Action.JOB_SUBMIT, Action.JOB_CANCEL, Action.ARTIFACT_WRITE, Action.MODEL_INFER},
    Role.VIEWER: _READ,
    Role.INFERENCE: frozenset({Action.MODEL_INFER}),
}

# What any team-scoped binding grants on things that belong to no team: seeing the cluster's nodes and
# queues (as anyone with a Slurm login may run sinfo), never changing them.
_TEAMLESS_FROM_TEAM_SCOPE = frozenset({Action.NODE_READ, Action.QUEUE_READ})


@dataclass(frozen=True)
class Binding:
    """`role` in `team`, or in the whole cluster when team is None. `models` limits an inference binding
    to the served models named (empty: every model)."""

    role: Role
    team: str | None = None  # None: the whole cluster
    models: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.role} in {'cluster' if self.team is None else 'team ' + self.team}"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user behind the token, what they are bound to, and what the token allows.

    `scopes` (None: unrestricted) narrows what this token may do below what its user may do.
    `request_id` and `client` describe the request, for the audit log."""

    name: str
    bindings: tuple[Binding, ...] = ()
    token_id: int | None = None
    scopes: frozenset[Action] | None = None
    request_id: str | None = None
    client: str | None = None
    teams: frozenset[str] = field(default=frozenset())  # every team the user belongs to, whatever the role

    @property
    def roles(self) -> str:
        """The bindings, for messages: "admin in cluster, member in team ml"."""
        return ", ".join(str(b) for b in self.bindings) or "no role"


def is_allowed(principal: Principal, action: Action, team: str | None = None) -> bool:
    """May `principal` do `action` on something of `team` (None: something that belongs to no team,
    such as a node, or the whole cluster)?"""
    if principal.scopes is not None and action not in principal.scopes:
        return False
    for binding in principal.bindings:
        if action not in ROLE_ACTIONS[binding.role]:
            continue
        if binding.team is None or binding.team == team:
            return True
        if team is None and action in _TEAMLESS_FROM_TEAM_SCOPE:
            return True
    return False


def teams_allowed(principal: Principal, action: Action) -> frozenset[str] | None:
    """The teams on whose things `principal` may do `action`; None means every team (a cluster binding)."""
    if principal.scopes is not None and action not in principal.scopes:
        return frozenset()
    teams: set[str] = set()
    for binding in principal.bindings:
        if action in ROLE_ACTIONS[binding.role]:
            if binding.team is None:
                return None
            teams.add(binding.team)
    return frozenset(teams)


def allowed_anywhere(principal: Principal, action: Action) -> bool:
    """May `principal` do `action` in some scope (its own things, say, whatever their team)?"""
    return teams_allowed(principal, action) != frozenset()


def may_infer(principal: Principal, model: str) -> bool:
    """May `principal` call the gateway for `model`? Inference bindings may be limited to some models;
    the other roles that grant inference (admin, operator, member) reach every model."""
    if principal.scopes is not None and Action.MODEL_INFER not in principal.scopes:
        return False
    for binding in principal.bindings:
        if Action.MODEL_INFER not in ROLE_ACTIONS[binding.role]:
            continue
        if binding.role != Role.INFERENCE or not binding.models or model in binding.models:
            return True
    return False


def parse_scopes(values: Iterable[str]) -> frozenset[Action]:
    """Token scopes from their names ("job.read"); ValueError names the first unknown one."""
    known = {a.value: a for a in Action}
    scopes: set[Action] = set()
    for value in values:
        if value not in known:
            raise ValueError(f"unknown scope {value!r} (scopes: {', '.join(sorted(known))})")
        scopes.add(known[value])
    return frozenset(scopes)
