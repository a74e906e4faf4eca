"""What an attempt is submitted to Ray as: paths, entrypoint, environment, body; and how its end reads."""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath
from typing import Any

import pytest

from aidc.backends.ray.client import RayJob, RayJobStatus
from aidc.backends.ray.submission import (
    Paths,
    describe_end,
    entrypoint,
    entrypoint_script,
    resolve_paths,
    runtime_env_vars,
    submit_body,
)
from aidc.domain.decisions import Placement
from aidc.domain.jobs import JobSpec
from aidc.ports import LaunchRequest
from tests.unit.backends.ray.shapes import FAILED_MESSAGE, SUBMIT_REQUEST_FIELDS

JOBS = PurePosixPath("/shared/aidc")


def spec(**fields: Any) -> JobSpec:
    return JobSpec.model_validate({"name": "train", "run": "python train.py", **fields})


def launch(job: JobSpec, **fields: Any) -> LaunchRequest:
    return LaunchRequest(7, 2, job, Placement(()), **fields)


def test_a_relative_workdir_is_the_jobs_own_directory_and_is_created() -> None:
    paths = resolve_paths(spec(), JOBS, 7)
    assert paths == Paths(JOBS / "7", JOBS / "7", JOBS / "7" / "checkpoints", create_workdir=True)
    assert resolve_paths(spec(workdir="sub"), JOBS, 7).workdir == JOBS / "7" / "sub"


def test_an_absolute_workdir_is_kept_and_must_exist() -> None:
    paths = resolve_paths(spec(workdir="/src/project", checkpoint_dir="ckpt"), JOBS, 7)
    assert paths.workdir == PurePosixPath("/src/project")
    assert paths.checkpoint_dir == PurePosixPath("/src/project/ckpt")
    assert not paths.create_workdir
    assert "mkdir -p -- /src/project ||" not in entrypoint_script(spec(), paths, no_gpu=False)


def test_an_absolute_checkpoint_dir_is_kept() -> None:
    assert resolve_paths(spec(checkpoint_dir="/ckpt/run1"), JOBS, 7).checkpoint_dir == PurePosixPath("/ckpt/run1")


def test_the_entrypoint_is_bash_running_the_quoted_script() -> None:
    job = spec(run="echo 'it''s' \"$HOME\"; exit 3", setup="pip install -r requirements.txt")
    paths = resolve_paths(job, PurePosixPath("/data dir/it's"), 7)

    command = entrypoint(job, paths, no_gpu=True)

    argv = shlex.split(command)
    assert argv[:2] == ["/bin/bash", "-c"]
    script = argv[2]
    assert script == entrypoint_script(job, paths, no_gpu=True)
    lines = script.splitlines()
    assert shlex.split(lines[0])[:4] == ["mkdir", "-p", "--", "/data dir/it's/7"]
    assert shlex.split(lines[1])[:3] == ["cd", "--", "/data dir/it's/7"]
    assert "export CUDA_VISIBLE_DEVICES=" in lines
    assert shlex.split(lines[-2])[:3] == ["/bin/bash", "-c", "pip install -r requirements.txt"]
    assert shlex.split(lines[-1]) == ["exec", "/bin/bash", "-c", job.run]


def test_gpu_jobs_keep_the_devices_ray_assigned() -> None:
    job = spec()
    assert "CUDA_VISIBLE_DEVICES" not in entrypoint_script(job, resolve_paths(job, JOBS, 7), no_gpu=False)


def test_a_home_relative_workdir_is_left_for_the_shell_to_expand() -> None:
    job = spec(workdir="~/project")
    script = entrypoint_script(job, resolve_paths(job, JOBS, 7), no_gpu=False)
    assert 'cd -- "$HOME"/project ||' in script


def test_the_environment_holds_the_spec_aidc_the_checkpoint_dir_the_grace_and_the_secrets() -> None:
    job = spec(env={"EPOCHS": "5"})
    request = launch(job, env={"AIDC_JOB_ID": "7", "AIDC_QUEUE": "default"}, secret_env={"TOKEN": "s3"})

    env = runtime_env_vars(request, resolve_paths(job, JOBS, 7), 30)

    assert env == {
        "EPOCHS": "5",
        "AIDC_JOB_ID": "7",
        "AIDC_QUEUE": "default",
        "AIDC_ATTEMPT": "2",
        "AIDC_NUM_NODES": "1",
        "AIDC_CHECKPOINT_DIR": "/shared/aidc/7/checkpoints",
        "RAY_JOB_STOP_WAIT_TIME_S": "30",
        "TOKEN": "s3",
    }


def test_the_body_is_a_ray_job_submit_request() -> None:
    job = spec(resources={"cpus": 4, "gpus": 0.25, "memory": "16GiB"}, queue="team-a")

    body = submit_body(
        launch(job), resolve_paths(job, JOBS, 7), stop_wait=10, queue_resources={"team-a": 1.0}, node_ip="10.0.0.5"
    )

    assert set(body) <= SUBMIT_REQUEST_FIELDS
    assert body["submission_id"] == "aidc-7-2"
    assert body["entrypoint_num_cpus"] == 4
    assert body["entrypoint_num_gpus"] == 0.25
    assert body["entrypoint_memory"] == 16 * 2**30
    assert isinstance(body["entrypoint_memory"], int)  # Ray refuses a float
    assert body["entrypoint_resources"] == {"team-a": 1.0, "node:10.0.0.5": 0.001}
    assert body["metadata"] == {
        "aidc_job_id": "7",
        "aidc_attempt": "2",
        "aidc_job_name": "train",
        "aidc_queue": "team-a",
    }
    assert body["runtime_env"]["env_vars"]["RAY_JOB_STOP_WAIT_TIME_S"] == "10"
    assert "CUDA_VISIBLE_DEVICES" not in body["entrypoint"]


def test_a_body_without_extra_resources_has_none() -> None:
    job = spec()
    body = submit_body(launch(job), resolve_paths(job, JOBS, 7), stop_wait=3, queue_resources={}, node_ip=None)
    assert "entrypoint_resources" not in body
    assert body["entrypoint_num_gpus"] == 0
    assert "export CUDA_VISIBLE_DEVICES=" in shlex.split(body["entrypoint"])[2]


def ray_job(status: RayJobStatus, **fields: Any) -> RayJob:
    return RayJob("aidc-7-2", status, **fields)


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (ray_job(RayJobStatus.SUCCEEDED, driver_exit_code=0), (0, "exit code 0")),
        (ray_job(RayJobStatus.FAILED, driver_exit_code=7, message=FAILED_MESSAGE), (7, "exit code 7")),
        (ray_job(RayJobStatus.FAILED, driver_exit_code=-9), (137, "exit code 137")),
        (
            ray_job(RayJobStatus.FAILED, driver_exit_code=4, message="...logs:\naidc: setup failed with exit code 4\n"),
            (4, "setup failed with exit code 4"),
        ),
        (
            ray_job(
                RayJobStatus.FAILED,
                error_type="RUNTIME_ENV_SETUP_FAILURE",
                message="Failed to set up runtime env\nTraceback...",
            ),
            (None, "Ray: RUNTIME_ENV_SETUP_FAILURE: Failed to set up runtime env"),
        ),
    ],
)
def test_how_a_ray_job_ended(job: RayJob, expected: tuple[int | None, str]) -> None:
    assert describe_end(job, None) == expected


def test_a_stopped_job_ended_within_the_grace_was_terminated() -> None:
    job = ray_job(RayJobStatus.STOPPED, end_time=1_000_004_000, stop_wait=5)
    assert describe_end(job, 1_000_000.0) == (143, "stopped in Ray: terminated by SIGTERM")


def test_a_stopped_job_ended_at_the_grace_was_killed() -> None:
    job = ray_job(RayJobStatus.STOPPED, end_time=1_000_005_100, stop_wait=5)
    assert describe_end(job, 1_000_000.0) == (137, "stopped in Ray: killed by SIGKILL after the 5s grace")


def test_a_job_stopped_by_someone_else_reads_as_terminated() -> None:
    code, reason = describe_end(ray_job(RayJobStatus.STOPPED, end_time=1_000_009_000), None)
    assert code == 143
    assert "not sent by this backend" in reason
