"""The Ray backend against a real Ray head (tests/fixtures/ray.py: one node, 2 CPUs, 2 fake GPUs), real clock.

Every wait is a polling loop with a deadline; jobs that must stay alive wait for a file the test creates (the
Ray node is this host), so no test depends on how fast this machine is. Each test uses job ids of its own: the
Ray head is shared by the whole session and remembers every submission."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aidc.backends.context import BackendContext, engine_job_name, parse_engine_job_name
from aidc.backends.ray import RayBackend, create
from aidc.backends.ray.client import RayJobsClient, RayJobStatus
from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.jobs import Attempt, JobSpec
from aidc.ports import (
    AdoptOutcome,
    AttemptExit,
    LaunchError,
    LaunchRequest,
    SupportsCheckpoints,
    SupportsEngineListing,
    SupportsLogs,
)

DEADLINE = 60.0  # a Ray job takes a few seconds to start on a 2-core machine
GATE = "while [ ! -e go ]; do sleep 0.05; done"  # in the workdir: the job runs until the test lets it finish
_ids = itertools.count(1)


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    return tmp_path / "ray-jobs"


@pytest.fixture
def make_backend(ray_cluster: str, tmp_path: Path, jobs_dir: Path) -> Iterator[Callable[..., RayBackend]]:
    made: list[RayBackend] = []
    # Whatever a failed test left running is stopped through Ray at the end.
    reaper = RayJobsClient(ray_cluster, timeout=10)

    def make(**options: Any) -> RayBackend:
        settings = {"address": ray_cluster, "jobs_dir": str(jobs_dir), "poll_interval": 0.2, **options}
        backend = create(settings, BackendContext(tmp_path / "data", _Clock(), cancel_grace=5.0))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
    for job in reaper.jobs():
        if parse_engine_job_name(job.submission_id) is not None and not job.status.is_terminal:
            reaper.stop(job.submission_id)
    reaper.close()


@pytest.fixture
def backend(make_backend: Callable[..., RayBackend]) -> RayBackend:
    return make_backend()


def new_job() -> int:
    return next(_ids)


def request(
    job_id: int,
    run: str,
    *,
    attempt: int = 1,
    setup: str | None = None,
    gpus: float = 0,
    node: str | None = None,
    secret_env: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> LaunchRequest:
    spec = JobSpec.model_validate(
        {
            "name": f"job-{job_id}",
            "run": run,
            "setup": setup,
            "resources": {"cpus": 0.25, "gpus": gpus, "memory": "64MB"},
            "env": env or {},
        }
    )
    placement = Placement((NodeAssignment(node, ()),)) if node else Placement(())
    return LaunchRequest(job_id, attempt, spec, placement, env={"AIDC_QUEUE": "default"}, secret_env=secret_env or {})


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def wait_exits(backend: RayBackend, *keys: tuple[int, int]) -> dict[tuple[int, int], AttemptExit]:
    """Poll until each attempt has ended; each is reported exactly once."""
    found: list[AttemptExit] = []

    def ended() -> bool:
        found.extend(backend.poll())
        return {(e.job_id, e.attempt) for e in found} >= set(keys)

    wait_for(ended, f"attempts {keys} to end")
    assert sorted((e.job_id, e.attempt) for e in found) == sorted(keys)
    return {(e.job_id, e.attempt): e for e in found}


def wait_exit(backend: RayBackend, job_id: int, attempt: int = 1) -> AttemptExit:
    return wait_exits(backend, (job_id, attempt))[(job_id, attempt)]


def log_of(backend: RayBackend, job_id: int, attempt: int = 1) -> str:
    return backend.read_log(job_id, attempt).data.decode()


def wait_log(backend: RayBackend, job_id: int, text: str, attempt: int = 1) -> None:
    wait_for(lambda: text in log_of(backend, job_id, attempt), f"{text!r} in the log of job {job_id}")


def test_a_job_runs_and_succeeds_with_its_log(backend: RayBackend, jobs_dir: Path) -> None:
    assert isinstance(backend, SupportsLogs)
    job = new_job()
    run = 'echo "hello from $AIDC_JOB_ID/$AIDC_ATTEMPT in $PWD"; echo "token=$TOKEN ckpt=$AIDC_CHECKPOINT_DIR"'
    backend.launch(request(job, run, setup="echo setting-up", secret_env={"TOKEN": "s3cr3t"}))

    ended = wait_exit(backend, job)

    assert (ended.exit_code, ended.reason) == (0, "exit code 0")
    log = log_of(backend, job)
    assert "setting-up" in log
    assert f"hello from {job}/1 in {jobs_dir / str(job)}" in log
    assert f"token=s3cr3t ckpt={jobs_dir / str(job) / 'checkpoints'}" in log
    assert (jobs_dir / str(job) / "checkpoints").is_dir()
    chunk = backend.read_log(job, 1, offset=3, limit=5)
    assert chunk.data == log.encode()[3:8]
    assert chunk.next_offset == 8
    assert not chunk.complete
    whole = backend.read_log(job, 1)
    assert whole.complete
    assert whole.size == len(whole.data)
    time.sleep(0.3)  # past the poll interval: a second poll reads the list again and reports nothing
    assert backend.poll() == []


@pytest.mark.parametrize(("gpus", "expected"), [(2, 2), (1, 1), (0.5, 1), (0, 0)])
def test_cuda_visible_devices_holds_as_many_gpus_as_asked(backend: RayBackend, gpus: float, expected: int) -> None:
    job = new_job()
    backend.launch(request(job, 'echo "cvd=[${CUDA_VISIBLE_DEVICES-unset}]"', gpus=gpus))

    assert wait_exit(backend, job).exit_code == 0

    line = next(x for x in log_of(backend, job).splitlines() if x.startswith("cvd="))
    devices = line.removeprefix("cvd=[").removesuffix("]")
    assert devices != "unset"
    assert len([d for d in devices.split(",") if d]) == expected


def test_a_failing_job_reports_its_exit_code(backend: RayBackend) -> None:
    failing, bad_setup = new_job(), new_job()
    backend.launch(request(failing, "echo about to fail; exit 3"))
    backend.launch(request(bad_setup, "echo ran-$((1 + 1))", setup="exit 4"))

    ended = wait_exits(backend, (failing, 1), (bad_setup, 1))

    assert (ended[(failing, 1)].exit_code, ended[(failing, 1)].reason) == (3, "exit code 3")
    assert (ended[(bad_setup, 1)].exit_code, ended[(bad_setup, 1)].reason) == (4, "setup failed with exit code 4")
    assert "ran-2" not in log_of(backend, bad_setup)  # Ray's log echoes the entrypoint: look for its output


def test_terminate_stops_a_running_job_with_sigterm(backend: RayBackend) -> None:
    job = new_job()
    backend.launch(request(job, "echo started; sleep 600"))
    wait_log(backend, job, "started")

    backend.terminate(job, 1, 5.0)
    backend.terminate(job, 1, 5.0)  # idempotent

    ended = wait_exit(backend, job)
    assert ended.exit_code == 143
    assert "SIGTERM" in ended.reason


def test_a_job_that_traps_sigterm_checkpoints_within_the_grace_and_the_next_attempt_resumes(
    make_backend: Callable[..., RayBackend],
) -> None:
    backend = make_backend(stop_grace=20, shared_jobs_dir=True)  # the Ray node is this host
    assert isinstance(backend, SupportsCheckpoints)
    job = new_job()
    run = (
        'if [ -e "$AIDC_CHECKPOINT_DIR/step" ]; then echo "resumed at $(cat "$AIDC_CHECKPOINT_DIR/step")"; exit 0; fi\n'
        "trap 'sleep 1; echo 42 > \"$AIDC_CHECKPOINT_DIR/step\"; echo saved; exit 0' TERM\n"
        "echo started\n"
        "while true; do sleep 0.1; done"
    )
    backend.launch(request(job, run))
    wait_log(backend, job, "started")

    backend.terminate(job, 1, 20.0)

    first = wait_exit(backend, job)
    assert first.exit_code == 143  # ended before Ray's grace: no SIGKILL
    assert (backend.checkpoint_path(job, request(job, run).spec) / "step").read_text() == "42\n"
    assert backend.last_checkpoint(job, request(job, run).spec) is not None
    backend.launch(request(job, run, attempt=2))
    second = wait_exit(backend, job, 2)
    assert second.exit_code == 0
    assert "resumed at 42" in log_of(backend, job, 2)


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace(make_backend: Callable[..., RayBackend]) -> None:
    backend = make_backend(stop_grace=2)
    job = new_job()
    backend.launch(request(job, "trap 'echo ignoring TERM' TERM; echo started; while true; do sleep 0.1; done"))
    wait_log(backend, job, "started")
    asked = time.monotonic()

    backend.terminate(job, 1, 2.0)

    ended = wait_exit(backend, job)
    assert time.monotonic() - asked >= 2.0
    assert ended.exit_code == 137
    assert "SIGKILL after the 2s grace" in ended.reason
    assert "ignoring TERM" in log_of(backend, job)


def test_a_fresh_backend_adopts_a_running_job(
    make_backend: Callable[..., RayBackend], jobs_dir: Path, ray_cluster: str
) -> None:
    first = make_backend()
    job = new_job()
    first.launch(request(job, f"echo started; {GATE}; echo released"))
    wait_log(first, job, "started")
    first.close()

    second = make_backend()
    attempt = Attempt(job_id=job, number=1, nodes=("x",), started_at=datetime.now(UTC))
    assert second.adopt(attempt) == AdoptOutcome.RUNNING
    assert second.adopt(attempt) == AdoptOutcome.RUNNING  # again: still one watch
    (jobs_dir / str(job) / "go").touch()

    ended = wait_exit(second, job)
    assert ended.exit_code == 0
    assert "released" in log_of(second, job)


def test_a_fresh_backend_finds_a_job_that_ended_while_nobody_watched(
    make_backend: Callable[..., RayBackend], ray_cluster: str
) -> None:
    first = make_backend()
    job = new_job()
    first.launch(request(job, "exit 5"))
    first.close()
    client = RayJobsClient(ray_cluster, timeout=10)
    wait_for(lambda: client.job(engine_job_name(job, 1)).status.is_terminal, "the job to end in Ray")
    client.close()

    second = make_backend()
    attempt = Attempt(job_id=job, number=1, nodes=("x",), started_at=datetime.now(UTC))
    assert second.adopt(attempt) == AdoptOutcome.EXITED
    exits = second.poll()
    assert [(e.job_id, e.exit_code, e.reason) for e in exits] == [(job, 5, "exit code 5")]
    time.sleep(0.3)
    assert second.poll() == []
    unknown = Attempt(job_id=new_job(), number=1, nodes=("x",), started_at=datetime.now(UTC))
    assert second.adopt(unknown) == AdoptOutcome.LOST


def test_engine_attempts_lists_what_ray_still_runs(backend: RayBackend, jobs_dir: Path) -> None:
    assert isinstance(backend, SupportsEngineListing)
    running, done = new_job(), new_job()
    backend.launch(request(done, "true"))
    wait_exit(backend, done)
    backend.launch(request(running, GATE))

    listed = backend.engine_attempts()

    assert (running, 1) in listed
    assert (done, 1) not in listed
    (jobs_dir / str(running)).mkdir(parents=True, exist_ok=True)
    (jobs_dir / str(running) / "go").touch()
    wait_exit(backend, running)
    assert (running, 1) not in backend.engine_attempts()


def test_launching_an_attempt_twice_is_refused(make_backend: Callable[..., RayBackend]) -> None:
    backend = make_backend()
    job = new_job()
    backend.launch(request(job, "true"))
    with pytest.raises(LaunchError, match="already running"):
        backend.launch(request(job, "true"))
    other = make_backend()  # knows nothing of it: Ray refuses the submission id
    with pytest.raises(LaunchError, match=f"launched before: Ray already has {engine_job_name(job, 1)}"):
        other.launch(request(job, "true"))
    wait_exit(backend, job)


def test_discover_nodes_shows_the_head_with_two_gpus(backend: RayBackend) -> None:
    nodes = backend.discover_nodes()

    assert len(nodes) == 1
    node = nodes[0]
    assert node.backend == "ray"
    assert node.cpus == 2
    assert node.memory > 0
    assert [(g.index, g.uuid, g.model) for g in node.gpus] == [
        (0, f"ray-{node.name}-gpu0", "unknown"),
        (1, f"ray-{node.name}-gpu1", "unknown"),
    ]
    assert node.labels["ray_head"] == "true"


def test_a_job_placed_on_a_node_runs_there_and_an_unknown_node_is_refused(backend: RayBackend) -> None:
    node = backend.discover_nodes()[0].name
    job = new_job()
    backend.launch(request(job, "echo pinned", node=node))
    assert wait_exit(backend, job).exit_code == 0
    client = RayJobsClient(backend.address, timeout=10)
    assert client.job(engine_job_name(job, 1)).status == RayJobStatus.SUCCEEDED
    client.close()
    with pytest.raises(LaunchError, match="not a live node of the Ray cluster"):
        backend.launch(request(new_job(), "true", node="no-such-node"))


def test_an_unreachable_head_is_a_launch_error_naming_its_address(make_backend: Callable[..., RayBackend]) -> None:
    backend = make_backend(address="http://127.0.0.1:9", request_timeout=2)

    with pytest.raises(LaunchError, match=r"cannot reach the Ray dashboard at http://127\.0\.0\.1:9"):
        backend.launch(request(new_job(), "true"))
    assert backend.poll() == []


def test_terminate_of_a_job_still_waiting_for_gpus_ends_it_once_ray_schedules_it(
    backend: RayBackend, jobs_dir: Path
) -> None:
    """Ray acts on a stop only once the job's supervisor runs, i.e. when its resources are free: until then
    the attempt stays open (documented in the package docstring). Then the entrypoint is started and stopped
    at once."""
    holder, waiting = new_job(), new_job()
    backend.launch(request(holder, f"echo started; {GATE}", gpus=2))
    wait_log(backend, holder, "started")
    backend.launch(request(waiting, "sleep 1; echo ran-$((2 + 2))", gpus=1))  # no GPU free: Ray keeps it PENDING

    backend.terminate(waiting, 1, 5.0)
    time.sleep(3)  # long enough for a stop that worked to show: it does not while the job waits
    assert all(e.job_id != waiting for e in backend.poll())
    (jobs_dir / str(holder) / "go").touch()

    ended = wait_exits(backend, (holder, 1), (waiting, 1))
    assert ended[(holder, 1)].exit_code == 0
    assert ended[(waiting, 1)].exit_code == 143
    assert "ran-4" not in log_of(backend, waiting)
