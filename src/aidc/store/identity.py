"""Repositories of users, teams, role bindings and API tokens."""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, select, update

from aidc.domain.errors import Conflict
from aidc.domain.identity import RoleBindingRecord, Team, TokenRecord, User
from aidc.store.repositories import upsertable_insert
from aidc.store.tables import api_tokens, role_bindings, teams, users

MAX_CLIENTS = 16  # client addresses remembered per token (oldest forgotten first)


class SqlIdentityRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add_user(self, user: User) -> None:
        stmt = (
            upsertable_insert(users, self._conn.dialect.name)
            .values(name=user.name, created_at=user.created_at, disabled_at=user.disabled_at)
            .on_conflict_do_nothing(index_elements=[users.c.name])
            .returning(users.c.name)
        )
        if self._conn.execute(stmt).scalar_one_or_none() is None:
            raise Conflict(f"user {user.name!r} already exists")

    def get_user(self, name: str) -> User | None:
        row = self._conn.execute(select(users).where(users.c.name == name)).first()
        return None if row is None else User(row.name, row.created_at, row.disabled_at)

    def list_users(self) -> builtins.list[User]:
        rows = self._conn.execute(select(users).order_by(users.c.name))
        return [User(r.name, r.created_at, r.disabled_at) for r in rows]

    def set_disabled(self, name: str, at: datetime | None) -> None:
        self._conn.execute(update(users).where(users.c.name == name).values(disabled_at=at))

    def add_team(self, team: Team) -> None:
        stmt = (
            upsertable_insert(teams, self._conn.dialect.name)
            .values(name=team.name, created_at=team.created_at)
            .on_conflict_do_nothing(index_elements=[teams.c.name])
            .returning(teams.c.name)
        )
        if self._conn.execute(stmt).scalar_one_or_none() is None:
            raise Conflict(f"team {team.name!r} already exists")

    def get_team(self, name: str) -> Team | None:
        row = self._conn.execute(select(teams).where(teams.c.name == name)).first()
        return None if row is None else Team(row.name, row.created_at)

    def list_teams(self) -> builtins.list[Team]:
        return [Team(r.name, r.created_at) for r in self._conn.execute(select(teams).order_by(teams.c.name))]

    def add_binding(
        self, *, user: str, role: str, team: str | None, models: Sequence[str], now: datetime
    ) -> RoleBindingRecord:
        values = {"user": user, "role": role, "team": team, "models": json.dumps(list(models)), "created_at": now}
        key = self._conn.execute(role_bindings.insert(), values).inserted_primary_key
        if key is None:
            raise RuntimeError("the database gave no id to the new role binding")
        return RoleBindingRecord(int(key[0]), user, role, team, now, tuple(models))

    def remove_binding(self, binding_id: int) -> None:
        self._conn.execute(delete(role_bindings).where(role_bindings.c.id == binding_id))

    def bindings(self, user: str | None = None) -> builtins.list[RoleBindingRecord]:
        query = select(role_bindings).order_by(role_bindings.c.id)
        if user is not None:
            query = query.where(role_bindings.c.user == user)
        return [
            RoleBindingRecord(r.id, r.user, r.role, r.team, r.created_at, tuple(json.loads(r.models)))
            for r in self._conn.execute(query)
        ]


class SqlTokenRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(
        self,
        *,
        name: str,
        user: str,
        prefix: str,
        token_hash: str,
        now: datetime,
        scopes: Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> TokenRecord:
        values = {
            "name": name,
            "user": user,
            "prefix": prefix,
            "token_hash": token_hash,
            "created_at": now,
            "scopes": None if scopes is None else json.dumps(sorted(scopes)),
            "expires_at": expires_at,
        }
        stmt = (
            upsertable_insert(api_tokens, self._conn.dialect.name)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[api_tokens.c.token_hash])
            .returning(api_tokens.c.id)
        )
        token_id = self._conn.execute(stmt).scalar_one_or_none()
        if token_id is None:
            raise Conflict(f"a token with the same hash already exists (prefix {prefix!r})")
        return TokenRecord(
            id=token_id,
            name=name,
            user=user,
            prefix=prefix,
            token_hash=token_hash,
            created_at=now,
            scopes=None if scopes is None else tuple(sorted(scopes)),
            expires_at=expires_at,
        )

    def get(self, token_id: int) -> TokenRecord | None:
        row = self._conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        return None if row is None else token_from_row(row)

    def find_by_prefix(self, prefix: str) -> builtins.list[TokenRecord]:
        """The tokens with this visible prefix (one, barring a 32-bit collision), oldest first."""
        query = select(api_tokens).where(api_tokens.c.prefix == prefix).order_by(api_tokens.c.id)
        return [token_from_row(row) for row in self._conn.execute(query)]

    def list(self, user: str | None = None) -> builtins.list[TokenRecord]:
        query = select(api_tokens).order_by(api_tokens.c.id)
        if user is not None:
            query = query.where(api_tokens.c.user == user)
        return [token_from_row(row) for row in self._conn.execute(query)]

    def revoke(self, token_id: int) -> None:
        self._conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked=True))

    def touch(self, token_id: int, at: datetime, clients: Sequence[str]) -> None:
        self._conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id)
            .values(last_used_at=at, clients=json.dumps(list(clients)[-MAX_CLIENTS:]))
        )

    def count(self) -> int:
        """All tokens ever issued, revoked ones included."""
        return int(self._conn.execute(select(func.count()).select_from(api_tokens)).scalar_one())


def token_from_row(row: Row[Any]) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        user=row.user,
        prefix=row.prefix,
        token_hash=row.token_hash,
        created_at=row.created_at,
        scopes=None if row.scopes is None else tuple(json.loads(row.scopes)),
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        clients=tuple(json.loads(row.clients or "[]")),
        revoked=bool(row.revoked),
    )
