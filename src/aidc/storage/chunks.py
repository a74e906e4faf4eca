"""A content-addressed chunk store on a local directory.

A chunk is at most `CHUNK_SIZE` bytes, named by the SHA-256 of its content (lowercase hex) and kept at
`root/ab/cdef...` (the first two hex digits as a folder, so no folder holds more than ~1/256 of the
chunks). Two artifacts, or two versions of one, that share a chunk store it once.

Writes go through a temporary file in the chunk's folder, fsync, `os.replace`, then an fsync of the folder:
a crash leaves either the whole chunk or none of it (and perhaps a `.tmp-*` file that `iter_digests`
ignores). Reads hash the bytes again every time, so a chunk the disk flipped a bit in is reported as
`CorruptChunk` rather than handed to a training job.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from aidc.storage.errors import ChunkNotFound, CorruptChunk, StorageError
from aidc.storage.paths import fsync_dir

CHUNK_SIZE = 4 * 1024 * 1024  # 4 MiB: large enough that per-chunk overhead is noise, small enough to dedupe
_DIGEST = re.compile(r"[0-9a-f]{64}")
_TMP_PREFIX = ".tmp-"


def digest_of(data: bytes | memoryview) -> str:
    """The address of `data`: its SHA-256 as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """`digest` if it is 64 lowercase hex characters; StorageError otherwise (it becomes a file name)."""
    if not _DIGEST.fullmatch(digest):
        raise StorageError(f"not a chunk address (64 lowercase hex characters): {digest!r}")
    return digest


class ChunkStore:
    """Chunks under `root`, created if missing. `fsync=False` trades durability for speed (tests)."""

    def __init__(self, root: Path, *, chunk_size: int = CHUNK_SIZE, fsync: bool = True, mode: int = 0o600) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.root = root
        self.chunk_size = chunk_size
        self._fsync = fsync
        self._mode = mode
        root.mkdir(parents=True, exist_ok=True)

    def path_of(self, digest: str) -> Path:
        """Where the chunk `digest` lives (whether or not it is there)."""
        check_digest(digest)
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes | memoryview) -> str:
        """Store `data` and return its digest. A chunk already present with the right size is not written
        again (idempotent, and cheap when a checkpoint is re-put); one of the wrong size is replaced."""
        if len(data) > self.chunk_size:
            raise StorageError(f"a chunk holds at most {self.chunk_size} bytes, got {len(data)}")
        digest = digest_of(data)
        path = self.path_of(digest)
        try:
            if path.stat().st_size == len(data):
                return digest
        except FileNotFoundError:
            pass
        path.parent.mkdir(exist_ok=True)
        self._write_atomic(path, data)
        return digest

    def has(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def missing(self, digests: Iterable[str]) -> list[str]:
        """The digests not in the store, in the order given, each once: what a client still has to send."""
        out: list[str] = []
        seen: set[str] = set()
        for digest in digests:
            if digest not in seen:
                seen.add(digest)
                if not self.has(digest):
                    out.append(digest)
        return out

    def get(self, digest: str) -> bytes:
        """The chunk's bytes, after checking they still hash to `digest` (CorruptChunk if not)."""
        try:
            data = self.path_of(digest).read_bytes()
        except FileNotFoundError:
            raise ChunkNotFound(digest) from None
        actual = digest_of(data)
        if actual != digest:
            raise CorruptChunk(digest, actual)
        return data

    def size_of(self, digest: str) -> int:
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError:
            raise ChunkNotFound(digest) from None

    def delete(self, digest: str) -> bool:
        """Remove the chunk; True if it was there. Whether any manifest still needs it is the caller's
        question (`retention.unreferenced`)."""
        try:
            self.path_of(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def iter_digests(self) -> Iterator[str]:
        """Every chunk in the store, sorted; temporary files and anything else foreign are skipped."""
        if not self.root.is_dir():
            return
        for fan in sorted(os.listdir(self.root)):
            folder = self.root / fan
            if len(fan) != 2 or not folder.is_dir():
                continue
            for name in sorted(os.listdir(folder)):
                digest = fan + name
                if _DIGEST.fullmatch(digest):
                    yield digest

    def _write_atomic(self, path: Path, data: bytes | memoryview) -> None:
        # A unique temporary name: two writers of the same chunk must not share (and truncate) one file.
        tmp = path.with_name(f"{_TMP_PREFIX}{path.name[:16]}-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self._mode)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                if self._fsync:
                    os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self._fsync:
            fsync_dir(path.parent)


def split(source: Path | BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[tuple[str, bytes]]:
    """(digest, bytes) for each fixed-size chunk of a file or a binary stream, in order; the last one may
    be shorter, an empty source gives none. Streams are read until a chunk is full (short reads are
    fine), so memory holds one chunk at a time."""
    if isinstance(source, Path):
        with source.open("rb") as stream:
            yield from split(stream, chunk_size)
        return
    while True:
        chunk = _read_full(source, chunk_size)
        if not chunk:
            return
        yield digest_of(chunk), chunk


def _read_full(stream: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    remaining = size
    while remaining:
        part = stream.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)
