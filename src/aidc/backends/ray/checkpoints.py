"""Checkpoint tracking for a Ray cluster whose jobs_dir the control plane's host sees at the same path (a
one-host cluster, or shared storage mounted alike): see RayConfig.shared_jobs_dir."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from aidc.backends.local.checkpoints import CheckpointTimes
from aidc.backends.ray import submission
from aidc.backends.ray.backend import RayBackend
from aidc.domain.jobs import JobSpec


class RayBackendWithCheckpoints(RayBackend):
    """The Ray backend, plus SupportsCheckpoints: preemption can prefer victims that checkpointed lately, and
    the control plane can put a stored checkpoint (from_checkpoint) in place before the first attempt and
    keep the checkpoints an attempt wrote. Only right when the paths the Ray nodes use are this host's too."""

    _checkpoint_times: CheckpointTimes | None = None

    def checkpoint_path(self, job_id: int, spec: JobSpec) -> Path:
        paths = submission.resolve_paths(spec, self._jobs_dir, job_id)
        return Path(paths.checkpoint_dir).expanduser()

    def last_checkpoint(self, job_id: int, spec: JobSpec) -> datetime | None:
        """The newest modification time of a file in the job's checkpoint directory, at most a few seconds old;
        None when it holds no file."""
        if self._checkpoint_times is None:
            self._checkpoint_times = CheckpointTimes()
        return self._checkpoint_times.last(job_id, self.checkpoint_path(job_id, spec))
