"""A second SlurmBackend instance (a restarted control plane, or another instance) taking over attempts it did not
launch: adopt() of a running job, of one that ended while nobody watched, and of a pending kill; and
engine_attempts() listing what Slurm still holds. Also a job Slurm itself requeues: still the same open attempt."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from aidc.backends.slurm import SlurmBackend
from aidc.ports import AdoptOutcome
from tests.fixtures.slurm import SlurmCluster
from tests.integration.backends.slurm.conftest import (
    PREFIX,
    next_job_id,
    open_attempt,
    request,
    spec,
    wait_exits,
    wait_file,
)
from tests.integration.backends.slurm.test_jobs import GATE


def test_adopt_takes_back_a_running_job(make_backend: Callable[..., SlurmBackend], workdir: Path) -> None:
    first = make_backend()
    job = next_job_id()
    first.launch(request(job, spec(GATE, workdir)))
    wait_file(workdir / "started")
    first.close()

    second = make_backend()
    assert second.adopt(open_attempt(job)) == AdoptOutcome.RUNNING
    assert second.poll() == []
    (workdir / "go").touch()
    [ended] = wait_exits(second)
    assert (ended.job_id, ended.exit_code) == (job, 0)


def test_adopt_reports_a_job_that_ended_while_nobody_watched(
    make_backend: Callable[..., SlurmBackend], workdir: Path, cluster: SlurmCluster, state_dir: Path
) -> None:
    first = make_backend()
    job = next_job_id()
    first.launch(request(job, spec("exit 4", workdir)))
    first.close()
    wait_file(state_dir / "jobs" / str(job) / "attempt-1" / "exit.json")
    _wait_finished(cluster, job)

    second = make_backend()
    assert second.adopt(open_attempt(job)) == AdoptOutcome.EXITED
    [ended] = second.poll()
    assert (ended.job_id, ended.attempt, ended.exit_code, ended.reason) == (job, 1, 4, "exit code 4")
    assert second.poll() == []


def test_adopt_carries_out_a_kill_the_previous_backend_scheduled(
    make_backend: Callable[..., SlurmBackend], workdir: Path
) -> None:
    first = make_backend()
    job = next_job_id()
    first.launch(request(job, spec("trap 'echo ignoring TERM' TERM; " + GATE, workdir)))
    wait_file(workdir / "started")
    first.terminate(job, 1, 3.0)
    first.close()  # before the kill is due: its timer stops with it

    second = make_backend()
    assert second.adopt(open_attempt(job)) == AdoptOutcome.RUNNING
    [ended] = wait_exits(second)
    assert ended.exit_code == 137


def test_adopt_of_an_attempt_slurm_never_had_is_lost(make_backend: Callable[..., SlurmBackend]) -> None:
    assert make_backend().adopt(open_attempt(next_job_id())) == AdoptOutcome.LOST


def test_engine_attempts_lists_jobs_another_instance_launched(
    make_backend: Callable[..., SlurmBackend], workdir: Path, cluster: SlurmCluster
) -> None:
    first = make_backend()
    job = next_job_id()
    first.launch(request(job, spec(GATE, workdir)))
    foreign = f"aidc-0f0f0f-{job}-7"  # another installation's job on the same cluster
    cluster.run(["sbatch", "--job-name", foreign, "--output", "/dev/null", "--mem=50M", "--wrap", "sleep 300"])
    other = make_backend()
    try:
        listed = other.engine_attempts()
    finally:
        cluster.run(["scancel", "--name", foreign])
    assert (job, 1) in listed
    assert (job, 7) not in listed
    (workdir / "go").touch()
    wait_exits(first)
    assert (job, 1) not in make_backend().engine_attempts()


def _wait_finished(cluster: SlurmCluster, job: int) -> None:
    """Until Slurm has finished with the job's first attempt (COMPLETING over)."""
    end = time.monotonic() + 60.0
    while time.monotonic() < end:
        out = cluster.run(["squeue", "-h", "-t", "all", "-n", f"{PREFIX}-{job}-1", "-o", "%T"]).stdout.split()
        if out and all(state not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") for state in out):
            return
        time.sleep(0.2)
    raise AssertionError(f"Slurm did not finish job {PREFIX}-{job}-1")


def test_a_job_slurm_requeues_stays_the_same_open_attempt(
    make_backend: Callable[..., SlurmBackend], workdir: Path, cluster: SlurmCluster, state_dir: Path
) -> None:
    """Slurm requeues a running job (as after a node failure or a preemption): the attempt stays open while the
    job waits and runs again, its first run's exit record is not reported, and the rerun's exit is."""
    backend = make_backend()
    job = next_job_id()
    run = 'echo "run ${SLURM_RESTART_COUNT:-0}"; ' + GATE
    backend.launch(request(job, spec(run, workdir)))
    wait_file(workdir / "started")
    slurm_id = str(json.loads((state_dir / "jobs" / str(job) / "attempt-1" / "slurm.json").read_text())["slurm_job_id"])
    (workdir / "started").unlink()
    cluster.run(["scontrol", "requeue", slurm_id])
    wait_file(state_dir / "jobs" / str(job) / "attempt-1" / "exit.json")  # the first run's, from its SIGTERM
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        assert backend.poll() == []
        time.sleep(0.2)
    # Slurm holds a requeued job back for two minutes; let it go now.
    cluster.run(["scontrol", "update", f"jobid={slurm_id}", "starttime=now"])
    wait_file(workdir / "started")
    assert backend.poll() == []
    (workdir / "go").touch()
    [ended] = wait_exits(backend)
    assert (ended.job_id, ended.attempt, ended.exit_code) == (job, 1, 0)
    log = backend.read_log(job, 1).data
    assert b"run 0" in log
    assert b"run 1" in log
