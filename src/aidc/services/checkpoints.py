"""Checkpoints kept across disks and resubmissions: when an attempt ends (done, failed, preempted,
cancelled) its checkpoint directory is captured as the next version of the artifact `<job name>-checkpoint`
of the job's team; a job submitted with `from_checkpoint` finds that version written into its empty
checkpoint directory before its first attempt starts.

Captures run on one background thread: a large checkpoint must not hold up scheduling."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from aidc.domain.artifacts import ArtifactVersion, parse_reference
from aidc.domain.jobs import Job
from aidc.ports import Store
from aidc.services.artifacts import ArtifactService
from aidc.storage.errors import StorageError

log = logging.getLogger(__name__)

SUFFIX = "-checkpoint"


class CheckpointError(Exception):
    """A checkpoint a job asked to start from cannot be written into its directory."""


def artifact_name(job: Job) -> str:
    return f"{job.spec.name}{SUFFIX}"


class CheckpointKeeper:
    def __init__(self, store: Store, artifacts: ArtifactService) -> None:
        self._store = store
        self._artifacts = artifacts
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aidc-checkpoints")

    def team_of(self, job: Job) -> str | None:
        with self._store.unit_of_work(read_only=True) as uow:
            queue = uow.queues.get(job.spec.queue)
        return queue.team if queue is not None else None

    def after_attempt(self, job: Job, attempt: int, path: Path) -> Future[ArtifactVersion | None]:
        """Capture `path` in the background; the future holds the version stored (None: it was empty)."""
        return self._pool.submit(self._capture, job, attempt, path)

    def _capture(self, job: Job, attempt: int, path: Path) -> ArtifactVersion | None:
        try:
            stored = self._artifacts.capture(job.id, artifact_name(job), self.team_of(job), job.user, path)
        except (StorageError, OSError) as exc:
            log.warning("job %s attempt %s: checkpoint %s not captured: %s", job.id, attempt, path, exc)
            return None
        if stored is not None:
            log.info("job %s attempt %s: checkpoint captured as %s:%s", job.id, attempt, stored.name, stored.version)
        return stored

    def before_launch(self, job: Job, path: Path) -> ArtifactVersion | None:
        """Write the checkpoint the job starts from into `path`, if it asks for one and `path` is empty (a
        retry finds its own newer checkpoint there and keeps it). Raises CheckpointError."""
        if job.spec.from_checkpoint is None or (path.is_dir() and any(path.iterdir())):
            return None
        name, number = parse_reference(job.spec.from_checkpoint)
        team = self.team_of(job)
        version = self._artifacts.find(team, name, number)
        if version is None:
            raise CheckpointError(f"from_checkpoint {job.spec.from_checkpoint}: not found in {team or 'the cluster'}")
        try:
            self._artifacts.restore(version, path)
        except (StorageError, OSError) as exc:
            raise CheckpointError(f"from_checkpoint {name}:{version.version}: {exc}") from exc
        log.info("job %s: started from checkpoint %s:%s", job.id, name, version.version)
        return version

    def close(self) -> None:
        self._pool.shutdown(wait=True)
