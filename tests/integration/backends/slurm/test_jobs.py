"""The Slurm backend running jobs on the real one-node cluster: output, exit codes, GPUs, termination with and
without a grace, checkpoints across attempts, and a queue longer than the cluster.

Jobs that must stay alive wait for a file the test creates, and every wait is a polling loop with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aidc.backends.slurm import SlurmBackend
from aidc.ports import LaunchError, SupportsCheckpoints, SupportsLogs
from tests.fixtures.slurm import GPUS, SlurmCluster
from tests.integration.backends.slurm.conftest import next_job_id, request, spec, wait_exits, wait_file

GATE = "touch started; while [ ! -e go ]; do sleep 0.1; done"


def test_a_job_runs_and_succeeds_and_its_log_is_readable(
    make_backend: Callable[..., SlurmBackend], workdir: Path
) -> None:
    backend = make_backend()
    job = next_job_id()
    backend.launch(request(job, spec('echo "hello from $AIDC_JOB_ID attempt $AIDC_ATTEMPT in $PWD"', workdir)))
    [ended] = wait_exits(backend)
    assert (ended.job_id, ended.attempt, ended.exit_code, ended.reason) == (job, 1, 0, "exit code 0")
    assert isinstance(backend, SupportsLogs)
    chunk = backend.read_log(job, 1)
    assert chunk.data == f"hello from {job} attempt 1 in {workdir}\n".encode()
    assert chunk.complete
    assert backend.poll() == []  # reported once


def test_setup_runs_before_run_and_secrets_reach_the_job_but_no_file(
    make_backend: Callable[..., SlurmBackend], workdir: Path, state_dir: Path
) -> None:
    backend = make_backend()
    job = next_job_id()
    the_spec = spec('echo "run sees $TOKEN $PLAIN"', workdir, setup="echo setup first", env={"PLAIN": "p"})
    launch = request(job, the_spec)
    backend.launch(type(launch)(**{**launch.__dict__, "secret_env": {"TOKEN": "s3cr3t-value"}}))
    [ended] = wait_exits(backend)
    assert ended.exit_code == 0
    assert backend.read_log(job, 1).data == b"setup first\nrun sees s3cr3t-value p\n"
    written = [p for p in state_dir.rglob("*") if p.is_file() and p.name != "output.log"]
    assert written
    assert not [p for p in written if b"s3cr3t-value" in p.read_bytes()]


def test_the_exit_code_of_a_failing_job(make_backend: Callable[..., SlurmBackend], workdir: Path) -> None:
    backend = make_backend()
    job = next_job_id()
    backend.launch(request(job, spec("echo failing; exit 3", workdir)))
    [ended] = wait_exits(backend)
    assert (ended.exit_code, ended.reason) == (3, "exit code 3")


def test_a_failing_setup_stops_the_attempt(make_backend: Callable[..., SlurmBackend], workdir: Path) -> None:
    backend = make_backend()
    job = next_job_id()
    backend.launch(request(job, spec("echo never", workdir, setup="exit 5")))
    [ended] = wait_exits(backend)
    assert (ended.exit_code, ended.reason) == (5, "setup failed with exit code 5")
    assert b"never" not in backend.read_log(job, 1).data


@pytest.mark.parametrize("gpus", [0, 1, GPUS])
def test_a_job_sees_exactly_the_gpus_it_asked_for(
    make_backend: Callable[..., SlurmBackend], workdir: Path, gpus: int
) -> None:
    backend = make_backend()
    job = next_job_id()
    resources = {"gpus": gpus, "memory": "100MB"}
    backend.launch(request(job, spec('echo "CVD=$CUDA_VISIBLE_DEVICES"', workdir, resources=resources)))
    [ended] = wait_exits(backend)
    assert ended.exit_code == 0
    line = backend.read_log(job, 1).data.decode().strip()
    visible = line.removeprefix("CVD=")
    assert len([g for g in visible.split(",") if g]) == gpus, line


def test_a_gpu_type_is_asked_of_slurm(make_backend: Callable[..., SlurmBackend], workdir: Path) -> None:
    backend = make_backend()
    job = next_job_id()
    resources = {"gpus": "fake:1", "memory": "100MB"}
    backend.launch(request(job, spec('echo "CVD=$CUDA_VISIBLE_DEVICES"', workdir, resources=resources)))
    [ended] = wait_exits(backend)
    assert ended.exit_code == 0
    assert backend.read_log(job, 1).data.decode().strip() in ("CVD=0", "CVD=1")


def test_terminate_stops_a_running_job_with_sigterm(make_backend: Callable[..., SlurmBackend], workdir: Path) -> None:
    backend = make_backend()
    job = next_job_id()
    backend.launch(request(job, spec(GATE, workdir)))
    wait_file(workdir / "started")
    started = time.monotonic()
    backend.terminate(job, 1, 30.0)
    backend.terminate(job, 1, 30.0)  # idempotent
    [ended] = wait_exits(backend)
    assert ended.exit_code == 143
    assert "SIGTERM" in ended.reason
    assert time.monotonic() - started < 25.0  # ended by the SIGTERM, not by the kill after the grace


def test_terminate_kills_a_job_that_ignores_sigterm_after_the_grace(
    make_backend: Callable[..., SlurmBackend], workdir: Path
) -> None:
    backend = make_backend()
    job = next_job_id()
    backend.launch(request(job, spec("trap 'echo ignoring TERM' TERM; " + GATE, workdir)))
    wait_file(workdir / "started")
    backend.terminate(job, 1, 2.0)
    [ended] = wait_exits(backend)
    assert ended.exit_code == 137
    assert "SIGKILL" in ended.reason
    assert b"ignoring TERM" in backend.read_log(job, 1).data


def test_terminate_cancels_a_job_still_queued(make_backend: Callable[..., SlurmBackend], workdir: Path) -> None:
    backend = make_backend(extra_args=["--begin=now+3600"])  # held in Slurm's queue for an hour
    job = next_job_id()
    backend.launch(request(job, spec("echo never", workdir)))
    assert job in {j for j, _ in backend.engine_attempts()}
    backend.terminate(job, 1, 30.0)
    [ended] = wait_exits(backend)
    assert (ended.exit_code, ended.reason) == (143, "cancelled before it started")


def test_a_job_checkpoints_within_the_grace_and_the_next_attempt_resumes(
    make_backend: Callable[..., SlurmBackend], workdir: Path
) -> None:
    backend = make_backend()
    job = next_job_id()
    run = (
        'if [ -f "$AIDC_CHECKPOINT_DIR/step" ]; then echo "resumed at step $(cat "$AIDC_CHECKPOINT_DIR/step")"; '
        "exit 0; fi\n"
        "trap 'echo 42 > \"$AIDC_CHECKPOINT_DIR/step\"; echo saved; exit 143' TERM\n" + GATE
    )
    the_spec = spec(run, workdir)
    backend.launch(request(job, the_spec, attempt=1))
    wait_file(workdir / "started")
    backend.terminate(job, 1, 30.0)
    [first] = wait_exits(backend)
    assert first.exit_code == 143
    assert b"saved" in backend.read_log(job, 1).data
    assert isinstance(backend, SupportsCheckpoints)
    assert (backend.checkpoint_path(job, the_spec) / "step").read_text() == "42\n"
    assert backend.last_checkpoint(job, the_spec) is not None

    backend.launch(request(job, the_spec, attempt=2))
    [second] = wait_exits(backend)
    assert (second.attempt, second.exit_code) == (2, 0)
    assert backend.read_log(job, 2).data == b"resumed at step 42\n"


def test_launching_an_attempt_twice_is_refused(make_backend: Callable[..., SlurmBackend], workdir: Path) -> None:
    backend = make_backend()
    job = next_job_id()
    backend.launch(request(job, spec("true", workdir)))
    with pytest.raises(LaunchError, match="already running"):
        backend.launch(request(job, spec("true", workdir)))
    wait_exits(backend)
    with pytest.raises(LaunchError, match="launched before"):
        backend.launch(request(job, spec("true", workdir)))


def test_slurm_refusing_a_job_is_a_launch_error_with_its_message(
    make_backend: Callable[..., SlurmBackend], workdir: Path
) -> None:
    backend = make_backend(default={"partition": "nosuchpartition"})
    with pytest.raises(LaunchError, match=r"(?i)partition"):
        backend.launch(request(next_job_id(), spec("true", workdir)))


def test_a_queue_longer_than_the_cluster_all_finishes(
    make_backend: Callable[..., SlurmBackend], workdir: Path, cluster: SlurmCluster
) -> None:
    backend = make_backend()
    jobs = [next_job_id() for _ in range(20)]
    for job in jobs:
        backend.launch(request(job, spec("sleep 1; echo done", workdir, resources={"cpus": 1, "memory": "100MB"})))
    pending = cluster.run(["squeue", "-h", "-t", "PD", "-o", "%i"]).stdout.split()
    assert pending, "the cluster should not be able to run 20 jobs at once"
    ended = wait_exits(backend, count=len(jobs), deadline=180.0)
    assert sorted(e.job_id for e in ended) == jobs
    assert {e.exit_code for e in ended} == {0}
    assert all(backend.read_log(job, 1).data == b"done\n" for job in jobs)


@pytest.mark.slow
def test_near_the_time_limit_the_job_is_warned_then_slurm_ends_it_with_timeout(
    make_backend: Callable[..., SlurmBackend], workdir: Path
) -> None:
    """--time is 1 minute (Slurm's smallest); the warning is due 50 s before it (Slurm may send it up to a minute
    early). The job notes the SIGTERM and carries on, so Slurm ends it at the limit: about 70 s."""
    backend = make_backend(checkpoint_grace=50, time_margin={"factor": 1.0, "seconds": 0})
    job = next_job_id()
    run = "trap 'echo warned; touch warned' TERM; " + GATE
    backend.launch(request(job, spec(run, workdir, estimated_duration=60)))
    wait_file(workdir / "warned", deadline=70.0)
    [ended] = wait_exits(backend, deadline=120.0)
    assert ended.reason.endswith("Slurm: TIMEOUT"), ended
    assert ended.exit_code is not None
    assert ended.exit_code > 128
    log = backend.read_log(job, 1).data
    assert b"warned" in log
    assert log.index(b"warned") < log.index(b"DUE TO TIME LIMIT")  # warned before the limit, not only at it
