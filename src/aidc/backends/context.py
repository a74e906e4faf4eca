"""What every backend is built from, and the names aidc gives the work it hands to an engine.

Each backend package exposes `create(options, context) -> Backend`: `options` is the backend's section of the
backend config file (`aidc up --backend-config FILE`), validated by the package's own pydantic model (unknown
fields are errors that name the field)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aidc.ports import Clock

ENGINE_NAME_PREFIX = "aidc"
_ENGINE_NAME = re.compile(rf"^{ENGINE_NAME_PREFIX}-(\d+)-(\d+)$")


@dataclass(frozen=True)
class BackendContext:
    data_dir: Path  # the control plane's data dir (absolute)
    clock: Clock
    cancel_grace: float  # seconds between the stop signal and the kill when terminate() is not given one
    local_nodes: int = 1  # the local backend only: split this host into that many nodes


def engine_job_name(job_id: int, attempt: int) -> str:
    """The name of an attempt in an engine (a Slurm job name, a Ray submission id, a Kubernetes object name):
    `aidc-<job id>-<attempt>`. Lower case letters, digits and '-', so that every engine accepts it."""
    return f"{ENGINE_NAME_PREFIX}-{job_id}-{attempt}"


def parse_engine_job_name(name: str) -> tuple[int, int] | None:
    """(job id, attempt) of a name made by `engine_job_name`, None for any other name."""
    match = _ENGINE_NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None
