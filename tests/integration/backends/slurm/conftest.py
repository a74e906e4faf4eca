"""Fixtures for driving the Slurm backend against the session's real cluster (tests/fixtures/slurm.py)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aidc.backends.slurm import SlurmBackend, SlurmConfig
from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.jobs import Attempt, JobSpec
from aidc.ports import AttemptExit, LaunchRequest
from tests.fixtures.slurm import SlurmCluster

DEADLINE = 60.0  # seconds any one wait may take; Slurm starts a job within a second or two here
_job_ids = itertools.count(1000)  # unique across the session: every test shares the one cluster
PREFIX = "aidc-5e55a0"  # an installation's name prefix, as BackendContext.name_prefix gives it


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def next_job_id() -> int:
    return next(_job_ids)


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The session's cluster, with SLURM_CONF set for the backend's commands."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster


@pytest.fixture
def state_dir(tmp_path: Path, cluster: SlurmCluster) -> Iterator[Path]:
    state = tmp_path / "slurm"
    yield state
    # Whatever a failed test left in Slurm's queue.
    for saved in state.glob("jobs/*/attempt-*/slurm.json"):
        slurm_id = json.loads(saved.read_text())["slurm_job_id"]
        cluster.run(["scancel", "--signal=KILL", "--full", str(slurm_id)], check=False)
        cluster.run(["scancel", str(slurm_id)], check=False)


@pytest.fixture
def make_backend(state_dir: Path) -> Iterator[Callable[..., SlurmBackend]]:
    made: list[SlurmBackend] = []

    def make(**options: Any) -> SlurmBackend:
        config = SlurmConfig.model_validate({"poll_interval": 0.5, **options})
        backend = SlurmBackend(config, state_dir, Clock(), cancel_grace=5.0, name_prefix=PREFIX)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def request(job_id: int, spec: JobSpec, attempt: int = 1, node: str = "any") -> LaunchRequest:
    return LaunchRequest(
        job_id=job_id,
        attempt=attempt,
        spec=spec,
        placement=Placement((NodeAssignment(node),)),
        env={"AIDC_QUEUE": spec.queue, "AIDC_PREEMPTIONS": "0"},
    )


def spec(run: str, workdir: Path, **fields: Any) -> JobSpec:
    """A batch job running `run` in `workdir`, asking for little memory (the node is shared by many)."""
    return JobSpec.model_validate(
        {"name": "t", "run": run, "workdir": str(workdir), "resources": {"memory": "100MB"}, **fields}
    )


def open_attempt(job_id: int, number: int = 1) -> Attempt:
    return Attempt(job_id=job_id, number=number, nodes=("any",), started_at=datetime.now(UTC))


def wait_exits(backend: SlurmBackend, count: int = 1, deadline: float = DEADLINE) -> list[AttemptExit]:
    """Poll until `count` attempts have ended; fail after `deadline` seconds."""
    found: list[AttemptExit] = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found += backend.poll()
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{count} exits expected within {deadline:g} s, got {found}")


def wait_file(path: Path, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if path.exists():
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear within {deadline:g} s")
