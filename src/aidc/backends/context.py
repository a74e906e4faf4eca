"""What every backend is built from, and the names aidc gives the work it hands to an engine.

Each backend package exposes `create(options, context) -> Backend`: `options` is the backend's section of the
backend config file (`aidc up --backend-config FILE`), validated by the package's own pydantic model (unknown
fields are errors that name the field)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from aidc.ports import Clock

ENGINE_NAME_PREFIX = "aidc"


@dataclass(frozen=True)
class BackendContext:
    data_dir: Path  # the control plane's data dir (absolute)
    clock: Clock
    cancel_grace: float  # seconds between the stop signal and the kill when terminate() is not given one
    local_nodes: int = 1  # the local backend only: split this host into that many nodes
    # Names of this installation's work in a shared engine: `aidc-<6 hex digits>` from its secrets key, so that
    # two control planes on one Slurm/Ray/Kubernetes cluster never take (or stop) each other's jobs.
    name_prefix: str = ENGINE_NAME_PREFIX


def installation_prefix(secrets_key: bytes) -> str:
    """`aidc-` and 6 hex digits that stay the same for every instance of one installation (they share its
    secrets key) and differ between installations."""
    digest = hashlib.sha256(b"aidc engine names\0" + secrets_key).hexdigest()
    return f"{ENGINE_NAME_PREFIX}-{digest[:6]}"


def engine_job_name(job_id: int, attempt: int, prefix: str = ENGINE_NAME_PREFIX) -> str:
    """The name of an attempt in an engine (a Slurm job name, a Ray submission id, a Kubernetes object name):
    `<prefix>-<job id>-<attempt>`. Lower case letters, digits and '-', so that every engine accepts it."""
    return f"{prefix}-{job_id}-{attempt}"


def parse_engine_job_name(name: str, prefix: str = ENGINE_NAME_PREFIX) -> tuple[int, int] | None:
    """(job id, attempt) of a name made by `engine_job_name` with this prefix; None for any other name
    (another installation's work, or not aidc's)."""
    match = re.fullmatch(rf"{re.escape(prefix)}-(\d+)-(\d+)", name)
    return (int(match.group(1)), int(match.group(2))) if match else None
