"""Sign-in security events on a real SQLite store: a token seen from a new client address, a token of a
disabled user, a burst of failed sign-ins (then 429 for new tokens from that address), a burst of denials;
the last-used time and addresses are written down."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aidc.domain.errors import PermissionDenied, TooManyRequests, Unauthenticated
from aidc.security.rbac import Action
from aidc.services.audit_log import AuditLog
from aidc.services.auth import FAILED_AUTH_LIMIT, AuthService
from aidc.services.authz import DENIAL_BURST, Guard
from aidc.services.identity import IdentityService
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore
from tests.fixtures.identity import AUDIT_KEY, principal

T0 = datetime(2026, 11, 24, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.time = T0

    def now(self) -> datetime:
        return self.time


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[SqlStore, AuthService, IdentityService, Clock, Guard]]:
    url = f"sqlite:///{tmp_path / 'aidc.db'}"
    upgrade(url)
    store = SqlStore(url, audit_key=AUDIT_KEY)
    clock = Clock()
    audit = AuditLog(store, clock)
    guard = Guard(audit)
    auth = AuthService(store, clock, audit)
    auth.bootstrap_admin_token(tmp_path)
    identity = IdentityService(store, clock, guard, audit, auth)
    identity.create_team(principal("admin"), "ml")
    identity.create_user(principal("admin"), "alice", "ml", "member")
    try:
        yield store, auth, identity, clock, guard
    finally:
        store.close()


def events(store: SqlStore, action: str) -> list[tuple[str, str, str]]:
    with store.unit_of_work(read_only=True) as uow:
        return [(r.actor, r.target, r.outcome) for r in uow.audit.list(action=action)]


def test_new_client_address_is_a_security_event(
    world: tuple[SqlStore, AuthService, IdentityService, Clock, Guard],
) -> None:
    store, auth, identity, _, _ = world
    token = identity.create_token(principal("alice", team="ml"), name="laptop").token
    auth.authenticate(f"Bearer {token}", "10.0.0.1")  # the first use is no news
    assert events(store, "security.new_client") == []
    assert auth.cached(f"Bearer {token}", "10.0.0.1") is not None
    assert auth.cached(f"Bearer {token}", "10.9.9.9") is None  # a new address goes the long way
    auth.authenticate(f"Bearer {token}", "10.9.9.9")
    assert [(a, o) for a, _, o in events(store, "security.new_client")] == [("alice", "alert")]
    with store.unit_of_work(read_only=True) as uow:
        (record,) = uow.tokens.list("alice")
    assert record.clients == ("10.0.0.1", "10.9.9.9")
    assert record.last_used_at == T0


def test_token_of_a_disabled_user_is_refused_and_raised(
    world: tuple[SqlStore, AuthService, IdentityService, Clock, Guard],
) -> None:
    store, auth, identity, _, _ = world
    token = identity.create_token(principal("alice", team="ml")).token
    auth.authenticate(f"Bearer {token}", "10.0.0.1")
    identity.set_disabled(principal("admin"), "alice", True)
    with pytest.raises(Unauthenticated, match="invalid token"):
        auth.authenticate(f"Bearer {token}", "10.0.0.1")
    assert [a for a, _, _ in events(store, "security.disabled_user_token")] == ["alice"]


def test_expired_token(world: tuple[SqlStore, AuthService, IdentityService, Clock, Guard]) -> None:
    _, auth, identity, clock, _ = world
    token = identity.create_token(principal("alice", team="ml"), expires_in=timedelta(hours=1)).token
    auth.authenticate(f"Bearer {token}", "10.0.0.1")
    clock.time = T0 + timedelta(hours=1)
    assert auth.cached(f"Bearer {token}", "10.0.0.1") is None
    with pytest.raises(Unauthenticated, match="token expired"):
        auth.authenticate(f"Bearer {token}", "10.0.0.1")


def test_failed_sign_in_burst(world: tuple[SqlStore, AuthService, IdentityService, Clock, Guard]) -> None:
    store, auth, identity, _, _ = world
    good = identity.create_token(principal("alice", team="ml")).token
    for _ in range(FAILED_AUTH_LIMIT):
        with pytest.raises(Unauthenticated):
            auth.authenticate("Bearer aidc_00000000_nope", "203.0.113.7")
    assert events(store, "security.login_burst") == [("anonymous", "client/203.0.113.7", "alert")]
    assert len(events(store, "auth.login")) == FAILED_AUTH_LIMIT
    with pytest.raises(TooManyRequests):
        auth.authenticate(f"Bearer {good}", "203.0.113.7")  # a token not seen before waits too
    assert auth.authenticate(f"Bearer {good}", "198.51.100.1").name == "alice"  # other addresses do not


def test_denial_burst(world: tuple[SqlStore, AuthService, IdentityService, Clock, Guard]) -> None:
    store, _, _, _, guard = world
    alice = principal("alice", team="ml")
    for _ in range(DENIAL_BURST):
        with pytest.raises(PermissionDenied):
            guard.check(alice, Action.USER_WRITE)
    assert len(events(store, "user.write")) == DENIAL_BURST
    assert events(store, "security.denial_burst") == [("alice", "user/alice", "alert")]


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("Bearer not-a-token", "malformed token"),
        ("Bearer aidc_1234567_short", "malformed token"),
        ("Bearer aidc_00000000_unknown", "unknown token"),
    ],
)
def test_bad_tokens_are_refused_and_audited(
    world: tuple[SqlStore, AuthService, IdentityService, Clock, Guard], header: str, why: str
) -> None:
    store, auth, _, _, _ = world
    with pytest.raises(Unauthenticated, match=r"^invalid token$"):
        auth.authenticate(header, "10.0.0.1")
    with store.unit_of_work(read_only=True) as uow:
        (record,) = uow.audit.list(action="auth.login")
    assert (record.outcome, record.detail["reason"], record.detail["client"]) == ("failed", why, "10.0.0.1")
    assert header.split()[1] not in str(record.detail)  # the token itself is never written down


def test_revoked_token_is_refused_at_once(world: tuple[SqlStore, AuthService, IdentityService, Clock, Guard]) -> None:
    store, auth, identity, _, _ = world
    alice = principal("alice", team="ml")
    issued = identity.create_token(alice)
    auth.authenticate(f"Bearer {issued.token}", "10.0.0.1")
    identity.revoke_token(alice, issued.record.id)
    assert auth.cached(f"Bearer {issued.token}", "10.0.0.1") is None
    with pytest.raises(Unauthenticated):
        auth.authenticate(f"Bearer {issued.token}", "10.0.0.1")
    with store.unit_of_work(read_only=True) as uow:
        reasons = [r.detail["reason"] for r in uow.audit.list(action="auth.login")]
    assert reasons == ["token revoked"]
