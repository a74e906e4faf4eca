"""Backups at a target given as a local path or an fsspec URL: create, list, verify, restore, delete.

A target is a folder: `/var/backups/aidc`, `file:///var/backups/aidc`, `memory://backups` (tests), or
any URL an installed fsspec implementation understands (`s3://bucket/aidc` with s3fs, and so on). Each
backup is one file `<target>/<name>.aidcbak` in the format of `backup_format`.

A backup is written as `<name>.aidcbak.partial` and renamed only once complete, so a crash mid-way
leaves the earlier backups as they were and no half file that `list_backups` would show (it ignores
`.partial`). On a local filesystem the file is fsynced, renamed with os.replace (atomic) and the folder
fsynced. On an object store there is no rename: fsspec copies the object server-side, then deletes the
partial; the final object still appears whole (a PUT or COPY is atomic per object), but a crash between
the two steps can leave a `.partial` behind, which is never listed and is overwritten by the next
attempt of the same name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]  # fsspec ships no type information
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]

from aidc.storage.backup_format import HEADER, SUFFIX, Header, MemberInfo
from aidc.storage.backup_reader import BackupReader, VerifyReport
from aidc.storage.backup_writer import BackupWriter, CompressionChoice
from aidc.storage.errors import BackupCorrupt, BackupError, BackupExists, BackupNotFound
from aidc.storage.paths import fsync_dir

PARTIAL = ".partial"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """A backup at a target. `created_at` comes from the archive's header (None if it cannot be read,
    then from the store's own timestamp when it has one); `members` is filled only by create_backup."""

    name: str
    url: str
    size: int
    created_at: datetime | None
    members: tuple[MemberInfo, ...] = ()


def default_name(now: datetime, prefix: str = "aidc") -> str:
    """A name that sorts by time: `aidc-20261124T120000Z`."""
    when = now if now.tzinfo else now.replace(tzinfo=UTC)
    return f"{prefix}-{when.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def check_name(name: str) -> str:
    """A backup name: letters, digits, '.', '_' and '-', starting with a letter or digit (no folders)."""
    if not _NAME.fullmatch(name) or name.endswith((SUFFIX, PARTIAL)):
        raise BackupError(f"backup name {name!r}: use letters, digits, '.', '_', '-' (at most 200, no suffix)")
    return name


def create_backup(
    target_url: str,
    name: str,
    members: Sequence[tuple[str, Path]],
    key: bytes,
    now: datetime,
    *,
    compression: CompressionChoice = "auto",
) -> BackupInfo:
    """Write the files `members` ((member name, local path) pairs) as backup `name` at `target_url`,
    encrypted with `key`, stamped `now`. Refuses a name already taken (BackupExists); on any failure the
    partial file is removed and the error re-raised."""
    fs, root = _filesystem(target_url)
    final = _path(root, check_name(name))
    if fs.exists(final):
        raise BackupExists(f"backup {name!r} already exists at {target_url}")
    fs.makedirs(root, exist_ok=True)
    partial = final + PARTIAL
    try:
        with fs.open(partial, "wb") as out:
            writer = BackupWriter(out, key, created=now, compression=compression)
            for member, path in members:
                writer.add_file(member, path)
            written = writer.close()
            _flush_to_disk(fs, out)
        _commit(fs, partial, final)
    except BaseException:
        _remove_quietly(fs, partial)
        raise
    return BackupInfo(name, target_url, int(fs.size(final)), _utc(now).replace(microsecond=0), tuple(written))


def list_backups(target_url: str) -> list[BackupInfo]:
    """The complete backups at `target_url`, oldest first (partial files and anything else skipped).
    Reads each one's 36-byte header for its creation time; no key is needed."""
    fs, root = _filesystem(target_url)
    try:
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        return []
    out: list[BackupInfo] = []
    for entry in entries:
        base = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        if entry.get("type") != "file" or not base.endswith(SUFFIX):
            continue
        created = _header_time(fs, entry["name"]) or _store_time(entry)
        out.append(BackupInfo(base[: -len(SUFFIX)], target_url, int(entry.get("size") or 0), created))
    out.sort(key=lambda b: (b.created_at or datetime.min.replace(tzinfo=UTC), b.name))
    return out


def verify_backup(target_url: str, name: str, key: bytes) -> VerifyReport:
    """Read the whole backup, authenticate every record, inflate and hash every member, and compare
    with the index; raise BackupCorrupt (WrongKey) on the first problem.

    It checks exactly what a restore would, without writing the members anywhere: a 10 GB backup needs
    no 10 GB of scratch space to be verified."""
    fs, root = _filesystem(target_url)
    with _open_existing(fs, _path(root, check_name(name)), target_url) as stream:
        return BackupReader(stream, key).verify()


def restore_backup(
    target_url: str, name: str, key: bytes, dest_dir: Path, *, overwrite: bool = False, fsync: bool = True
) -> VerifyReport:
    """Restore every member of backup `name` under `dest_dir` (see BackupReader.extract_all): nothing
    lands in `dest_dir` unless the whole backup checks out."""
    fs, root = _filesystem(target_url)
    with _open_existing(fs, _path(root, check_name(name)), target_url) as stream:
        return BackupReader(stream, key).extract_all(dest_dir, overwrite=overwrite, fsync=fsync)


def delete_backup(target_url: str, name: str) -> None:
    fs, root = _filesystem(target_url)
    path = _path(root, check_name(name))
    if not fs.exists(path):
        raise BackupNotFound(f"no backup {name!r} at {target_url}")
    fs.rm(path)


def _filesystem(target_url: str) -> tuple[Any, str]:
    fs, root = fsspec.core.url_to_fs(target_url)
    return fs, str(root).rstrip("/") or "/"


def _path(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}{SUFFIX}"


def _open_existing(fs: Any, path: str, target_url: str) -> Any:
    if not fs.exists(path):
        raise BackupNotFound(f"no backup {path.rsplit('/', 1)[-1][: -len(SUFFIX)]!r} at {target_url}")
    return fs.open(path, "rb")


def _flush_to_disk(fs: Any, out: Any) -> None:
    # Local files: the bytes must be on disk before the rename makes them the backup.
    if isinstance(fs, LocalFileSystem):
        out.flush()
        os.fsync(out.fileno())


def _commit(fs: Any, partial: str, final: str) -> None:
    if isinstance(fs, LocalFileSystem):
        os.replace(partial, final)
        fsync_dir(Path(final).parent)
    else:
        fs.mv(partial, final)


def _remove_quietly(fs: Any, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except OSError:
        pass  # the original error matters more; a leftover .partial is never listed


def _header_time(fs: Any, path: str) -> datetime | None:
    try:
        with fs.open(path, "rb") as stream:
            return Header.unpack(stream.read(HEADER.size)).created
    except (OSError, BackupCorrupt):
        return None


def _store_time(entry: dict[str, Any]) -> datetime | None:
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value = entry.get(key)
        if isinstance(value, datetime):
            return _utc(value)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC)
    return None


def _utc(when: datetime) -> datetime:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
