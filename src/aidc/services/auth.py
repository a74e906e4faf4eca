"""Authentication: bearer token -> Principal, failed sign-ins slowed down per client, the security events of
sign-in (failures, bursts of them, a token seen from a new address, a token of a disabled user), and the
first admin token written once to the data dir."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from aidc.domain.errors import TooManyRequests, Unauthenticated
from aidc.domain.identity import TokenRecord, User
from aidc.ports import Clock, Store, UnitOfWork
from aidc.security.files import write_atomic
from aidc.security.rbac import Binding, Principal, Role, parse_scopes
from aidc.security.signals import BurstCounter
from aidc.security.tokens import cache_key, check_token, generate_token, token_prefix
from aidc.services.audit_log import AuditLog

ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 - a file name
ADMIN_USER = "admin"

CACHE_TTL = 30.0  # seconds a verified token is trusted from memory (changes made elsewhere show up by then)
TOUCH_INTERVAL = 60.0  # seconds between writes of a token's last-used time
FAILED_AUTH_LIMIT = 10  # failed sign-ins per client address within FAILED_AUTH_WINDOW before it must wait
FAILED_AUTH_WINDOW = 60.0
RECENT_TOKENS = 10_000


@dataclass
class _Verified:
    principal: Principal
    token_id: int
    expires_at: datetime | None
    clients: list[str]
    loaded: float  # monotonic time it was read from the store
    touched: float = field(default=0.0)  # monotonic time its last use was written


def principal_of(uow: UnitOfWork, user: str, token_id: int | None, scopes: tuple[str, ...] | None) -> Principal:
    """The principal of `user` signed in with a token: their bindings, teams and the token's scopes."""
    bindings = tuple(Binding(role=Role(b.role), team=b.team, models=b.models) for b in uow.identity.bindings(user))
    return Principal(
        name=user,
        bindings=bindings,
        token_id=token_id,
        scopes=None if scopes is None else parse_scopes(scopes),
        teams=frozenset(b.team for b in bindings if b.team is not None),
    )


def _digest(authorization: str | None) -> str | None:
    """The in-memory key of the token in an `Authorization: Bearer <token>` header, or None."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    return cache_key(authorization[7:].strip())


class AuthService:
    def __init__(self, store: Store, clock: Clock, audit: AuditLog) -> None:
        self._store = store
        self._clock = clock
        self._audit = audit
        # Verified tokens by a fast hash: known tokens are checked without the database or scrypt.
        self._cache: dict[str, _Verified] = {}
        self._lock = threading.Lock()
        self._failures = BurstCounter(FAILED_AUTH_LIMIT, FAILED_AUTH_WINDOW)
        # Tokens that signed in lately, kept across forget(): while an address is rate-limited they still
        # get through to the full check (someone behind the same NAT as a guesser keeps working).
        self._recent: OrderedDict[str, None] = OrderedDict()

    def forget(self) -> None:
        """Drop every verified token: users, bindings or tokens changed (revoked, disabled, new role)."""
        with self._lock:
            self._cache.clear()

    def cached(self, authorization: str | None, client: str | None) -> Principal | None:
        """The principal of a token verified lately, when nothing about this use needs the store (no new
        client address, no last-used time due, not expired); else None and `authenticate` does the work."""
        digest = _digest(authorization)
        entry = self._cache.get(digest) if digest is not None else None
        if entry is None:
            return None
        now = time.monotonic()
        if now - entry.loaded > CACHE_TTL or now - entry.touched > TOUCH_INTERVAL:
            return None
        if client is not None and client not in entry.clients:
            return None
        if entry.expires_at is not None and self._clock.now() >= entry.expires_at:
            return None
        return entry.principal

    def check_rate(self, client: str | None) -> None:
        """Raise TooManyRequests while `client` has failed to sign in too often lately."""
        if client is None:
            return
        wait = self._failures.retry_after(client, time.monotonic())
        if wait is not None:
            raise TooManyRequests(
                f"too many failed sign-ins from {client}; retry in {wait:.0f} s", retry_after=max(1.0, wait)
            )

    def authenticate(
        self, authorization: str | None, client: str | None = None, request_id: str | None = None
    ) -> Principal:
        """The principal of a bearer token. While `client` has failed too often lately, only tokens this
        server verified before get through (people behind the same address keep working); new ones wait."""
        digest = _digest(authorization)
        if digest not in self._recent:
            self.check_rate(client)
        if not authorization:
            raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or digest is None:
            raise Unauthenticated("Authorization header must be 'Bearer <token>'")
        prefix = token_prefix(token)
        if prefix is None:
            self._fail(client, request_id, "malformed token", None)
        now = self._clock.now()
        entry = self._cache.get(digest)
        if entry is None or time.monotonic() - entry.loaded > CACHE_TTL:
            entry = self._load(token, digest, prefix or "", client, request_id)
        if entry.expires_at is not None and now >= entry.expires_at:
            self._fail(client, request_id, "token expired", entry.principal.name, entry.token_id)
        self._note_use(entry, client, request_id)
        return entry.principal

    def _load(self, token: str, digest: str, prefix: str, client: str | None, request_id: str | None) -> _Verified:
        with self._store.unit_of_work(read_only=True) as uow:
            record = next((r for r in uow.tokens.find_by_prefix(prefix) if check_token(token, r.token_hash)), None)
            user = uow.identity.get_user(record.user) if record is not None else None
            principal = principal_of(uow, record.user, record.id, record.scopes) if record is not None else None
        if record is None or principal is None:
            self._fail(client, request_id, "unknown token", None)
        if record.revoked:
            self._fail(client, request_id, "token revoked", record.user, record.id)
        if user is None or user.disabled:
            self._disabled_owner(record, user, client, request_id)
        entry = _Verified(principal, record.id, record.expires_at, list(record.clients), time.monotonic())
        with self._lock:
            self._cache[digest] = entry
            self._recent[digest] = None
            self._recent.move_to_end(digest)
            if len(self._recent) > RECENT_TOKENS:
                self._recent.popitem(last=False)
        return entry

    def _note_use(self, entry: _Verified, client: str | None, request_id: str | None) -> None:
        """Write the last-used time (at most once a minute) and a client address not seen before, which is
        a security event unless it is the token's first use."""
        new_client = client is not None and client not in entry.clients
        now = time.monotonic()
        if not new_client and now - entry.touched <= TOUCH_INTERVAL:
            return
        if new_client and client is not None:
            if entry.clients:
                detail = {"client": client, "known_clients": list(entry.clients)}
                self._audit.event(
                    self._audit.entry(
                        None,
                        "security.new_client",
                        f"token/{entry.token_id}",
                        "alert",
                        detail,
                        actor=entry.principal.name,
                    )
                )
            entry.clients = [*entry.clients, client]
        entry.touched = now
        with self._store.unit_of_work() as uow:
            uow.tokens.touch(entry.token_id, self._clock.now(), entry.clients)
            uow.commit()

    def _disabled_owner(self, record: TokenRecord, user: User | None, client: str | None, rid: str | None) -> NoReturn:
        detail = {"client": client} if client else {}
        self._audit.event(
            self._audit.entry(
                None, "security.disabled_user_token", f"token/{record.id}", "alert", detail, actor=record.user
            )
        )
        self._fail(client, rid, "owner disabled" if user is not None else "owner unknown", record.user, record.id)

    def _fail(
        self, client: str | None, request_id: str | None, why: str, user: str | None, token_id: int | None = None
    ) -> NoReturn:
        """Audit a failed sign-in, count it against the client, and refuse (never says which check failed
        beyond expiry, so a guesser learns nothing)."""
        detail: dict[str, object] = {"reason": why}
        if client:
            detail["client"] = client
        target = f"token/{token_id}" if token_id is not None else "token"
        self._audit.event(
            self._audit.entry(
                None, "auth.login", target, "failed", detail, actor=user or "anonymous", request_id=request_id
            )
        )
        if client is not None and self._failures.hit(client, time.monotonic()):
            burst = {"client": client, "failures": FAILED_AUTH_LIMIT, "window_seconds": FAILED_AUTH_WINDOW}
            self._audit.event(
                self._audit.entry(None, "security.login_burst", f"client/{client}", "alert", burst, actor="anonymous")
            )
        raise Unauthenticated("token expired" if why == "token expired" else "invalid token")

    def bootstrap_admin_token(self, data_dir: Path) -> Path | None:
        """On first start (no token stored), create the `admin` user, bound to admin in the cluster, and a
        token for it, written once to the data dir (mode 0600). Returns the file, or None when tokens existed."""
        with self._store.unit_of_work() as uow:
            if uow.tokens.count() > 0:
                return None
            now = self._clock.now()
            if uow.identity.get_user(ADMIN_USER) is None:
                uow.identity.add_user(User(ADMIN_USER, now))
                uow.identity.add_binding(user=ADMIN_USER, role=Role.ADMIN, team=None, models=(), now=now)
            new = generate_token()
            record = uow.tokens.add(
                name="bootstrap", user=ADMIN_USER, prefix=new.prefix, token_hash=new.token_hash, now=now
            )
            self._audit.append(
                uow, self._audit.entry(None, "token.create", f"token/{record.id}", detail={"user": ADMIN_USER})
            )
            path = data_dir / ADMIN_TOKEN_FILE
            write_atomic(path, (new.token + "\n").encode())
            uow.commit()
        return path
