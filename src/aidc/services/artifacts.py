"""Artifact use cases: upload chunks, record versions, read them back, delete them, keep what the retention
policy keeps, and capture or restore a job's checkpoint directory.

Each team has its own chunk store (`root/teams/<team>`, the cluster's own at `root/cluster`): repeated
checkpoints of a team share chunks, while one team cannot learn from `missing` whether another holds a file.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aidc.domain.artifacts import ArtifactKind, ArtifactVersion, Retention
from aidc.domain.errors import FieldProblem, InvalidInput, NotFound
from aidc.ports import Clock, Store
from aidc.security.rbac import Action, Principal, teams_allowed
from aidc.services.audit_log import AuditLog
from aidc.services.authz import Guard
from aidc.storage import retention as policy
from aidc.storage.chunks import CHUNK_SIZE, ChunkStore, check_digest, digest_of
from aidc.storage.errors import StorageError
from aidc.storage.manifests import Manifest, build_manifest, materialize

log = logging.getLogger(__name__)

MAX_DIGESTS = 100_000  # per `missing` call: 400 GB of chunks


@dataclass(frozen=True)
class Deleted:
    versions: list[int]
    chunks_freed: int


class ArtifactService:
    def __init__(self, store: Store, clock: Clock, guard: Guard, audit: AuditLog, root: Path) -> None:
        self._store = store
        self._clock = clock
        self._guard = guard
        self._audit = audit
        self._root = root
        # Held from storing chunks to recording the version that names them, so that no collection runs in
        # between and takes them for garbage (reentrant: recording takes it too).
        self._gc_lock = threading.RLock()

    @contextmanager
    def collection_paused(self) -> Iterator[None]:
        """No chunk is collected meanwhile (a backup copies the database, then lists the chunks)."""
        with self._gc_lock:
            yield

    # ----------------------------------------------------------------------------------------- teams

    def team_of(self, principal: Principal, team: str | None) -> str | None:
        """The team meant: the one named, else the caller's only team when they have no cluster-wide role,
        else the cluster's own (None)."""
        if team is not None:
            return team
        if any(b.team is None for b in principal.bindings) or len(principal.teams) != 1:
            return None
        return next(iter(principal.teams))

    def chunks(self, team: str | None) -> ChunkStore:
        return ChunkStore(self._root / "cluster" if team is None else self._root / "teams" / team)

    def _check(self, principal: Principal, action: Action, team: str | None, target: str) -> None:
        """403 for a principal who may not do `action` anywhere; 404 for a team they may not see into."""
        self._guard.check_anywhere(principal, action, target=target)
        if not self._guard.allowed(principal, action, team):
            readable = teams_allowed(principal, Action.ARTIFACT_READ)
            if readable is not None and team not in readable:
                raise self._guard.hide(principal, action, "artifact", target)
            self._guard.check(principal, action, team, target=target)

    # ---------------------------------------------------------------------------------------- chunks

    def missing(self, principal: Principal, team: str | None, digests: Sequence[str]) -> list[str]:
        team = self.team_of(principal, team)
        self._check(principal, Action.ARTIFACT_WRITE, team, "chunks")
        if len(digests) > MAX_DIGESTS:
            raise InvalidInput([FieldProblem("digests", f"at most {MAX_DIGESTS:,} per call")])
        _check_digests("digests", digests)
        return self.chunks(team).missing(digests)

    def put_chunk(self, principal: Principal, team: str | None, digest: str, data: bytes) -> bool:
        """Store one chunk; the body must hash to `digest`. True when it was new."""
        team = self.team_of(principal, team)
        self._check(principal, Action.ARTIFACT_WRITE, team, "chunks")
        _check_digests("digest", [digest])
        if len(data) > CHUNK_SIZE:
            raise InvalidInput([FieldProblem("body", f"a chunk holds at most {CHUNK_SIZE:,} bytes")])
        if digest_of(data) != digest:
            raise InvalidInput([FieldProblem("body", "does not hash (SHA-256) to the digest in the path")])
        store = self.chunks(team)
        with self._gc_lock:
            new = not store.has(digest)
            store.put(data)
        return new

    def read_chunk(self, principal: Principal, team: str | None, digest: str) -> bytes:
        team = self.team_of(principal, team)
        self._check(principal, Action.ARTIFACT_READ, team, "chunks")
        _check_digests("digest", [digest])
        try:
            return self.chunks(team).get(digest)  # verified against its address on every read
        except StorageError as exc:
            if not self.chunks(team).has(digest):
                raise NotFound("chunk", digest) from None
            log.error("%s", exc)
            raise

    # -------------------------------------------------------------------------------------- versions

    def create(
        self,
        principal: Principal,
        *,
        name: str,
        team: str | None,
        manifest: str,
        kind: ArtifactKind = ArtifactKind.FILE,
        metrics: Mapping[str, float] | None = None,
        retention: Retention | None = None,
        job_id: int | None = None,
    ) -> tuple[ArtifactVersion, list[int]]:
        """Record a new version whose chunks were uploaded; returns it and the versions retention removed."""
        team = self.team_of(principal, team)
        self._check(principal, Action.ARTIFACT_WRITE, team, f"{team or 'cluster'}/{name}")
        parsed = _parse_manifest(manifest)
        store = self.chunks(team)
        absent = store.missing(sorted(parsed.chunk_digests()))
        if absent:
            raise InvalidInput([FieldProblem("manifest", f"{len(absent)} chunks not uploaded, e.g. {absent[0]}")])
        version = ArtifactVersion(
            id=0,
            name=name,
            team=team,
            version=0,
            kind=kind,
            manifest=parsed.to_json().decode(),
            size=parsed.total_size,
            created_by=principal.name,
            created_at=self._clock.now(),
            metrics=dict(metrics or {}),
            retention=retention or Retention(),
            job_id=job_id,
        )
        return self._record(principal, version)

    def _record(self, principal: Principal | None, version: ArtifactVersion) -> tuple[ArtifactVersion, list[int]]:
        with self._gc_lock:
            stored, dropped = self._add_with_retention(principal, version)
            if dropped:
                self._collect(stored.team)
        return stored, [v.version for v in dropped]

    def _add_with_retention(
        self, principal: Principal | None, version: ArtifactVersion
    ) -> tuple[ArtifactVersion, list[ArtifactVersion]]:
        with self._store.unit_of_work() as uow:
            stored = uow.artifacts.add(version)
            rule = stored.retention
            dropped: list[ArtifactVersion] = []
            if not rule.keeps_all:
                versions = uow.artifacts.versions(stored.team, stored.name)
                infos = [policy.VersionInfo(str(v.id), v.created_at, v.metrics) for v in versions]
                mode: policy.Mode = "min" if rule.mode == "min" else "max"
                chosen = policy.select_to_delete(infos, rule.keep_last, rule.keep_best, rule.metric, mode)
                doomed = {int(v.id) for v in chosen}
                dropped = [v for v in versions if v.id in doomed]
                uow.artifacts.delete([v.id for v in dropped])
            detail: dict[str, object] = {"version": stored.version, "size": stored.size, "kind": stored.kind.value}
            if dropped:
                detail["retention_removed"] = [v.version for v in dropped]
            target = f"artifact/{stored.team or 'cluster'}/{stored.name}"
            self._audit.append(uow, self._audit.entry(principal, "artifact.put", target, detail=detail))
            uow.commit()
        return stored, dropped

    def list(self, principal: Principal, team: str | None = None, name: str | None = None) -> list[ArtifactVersion]:
        readable = self._guard.check_anywhere(principal, Action.ARTIFACT_READ, target="artifacts")
        teams: list[str | None] | None
        if team is not None:
            self._check(principal, Action.ARTIFACT_READ, team, f"{team}/*")
            teams = [team]
        else:
            teams = None if readable is None else [*sorted(readable)]
        with self._store.unit_of_work(read_only=True) as uow:
            return uow.artifacts.list(teams, name)

    def get(self, principal: Principal, team: str | None, name: str, version: int | None = None) -> ArtifactVersion:
        team = self.team_of(principal, team)
        target = f"{team or 'cluster'}/{name}"
        self._check(principal, Action.ARTIFACT_READ, team, target)
        with self._store.unit_of_work(read_only=True) as uow:
            found = uow.artifacts.get(team, name, version)
        if found is None:
            raise NotFound("artifact", f"{target}" + (f":{version}" if version else ""))
        return found

    def delete(self, principal: Principal, team: str | None, name: str, version: int | None = None) -> Deleted:
        """Delete one version, or every version of `name`; chunks no version needs any more are removed."""
        team = self.team_of(principal, team)
        target = f"{team or 'cluster'}/{name}"
        self._check(principal, Action.ARTIFACT_WRITE, team, target)
        with self._gc_lock:
            with self._store.unit_of_work() as uow:
                versions = uow.artifacts.versions(team, name)
                doomed = [v for v in versions if version is None or v.version == version]
                if not doomed:
                    raise NotFound("artifact", target + (f":{version}" if version else ""))
                uow.artifacts.delete([v.id for v in doomed])
                detail = {"versions": [v.version for v in doomed]}
                entry = self._audit.entry(principal, "artifact.delete", f"artifact/{target}", detail=detail)
                self._audit.append(uow, entry)
                uow.commit()
            freed = self._collect(team)
        return Deleted([v.version for v in doomed], freed)

    def _collect(self, team: str | None) -> int:
        """Remove the team's chunks that no stored version names (under the GC lock, so no put is between
        uploading its chunks and recording its version)."""
        with self._store.unit_of_work(read_only=True) as read:
            manifests = [Manifest.from_json(m) for m in read.artifacts.manifests(team)]
        store = self.chunks(team)
        garbage = policy.unreferenced(store.iter_digests(), manifests)
        for digest in garbage:
            store.delete(digest)
        return len(garbage)

    # ----------------------------------------------------------------------------------- checkpoints

    def capture(self, job_id: int, name: str, team: str | None, user: str, path: Path) -> ArtifactVersion | None:
        """Store a job's checkpoint directory as the next version of `name` (by the control plane itself, on
        behalf of the job's user). Metrics come from `metrics.json` in it, when present. None: nothing there."""
        if not path.is_dir() or not any(path.iterdir()):
            return None
        with self._gc_lock:
            return self._capture(job_id, name, team, user, path)

    def _capture(self, job_id: int, name: str, team: str | None, user: str, path: Path) -> ArtifactVersion:
        manifest = build_manifest(path, self.chunks(team))
        version = ArtifactVersion(
            id=0,
            name=name,
            team=team,
            version=0,
            kind=ArtifactKind.CHECKPOINT,
            manifest=manifest.to_json().decode(),
            size=manifest.total_size,
            created_by=user,
            created_at=self._clock.now(),
            metrics=_metrics(path / "metrics.json"),
            retention=self._checkpoint_retention(team, name),
            job_id=job_id,
        )
        stored, _ = self._record(None, version)
        return stored

    def _checkpoint_retention(self, team: str | None, name: str) -> Retention:
        """What the last version of `name` asked for, else the newest 3."""
        last = self.find(team, name, None)
        return last.retention if last is not None and not last.retention.keeps_all else Retention(keep_last=3)

    def restore(self, version: ArtifactVersion, dest: Path) -> None:
        """Write a version's files into `dest` (which must be missing or empty), verifying every chunk."""
        materialize(_parse_manifest(version.manifest), self.chunks(version.team), dest)

    def find(self, team: str | None, name: str, number: int | None) -> ArtifactVersion | None:
        with self._store.unit_of_work(read_only=True) as uow:
            return uow.artifacts.get(team, name, number)


def _check_digests(field: str, digests: Sequence[str]) -> None:
    for digest in digests:
        try:
            check_digest(digest)
        except StorageError as exc:
            raise InvalidInput([FieldProblem(field, str(exc))]) from None


def _parse_manifest(text: str) -> Manifest:
    try:
        return Manifest.from_json(text)
    except StorageError as exc:
        raise InvalidInput([FieldProblem("manifest", str(exc).removeprefix("manifest: "))]) from None


def _metrics(path: Path) -> dict[str, float]:
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(body, dict):
        return {}
    return {str(k): float(v) for k, v in body.items() if isinstance(v, int | float) and not isinstance(v, bool)}
