"""The backup archive: members round-trip; a wrong key, any flipped byte, truncation, reordering, dropping
or splicing records each raise a clear error, and extraction leaves nothing behind when it does."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from aidc.storage.backup_format import HEADER, Header, Kind, RecordSink, member_start
from aidc.storage.backup_reader import BackupReader
from aidc.storage.backup_writer import BackupWriter
from aidc.storage.crypto import RecordCipher, fingerprint
from aidc.storage.errors import BackupCorrupt, BackupError, StorageError, UnsafePath, WrongKey
from tests.unit.storage.archive_helpers import KEY, MEMBERS, OTHER_KEY, WHEN, archive, split_records

EXTRACT_STRIDE = 23  # records are a few hundred bytes: every record is hit several times


def restored(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_members_round_trip_and_the_index_lists_sizes_and_hashes(tmp_path: Path) -> None:
    blob = archive()
    reader = BackupReader(io.BytesIO(blob), KEY)
    assert reader.created == WHEN
    listed = reader.members()
    assert [(m.name, m.size) for m in listed] == [(n, len(d)) for n, d in MEMBERS.items()]
    report = reader.verify()
    assert report.members == listed
    assert "intact" in str(report)
    reader.extract_all(tmp_path / "out", fsync=False)
    assert restored(tmp_path / "out") == MEMBERS
    assert (tmp_path / "out" / "db" / "aidc.sqlite").stat().st_mode & 0o777 == 0o600


def test_files_keep_their_mode_and_streams_of_any_length_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "run.sh"
    src.write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(src, 0o700)
    big = os.urandom(3 * 1024 * 1024 + 17)
    out = io.BytesIO()
    with BackupWriter(out, KEY, created=WHEN) as writer:
        writer.add_file("bin/run.sh", src)
        info = writer.add_stream("big.bin", io.BytesIO(big))
    assert (info.size, info.compression, info.stored) == (len(big), "none", len(big))
    BackupReader(io.BytesIO(out.getvalue()), KEY).extract_all(tmp_path / "out", fsync=False)
    assert (tmp_path / "out" / "bin" / "run.sh").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "out" / "big.bin").read_bytes() == big


def test_auto_compression_shrinks_text_and_leaves_random_bytes_alone() -> None:
    out = io.BytesIO()
    with BackupWriter(out, KEY) as writer:
        text = writer.add_bytes("log.txt", b"job 17 started on node-3\n" * 5000)
        noise = writer.add_bytes("weights.bin", os.urandom(200_000))
        forced = writer.add_bytes("forced.bin", os.urandom(1000), compression="zlib")
        plain = writer.add_bytes("plain.txt", b"a" * 10_000, compression="none")
    assert (text.compression, noise.compression, forced.compression, plain.compression) == (
        "zlib",
        "none",
        "zlib",
        "none",
    )
    assert text.stored < text.size / 10
    report = BackupReader(io.BytesIO(out.getvalue()), KEY).verify()
    assert [m.compression for m in report.members] == ["zlib", "none", "zlib", "none"]


def test_members_can_be_listed_from_a_stream_that_cannot_seek_but_only_once() -> None:
    class OneWay(io.BytesIO):
        def seekable(self) -> bool:
            return False

    reader = BackupReader(OneWay(archive()), KEY)
    assert [m.name for m in reader.members()] == list(MEMBERS)
    with pytest.raises(StorageError, match="cannot seek"):
        reader.verify()


def test_the_writer_refuses_duplicate_and_unsafe_names_and_adding_after_close() -> None:
    writer = BackupWriter(io.BytesIO(), KEY)
    writer.add_bytes("a", b"1")
    with pytest.raises(BackupError, match="twice"):
        writer.add_bytes("a", b"2")
    for bad in ("../etc/passwd", "/abs", "a/../../b"):
        with pytest.raises(UnsafePath):
            writer.add_bytes(bad, b"x")
    writer.close()
    writer.close()
    with pytest.raises(BackupError, match="closed"):
        writer.add_bytes("b", b"x")


def test_an_exception_while_writing_leaves_an_archive_that_never_verifies() -> None:
    out = io.BytesIO()

    def crash_after_one_member() -> None:
        with BackupWriter(out, KEY) as writer:
            writer.add_bytes("a", b"first member")
            raise RuntimeError("crash while reading the second member")

    with pytest.raises(RuntimeError):
        crash_after_one_member()
    with pytest.raises(BackupCorrupt, match="truncated"):
        BackupReader(io.BytesIO(out.getvalue()), KEY).verify()


def test_a_wrong_key_is_named_before_anything_is_decrypted(tmp_path: Path) -> None:
    with pytest.raises(WrongKey, match="wrong key") as caught:
        BackupReader(io.BytesIO(archive()), OTHER_KEY)
    assert fingerprint(OTHER_KEY).hex() in str(caught.value)
    assert isinstance(caught.value, BackupCorrupt)


def test_every_flipped_byte_anywhere_is_caught_and_nothing_is_extracted(tmp_path: Path) -> None:
    blob = archive()
    assert len(blob) < 12_000  # keeps the sweep quick
    for position in range(len(blob)):
        damaged = bytearray(blob)
        damaged[position] ^= 0x01
        with pytest.raises(BackupCorrupt):
            BackupReader(io.BytesIO(bytes(damaged)), KEY).verify()
        if position % EXTRACT_STRIDE == 0:  # extraction touches the disk: every few bytes is enough
            with pytest.raises(BackupCorrupt):
                BackupReader(io.BytesIO(bytes(damaged)), KEY).extract_all(tmp_path / "out", fsync=False)
            assert leftovers(tmp_path) == [], position


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (0, "bad magic"),  # magic
        (8, "unsupported backup format version"),
        (10, "unknown flags"),
        (21, "record 0 does not authenticate"),  # file id: the header is in every record's AAD
        (30, "wrong key"),  # the key fingerprint
        (-1, r"record \d+ \(byte \d+\) does not authenticate"),  # inside the index, the final record
    ],
)
def test_a_flipped_byte_says_what_it_broke(where: int, message: str) -> None:
    damaged = bytearray(archive())
    damaged[where] ^= 0x40
    with pytest.raises(BackupCorrupt, match=message):
        BackupReader(io.BytesIO(bytes(damaged)), KEY).verify()


def test_a_flipped_byte_in_the_middle_names_the_record() -> None:
    blob = archive()
    header, records = split_records(blob)
    middle = len(records) // 2
    offset = len(header) + sum(len(r) for r in records[:middle]) + 20
    damaged = bytearray(blob)
    damaged[offset] ^= 0x01
    with pytest.raises(BackupCorrupt, match=f"record {middle} "):
        BackupReader(io.BytesIO(bytes(damaged)), KEY).verify()


def test_every_truncation_is_caught(tmp_path: Path) -> None:
    blob = archive()
    for length in range(len(blob)):
        with pytest.raises(BackupCorrupt):
            BackupReader(io.BytesIO(blob[:length]), KEY).verify()
        if length % EXTRACT_STRIDE == 0:
            with pytest.raises(BackupCorrupt):
                BackupReader(io.BytesIO(blob[:length]), KEY).extract_all(tmp_path / "out", fsync=False)
    assert leftovers(tmp_path) == []


def test_truncation_at_a_record_boundary_says_the_index_is_missing() -> None:
    header, records = split_records(archive())
    with pytest.raises(BackupCorrupt, match="before the final index record"):
        BackupReader(io.BytesIO(header + b"".join(records[:-1])), KEY).verify()


def test_reordered_dropped_duplicated_or_appended_records_are_caught() -> None:
    header, records = split_records(archive())
    swapped = [*records]
    swapped[2], swapped[3] = swapped[3], swapped[2]
    dropped = records[:2] + records[3:]
    doubled = records[:3] + records[2:]
    for shuffled in (swapped, dropped, doubled):
        with pytest.raises(BackupCorrupt, match="does not authenticate"):
            BackupReader(io.BytesIO(header + b"".join(shuffled)), KEY).verify()
    with pytest.raises(BackupCorrupt, match="after the final record"):
        BackupReader(io.BytesIO(header + b"".join(records) + b"\0"), KEY).verify()


def test_a_record_spliced_in_from_another_archive_with_the_same_key_is_caught() -> None:
    header, records = split_records(archive())
    _, others = split_records(archive())  # same key and content, another random file id
    spliced = records[:2] + others[2:3] + records[3:]
    with pytest.raises(BackupCorrupt, match="record 2 "):
        BackupReader(io.BytesIO(header + b"".join(spliced)), KEY).verify()


def _forged(name: str) -> bytes:
    """An archive whose writer (holding the key) put a dangerous member name in it."""
    out = io.BytesIO()
    header = Header(WHEN, b"I" * 8, fingerprint(KEY)).pack()
    out.write(header)
    sink = RecordSink(out, RecordCipher(KEY, b"I" * 8, header))
    sink.write_kind(Kind.MEMBER, member_start(name, 0o644, "none"))
    sink.write_kind(Kind.DATA, b"owned")
    sink.write_kind(Kind.END, b"")
    sink.write_kind(Kind.INDEX, b'{"members":[]}', final=True)
    return out.getvalue()


@pytest.mark.parametrize("name", ["../escape", "/etc/cron.d/x", "a/../../b"])
def test_member_names_that_would_escape_the_destination_are_refused_even_when_authentic(
    tmp_path: Path, name: str
) -> None:
    dest = tmp_path / "restore" / "out"
    with pytest.raises(BackupCorrupt, match="member name refused"):
        BackupReader(io.BytesIO(_forged(name)), KEY).extract_all(dest, fsync=False)
    assert not (tmp_path / "escape").exists()
    assert leftovers(dest.parent) == []


def test_an_index_that_disagrees_with_the_members_is_caught() -> None:
    with pytest.raises(BackupCorrupt, match="index does not list"):
        BackupReader(io.BytesIO(_forged("fine.txt")), KEY).verify()


def test_extract_into_an_existing_folder_refuses_to_replace_files_unless_asked(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    (dest / "db").mkdir(parents=True)
    (dest / "db" / "aidc.sqlite").write_bytes(b"current")
    (dest / "unrelated.txt").write_text("keep me")
    blob = archive()
    with pytest.raises(StorageError, match="already exists"):
        BackupReader(io.BytesIO(blob), KEY).extract_all(dest, fsync=False)
    assert (dest / "db" / "aidc.sqlite").read_bytes() == b"current"
    assert sorted(p.name for p in dest.iterdir()) == ["db", "unrelated.txt"]
    BackupReader(io.BytesIO(blob), KEY).extract_all(dest, overwrite=True, fsync=False)
    assert (dest / "db" / "aidc.sqlite").read_bytes() == MEMBERS["db/aidc.sqlite"]
    assert (dest / "unrelated.txt").read_text() == "keep me"
    assert sorted(p.name for p in dest.iterdir()) == ["ckpt", "db", "empty", "unrelated.txt"]


def test_the_header_is_36_bytes_in_the_clear() -> None:
    blob = archive()
    header = Header.unpack(blob[: HEADER.size])
    assert HEADER.size == 36
    assert (header.created, header.key_fingerprint) == (WHEN, fingerprint(KEY))
    assert blob.startswith(b"AIDCBAK\x00")
    assert MEMBERS["ckpt/model.bin"][:64] not in blob
