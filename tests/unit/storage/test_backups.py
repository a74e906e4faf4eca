"""Backups at a target URL: create, list, verify, restore, delete; a crash mid-backup leaves the earlier
backups intact and nothing half-written listed; every kind of damage fails restore with nothing in dest."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec  # type: ignore[import-untyped]
import pytest

from aidc.storage import backups
from aidc.storage.backup_writer import BackupWriter
from aidc.storage.backups import (
    create_backup,
    default_name,
    delete_backup,
    list_backups,
    restore_backup,
    verify_backup,
)
from aidc.storage.errors import BackupCorrupt, BackupError, BackupExists, BackupNotFound, WrongKey
from tests.unit.storage.archive_helpers import KEY, OTHER_KEY, WHEN, split_records


@pytest.fixture(params=["local", "file", "memory"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same tests against a plain path, a file:// URL and fsspec's in-memory filesystem."""
    if request.param == "local":
        yield str(tmp_path / "backups")
    elif request.param == "file":
        yield f"file://{tmp_path / 'backups'}"
    else:
        root = f"/aidc-test-{uuid.uuid4().hex}"
        yield f"memory://{root}"
        fs = fsspec.filesystem("memory")
        if fs.exists(root):
            fs.rm(root, recursive=True)


@pytest.fixture
def files(tmp_path: Path) -> list[tuple[str, Path]]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "aidc.sqlite").write_bytes(b"SQLite format 3\x00" + b"row " * 5000)
    (src / "model.bin").write_bytes(os.urandom(2 * 1024 * 1024 + 5))
    (src / "token.key").write_bytes(b"k" * 32)
    return [
        ("db/aidc.sqlite", src / "aidc.sqlite"),
        ("ckpt/model.bin", src / "model.bin"),
        ("token.key", src / "token.key"),
    ]


def contents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def expected(files: list[tuple[str, Path]]) -> dict[str, bytes]:
    return dict(sorted((name, path.read_bytes()) for name, path in files))


def raw(target: str, name: str) -> bytes:
    fs, root = fsspec.core.url_to_fs(target)
    with fs.open(f"{root}/{name}.aidcbak", "rb") as f:
        data: bytes = f.read()
    return data


def put_raw(target: str, name: str, data: bytes) -> None:
    fs, root = fsspec.core.url_to_fs(target)
    with fs.open(f"{root}/{name}", "wb") as f:
        f.write(data)


def test_create_list_verify_restore(target: str, files: list[tuple[str, Path]], tmp_path: Path) -> None:
    info = create_backup(target, "nightly", files, KEY, WHEN)
    assert (info.name, info.created_at) == ("nightly", WHEN)
    assert [m.name for m in info.members] == [name for name, _ in files]
    listed = list_backups(target)
    assert [(b.name, b.size, b.created_at) for b in listed] == [("nightly", info.size, WHEN)]
    report = verify_backup(target, "nightly", KEY)
    assert report.members == list(info.members)
    restore_backup(target, "nightly", KEY, tmp_path / "restored", fsync=False)
    assert contents(tmp_path / "restored") == expected(files)


def test_backups_are_listed_oldest_first_and_foreign_files_are_ignored(
    target: str, files: list[tuple[str, Path]]
) -> None:
    for hours, name in ((2, "b"), (0, "c"), (1, "a")):
        create_backup(target, name, files[:1], KEY, WHEN + timedelta(hours=hours))
    put_raw(target, "notes.txt", b"hello")
    put_raw(target, "d.aidcbak.partial", b"AIDCBAK\x00half")
    assert [b.name for b in list_backups(target)] == ["c", "a", "b"]


def test_listing_a_target_that_does_not_exist_gives_nothing(tmp_path: Path) -> None:
    assert list_backups(str(tmp_path / "nowhere")) == []


def test_names_are_checked_and_never_reused(target: str, files: list[tuple[str, Path]]) -> None:
    create_backup(target, "x", files[:1], KEY, WHEN)
    with pytest.raises(BackupExists):
        create_backup(target, "x", files[:1], KEY, WHEN)
    for bad in ("../x", "a/b", ".hidden", "x.aidcbak", "", "x.partial"):
        with pytest.raises(BackupError):
            create_backup(target, bad, files[:1], KEY, WHEN)
    with pytest.raises(BackupNotFound):
        verify_backup(target, "absent", KEY)


def test_default_names_sort_by_time() -> None:
    assert default_name(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "aidc-20260102T030405Z"
    assert default_name(WHEN) < default_name(WHEN + timedelta(seconds=1))


def test_delete(target: str, files: list[tuple[str, Path]]) -> None:
    create_backup(target, "old", files[:1], KEY, WHEN)
    delete_backup(target, "old")
    assert list_backups(target) == []
    with pytest.raises(BackupNotFound):
        delete_backup(target, "old")


def test_a_crash_mid_backup_keeps_the_previous_backup_and_lists_no_partial(
    target: str, files: list[tuple[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_backup(target, "monday", files, KEY, WHEN)
    before = raw(target, "monday")
    real_add_file = BackupWriter.add_file
    calls = 0

    def add_file_then_crash(self: BackupWriter, name: str, path: Path, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("node lost power while reading the checkpoint")
        return real_add_file(self, name, path)

    monkeypatch.setattr(BackupWriter, "add_file", add_file_then_crash)
    with pytest.raises(OSError, match="lost power"):
        create_backup(target, "tuesday", files, KEY, WHEN + timedelta(days=1))
    monkeypatch.undo()
    assert [b.name for b in list_backups(target)] == ["monday"]
    fs, root = fsspec.core.url_to_fs(target)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)) == ["monday.aidcbak"]
    assert raw(target, "monday") == before
    verify_backup(target, "monday", KEY)
    create_backup(target, "tuesday", files, KEY, WHEN + timedelta(days=1))  # the retry goes through
    assert [b.name for b in list_backups(target)] == ["monday", "tuesday"]


def test_a_partial_left_by_a_killed_process_is_not_listed_and_is_replaced_by_the_retry(
    target: str, files: list[tuple[str, Path]]
) -> None:
    create_backup(target, "full", files, KEY, WHEN)
    put_raw(target, "killed.aidcbak.partial", raw(target, "full")[:5000])
    assert [b.name for b in list_backups(target)] == ["full"]
    create_backup(target, "killed", files, KEY, WHEN)
    verify_backup(target, "killed", KEY)
    assert [b.name for b in list_backups(target)] == ["full", "killed"]


def _flip(data: bytes, offset: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 0x20
    return bytes(damaged)


def _reordered(data: bytes) -> bytes:
    header, records = split_records(data)
    records[1], records[2] = records[2], records[1]
    return header + b"".join(records)


DAMAGE = {
    "flipped byte in the header": lambda d: _flip(d, 22),
    "flipped byte in the middle": lambda d: _flip(d, len(d) // 2),
    "flipped byte in the index": lambda d: _flip(d, len(d) - 30),
    "truncated": lambda d: d[: len(d) - 200],
    "truncated to the header": lambda d: d[:36],
    "reordered records": _reordered,
    "empty file": lambda d: b"",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_backup_fails_verify_and_restore_and_leaves_no_files(
    target: str, files: list[tuple[str, Path]], tmp_path: Path, damage: str
) -> None:
    create_backup(target, "good", files, KEY, WHEN)
    put_raw(target, "bad.aidcbak", DAMAGE[damage](raw(target, "good")))
    with pytest.raises(BackupCorrupt):
        verify_backup(target, "bad", KEY)
    (tmp_path / "restore").mkdir()
    dest = tmp_path / "restore" / "here"
    with pytest.raises(BackupCorrupt):
        restore_backup(target, "bad", KEY, dest, fsync=False)
    assert not dest.exists()
    assert list((tmp_path / "restore").iterdir()) == []


def test_a_wrong_key_fails_restore_clearly_and_leaves_no_files(
    target: str, files: list[tuple[str, Path]], tmp_path: Path
) -> None:
    create_backup(target, "good", files, KEY, WHEN)
    with pytest.raises(WrongKey, match="wrong key"):
        verify_backup(target, "good", OTHER_KEY)
    dest = tmp_path / "restore"
    dest.mkdir()
    with pytest.raises(WrongKey):
        restore_backup(target, "good", OTHER_KEY, dest)
    assert list(dest.iterdir()) == []


def test_a_failure_while_writing_removes_the_partial(
    tmp_path: Path, files: list[tuple[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: object, dst: object) -> None:
        raise OSError("rename refused")

    monkeypatch.setattr(backups.os, "replace", refuse)
    target = str(tmp_path / "backups")
    with pytest.raises(OSError, match="rename refused"):
        create_backup(target, "x", files, KEY, WHEN)
    assert os.listdir(target) == []
