"""What a backup of this control plane holds, and putting one back (offline, into a new data dir).

Members: `db/sqlite` or `db/postgresql` (a consistent copy of the database), `keys/audit.key` and
`keys/secrets.key` (without them the audit chain cannot be verified nor secret_env opened), every chunk
of the artifact store under `artifacts/`, and `aidc-backup.json` (what was backed up, by which version)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from aidc import __version__
from aidc.storage import backups as archive
from aidc.store import snapshot

META = "aidc-backup.json"
KEY_FILES = ("audit.key", "secrets.key")


@dataclass
class ControlPlaneBackup:
    """The BackupPlan of a running control plane. `quiet` pauses artifact garbage collection while the
    database is copied and the chunks listed, so that every chunk the copied manifests name is included."""

    database_url: str
    data_dir: Path
    quiet: Callable[[], AbstractContextManager[object]]

    def gather(self, scratch: Path) -> list[tuple[str, Path]]:
        members: list[tuple[str, Path]] = []
        with self.quiet():
            kind = snapshot.dump(self.database_url, scratch / "db")
            members.append((f"db/{kind}", scratch / "db"))
            members += [(f"artifacts/{rel}", path) for rel, path in _files(self.data_dir / "artifacts")]
        members += [(f"keys/{name}", self.data_dir / name) for name in KEY_FILES if (self.data_dir / name).is_file()]
        meta = {
            "aidc": __version__,
            "database": kind,
            "chunks": sum(1 for m in members if m[0].startswith("artifacts/")),
        }
        (scratch / META).write_text(json.dumps(meta, indent=2))
        return [(META, scratch / META), *members]

    def check(self, restored: Path) -> str:
        return check_restored(restored)


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith(".tmp-"):
            yield path.relative_to(root).as_posix(), path


def _meta(restored: Path) -> dict[str, object]:
    try:
        meta = json.loads((restored / META).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{META} missing or unreadable: {exc}") from None
    if not isinstance(meta, dict) or meta.get("database") not in (snapshot.SQLITE, snapshot.POSTGRESQL):
        raise ValueError(f"{META} does not name the database kind")
    return meta


def check_restored(restored: Path) -> str:
    """ValueError unless the restored members hold a sound database copy and the keys; else a summary."""
    meta = _meta(restored)
    kind = str(meta["database"])
    try:
        snapshot.check(kind, restored / "db" / kind)
    except snapshot.SnapshotError as exc:
        raise ValueError(str(exc)) from None
    missing = [name for name in KEY_FILES if not (restored / "keys" / name).is_file()]
    if missing:
        raise ValueError(f"keys missing: {', '.join(missing)}")
    return f"{kind} database sound, {meta.get('chunks', 0)} artifact chunks, keys present (aidc {meta.get('aidc')})"


class RestoreFailed(Exception):
    """The database copy could not be put back; the message says why."""


def restore(target: str, name: str, key: bytes, data_dir: Path, database_url: str | None) -> str:
    """Put backup `name` back as a new data dir (which must not exist, or be empty). SQLite comes back as
    `data_dir/aidc.db`; a PostgreSQL backup goes into `database_url`. All or nothing: the data dir appears
    only once everything checked out. Returns a summary."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise ValueError(f"{data_dir} exists and is not empty: restore into a new data dir")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restore-", dir=data_dir.parent))
    try:
        restored = work / "restored"
        archive.restore_backup(target, name, key, restored)
        summary = check_restored(restored)
        kind = str(_meta(restored)["database"])
        new = work / "data"
        new.mkdir(mode=0o700)
        if kind == snapshot.POSTGRESQL and database_url is None:
            raise ValueError("the backup holds a PostgreSQL database: give --database-url to restore it into")
        into = database_url if kind == snapshot.POSTGRESQL and database_url else f"sqlite:///{new / 'aidc.db'}"
        try:
            snapshot.load(kind, restored / "db" / kind, into)
        except snapshot.SnapshotError as exc:
            raise RestoreFailed(str(exc)) from None
        for key_name in KEY_FILES:
            os.replace(restored / "keys" / key_name, new / key_name)
        if (restored / "artifacts").is_dir():
            os.replace(restored / "artifacts", new / "artifacts")
        if data_dir.exists():
            data_dir.rmdir()  # empty, checked above
        os.replace(new, data_dir)
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)
