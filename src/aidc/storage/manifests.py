"""The manifest of one artifact version: which files, with which sizes and modes, made of which chunks.

A version is a file or a directory (a checkpoint folder, a dataset shard, a model's weights). Its
manifest lists every plain file by relative POSIX path, sorted, each with the SHA-256 addresses of its
fixed-size chunks in a `ChunkStore`; the manifest's canonical JSON (sorted keys, no spaces) hashes to the
same digest wherever it is built, so it can name the version.

Why fixed-size chunks rather than content-defined ones (Rabin/FastCDC): content-defined chunking pays off
when bytes are inserted or removed and later data shifts. Checkpoints do not behave like that: each
save rewrites the same tensors, of the same shapes, at the same offsets, so a changed tensor changes the
chunks it covers and leaves the others byte-identical at their old offsets. Fixed boundaries find those
unchanged chunks just as well, cost nothing to compute (no rolling hash over every byte), and give
predictable chunk sizes. Re-putting a checkpoint directory therefore stores only the chunks that changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aidc.storage.chunks import CHUNK_SIZE, ChunkStore, check_digest, split
from aidc.storage.errors import StorageError, UnsafePath
from aidc.storage.paths import check_tree, fsync_dir, join_inside

MANIFEST_FORMAT = "aidc-manifest"
MANIFEST_VERSION = 1


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One plain file: `path` relative to the artifact's root (POSIX), permission bits, chunk addresses."""

    path: str
    size: int
    mode: int
    chunks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Manifest:
    """The files of a version, sorted by path; checked on construction (safe paths, valid addresses, a
    chunk count that matches each size), so a Manifest that exists is one `materialize` may write."""

    files: tuple[FileEntry, ...]
    chunk_size: int = CHUNK_SIZE

    def __post_init__(self) -> None:
        if self.chunk_size <= 0:
            raise StorageError("manifest: chunk_size must be positive")
        object.__setattr__(self, "files", tuple(sorted(self.files, key=lambda entry: entry.path)))
        check_tree([entry.path for entry in self.files])
        for entry in self.files:
            if entry.size < 0 or not 0 <= entry.mode <= 0o777:
                raise StorageError(f"manifest: {entry.path!r} has a negative size or a mode outside 0o777")
            expected = -(-entry.size // self.chunk_size)  # ceiling division
            if len(entry.chunks) != expected:
                raise StorageError(
                    f"manifest: {entry.path!r} of {entry.size} bytes needs {expected} chunks, lists {len(entry.chunks)}"
                )
            for digest in entry.chunks:
                check_digest(digest)

    @property
    def total_size(self) -> int:
        return sum(entry.size for entry in self.files)

    def chunk_digests(self) -> set[str]:
        """Every chunk the version needs, once."""
        return {digest for entry in self.files for digest in entry.chunks}

    def to_json(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, UTF-8; equal manifests give equal bytes."""
        body = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "chunk_size": self.chunk_size,
            "files": [{"path": e.path, "size": e.size, "mode": e.mode, "chunks": list(e.chunks)} for e in self.files],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def digest(self) -> str:
        """SHA-256 of the canonical JSON: a stable name for this exact version."""
        return hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        """Parse and check a manifest; StorageError (UnsafePath for a bad path) on anything off."""
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise StorageError(f"manifest: not JSON: {exc}") from None
        if not isinstance(body, dict) or body.get("format") != MANIFEST_FORMAT:
            raise StorageError(f"manifest: not an {MANIFEST_FORMAT} document")
        if body.get("version") != MANIFEST_VERSION:
            raise StorageError(f"manifest: unsupported version {body.get('version')!r}")
        files = body.get("files")
        if not isinstance(files, list):
            raise StorageError("manifest: 'files' must be a list")
        return cls(files=tuple(_entry(item) for item in files), chunk_size=_int(body, "chunk_size"))


def build_manifest(src: Path, store: ChunkStore) -> Manifest:
    """Store the chunks of a file or a directory tree and return its manifest.

    A file gives one entry named after it. A directory is walked in sorted order; symlinks to files inside
    it are stored as the file they point at (the chunks are shared, so that costs nothing), while absolute
    symlinks, symlinks leading outside the directory and symlinks to directories (which could loop) are
    refused with UnsafePath, as are sockets, FIFOs and devices. Chunks already in the store are not
    written again."""
    root = src.resolve(strict=True)
    if root.is_file():
        return Manifest(files=(_put_file(root, root.name, store),), chunk_size=store.chunk_size)
    if not root.is_dir():
        raise UnsafePath(f"{src}: neither a plain file nor a directory")
    entries = [_put_file(path, rel, store) for path, rel in _walk(root, root, "")]
    return Manifest(files=tuple(entries), chunk_size=store.chunk_size)


def materialize(manifest: Manifest, store: ChunkStore, dest: Path, *, fsync: bool = True) -> None:
    """Write the version's files under `dest`, which must not exist (or be an empty directory).

    Files are written into a temporary directory beside `dest`, each chunk verified as it is read
    (CorruptChunk, ChunkNotFound), and the directory is renamed to `dest` only when every file is
    complete: `dest` holds the whole version or nothing."""
    if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        raise StorageError(f"{dest} already exists and is not an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        for entry in manifest.files:
            _write_entry(entry, store, join_inside(tmp, entry.path), fsync=fsync)
        os.replace(tmp, dest)
        if fsync:
            fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _walk(root: Path, folder: Path, prefix: str) -> Iterator[tuple[Path, str]]:
    with os.scandir(folder) as scan:
        items = sorted(scan, key=lambda item: item.name)
    for item in items:
        rel = f"{prefix}{item.name}"
        path = Path(item.path)
        if item.is_symlink():
            yield _followed_link(root, path, rel), rel
        elif item.is_dir(follow_symlinks=False):
            yield from _walk(root, path, f"{rel}/")
        elif item.is_file(follow_symlinks=False):
            yield path, rel
        else:
            raise UnsafePath(f"{path}: not a plain file or directory (socket, FIFO or device)")


def _followed_link(root: Path, link: Path, rel: str) -> Path:
    if os.path.isabs(os.readlink(link)):
        raise UnsafePath(f"{rel}: an absolute symlink (it would mean something else once restored elsewhere)")
    target = link.resolve()
    if not target.is_relative_to(root):
        raise UnsafePath(f"{rel}: a symlink leading outside {root}")
    if not target.is_file():
        raise UnsafePath(f"{rel}: a symlink to a directory or to nothing (only links to files are followed)")
    return target


def _put_file(path: Path, rel: str, store: ChunkStore) -> FileEntry:
    mode = stat.S_IMODE(path.stat().st_mode) & 0o777
    size = 0
    digests: list[str] = []
    for _, chunk in split(path, store.chunk_size):
        digests.append(store.put(chunk))
        size += len(chunk)
    return FileEntry(path=rel, size=size, mode=mode, chunks=tuple(digests))


def _write_entry(entry: FileEntry, store: ChunkStore, target: Path, *, fsync: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL|O_NOFOLLOW: the temporary tree is ours; never write through something already there.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    written = 0
    with os.fdopen(fd, "wb") as out:
        for digest in entry.chunks:
            chunk = store.get(digest)
            out.write(chunk)
            written += len(chunk)
        out.flush()
        if fsync:
            os.fsync(out.fileno())
    if written != entry.size:
        raise StorageError(f"{entry.path}: the chunks hold {written} bytes, the manifest says {entry.size}")
    os.chmod(target, entry.mode)


def _entry(item: Any) -> FileEntry:
    if not isinstance(item, dict):
        raise StorageError("manifest: each file must be an object")
    path, chunks = item.get("path"), item.get("chunks")
    if not isinstance(path, str):
        raise StorageError("manifest: a file's 'path' must be a string")
    if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
        raise StorageError(f"manifest: {path!r}: 'chunks' must be a list of strings")
    return FileEntry(path=path, size=_int(item, "size"), mode=_int(item, "mode"), chunks=tuple(chunks))


def _int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise StorageError(f"manifest: {key!r} must be an integer")
    return value
