"""Authentication: bearer token -> Principal, and the first admin token written once to the data dir."""

from __future__ import annotations

import threading
from pathlib import Path

from aidc.domain.errors import Unauthenticated
from aidc.ports import Clock, Store
from aidc.security.files import write_atomic
from aidc.security.rbac import Principal, Role
from aidc.security.tokens import cache_key, check_token, generate_token, token_prefix

ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 - a file name


class AuthService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        # Verified tokens by hash: authentication stays off the database on the hot path.
        # Revocation arrives with the security issue and must clear this cache.
        self._cache: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def cached(self, authorization: str | None) -> Principal | None:
        """The principal of a token verified before, without touching the store (None when unknown)."""
        if not authorization or authorization[:7].lower() != "bearer ":
            return None
        return self._cache.get(cache_key(authorization[7:].strip()))

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authorization header must be 'Bearer <token>'")
        prefix = token_prefix(token)
        if prefix is None:
            raise Unauthenticated("invalid token")
        digest = cache_key(token)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        with self._store.unit_of_work(read_only=True) as uow:
            candidates = uow.tokens.find_by_prefix(prefix)
        record = next((r for r in candidates if check_token(token, r.token_hash)), None)
        if record is None or record.revoked:
            raise Unauthenticated("invalid token")
        principal = Principal(name=record.name, role=Role(record.role), token_id=record.id)
        with self._lock:
            self._cache[digest] = principal
        return principal

    def bootstrap_admin_token(self, data_dir: Path) -> Path | None:
        """On first start (no token stored), create an admin token and write it once, mode 0600.

        Returns the file written, or None when tokens already existed."""
        with self._store.unit_of_work() as uow:
            if uow.tokens.count() > 0:
                return None
            new = generate_token()
            uow.tokens.add(
                name="admin", prefix=new.prefix, token_hash=new.token_hash, role=Role.ADMIN, now=self._clock.now()
            )
            path = data_dir / ADMIN_TOKEN_FILE
            write_atomic(path, (new.token + "\n").encode())
            uow.commit()
        return path
