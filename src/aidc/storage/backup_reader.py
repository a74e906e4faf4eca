"""BackupReader: list, verify or extract an archive written by BackupWriter.

Nothing reaches the destination before the whole archive has been read and every check has passed:
`extract_all` writes into a temporary directory, compares every member's size and SHA-256 with the
index, and only then renames into place. A wrong key, a flipped byte, a truncated file or reordered
records each raise BackupCorrupt (WrongKey for the key) and leave the destination as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from aidc.storage.backup_format import (
    HEADER,
    PIECE_SIZE,
    Compression,
    Header,
    Kind,
    MemberInfo,
    RecordSource,
    decode_index,
    parse_member_start,
)
from aidc.storage.crypto import RecordCipher, fingerprint
from aidc.storage.errors import BackupCorrupt, StorageError, WrongKey
from aidc.storage.paths import fsync_dir, join_inside


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a full read found: every member's hash matched the index (anything else raises)."""

    created: datetime
    members: list[MemberInfo] = field(default_factory=list)
    records: int = 0

    @property
    def total_size(self) -> int:
        return sum(m.size for m in self.members)

    def __str__(self) -> str:
        return (
            f"backup of {self.created:%Y-%m-%d %H:%M:%S} UTC intact: {len(self.members)} members, "
            f"{self.total_size:,} bytes, {self.records} records, every SHA-256 matches its index"
        )


class _Sink(Protocol):
    def begin(self, name: str, mode: int) -> None: ...
    def write(self, data: bytes | memoryview) -> None: ...
    def end(self) -> None: ...


class BackupReader:
    """Reads the archive in `stream` with `key`. The header is checked at once: not an archive, an
    unknown version, or a key whose fingerprint differs (WrongKey) fail here, before any decryption.

    Each of members(), verify() and extract_all() reads from the start again; on a stream that cannot
    seek, only one of them can be called."""

    def __init__(self, stream: BinaryIO, key: bytes) -> None:
        self._in = stream
        self._start = stream.tell() if stream.seekable() else 0
        raw = stream.read(HEADER.size)
        self.header = Header.unpack(raw)
        if fingerprint(key) != self.header.key_fingerprint:
            raise WrongKey(
                f"wrong key (or a corrupted header): the backup was written with the key of fingerprint "
                f"{self.header.key_fingerprint.hex()}, the key given has fingerprint {fingerprint(key).hex()}"
            )
        self._cipher = RecordCipher(key, self.header.file_id, raw)
        self._passes = 0

    @property
    def created(self) -> datetime:
        return self.header.created

    def members(self) -> list[MemberInfo]:
        """The index, authenticated, without reading the members' data when the stream can seek (their
        records are stepped over). It does not check the data: verify() does."""
        source = self._source()
        if not self._in.seekable():
            return self._walk(source, None).members
        kind, payload, _ = source.skip_to_final()
        if kind != Kind.INDEX:
            raise BackupCorrupt("the final record is not the index")
        return decode_index(payload)

    def verify(self) -> VerifyReport:
        """Read every record, decompress and hash every member, and compare with the index; writes nothing."""
        return self._walk(self._source(), None)

    def extract_all(self, dest_dir: Path, *, overwrite: bool = False, fsync: bool = True) -> VerifyReport:
        """Restore every member under `dest_dir`, after every check has passed.

        A `dest_dir` that does not exist is created by renaming the finished temporary directory (one
        atomic step; it gets mode 0700, as backups hold secrets). Into an existing directory, members are
        moved one by one, and a member that would replace an existing file is refused unless `overwrite`."""
        existed = dest_dir.exists()
        if existed and not dest_dir.is_dir():
            raise StorageError(f"{dest_dir} exists and is not a directory")
        parent = dest_dir if existed else dest_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".aidc-restore-", dir=parent))
        sink = _DirSink(tmp, fsync=fsync)
        try:
            report = self._walk(self._source(), sink)
            if existed:
                _move_into(tmp, dest_dir, report.members, overwrite=overwrite)
            else:
                os.replace(tmp, dest_dir)
            if fsync:
                fsync_dir(parent)
            return report
        finally:
            sink.abort()
            shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename

    def _source(self) -> RecordSource:
        if self._passes and not self._in.seekable():
            raise StorageError("this backup stream cannot seek: read it once (verify or extract_all), not twice")
        self._passes += 1
        if self._passes > 1:
            self._in.seek(self._start + HEADER.size)
        return RecordSource(self._in, self._cipher, HEADER.size)

    def _walk(self, source: RecordSource, sink: _Sink | None) -> VerifyReport:
        seen: list[MemberInfo] = []
        names: set[str] = set()
        while True:
            record = source.next()
            if record is None:
                raise BackupCorrupt("the archive ended without an index")  # unreachable: next() raises first
            kind, payload, final = record
            if kind == Kind.INDEX:
                if not final:
                    raise BackupCorrupt(f"record {source.counter - 1}: an index that is not the final record")
                index = decode_index(payload)
                source.next()  # refuses trailing bytes
                _compare(seen, index)
                return VerifyReport(created=self.header.created, members=index, records=source.counter)
            if kind != Kind.MEMBER or final:
                raise BackupCorrupt(f"record {source.counter - 1}: expected a member or the index, found {kind.name}")
            name, mode, compression = parse_member_start(payload)
            if name in names:
                raise BackupCorrupt(f"member {name!r} appears twice")
            names.add(name)
            seen.append(self._member(source, name, mode, compression, sink))

    def _member(
        self, source: RecordSource, name: str, mode: int, compression: Compression, sink: _Sink | None
    ) -> MemberInfo:
        if sink is not None:
            sink.begin(name, mode)
        digest = hashlib.sha256()
        size = stored = 0
        while True:
            record = source.next()
            if record is None or record[2]:
                raise BackupCorrupt(f"member {name!r}: the archive ends inside it")
            kind, payload, _ = record
            if kind == Kind.END:
                break
            if kind != Kind.DATA:
                raise BackupCorrupt(f"member {name!r}: unexpected {kind.name} record inside it")
            data = _unpack(payload, compression, name)
            digest.update(data)
            size += len(data)
            stored += len(payload)
            if sink is not None:
                sink.write(data)
        if sink is not None:
            sink.end()
        return MemberInfo(name, size, digest.hexdigest(), mode, compression, stored)


class _DirSink:
    """Writes members as files under a fresh directory: O_EXCL and O_NOFOLLOW, mode set when complete."""

    def __init__(self, root: Path, *, fsync: bool) -> None:
        self._root = root
        self._fsync = fsync
        self._out: BinaryIO | None = None
        self._path = root
        self._mode = 0o600

    def begin(self, name: str, mode: int) -> None:
        self._path = join_inside(self._root, name)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self._out = os.fdopen(fd, "wb")
        self._mode = mode

    def write(self, data: bytes | memoryview) -> None:
        assert self._out is not None
        self._out.write(data)

    def end(self) -> None:
        assert self._out is not None
        with self._out:
            self._out.flush()
            if self._fsync:
                os.fsync(self._out.fileno())
        self._out = None
        os.chmod(self._path, self._mode)

    def abort(self) -> None:
        """Close a member left half-written by an error (its file is removed with the directory)."""
        if self._out is not None:
            self._out.close()
            self._out = None


def _unpack(payload: memoryview, compression: Compression, name: str) -> bytes | memoryview:
    if compression == "none":
        return payload
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload, PIECE_SIZE + 1)
    except zlib.error:
        raise BackupCorrupt(f"member {name!r}: a compressed piece does not inflate") from None
    if len(data) > PIECE_SIZE or not inflater.eof or inflater.unconsumed_tail:
        raise BackupCorrupt(f"member {name!r}: a compressed piece inflates to more than {PIECE_SIZE} bytes")
    return data


def _compare(seen: list[MemberInfo], index: list[MemberInfo]) -> None:
    if [m.name for m in seen] != [m.name for m in index]:
        raise BackupCorrupt("the index does not list the members the archive holds")
    for got, listed in zip(seen, index, strict=True):
        if (got.size, got.sha256) != (listed.size, listed.sha256):
            raise BackupCorrupt(
                f"member {got.name!r}: {got.size} bytes with SHA-256 {got.sha256}, "
                f"the index says {listed.size} bytes with {listed.sha256}"
            )


def _move_into(tmp: Path, dest: Path, members: list[MemberInfo], *, overwrite: bool) -> None:
    root = dest.resolve()
    targets = [join_inside(dest, m.name) for m in members]
    # Every refusal happens before the first move, so a refused restore leaves `dest` untouched.
    for target in targets:
        if not target.parent.resolve().is_relative_to(root):
            raise StorageError(f"{target}: its folder leads outside {dest} through a symlink")
        blocking = [p for p in target.parents if p.is_relative_to(dest) and p.exists() and not p.is_dir()]
        if blocking:
            raise StorageError(f"{target}: {blocking[0]} is a file where a folder is needed")
        if target.is_dir() or (not overwrite and (target.exists() or target.is_symlink())):
            raise StorageError(f"{target} already exists (restore with overwrite to replace a file)")
    for member, target in zip(members, targets, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(join_inside(tmp, member.name), target)
