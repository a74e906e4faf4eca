"""The Ray backend's options: the `ray:` section of the backend config file (`aidc up --backend ray
--backend-config FILE`). Unknown fields are errors that name the field. For example:

    ray:
      address: http://ray-head:8265
      jobs_dir: /shared/aidc-jobs      # on every Ray node (shared storage)
      shared_jobs_dir: true            # ...and mounted at the same path on the control plane's host
      stop_grace: 30                   # seconds from SIGTERM to SIGKILL when a job is stopped
      token_env: RAY_DASHBOARD_TOKEN   # sent as Authorization: Bearer <token>
      queues:
        team-a: {resources: {team-a: 1}}
"""

from __future__ import annotations

import math
import os
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,200}$")
# Ray's own resources: a queue's custom resources are extra to what the spec asks for.
_BUILTIN_RESOURCES = frozenset({"CPU", "GPU", "memory", "object_store_memory"})

Amount = Annotated[float, Field(gt=0, le=1e9)]


class RayQueue(BaseModel):
    """What every job of one aidc queue also asks Ray for: custom resources (`ray start --resources`), e.g. a
    `team-a: 1` token resource that only the nodes of team A offer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resources: dict[str, Amount] = Field(default_factory=dict)

    @field_validator("resources")
    @classmethod
    def _custom_only(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            if not _RESOURCE_NAME.match(name):
                raise ValueError(f"{name!r} is not a Ray resource name")
            if name in _BUILTIN_RESOURCES:
                raise ValueError(f"{name} comes from the job's resources, not from its queue")
        return value


class RayConfig(BaseModel):
    """How aidc reaches a Ray cluster and runs its jobs there.

    `address` is the head's dashboard (the Job Submission REST API), not the GCS port. Each attempt is one Ray
    job whose entrypoint runs in a shell on whichever Ray node the driver lands on: `workdir` and the
    checkpoint directory are paths on that node, so on a cluster of more than one node they must be on shared
    storage (a relative workdir, the default ".", is `<jobs_dir>/<job id>/`, created by the entrypoint)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(default=DEFAULT_ADDRESS, description="The Ray dashboard's URL (Job Submission API)")
    jobs_dir: str | None = Field(
        default=None,
        description="A directory on the Ray nodes (shared storage on a multi-node cluster) under which each job "
        "gets <jobs_dir>/<job id>/, its default workdir and checkpoint dir; default <data_dir>/ray-jobs, right "
        "only when the Ray head runs on the control plane's host",
    )
    shared_jobs_dir: bool = Field(
        default=False,
        description="This host sees jobs_dir at the same path as the Ray nodes (a one-host cluster, or shared "
        "storage mounted alike): aidc then tracks checkpoints (preemption prefers recent ones, from_checkpoint, "
        "checkpoints kept as artifacts)",
    )
    queues: dict[str, RayQueue] = Field(default_factory=dict, description="Per aidc queue: custom Ray resources")
    pin_to_node: bool = Field(
        default=True,
        description="Ask Ray to run the driver on the node aidc's scheduler chose (a sliver of its node:<ip> "
        "resource); false lets Ray choose",
    )
    stop_grace: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Seconds between Ray's SIGTERM and SIGKILL when a job is stopped (Ray reads it once per job, "
        "at submission); default the control plane's cancel grace, rounded up",
    )
    request_timeout: float = Field(default=10.0, gt=0, le=600, description="Seconds per HTTP request")
    poll_interval: float = Field(default=1.0, ge=0, le=60, description="At most one job list per this many seconds")
    token: SecretStr | None = Field(default=None, description="Sent as `Authorization: Bearer <token>`")
    token_env: str | None = Field(
        default=None, description="The environment variable holding that token (keeps it out of the file)"
    )

    @field_validator("address")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError(f"{value!r} is not an http(s) URL (the Ray dashboard, e.g. {DEFAULT_ADDRESS})")
        return value.rstrip("/")

    @field_validator("jobs_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{value!r} must be an absolute path (a directory on the Ray nodes)")
        return value

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header, from `token` or else `token_env` (read now); none without either."""
        token = self.token.get_secret_value() if self.token is not None else None
        if token is None and self.token_env is not None:
            token = os.environ.get(self.token_env)
            if not token:
                raise ValueError(f"token_env: {self.token_env} is not set")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def stop_wait(self, cancel_grace: float) -> int:
        """RAY_JOB_STOP_WAIT_TIME_S for new jobs: Ray parses it as a whole number of seconds."""
        if self.stop_grace is not None:
            return self.stop_grace
        return max(0, math.ceil(cancel_grace))
