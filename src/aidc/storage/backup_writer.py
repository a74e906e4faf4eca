"""BackupWriter: named members in, an encrypted archive out (format in `backup_format`), streamed.

Members are read in PIECE_SIZE pieces, hashed, optionally compressed, sealed and appended, so memory
holds a piece or two whatever the member's size, and the output stream is never sought (an object-store
upload stream will do).

Compression. Checkpoints are float tensors, nearly incompressible: on float16 weights zlib at level 1
saves about 8% at about 40 MB/s on one core, while the rest of the pipeline (SHA-256, AES-GCM) runs at
more than 1.5 GB/s. So the default, "auto", compresses a member only when a 64 KiB sample from its first
piece shrinks to 3/4 or less (a SQLite database, JSON, logs, configs do; tensors do not): backups of
weights run at disk speed and small text-like members still shrink. "none" and "zlib" force either way.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import zlib
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, Protocol

from aidc.storage.backup_format import (
    PIECE_SIZE,
    Compression,
    Header,
    Kind,
    MemberInfo,
    RecordSink,
    encode_index,
    member_start,
)
from aidc.storage.crypto import FILE_ID_BYTES, RecordCipher, fingerprint
from aidc.storage.errors import BackupError
from aidc.storage.paths import check_relative

CompressionChoice = Literal["auto", "none", "zlib"]
ZLIB_LEVEL = 1  # the fastest: higher levels gain a percent or two on this data at twice the time
AUTO_SAMPLE = 64 * 1024
AUTO_RATIO = 0.75


class Readable(Protocol):
    """A binary stream read into a caller's buffer (files, BytesIO, sockets' makefile('rb'))."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class BackupWriter:
    """Writes an archive to `out`: the header at once, then each `add_*` call's member, then the index on
    `close()`. `out` is not closed (the caller owns it). Used as a context manager, an exception inside
    the block leaves the archive without its final index record, so it can never pass for complete."""

    def __init__(
        self,
        out: BinaryIO,
        key: bytes,
        *,
        created: datetime | None = None,
        compression: CompressionChoice = "auto",
        piece_size: int = PIECE_SIZE,
    ) -> None:
        if not 0 < piece_size <= PIECE_SIZE:
            raise ValueError(f"piece_size must be in 1..{PIECE_SIZE}")
        file_id = secrets.token_bytes(FILE_ID_BYTES)
        header = Header(created or datetime.now(UTC), file_id, fingerprint(key)).pack()
        self._cipher = RecordCipher(key, file_id, header)
        self._sink = RecordSink(out, self._cipher)
        self._compression = compression
        self._piece = piece_size
        self._members: list[MemberInfo] = []
        self._names: set[str] = set()
        out.write(header)
        self.bytes_written = len(header)

    @property
    def members(self) -> list[MemberInfo]:
        return list(self._members)

    def add_file(self, name: str, path: Path, *, compression: CompressionChoice | None = None) -> MemberInfo:
        """Add the file at `path` as member `name` (a relative POSIX path), keeping its permission bits."""
        with path.open("rb") as stream:
            mode = os.fstat(stream.fileno()).st_mode & 0o777
            return self.add_stream(name, stream, mode=mode, compression=compression)

    def add_bytes(
        self, name: str, data: bytes, *, mode: int = 0o600, compression: CompressionChoice | None = None
    ) -> MemberInfo:
        return self.add_stream(name, BytesIO(data), mode=mode, compression=compression)

    def add_stream(
        self, name: str, stream: Readable, *, mode: int = 0o600, compression: CompressionChoice | None = None
    ) -> MemberInfo:
        """Add everything `stream` yields until EOF as member `name` (any binary file object)."""
        check_relative(name)
        if name in self._names:
            raise BackupError(f"member {name!r} added twice")
        if self._sink.closed:
            raise BackupError("the archive is closed")
        self._names.add(name)
        # One buffer reused for every piece, its first byte the record kind: sealing reads it in place.
        buffer = bytearray(1 + self._piece)
        buffer[0] = Kind.DATA
        view = memoryview(buffer)
        filled = _fill(stream, view[1:])
        chosen = _choose(compression or self._compression, view[1 : 1 + filled])
        self._write(Kind.MEMBER, member_start(name, mode & 0o777, chosen))
        digest = hashlib.sha256()
        size = stored = 0
        while filled:
            piece = view[1 : 1 + filled]
            digest.update(piece)
            size += filled
            if chosen == "zlib":
                packed = zlib.compress(piece, ZLIB_LEVEL)
                stored += len(packed)
                self.bytes_written += self._sink.write_kind(Kind.DATA, packed)
            else:
                stored += filled
                self.bytes_written += self._sink.write(view[: 1 + filled])
            filled = _fill(stream, view[1:])
        self._write(Kind.END, b"")
        info = MemberInfo(name, size, digest.hexdigest(), mode & 0o777, chosen, stored)
        self._members.append(info)
        return info

    def close(self) -> list[MemberInfo]:
        """Write the index as the final record; the members it lists. Closing twice is harmless."""
        if not self._sink.closed:
            self.bytes_written += self._sink.write_kind(Kind.INDEX, encode_index(self._members), final=True)
        return self.members

    def __enter__(self) -> BackupWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()

    def _write(self, kind: Kind, payload: bytes) -> None:
        self.bytes_written += self._sink.write_kind(kind, payload)


def _fill(stream: Readable, view: memoryview) -> int:
    """Read into `view` until it is full or the stream ends (pipes and sockets return short reads)."""
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def _choose(choice: CompressionChoice, first_piece: memoryview) -> Compression:
    if choice != "auto":
        return choice
    if not first_piece:
        return "none"
    middle = max(0, len(first_piece) // 2 - AUTO_SAMPLE // 2)
    sample = first_piece[middle : middle + AUTO_SAMPLE]
    return "zlib" if len(zlib.compress(sample, ZLIB_LEVEL)) <= AUTO_RATIO * len(sample) else "none"
