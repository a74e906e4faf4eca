"""The chunk store: content addressing, atomic idempotent writes, and a hash check on every read."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from aidc.storage.chunks import CHUNK_SIZE, ChunkStore, split
from aidc.storage.errors import ChunkNotFound, CorruptChunk, StorageError


@pytest.fixture
def store(tmp_path: Path) -> ChunkStore:
    return ChunkStore(tmp_path / "chunks", chunk_size=1024, fsync=False)


def test_the_default_chunk_is_4_mib() -> None:
    assert CHUNK_SIZE == 4 * 1024 * 1024


def test_a_chunk_is_stored_under_its_sha256_with_a_two_level_fan_out(store: ChunkStore) -> None:
    digest = store.put(b"weights")
    assert digest == hashlib.sha256(b"weights").hexdigest()
    assert (store.root / digest[:2] / digest[2:]).read_bytes() == b"weights"
    assert store.get(digest) == b"weights"
    assert store.has(digest)
    assert store.size_of(digest) == 7


def test_putting_the_same_chunk_again_does_not_rewrite_it(store: ChunkStore) -> None:
    digest = store.put(b"x" * 100)
    before = os.stat(store.path_of(digest))
    assert store.put(b"x" * 100) == digest
    after = os.stat(store.path_of(digest))
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_a_chunk_of_the_wrong_size_on_disk_is_replaced_on_put(store: ChunkStore) -> None:
    digest = store.put(b"abc")
    store.path_of(digest).write_bytes(b"ab")  # a torn write from some other tool
    store.put(b"abc")
    assert store.get(digest) == b"abc"


def test_a_chunk_changed_on_disk_is_reported_corrupt_on_read(store: ChunkStore) -> None:
    digest = store.put(b"abc")
    store.path_of(digest).write_bytes(b"abd")
    with pytest.raises(CorruptChunk) as caught:
        store.get(digest)
    assert caught.value.digest == digest
    assert digest in str(caught.value)
    assert isinstance(caught.value, StorageError)


def test_missing_lists_absent_digests_once_in_the_order_given(store: ChunkStore) -> None:
    present = store.put(b"a")
    absent1, absent2 = hashlib.sha256(b"b").hexdigest(), hashlib.sha256(b"c").hexdigest()
    assert store.missing([absent2, present, absent1, absent2]) == [absent2, absent1]


def test_get_and_size_of_an_absent_chunk_raise_chunk_not_found(store: ChunkStore) -> None:
    absent = hashlib.sha256(b"nothing").hexdigest()
    with pytest.raises(ChunkNotFound):
        store.get(absent)
    with pytest.raises(ChunkNotFound):
        store.size_of(absent)
    assert not store.has(absent)


def test_delete_says_whether_the_chunk_was_there(store: ChunkStore) -> None:
    digest = store.put(b"a")
    assert store.delete(digest)
    assert not store.delete(digest)
    assert not store.has(digest)


def test_iter_digests_lists_chunks_sorted_and_skips_temporary_and_foreign_files(store: ChunkStore) -> None:
    digests = sorted(store.put(bytes([i])) for i in range(20))
    fan = store.root / digests[0][:2]
    (fan / ".tmp-leftover").write_bytes(b"half")
    (fan / "README").write_text("not a chunk")
    (store.root / "notes.txt").write_text("not a folder")
    assert list(store.iter_digests()) == digests


def test_addresses_are_checked_before_they_become_paths(store: ChunkStore) -> None:
    for bad in ("../../etc/passwd", "AB" * 32, "a" * 63, ""):
        with pytest.raises(StorageError):
            store.get(bad)


def test_a_chunk_larger_than_the_chunk_size_is_refused(store: ChunkStore) -> None:
    with pytest.raises(StorageError):
        store.put(b"x" * 1025)


def test_a_failed_write_leaves_no_temporary_file(store: ChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"data")
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_split_cuts_a_file_into_fixed_size_chunks(tmp_path: Path) -> None:
    data = os.urandom(2500)
    path = tmp_path / "f"
    path.write_bytes(data)
    chunks = list(split(path, 1000))
    assert [len(c) for _, c in chunks] == [1000, 1000, 500]
    assert b"".join(c for _, c in chunks) == data
    assert all(d == hashlib.sha256(c).hexdigest() for d, c in chunks)


class _Trickle(io.RawIOBase):
    """A stream that returns at most 7 bytes a read, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 7) if size >= 0 else 7)


def test_split_fills_each_chunk_from_a_stream_that_returns_short_reads() -> None:
    data = os.urandom(250)
    chunks = list(split(_Trickle(data), 100))  # type: ignore[arg-type]
    assert [len(c) for _, c in chunks] == [100, 100, 50]
    assert b"".join(c for _, c in chunks) == data


def test_split_of_an_empty_source_gives_no_chunks() -> None:
    assert list(split(io.BytesIO(b""), 100)) == []
    assert [len(c) for _, c in split(io.BytesIO(b"x" * 200), 100)] == [100, 100]
