"""The bytes of an aidc backup archive (`.aidcbak`), version 1.

    header   36 bytes, in the clear, authenticated with every record:
             magic "AIDCBAK\\0" | version u16 | flags u16 (0) | created u64 (Unix seconds, UTC)
             | file id (8 random bytes) | key fingerprint (8 bytes, see crypto.fingerprint)
    records  each: ciphertext length u32 | final flag u8 | AES-256-GCM ciphertext with its 16-byte tag
             nonce = file id || counter u32, AAD = header || counter u32 || final flag u8
             plaintext = kind u8 | payload

Record kinds, in this order: for each member MEMBER (JSON: name, mode, compression), DATA* (a piece of
at most PIECE_SIZE bytes of the member, compressed on its own when the member says zlib), END; then one
INDEX (JSON: every member's name, size, SHA-256, mode, compression, stored bytes), the only record with
the final flag, followed by nothing.

What each check catches: a changed byte anywhere fails a record's tag (the header's bytes are in every
record's AAD); a record moved or dropped fails because its counter is in its nonce; truncation leaves
no final record; bytes after the final record are refused; a wrong key is named by the fingerprint before
anything is decrypted. Big-endian throughout. All-streaming: a writer never seeks, a reader needs to seek
only to list members without reading the data.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, BinaryIO, Literal

from aidc.storage.crypto import FILE_ID_BYTES, FINGERPRINT_BYTES, TAG_BYTES, RecordCipher
from aidc.storage.errors import BackupCorrupt, UnsafePath
from aidc.storage.paths import check_relative

MAGIC = b"AIDCBAK\x00"
FORMAT_VERSION = 1
SUFFIX = ".aidcbak"
PIECE_SIZE = 1024 * 1024  # 1 MiB: AES-GCM and SHA-256 run at full speed, memory stays a few MiB
MAX_RECORD = 64 * 1024 * 1024  # refuse a length field beyond this before allocating (the index is the largest)
HEADER = struct.Struct(f">8sHHQ{FILE_ID_BYTES}s{FINGERPRINT_BYTES}s")
FRAME = struct.Struct(">IB")

Compression = Literal["none", "zlib"]
COMPRESSIONS: tuple[Compression, ...] = ("none", "zlib")


class Kind(IntEnum):
    MEMBER = 1
    DATA = 2
    END = 3
    INDEX = 4


@dataclass(frozen=True, slots=True)
class Header:
    created: datetime
    file_id: bytes
    key_fingerprint: bytes

    def pack(self) -> bytes:
        created = self.created if self.created.tzinfo else self.created.replace(tzinfo=UTC)
        return HEADER.pack(MAGIC, FORMAT_VERSION, 0, int(created.timestamp()), self.file_id, self.key_fingerprint)

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        if len(data) < HEADER.size:
            raise BackupCorrupt(f"not an aidc backup: {len(data)} bytes, shorter than the {HEADER.size}-byte header")
        magic, version, flags, created, file_id, key_fp = HEADER.unpack(data[: HEADER.size])
        if magic != MAGIC:
            raise BackupCorrupt("not an aidc backup (or its header is corrupted): bad magic bytes")
        if version != FORMAT_VERSION:
            raise BackupCorrupt(f"unsupported backup format version {version} (this aidc reads {FORMAT_VERSION})")
        if flags:
            raise BackupCorrupt(f"corrupted header: unknown flags {flags:#06x}")
        try:
            when = datetime.fromtimestamp(created, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise BackupCorrupt("corrupted header: creation time out of range") from None
        return cls(created=when, file_id=file_id, key_fingerprint=key_fp)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member as the index lists it: `size` and `sha256` are of the original bytes, `stored` is what
    its DATA payloads took after compression."""

    name: str
    size: int
    sha256: str
    mode: int = 0o600
    compression: Compression = "none"
    stored: int = 0


def member_start(name: str, mode: int, compression: Compression) -> bytes:
    return _dumps({"name": name, "mode": mode, "compression": compression})


def parse_member_start(payload: bytes | memoryview) -> tuple[str, int, Compression]:
    body = _loads(payload, "member record")
    name, mode, compression = body.get("name"), body.get("mode"), body.get("compression")
    if not isinstance(name, str) or not isinstance(mode, int) or compression not in COMPRESSIONS:
        raise BackupCorrupt("member record: name, mode or compression missing or of the wrong type")
    return check_name(name), mode & 0o777, compression


def encode_index(members: list[MemberInfo]) -> bytes:
    return _dumps(
        {
            "members": [
                {
                    "name": m.name,
                    "size": m.size,
                    "sha256": m.sha256,
                    "mode": m.mode,
                    "compression": m.compression,
                    "stored": m.stored,
                }
                for m in members
            ]
        }
    )


def decode_index(payload: bytes | memoryview) -> list[MemberInfo]:
    body = _loads(payload, "index")
    items = body.get("members")
    if not isinstance(items, list):
        raise BackupCorrupt("index: 'members' missing")
    out: list[MemberInfo] = []
    for item in items:
        try:
            out.append(
                MemberInfo(
                    name=check_name(item["name"]),
                    size=int(item["size"]),
                    sha256=str(item["sha256"]),
                    mode=int(item["mode"]) & 0o777,
                    compression=item["compression"] if item["compression"] in COMPRESSIONS else "none",
                    stored=int(item["stored"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            raise BackupCorrupt("index: a member entry is incomplete") from None
    return out


def check_name(name: str) -> str:
    """A member name is a relative POSIX path that stays inside the restore directory."""
    try:
        return check_relative(name)
    except UnsafePath as exc:
        raise BackupCorrupt(f"member name refused: {exc}") from None


class RecordSink:
    """Seals records in order and writes them to a binary stream that is only ever appended to."""

    def __init__(self, out: BinaryIO, cipher: RecordCipher) -> None:
        self._out = out
        self._cipher = cipher
        self.counter = 0
        self.closed = False

    def write(self, plaintext: bytes | bytearray | memoryview, *, final: bool = False) -> int:
        """Seal `plaintext` (its first byte the kind) as the next record; return the bytes written."""
        if self.closed:
            raise ValueError("the archive already has its final record")
        sealed = self._cipher.seal(self.counter, final, plaintext)
        if len(sealed) > MAX_RECORD:
            raise ValueError(f"a record of {len(sealed)} bytes is over the {MAX_RECORD}-byte limit")
        self._out.write(FRAME.pack(len(sealed), 1 if final else 0))
        self._out.write(sealed)
        self.counter += 1
        self.closed = final
        return FRAME.size + len(sealed)

    def write_kind(self, kind: Kind, payload: bytes, *, final: bool = False) -> int:
        return self.write(bytes((kind,)) + payload, final=final)


class RecordSource:
    """Reads records in order from just after the header, opens each, and names what went wrong."""

    def __init__(self, stream: BinaryIO, cipher: RecordCipher, offset: int) -> None:
        self._in = stream
        self._cipher = cipher
        self.offset = offset  # of the next record, for error messages
        self.counter = 0
        self.done = False

    def next(self) -> tuple[Kind, memoryview, bool] | None:
        """(kind, payload, final) of the next record, or None at the clean end after the final one."""
        if self.done:
            if self._in.read(1):
                raise BackupCorrupt(f"data after the final record (at byte {self.offset}): the file was appended to")
            return None
        length, final = self._frame()
        ciphertext = self._exact(length)
        plaintext = self._cipher.open(self.counter, final, ciphertext)
        if plaintext is None:
            raise BackupCorrupt(self._auth_failure())
        if not plaintext:
            raise BackupCorrupt(f"record {self.counter}: empty")
        self.counter += 1
        self.offset += FRAME.size + length
        self.done = final
        try:
            kind = Kind(plaintext[0])
        except ValueError:
            raise BackupCorrupt(f"record {self.counter - 1}: unknown kind {plaintext[0]}") from None
        return kind, memoryview(plaintext)[1:], final

    def skip_to_final(self) -> tuple[Kind, memoryview, bool]:
        """Step over records without opening them (seeking past their bodies) and open only the final
        one: how members are listed without reading the data. The final record's counter still has to
        match, so a dropped or added record is noticed here too."""
        while True:
            length, final = self._frame()
            if final:
                self._in.seek(-FRAME.size, 1)
                record = self.next()
                assert record is not None  # a final frame was just read
                return record
            self._in.seek(length, 1)
            self.counter += 1
            self.offset += FRAME.size + length

    def _frame(self) -> tuple[int, bool]:
        frame = self._exact(FRAME.size, at_boundary=True)
        length, final = FRAME.unpack(frame)
        if final > 1 or not TAG_BYTES < length <= MAX_RECORD:
            raise BackupCorrupt(f"record {self.counter} (byte {self.offset}): corrupted length or flag")
        return length, bool(final)

    def _exact(self, size: int, *, at_boundary: bool = False) -> bytes:
        data = self._in.read(size)
        while 0 < len(data) < size:
            more = self._in.read(size - len(data))
            if not more:
                break
            data += more
        if len(data) < size:
            where = f"before record {self.counter}" if at_boundary and not data else f"inside record {self.counter}"
            raise BackupCorrupt(f"truncated: the file ends {where} (byte {self.offset}), before the final index record")
        return data

    def _auth_failure(self) -> str:
        if self.counter == 0:
            return (
                "record 0 does not authenticate although the key matches the backup's key fingerprint: "
                "the header or the first record is corrupted"
            )
        return (
            f"record {self.counter} (byte {self.offset}) does not authenticate: "
            "the backup is corrupted, or records were reordered, dropped or marked final"
        )


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _loads(payload: bytes | memoryview, what: str) -> dict[str, Any]:
    try:
        body = json.loads(bytes(payload))
    except ValueError:
        raise BackupCorrupt(f"{what}: not valid JSON") from None
    if not isinstance(body, dict):
        raise BackupCorrupt(f"{what}: not a JSON object")
    return body
