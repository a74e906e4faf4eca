"""Moving artifacts over the API: put (hash locally, ask which chunks the server lacks, send only those,
then record the version) and get (fetch the manifest, then each chunk, verified, into a new directory)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from aidc.api.identity_schemas import ArtifactCreate, ArtifactCreated, ArtifactDetailOut, MissingOut
from aidc.client.http import AidcClient
from aidc.storage.chunks import CHUNK_SIZE, ChunkStore, digest_of
from aidc.storage.errors import CorruptChunk
from aidc.storage.manifests import Manifest, build_manifest, materialize

Progress = Callable[[int], None]  # called with the bytes just handled


class _Hasher:
    """What build_manifest needs of a chunk store, that only names chunks (the bytes stay on disk)."""

    chunk_size = CHUNK_SIZE

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    def put(self, data: bytes | memoryview) -> str:
        if self._progress:
            self._progress(len(data))
        return digest_of(data)


class _Remote:
    """What materialize needs of a chunk store: chunks fetched from the server and checked on arrival."""

    def __init__(self, client: AidcClient, team: str | None, progress: Progress | None) -> None:
        self._client = client
        self._team = team
        self._progress = progress

    def get(self, digest: str) -> bytes:
        data = self._client.chunk(digest, self._team)
        if digest_of(data) != digest:  # the server checks too; a proxy or the wire could still change bytes
            raise CorruptChunk(digest, digest_of(data))
        if self._progress:
            self._progress(len(data))
        return data


def local_manifest(path: Path, progress: Progress | None = None) -> Manifest:
    """The manifest of a local file or directory: every chunk hashed, nothing stored."""
    return build_manifest(path, cast(ChunkStore, _Hasher(progress)))


def upload(
    client: AidcClient,
    path: Path,
    body: dict[str, Any],
    manifest: Manifest,
    progress: Progress | None = None,
) -> tuple[ArtifactCreated, int]:
    """Send the chunks the server lacks, then record the version. Returns it and the bytes sent."""
    order = [d for entry in manifest.files for d in entry.chunks]
    missing: MissingOut = client.missing_chunks(body.get("team"), sorted(set(order)))
    wanted = set(missing.missing)
    sent = 0
    root = path if path.is_dir() else path.parent
    for entry in manifest.files:
        source = root / entry.path if path.is_dir() else path
        if not wanted.intersection(entry.chunks):
            continue
        with source.open("rb") as handle:
            for index, digest in enumerate(entry.chunks):
                if digest not in wanted:
                    continue
                handle.seek(index * manifest.chunk_size)
                data = handle.read(manifest.chunk_size)
                if digest_of(data) != digest:
                    raise CorruptChunk(digest, digest_of(data))  # the file changed while being put
                client.put_chunk(digest, data, missing.team)
                wanted.discard(digest)
                sent += len(data)
                if progress:
                    progress(len(data))
    request = ArtifactCreate.model_validate({**body, "team": missing.team, "manifest": json.loads(manifest.to_json())})
    return client.create_artifact(request), sent


def download(client: AidcClient, detail: ArtifactDetailOut, dest: Path, progress: Progress | None = None) -> None:
    """Write a version's files into `dest` (new or empty): all of them, verified, or nothing."""
    manifest = Manifest.from_json(json.dumps(detail.manifest))
    materialize(manifest, cast(ChunkStore, _Remote(client, detail.team, progress)), dest)
