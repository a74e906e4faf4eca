"""Migrations 0003-0004 and token lookup: a token stored as plain SHA-256 before it still signs in after it, new
tokens are stored as salted scrypt and found by their prefix, a wrong secret with a known prefix fails."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from aidc.control.clock import SystemClock
from aidc.domain.errors import Unauthenticated
from aidc.security.rbac import Binding, Role
from aidc.security.tokens import generate_token
from aidc.services.audit_log import AuditLog
from aidc.services.auth import AuthService
from aidc.store.engine import make_engine
from aidc.store.migrate import current_revision, head_revision, upgrade
from aidc.store.sql_store import SqlStore
from tests.fixtures.identity import AUDIT_KEY

from .conftest import T0


def test_a_token_stored_before_0003_still_signs_in(database_url: str) -> None:
    upgrade(database_url, "0002")
    old = generate_token()
    legacy_hash = hashlib.sha256(old.token.encode()).hexdigest()  # how tokens were stored until 0003
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, prefix, token_hash, role, created_at, revoked)"
                    " VALUES ('admin', :prefix, :hash, 'admin', :t, false)"
                ),
                {"prefix": old.prefix, "hash": legacy_hash, "t": T0},
            )
    finally:
        engine.dispose()
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    engine = make_engine(database_url)
    try:
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("api_tokens")}
    finally:
        engine.dispose()
    assert "ix_api_tokens_prefix" in indexes
    store = SqlStore(database_url, audit_key=AUDIT_KEY)
    try:
        auth = AuthService(store, SystemClock(), AuditLog(store, SystemClock()))
        signed_in = auth.authenticate(f"Bearer {old.token}")
        # 0004 turned the token's own role into a user of its name bound to that role in the cluster.
        assert signed_in.name == "admin"
        assert signed_in.bindings == (Binding(Role.ADMIN),)
        wrong = old.token[:-4] + ("aaaa" if not old.token.endswith("aaaa") else "bbbb")
        with pytest.raises(Unauthenticated):
            AuthService(store, SystemClock(), AuditLog(store, SystemClock())).authenticate(f"Bearer {wrong}")
    finally:
        store.close()


def test_new_tokens_are_scrypt_and_found_by_prefix(database_url: str, tmp_path: Path) -> None:
    upgrade(database_url)
    store = SqlStore(database_url, audit_key=AUDIT_KEY)
    try:
        auth = AuthService(store, SystemClock(), AuditLog(store, SystemClock()))
        path = auth.bootstrap_admin_token(tmp_path)
        assert path is not None
        token = path.read_text().strip()
        with store.unit_of_work(read_only=True) as uow:
            (record,) = uow.tokens.find_by_prefix(token.split("_")[1])
        assert record.token_hash.startswith("scrypt$")
        assert token not in record.token_hash
        fresh = AuthService(store, SystemClock(), AuditLog(store, SystemClock()))  # no cache: store and scrypt
        assert fresh.authenticate(f"Bearer {token}", "127.0.0.1").bindings == (Binding(Role.ADMIN),)
        assert fresh.cached(f"Bearer {token}", "127.0.0.1") is not None  # later requests skip scrypt
    finally:
        store.close()
