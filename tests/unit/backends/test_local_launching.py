"""Where a local attempt runs, where it checkpoints, which GPUs and environment it gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from aidc.backends.local.launching import (
    build_env,
    gpus_on_node,
    resolve_checkpoint_dir,
    resolve_workdir,
)
from aidc.domain.decisions import NodeAssignment, Placement

JOB_DIR = Path("/data/jobs/7")


def test_absolute_workdir_is_kept() -> None:
    assert resolve_workdir("/src/project", JOB_DIR) == Path("/src/project")


def test_relative_workdir_is_taken_from_the_job_dir() -> None:
    assert resolve_workdir(".", JOB_DIR) == JOB_DIR
    assert resolve_workdir("sub", JOB_DIR) == JOB_DIR / "sub"


def test_home_in_workdir_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/ada")
    assert resolve_workdir("~/proj", JOB_DIR) == Path("/home/ada/proj")


def test_checkpoint_dir_defaults_to_the_job_dir() -> None:
    assert resolve_checkpoint_dir(None, Path("/src"), JOB_DIR) == JOB_DIR / "checkpoints"


def test_relative_checkpoint_dir_is_taken_from_the_workdir() -> None:
    assert resolve_checkpoint_dir("ckpt", Path("/src"), JOB_DIR) == Path("/src/ckpt")
    assert resolve_checkpoint_dir("/scratch/c", Path("/src"), JOB_DIR) == Path("/scratch/c")


def test_gpus_of_this_node() -> None:
    placement = Placement((NodeAssignment("a", (0, 1)),))
    assert gpus_on_node(placement, "a") == (0, 1)
    assert gpus_on_node(Placement((NodeAssignment("a"),)), "a") == ()


def test_a_placement_elsewhere_is_refused() -> None:
    with pytest.raises(ValueError, match="names b, not this host"):
        gpus_on_node(Placement((NodeAssignment("b", (0,)),)), "a")


def test_a_multi_node_placement_is_refused() -> None:
    placement = Placement((NodeAssignment("a", (0,)), NodeAssignment("b", (0,))))
    with pytest.raises(ValueError, match="one node"):
        gpus_on_node(placement, "a")


def _env(
    base: dict[str, str] | None = None,
    spec_env: dict[str, str] | None = None,
    request_env: dict[str, str] | None = None,
    gpus: tuple[int, ...] = (),
) -> dict[str, str]:
    return build_env(
        {"PATH": "/usr/bin", "HOME": "/root"} if base is None else base,
        spec_env or {},
        request_env or {},
        job_id=7,
        attempt=2,
        num_nodes=1,
        checkpoint_dir=Path("/data/jobs/7/checkpoints"),
        gpus=gpus,
    )


def test_env_has_the_attempt_variables() -> None:
    env = _env()
    assert env["AIDC_JOB_ID"] == "7"
    assert env["AIDC_ATTEMPT"] == "2"
    assert env["AIDC_NUM_NODES"] == "1"
    assert env["AIDC_CHECKPOINT_DIR"] == "/data/jobs/7/checkpoints"
    assert env["PATH"] == "/usr/bin"


def test_cpu_job_sees_no_gpu() -> None:
    env = _env(base={"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert env["CUDA_VISIBLE_DEVICES"] == ""


def test_gpu_job_sees_exactly_its_gpus_in_pci_order() -> None:
    env = _env(gpus=(2, 5))
    assert env["CUDA_VISIBLE_DEVICES"] == "2,5"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_spec_env_overrides_the_server_env_and_request_env_wins() -> None:
    env = _env(
        base={"EPOCHS": "1", "KEEP": "yes"},
        spec_env={"EPOCHS": "5", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"},
        request_env={"AIDC_NUM_NODES": "4", "AIDC_JOB_ID": "7"},
    )
    assert env["EPOCHS"] == "5"
    assert env["KEEP"] == "yes"
    assert env["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"
    assert env["AIDC_NUM_NODES"] == "4"


def test_server_settings_do_not_leak_into_jobs() -> None:
    env = _env(base={"AIDC_DATABASE_URL": "postgresql://u:secret@db/aidc", "AIDC_ATTEMPT": "99"})
    assert "AIDC_DATABASE_URL" not in env
    assert env["AIDC_ATTEMPT"] == "2"
