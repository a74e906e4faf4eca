"""Backup use cases: back up the control plane (its database, its keys, the artifact chunks) to a target
(a local path or an fsspec URL), encrypted; list and verify what is there; keep the newest N.

What goes into a backup is gathered by a function the composition root provides (it knows the database
and the data dir); this service decides when, checks who may, names, audits and prunes."""

from __future__ import annotations

import builtins
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aidc.domain.errors import Conflict, FieldProblem, InvalidInput, NotFound
from aidc.ports import Clock
from aidc.security.rbac import Action, Principal
from aidc.services.audit_log import AuditLog
from aidc.services.authz import Guard
from aidc.storage import backups as archive
from aidc.storage.backup_reader import VerifyReport
from aidc.storage.errors import BackupCorrupt, BackupError, BackupExists, BackupNotFound

log = logging.getLogger(__name__)


class BackupPlan(Protocol):
    """What a backup holds and how to tell a restored one is sound (the composition root knows both)."""

    def gather(self, scratch: Path) -> list[tuple[str, Path]]:
        """The (member name, local file) pairs to back up; a database copy may be written into `scratch`."""
        ...

    def check(self, restored: Path) -> str:
        """Raise ValueError unless the members restored under `restored` make a sound control plane; else a
        one-line summary."""
        ...


@dataclass(frozen=True)
class Verified:
    report: VerifyReport
    summary: str


class BackupService:
    def __init__(
        self,
        clock: Clock,
        guard: Guard,
        audit: AuditLog,
        plan: BackupPlan,
        target: str,
        key: bytes | None,
        keep: int | None = None,
    ) -> None:
        self._clock = clock
        self._guard = guard
        self._audit = audit
        self._plan = plan
        self.target = target
        self._key = key
        self._keep = keep
        self._lock = threading.Lock()  # one backup at a time

    def _need_key(self) -> bytes:
        if self._key is None:
            raise Conflict("no backup key: start aidc with AIDC_BACKUP_KEY or --backup-key-file (`aidc backup key`)")
        return self._key

    def create(self, principal: Principal | None, name: str | None = None) -> archive.BackupInfo:
        """Back up now (None: the scheduler). The previous backups stay intact whatever happens."""
        if principal is not None:
            self._guard.check(principal, Action.BACKUP, target="backups")
        key = self._need_key()
        now = self._clock.now()
        name = name or archive.default_name(now)
        try:
            archive.check_name(name)
        except BackupError as exc:
            raise InvalidInput([FieldProblem("name", str(exc))]) from None
        if not self._lock.acquire(blocking=False):
            raise Conflict("a backup is running; try again when it is done")
        try:
            with tempfile.TemporaryDirectory(prefix="aidc-backup-") as scratch:
                members = self._plan.gather(Path(scratch))
                info = archive.create_backup(self.target, name, members, key, now)
        except BackupExists as exc:
            raise Conflict(str(exc)) from None
        except OSError as exc:
            failure = {"target": self.target, "error": str(exc)[:500]}
            self._audit.event(self._audit.entry(principal, "backup.create", f"backup/{name}", "failed", failure))
            raise Conflict(f"backup target {self.target}: {exc.strerror or exc}") from None
        except Exception as exc:
            failure = {"target": self.target, "error": str(exc)[:500]}
            self._audit.event(self._audit.entry(principal, "backup.create", f"backup/{name}", "failed", failure))
            raise
        finally:
            self._lock.release()
        detail: dict[str, object] = {"target": self.target, "size": info.size, "members": len(info.members)}
        self._audit.event(self._audit.entry(principal, "backup.create", f"backup/{name}", detail=detail))
        log.info("backup %s written to %s (%d bytes)", name, self.target, info.size)
        if self._keep is not None:
            self.prune(self._keep)
        return info

    def list(self, principal: Principal) -> list[archive.BackupInfo]:
        self._guard.check(principal, Action.BACKUP, target="backups")
        return archive.list_backups(self.target)

    def verify(self, principal: Principal, name: str) -> Verified:
        """Restore into a temporary directory (every record authenticated, every member's SHA-256 checked
        against the index), then check the restored database is sound. Raises BackupCorrupt (WrongKey)."""
        self._guard.check(principal, Action.BACKUP, target=f"backup/{name}")
        key = self._need_key()
        with tempfile.TemporaryDirectory(prefix="aidc-verify-") as scratch:
            try:
                report = archive.restore_backup(self.target, name, key, Path(scratch) / "restored", fsync=False)
            except BackupNotFound:
                raise NotFound("backup", name) from None
            try:
                summary = self._plan.check(Path(scratch) / "restored")
            except ValueError as exc:
                raise BackupCorrupt(f"backup {name}: {exc}") from None
        self._audit.event(self._audit.entry(principal, "backup.verify", f"backup/{name}"))
        return Verified(report, summary)

    def prune(self, keep: int) -> builtins.list[str]:
        """Delete all but the newest `keep` backups at the target."""
        found = archive.list_backups(self.target)
        doomed = found[: max(0, len(found) - keep)]
        for info in doomed:
            archive.delete_backup(self.target, info.name)
            self._audit.event(self._audit.entry(None, "backup.prune", f"backup/{info.name}"))
        return [info.name for info in doomed]


class BackupSchedule:
    """Backs up every `every` seconds on its own thread, until stopped."""

    def __init__(self, service: BackupService, every: float) -> None:
        self._service = service
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aidc-backups", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._service.create(None)
            except Exception:  # audited as failed by create(); the next one is tried on time
                log.exception("scheduled backup failed")
