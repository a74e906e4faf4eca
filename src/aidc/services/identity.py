"""Identity use cases: users, teams, role bindings and API tokens; who am I."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from aidc.domain.errors import Conflict, FieldProblem, InvalidInput, NotFound
from aidc.domain.identity import RoleBindingRecord, Team, TokenRecord, User, name_problem
from aidc.ports import Clock, Store
from aidc.security.rbac import Action, Principal, Role, parse_scopes
from aidc.security.tokens import generate_token
from aidc.services.audit_log import AuditLog
from aidc.services.auth import AuthService
from aidc.services.authz import Guard

MAX_TOKEN_LIFETIME = timedelta(days=3650)


@dataclass(frozen=True)
class UserDetail:
    user: User
    bindings: list[RoleBindingRecord]


@dataclass(frozen=True)
class NewTokenIssued:
    record: TokenRecord
    token: str  # the secret: returned once, never stored


def _check_name(field: str, name: str) -> None:
    problem = name_problem(name)
    if problem:
        raise InvalidInput([FieldProblem(field, problem)])


def _role(field: str, value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InvalidInput([FieldProblem(field, f"unknown role {value!r} (roles: {roles})")]) from None


class IdentityService:
    def __init__(self, store: Store, clock: Clock, guard: Guard, audit: AuditLog, auth: AuthService) -> None:
        self._store = store
        self._clock = clock
        self._guard = guard
        self._audit = audit
        self._auth = auth  # its cache of verified tokens is dropped whenever who-may-do-what changes

    # ------------------------------------------------------------------------------------------ users

    def create_user(self, principal: Principal, name: str, team: str | None = None, role: str = "member") -> UserDetail:
        """A new user; with `team`, bound to `role` in it, else to `role` in the whole cluster."""
        _check_name("name", name)
        self._guard.check(principal, Action.USER_WRITE, team, target=f"user/{name}")
        parsed = _role("role", role)
        now = self._clock.now()
        with self._store.unit_of_work() as uow:
            if team is not None and uow.identity.get_team(team) is None:
                raise InvalidInput([FieldProblem("team", f"no team {team!r}")])
            uow.identity.add_user(User(name, now))
            binding = uow.identity.add_binding(user=name, role=parsed, team=team, models=(), now=now)
            detail = {"role": parsed.value, "team": team}
            self._audit.append(uow, self._audit.entry(principal, "user.create", f"user/{name}", detail=detail))
            uow.commit()
        self._auth.forget()
        return UserDetail(User(name, now), [binding])

    def list_users(self, principal: Principal) -> list[UserDetail]:
        """Every user for cluster-wide readers; for the others, the users of their teams (and themselves)."""
        teams = self._guard.check_anywhere(principal, Action.USER_READ, target="users")
        with self._store.unit_of_work(read_only=True) as uow:
            users = uow.identity.list_users()
            bindings = uow.identity.bindings()
        by_user: dict[str, list[RoleBindingRecord]] = {}
        for b in bindings:
            by_user.setdefault(b.user, []).append(b)
        details = [UserDetail(u, by_user.get(u.name, [])) for u in users]
        if teams is None:
            return details
        return [d for d in details if d.user.name == principal.name or any(b.team in teams for b in d.bindings)]

    def set_disabled(self, principal: Principal, name: str, disabled: bool) -> User:
        """Disable a user (their tokens stop working at once) or enable them again."""
        self._guard.check(principal, Action.USER_WRITE, target=f"user/{name}")
        if disabled and name == principal.name:
            raise Conflict("you cannot disable yourself")
        now = self._clock.now()
        with self._store.unit_of_work() as uow:
            user = uow.identity.get_user(name)
            if user is None:
                raise NotFound("user", name)
            uow.identity.set_disabled(name, now if disabled else None)
            action = "user.disable" if disabled else "user.enable"
            self._audit.append(uow, self._audit.entry(principal, action, f"user/{name}"))
            uow.commit()
        self._auth.forget()
        return User(name, user.created_at, now if disabled else None)

    # ------------------------------------------------------------------------------------------ teams

    def create_team(self, principal: Principal, name: str) -> Team:
        _check_name("name", name)
        self._guard.check(principal, Action.USER_WRITE, target=f"team/{name}")
        team = Team(name, self._clock.now())
        with self._store.unit_of_work() as uow:
            uow.identity.add_team(team)
            self._audit.append(uow, self._audit.entry(principal, "team.create", f"team/{name}"))
            uow.commit()
        return team

    def list_teams(self, principal: Principal) -> list[tuple[Team, list[RoleBindingRecord]]]:
        """Teams with their members' bindings: every team for cluster-wide readers, else their own teams."""
        self._guard.check_anywhere(principal, Action.USER_READ, target="teams")
        with self._store.unit_of_work(read_only=True) as uow:
            teams = uow.identity.list_teams()
            bindings = uow.identity.bindings()
        return [
            (t, [b for b in bindings if b.team == t.name])
            for t in teams
            if self._guard.allowed(principal, Action.USER_READ, t.name)
        ]

    def add_member(
        self, principal: Principal, team: str, user: str, role: str = "member", models: Sequence[str] = ()
    ) -> RoleBindingRecord:
        """Bind `user` to `role` in `team` (a second role in the same team is a second binding)."""
        self._guard.check(principal, Action.USER_WRITE, team, target=f"team/{team}")
        parsed = _role("role", role)
        if models and parsed != Role.INFERENCE:
            raise InvalidInput([FieldProblem("models", "only an inference binding is limited to models")])
        with self._store.unit_of_work() as uow:
            if uow.identity.get_team(team) is None:
                raise NotFound("team", team)
            if uow.identity.get_user(user) is None:
                raise InvalidInput([FieldProblem("user", f"no user {user!r}")])
            if any(b.team == team and b.role == parsed for b in uow.identity.bindings(user)):
                raise Conflict(f"{user} is already {parsed} in team {team}")
            binding = uow.identity.add_binding(user=user, role=parsed, team=team, models=models, now=self._clock.now())
            detail = {"user": user, "role": parsed.value, "models": list(models)}
            self._audit.append(uow, self._audit.entry(principal, "team.add_member", f"team/{team}", detail=detail))
            uow.commit()
        self._auth.forget()
        return binding

    # ----------------------------------------------------------------------------------------- tokens

    def create_token(
        self,
        principal: Principal,
        *,
        user: str | None = None,
        name: str = "",
        expires_in: timedelta | None = None,
        scopes: Sequence[str] | None = None,
    ) -> NewTokenIssued:
        """A token for `user` (default: the caller). Anyone may make tokens for themselves, scoped down if
        they like; a token for someone else takes user.write. The secret is in the answer, once."""
        owner = user or principal.name
        if owner != principal.name:
            self._guard.check(principal, Action.USER_WRITE, target=f"user/{owner}")
        elif principal.scopes is not None and scopes is None:
            scopes = sorted(principal.scopes)  # a scoped token cannot mint a wider one
        problems: list[FieldProblem] = []
        if scopes is not None:
            try:
                parsed = parse_scopes(scopes)
            except ValueError as exc:
                problems.append(FieldProblem("scopes", str(exc)))
            else:
                if principal.scopes is not None and owner == principal.name and not parsed <= principal.scopes:
                    problems.append(FieldProblem("scopes", "cannot exceed the scopes of the token used"))
        if expires_in is not None and not timedelta(0) < expires_in <= MAX_TOKEN_LIFETIME:
            problems.append(FieldProblem("expires_in", "must be more than 0 and at most 3650 days"))
        if len(name) > 63:
            problems.append(FieldProblem("name", "at most 63 characters"))
        if problems:
            raise InvalidInput(problems)
        now = self._clock.now()
        expires_at: datetime | None = now + expires_in if expires_in is not None else None
        new = generate_token()
        with self._store.unit_of_work() as uow:
            found = uow.identity.get_user(owner)
            if found is None:
                raise InvalidInput([FieldProblem("user", f"no user {owner!r}")])
            if found.disabled:
                raise Conflict(f"user {owner} is disabled")
            record = uow.tokens.add(
                name=name or "token",
                user=owner,
                prefix=new.prefix,
                token_hash=new.token_hash,
                now=now,
                scopes=None if scopes is None else sorted(set(scopes)),
                expires_at=expires_at,
            )
            detail = {"user": owner, "prefix": new.prefix, "scopes": record.scopes, "expires_at": expires_at}
            self._audit.append(uow, self._audit.entry(principal, "token.create", f"token/{record.id}", detail=detail))
            uow.commit()
        return NewTokenIssued(record, new.token)

    def list_tokens(self, principal: Principal, user: str | None = None, all_users: bool = False) -> list[TokenRecord]:
        """The caller's tokens; another user's, or everyone's, take user.read in the cluster."""
        if all_users or (user is not None and user != principal.name):
            self._guard.check(principal, Action.USER_WRITE, target=f"user/{user or '*'}")
        with self._store.unit_of_work(read_only=True) as uow:
            return uow.tokens.list(None if all_users else (user or principal.name))

    def revoke_token(self, principal: Principal, token_id: int) -> TokenRecord:
        """Revoke a token: your own, or anyone's with user.write. Takes effect at once on this server."""
        with self._store.unit_of_work() as uow:
            record = uow.tokens.get(token_id)
            if record is None:
                raise NotFound("token", token_id)
            if record.user != principal.name and not self._guard.allowed(principal, Action.USER_WRITE):
                raise self._guard.hide(principal, Action.USER_WRITE, "token", token_id)
            if record.revoked:
                raise Conflict(f"token {token_id} is already revoked")
            uow.tokens.revoke(token_id)
            detail = {"user": record.user, "prefix": record.prefix}
            self._audit.append(uow, self._audit.entry(principal, "token.revoke", f"token/{token_id}", detail=detail))
            uow.commit()
        self._auth.forget()
        return replace(record, revoked=True)

    def whoami(self, principal: Principal) -> tuple[Principal, TokenRecord | None]:
        with self._store.unit_of_work(read_only=True) as uow:
            token = uow.tokens.get(principal.token_id) if principal.token_id is not None else None
        return principal, token
