"""The Ray backend: each attempt is one Ray job, submitted over the head's Job Submission REST API (the
dashboard, default http://127.0.0.1:8265) with httpx; the control plane never imports ray.

What Ray gives and how aidc uses it (checked against Ray 2.60, see scripts/install-ray.sh):

- The attempt's submission id is `aidc-<installation>-<job>-<attempt>`: a restarted control plane (any
  instance) finds it again; Ray refuses a second submission of that id (a LaunchError).
- The entrypoint is `bash -c` of a script that enters the workdir, creates the checkpoint dir, runs `setup`
  then `run`. Both are paths on the Ray node the driver runs on (see RayConfig.jobs_dir).
- Resources: entrypoint_num_cpus, entrypoint_num_gpus (fractions allowed), entrypoint_memory (Ray's logical
  memory), the queue's custom resources, and a sliver of node:<ip> to pin the driver to the node aidc chose.
  Ray picks which GPUs: with GPUs Ray sets CUDA_VISIBLE_DEVICES to the ids it assigned (a 0.5 GPU job sees
  one id, shared); without, Ray leaves it unset, so the entrypoint sets it empty.
- The environment (spec env, aidc's AIDC_* variables, AIDC_CHECKPOINT_DIR) and the secrets go in runtime_env
  env_vars: Ray keeps them in its GCS and returns them from GET /api/jobs to any API client (it redacts them
  for browsers only): whoever can reach the dashboard can read the secrets.
- Stopping: Ray sends SIGTERM to the entrypoint and all processes under it, SIGKILL after
  RAY_JOB_STOP_WAIT_TIME_S, fixed per job at submission (set from `stop_grace` or the cancel grace);
  terminate()'s own grace cannot change it. A STOPPED job has no exit code in Ray: 143, or 137 when it
  ended at or after the grace. Ray acts on a stop only once the job's supervisor runs: a job still PENDING
  in Ray (waiting for resources) stays open until Ray can start it, and is then started and stopped at once.
- One job, one driver: num_nodes > 1, kind serve and image are refused.
- Checkpoints are tracked (SupportsCheckpoints) only with `shared_jobs_dir: true`, when this host sees the
  Ray nodes' jobs_dir at the same path.
- The job's process starts from the environment of the Ray worker (as `ray start` had it on that node, e.g.
  its PATH), not the control plane's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aidc.backends.context import BackendContext
from aidc.backends.ray.backend import RayBackend
from aidc.backends.ray.checkpoints import RayBackendWithCheckpoints
from aidc.backends.ray.config import RayConfig

__all__ = ["RayBackend", "RayBackendWithCheckpoints", "RayConfig", "create"]


def create(options: Mapping[str, Any], context: BackendContext) -> RayBackend:
    """The backend from its section of the backend config file; a pydantic ValidationError names a bad field.
    With `shared_jobs_dir` it also tracks checkpoints (SupportsCheckpoints)."""
    config = RayConfig.model_validate(dict(options))
    if config.shared_jobs_dir:
        return RayBackendWithCheckpoints(config, context)
    return RayBackend(config, context)
