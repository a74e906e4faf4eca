"""Manifests: build from a file or a tree, store only changed chunks, restore all-or-nothing, refuse escapes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aidc.storage.chunks import ChunkStore
from aidc.storage.errors import ChunkNotFound, CorruptChunk, StorageError, UnsafePath
from aidc.storage.manifests import FileEntry, Manifest, build_manifest, materialize

CHUNK = 1024


@pytest.fixture
def store(tmp_path: Path) -> ChunkStore:
    return ChunkStore(tmp_path / "chunks", chunk_size=CHUNK, fsync=False)


def checkpoint(root: Path) -> Path:
    (root / "shards").mkdir(parents=True)
    (root / "shards" / "model-00001.bin").write_bytes(os.urandom(5 * CHUNK + 10))
    (root / "shards" / "model-00002.bin").write_bytes(os.urandom(3 * CHUNK))
    (root / "config.json").write_text('{"layers": 2}')
    (root / "empty").write_bytes(b"")
    os.chmod(root / "config.json", 0o640)
    return root


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def chunk_files(store: ChunkStore) -> int:
    return len(list(store.iter_digests()))


def test_a_directory_round_trips_with_contents_and_modes(tmp_path: Path, store: ChunkStore) -> None:
    src = checkpoint(tmp_path / "ckpt")
    manifest = build_manifest(src, store)
    assert [e.path for e in manifest.files] == [
        "config.json",
        "empty",
        "shards/model-00001.bin",
        "shards/model-00002.bin",
    ]
    assert manifest.files[0].mode == 0o640
    assert manifest.files[1].chunks == ()
    assert len(manifest.files[2].chunks) == 6
    assert manifest.total_size == sum(len(data) for data, _ in tree(src).values())
    materialize(manifest, store, tmp_path / "out", fsync=False)
    assert tree(tmp_path / "out") == tree(src)


def test_a_single_file_becomes_one_entry_named_after_it(tmp_path: Path, store: ChunkStore) -> None:
    path = tmp_path / "weights.safetensors"
    path.write_bytes(os.urandom(2 * CHUNK + 1))
    manifest = build_manifest(path, store)
    assert [(e.path, e.size, len(e.chunks)) for e in manifest.files] == [("weights.safetensors", 2 * CHUNK + 1, 3)]
    materialize(manifest, store, tmp_path / "out", fsync=False)
    assert (tmp_path / "out" / "weights.safetensors").read_bytes() == path.read_bytes()


def test_re_putting_a_checkpoint_stores_only_the_chunks_that_changed(tmp_path: Path, store: ChunkStore) -> None:
    src = checkpoint(tmp_path / "ckpt")
    first = build_manifest(src, store)
    stored = chunk_files(store)
    shard = src / "shards" / "model-00001.bin"
    with shard.open("r+b") as f:  # one tensor updated in place, in the third chunk
        f.seek(2 * CHUNK + 100)
        f.write(os.urandom(50))
    second = build_manifest(src, store)
    assert chunk_files(store) == stored + 1
    changed = [i for i, (a, b) in enumerate(zip(first.files[2].chunks, second.files[2].chunks, strict=True)) if a != b]
    assert changed == [2]
    assert build_manifest(src, store) == second
    assert chunk_files(store) == stored + 1


def test_json_is_canonical_and_round_trips(tmp_path: Path, store: ChunkStore) -> None:
    manifest = build_manifest(checkpoint(tmp_path / "ckpt"), store)
    text = manifest.to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")).encode()
    again = Manifest.from_json(text)
    assert again == manifest
    assert again.to_json() == text
    assert again.digest() == manifest.digest()
    assert Manifest(files=tuple(reversed(manifest.files)), chunk_size=CHUNK).to_json() == text


def test_a_symlink_to_a_file_inside_is_stored_as_that_file(tmp_path: Path, store: ChunkStore) -> None:
    src = checkpoint(tmp_path / "ckpt")
    (src / "latest.bin").symlink_to("shards/model-00002.bin")
    manifest = build_manifest(src, store)
    by_path = {e.path: e for e in manifest.files}
    assert by_path["latest.bin"].chunks == by_path["shards/model-00002.bin"].chunks


@pytest.mark.parametrize("kind", ["outside", "absolute", "directory", "dangling"])
def test_symlinks_that_escape_are_absolute_or_lead_to_folders_are_refused(
    tmp_path: Path, store: ChunkStore, kind: str
) -> None:
    src = checkpoint(tmp_path / "ckpt")
    (tmp_path / "secret").write_text("do not take me")
    link = src / "link"
    target = {
        "outside": "../secret",
        "absolute": str(src / "config.json"),
        "directory": "shards",
        "dangling": "nothing-here",
    }[kind]
    link.symlink_to(target)
    with pytest.raises(UnsafePath):
        build_manifest(src, store)


def test_a_fifo_is_refused(tmp_path: Path, store: ChunkStore) -> None:
    src = checkpoint(tmp_path / "ckpt")
    os.mkfifo(src / "pipe")
    with pytest.raises(UnsafePath):
        build_manifest(src, store)


def _doc(path: str, **changes: object) -> bytes:
    entry = {"path": path, "size": 0, "mode": 0o644, "chunks": []}
    body: dict[str, object] = {"format": "aidc-manifest", "version": 1, "chunk_size": CHUNK, "files": [entry]}
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "a//b", "./a", "a\\..\\b", "C:/x", ""])
def test_a_manifest_with_a_path_that_could_escape_is_refused(path: str) -> None:
    with pytest.raises(UnsafePath):
        Manifest.from_json(_doc(path))
    with pytest.raises(UnsafePath):
        Manifest(files=(FileEntry(path, 0, 0o644, ()),))


def test_a_manifest_naming_a_path_twice_or_as_file_and_folder_is_refused() -> None:
    with pytest.raises(UnsafePath, match="twice"):
        Manifest(files=(FileEntry("a", 0, 0o644, ()), FileEntry("a", 0, 0o644, ())))
    with pytest.raises(UnsafePath, match="folder"):
        Manifest(files=(FileEntry("a", 0, 0o644, ()), FileEntry("a/b", 0, 0o644, ())))


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b"[]",
        json.dumps({"format": "aidc-manifest", "version": 2, "chunk_size": 1, "files": []}).encode(),
        json.dumps({"format": "other", "version": 1, "chunk_size": 1, "files": []}).encode(),
        json.dumps({"format": "aidc-manifest", "version": 1, "chunk_size": True, "files": []}).encode(),
        json.dumps({"format": "aidc-manifest", "version": 1, "chunk_size": 1024, "files": {}}).encode(),
        json.dumps(
            {"format": "aidc-manifest", "version": 1, "chunk_size": 1024, "files": [{"path": "a", "size": 1}]}
        ).encode(),
    ],
)
def test_malformed_manifests_are_refused(doc: bytes) -> None:
    with pytest.raises(StorageError):
        Manifest.from_json(doc)


def test_a_chunk_count_that_does_not_match_the_size_is_refused() -> None:
    digest = "0" * 64
    with pytest.raises(StorageError, match="needs 2 chunks"):
        Manifest(files=(FileEntry("a", CHUNK + 1, 0o644, (digest,)),), chunk_size=CHUNK)
    with pytest.raises(StorageError):
        Manifest(files=(FileEntry("a", 1, 0o644, ("not-hex",)),), chunk_size=CHUNK)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_materialize_with_a_corrupt_chunk_writes_nothing(tmp_path: Path, store: ChunkStore) -> None:
    manifest = build_manifest(checkpoint(tmp_path / "ckpt"), store)
    victim = manifest.files[-1].chunks[-1]
    store.path_of(victim).write_bytes(b"\0" * CHUNK)
    dest = tmp_path / "restore" / "out"
    with pytest.raises(CorruptChunk):
        materialize(manifest, store, dest, fsync=False)
    assert not dest.exists()
    assert _leftovers(dest.parent) == []


def test_materialize_with_a_missing_chunk_writes_nothing(tmp_path: Path, store: ChunkStore) -> None:
    manifest = build_manifest(checkpoint(tmp_path / "ckpt"), store)
    store.delete(manifest.files[2].chunks[0])
    with pytest.raises(ChunkNotFound):
        materialize(manifest, store, tmp_path / "out", fsync=False)
    assert not (tmp_path / "out").exists()
    assert _leftovers(tmp_path) == []


def test_materialize_refuses_a_non_empty_destination_and_accepts_an_empty_one(
    tmp_path: Path, store: ChunkStore
) -> None:
    manifest = build_manifest(checkpoint(tmp_path / "ckpt"), store)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(StorageError, match="already exists"):
        materialize(manifest, store, busy, fsync=False)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    materialize(manifest, store, empty, fsync=False)
    assert tree(empty) == tree(tmp_path / "ckpt")
