"""Helpers shared by the backup tests: a small archive, and its header and records cut apart."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from aidc.storage.backup_format import FRAME, HEADER
from aidc.storage.backup_writer import BackupWriter

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
WHEN = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MEMBERS = {
    "db/aidc.sqlite": b"SQLite format 3\x00" + b"jobs table " * 300,
    "ckpt/model.bin": bytes(range(256)) * 9,
    "empty": b"",
}


def archive(key: bytes = KEY, piece_size: int = 512) -> bytes:
    """Three members over several small pieces: every record kind, many records, a few KiB."""
    out = io.BytesIO()
    with BackupWriter(out, key, created=WHEN, piece_size=piece_size) as writer:
        for name, data in MEMBERS.items():
            writer.add_bytes(name, data)
    return out.getvalue()


def split_records(blob: bytes) -> tuple[bytes, list[bytes]]:
    """(header, [frame + sealed body, ...]) of an archive."""
    header, offset, records = blob[: HEADER.size], HEADER.size, []
    while offset < len(blob):
        length, _ = FRAME.unpack(blob[offset : offset + FRAME.size])
        records.append(blob[offset : offset + FRAME.size + length])
        offset += FRAME.size + length
    return header, records
