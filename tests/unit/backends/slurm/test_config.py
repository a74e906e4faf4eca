"""SlurmConfig and create(): defaults, the queue map, and errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from aidc.backends.context import BackendContext
from aidc.backends.slurm import SlurmBackend, SlurmConfig, create
from aidc.backends.slurm.config import SlurmTarget
from aidc.server.backend_plan import build_backend


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 3, 1, tzinfo=UTC)


def _context(tmp_path: Path) -> BackendContext:
    return BackendContext(data_dir=tmp_path, clock=_Clock(), cancel_grace=7.0)


def test_defaults() -> None:
    config = SlurmConfig()
    assert config.target("anything") == SlurmTarget()
    assert (config.checkpoint_grace, config.time_margin.factor, config.time_margin.seconds) == (120, 1.25, 300.0)
    assert config.commands.sbatch == "sbatch"
    assert config.extra_args == []


def test_a_queue_target_takes_unset_fields_from_the_default() -> None:
    config = SlurmConfig.model_validate(
        {"queues": {"a": {"qos": "high"}}, "default": {"partition": "gpu", "qos": "normal", "account": "lab"}}
    )
    assert config.target("a") == SlurmTarget(partition="gpu", qos="high", account="lab")
    assert config.target("b") == SlurmTarget(partition="gpu", qos="normal", account="lab")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"queue": {}}, "queue"),
        ({"queues": {"a": {"partitoin": "gpu"}}}, "partitoin"),
        ({"default": {"partition": "gpu --exclusive"}}, "partition"),
        ({"checkpoint_grace": -1}, "checkpoint_grace"),
        ({"time_margin": {"factor": 0.5}}, "factor"),
        ({"extra_args": ["exclusive"]}, "extra_args"),
        ({"extra_args": ["--job-name=x"]}, "extra_args"),
        ({"extra_args": ["-Jx"]}, "extra_args"),
        ({"extra_args": ["--output=/tmp/x"]}, "extra_args"),
        ({"commands": {"sbatch": "/opt/slurm/bin/sbatch", "salloc": "x"}}, "salloc"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        SlurmConfig.model_validate(options)


def test_create_keeps_state_under_the_data_dir_by_default(tmp_path: Path) -> None:
    backend = create({}, _context(tmp_path))
    assert isinstance(backend, SlurmBackend)
    assert backend.name == "slurm"
    assert backend.state_dir == tmp_path / "slurm"


def test_create_names_jobs_with_the_installations_prefix(tmp_path: Path) -> None:
    context = BackendContext(data_dir=tmp_path, clock=_Clock(), cancel_grace=7.0, name_prefix="aidc-123abc")
    backend = create({}, context)
    assert isinstance(backend, SlurmBackend)
    assert backend.name_prefix == "aidc-123abc"


def test_create_with_a_state_dir(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    backend = create({"state_dir": str(shared), "extra_args": ["--constraint=ib"]}, _context(tmp_path))
    assert isinstance(backend, SlurmBackend)
    assert backend.state_dir == shared
    relative = create({"state_dir": "elsewhere"}, _context(tmp_path))
    assert isinstance(relative, SlurmBackend)
    assert relative.state_dir == tmp_path / "elsewhere"


def test_create_refuses_unknown_options(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="partition"):
        create({"partition": "gpu"}, _context(tmp_path))


def test_the_server_builds_it_by_name_and_reports_a_bad_option_in_one_line(tmp_path: Path) -> None:
    assert isinstance(build_backend("slurm", {"default": {"qos": "normal"}}, _context(tmp_path)), SlurmBackend)
    with pytest.raises(ValueError, match=r"^backend slurm: queues\.a\.partiton: Extra inputs are not permitted$"):
        build_backend("slurm", {"queues": {"a": {"partiton": "gpu"}}}, _context(tmp_path))
