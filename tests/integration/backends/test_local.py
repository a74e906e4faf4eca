"""The local backend driving real processes: output, exit codes, environment, termination of the
whole process group, and adoption by a new backend after a restart.

Every wait is a polling loop with a deadline; jobs that must stay alive wait for a file the test
creates, so no test depends on how fast this machine is."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from aidc.backends.local import LocalBackend, processes, records
from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.jobs import Attempt, JobSpec
from aidc.ports import AdoptOutcome, AttemptExit, LaunchError, LaunchRequest, SupportsLogs

NODE = "node-a"
DEADLINE = 20.0
# Waits for a file named "go" in the workdir, so the job runs until the test lets it finish.
GATE = "while [ ! -e go ]; do sleep 0.02; done"


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    yield data
    # Whatever a failed test left running, even a runner that has not written runner.json yet.
    for adir in data.glob("jobs/*/attempt-*"):
        job_id, attempt = int(adir.parts[-2]), int(adir.name.split("-")[1])
        found = processes.find_runner(str(adir))
        if found is not None:
            processes.signal_group(found[0], signal.SIGKILL)
        info = records.read_json(adir / records.RUNNER)
        if info is not None:
            processes.kill_leftovers(info["pgid"], job_id, attempt)


@pytest.fixture
def make_backend(data_dir: Path) -> Iterator[Callable[[], LocalBackend]]:
    made: list[LocalBackend] = []

    def make() -> LocalBackend:
        backend = LocalBackend(data_dir, _Clock(), node_name=NODE, cancel_grace=5.0)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
        backend.poll()  # reaps the runners that are still our children


@pytest.fixture
def backend(make_backend: Callable[[], LocalBackend]) -> LocalBackend:
    return make_backend()


def request(
    job_id: int,
    run: str,
    *,
    workdir: Path | str = ".",
    setup: str | None = None,
    gpus: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
    spec_env: dict[str, str] | None = None,
    checkpoint_dir: str | None = None,
) -> LaunchRequest:
    spec = JobSpec(
        name=f"job-{job_id}",
        run=run,
        setup=setup,
        workdir=str(workdir),
        env=spec_env or {},
        checkpoint_dir=checkpoint_dir,
    )
    return LaunchRequest(job_id, 1, spec, Placement((NodeAssignment(NODE, gpus),)), env=env or {})


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_exits(backend: LocalBackend, *job_ids: int) -> dict[int, AttemptExit]:
    """Poll until each job's first attempt has ended; each is reported exactly once."""
    found: list[AttemptExit] = []

    def ended() -> bool:
        found.extend(backend.poll())
        return {e.job_id for e in found} >= set(job_ids)

    wait_for(ended, f"jobs {job_ids} to end")
    assert sorted((e.job_id, e.attempt) for e in found) == sorted((j, 1) for j in job_ids)
    return {e.job_id: e for e in found}


def wait_exit(backend: LocalBackend, job_id: int) -> AttemptExit:
    return wait_exits(backend, job_id)[job_id]


def log_of(backend: LocalBackend, job_id: int) -> str:
    return backend.read_log(job_id, 1).data.decode()


def attempt_dir(data_dir: Path, job_id: int) -> Path:
    return records.attempt_dir(data_dir, job_id, 1)


def runner_info(data_dir: Path, job_id: int) -> dict[str, int]:
    path = attempt_dir(data_dir, job_id) / records.RUNNER
    wait_for(path.exists, "runner.json")
    info: dict[str, int] = json.loads(path.read_text())
    return info


def group_alive(pgid: int) -> bool:
    """Does any live (non-zombie) process remain in the group?"""
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (psutil.Error, ProcessLookupError):
            continue
    return False


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def attempt_record(job_id: int, started: datetime) -> Attempt:
    return Attempt(job_id=job_id, number=1, nodes=(NODE,), started_at=started)


# ------------------------------------------------------------------------- output, exits


def test_output_lands_in_the_log(backend: LocalBackend) -> None:
    backend.launch(request(1, "echo hello; echo oops >&2"))
    ended = wait_exit(backend, 1)
    assert (ended.exit_code, ended.reason) == (0, "exit code 0")
    chunk = backend.read_log(1, 1)
    assert chunk.data.decode().splitlines() == ["hello", "oops"]
    assert chunk.complete
    assert isinstance(backend, SupportsLogs)


def test_exit_code_is_reported(backend: LocalBackend) -> None:
    backend.launch(request(2, "exit 3"))
    ended = wait_exit(backend, 2)
    assert (ended.exit_code, ended.reason) == (3, "exit code 3")
    assert ended.ended_at.tzinfo is not None


def test_each_exit_is_reported_once(backend: LocalBackend) -> None:
    backend.launch(request(3, "true"))
    wait_exit(backend, 3)
    assert backend.poll() == []


def test_setup_runs_first_in_the_workdir(backend: LocalBackend, tmp_path: Path) -> None:
    backend.launch(request(4, "cat prepared.txt", setup="echo prepared > prepared.txt", workdir=tmp_path))
    assert wait_exit(backend, 4).exit_code == 0
    assert log_of(backend, 4) == "prepared\n"


def test_failed_setup_fails_the_attempt_without_running(backend: LocalBackend) -> None:
    backend.launch(request(5, "echo should-not-run", setup="echo preparing; exit 4"))
    ended = wait_exit(backend, 5)
    assert (ended.exit_code, ended.reason) == (4, "setup failed with exit code 4")
    assert log_of(backend, 5) == "preparing\n"


def test_a_job_killed_by_a_signal(backend: LocalBackend) -> None:
    backend.launch(request(6, "kill -KILL $$"))
    ended = wait_exit(backend, 6)
    assert (ended.exit_code, ended.reason) == (137, "killed by signal 9 (SIGKILL)")


# ------------------------------------------------------------------------- environment


ENV_PROBE = (
    'echo "JOB=$AIDC_JOB_ID ATTEMPT=$AIDC_ATTEMPT NODES=$AIDC_NUM_NODES"; '
    'echo "CKPT=$AIDC_CHECKPOINT_DIR"; echo "CVD=${CUDA_VISIBLE_DEVICES-unset}"; echo "FOO=$FOO"'
)


def test_cpu_job_environment(backend: LocalBackend, data_dir: Path) -> None:
    backend.launch(request(7, ENV_PROBE, spec_env={"FOO": "bar"}))
    assert wait_exit(backend, 7).exit_code == 0
    checkpoints = data_dir / "jobs" / "7" / "checkpoints"
    assert log_of(backend, 7).splitlines() == [
        "JOB=7 ATTEMPT=1 NODES=1",
        f"CKPT={checkpoints}",
        "CVD=",  # set and empty: a CPU job sees no GPU
        "FOO=bar",
    ]
    assert checkpoints.is_dir()


def test_gpu_job_sees_its_gpus(backend: LocalBackend) -> None:
    backend.launch(request(8, ENV_PROBE, gpus=(0, 1)))
    assert wait_exit(backend, 8).exit_code == 0
    assert "CVD=0,1" in log_of(backend, 8).splitlines()


def test_request_env_and_checkpoint_dir_in_the_workdir(backend: LocalBackend, tmp_path: Path) -> None:
    req = request(
        9,
        ENV_PROBE,
        workdir=tmp_path,
        checkpoint_dir="ckpt",
        env={"AIDC_NUM_NODES": "1", "AIDC_ATTEMPT": "1"},
    )
    backend.launch(req)
    assert wait_exit(backend, 9).exit_code == 0
    assert f"CKPT={tmp_path / 'ckpt'}" in log_of(backend, 9).splitlines()
    assert (tmp_path / "ckpt").is_dir()


def test_workdir_is_respected(backend: LocalBackend, tmp_path: Path, data_dir: Path) -> None:
    backend.launch(request(10, "pwd", workdir=tmp_path))
    backend.launch(request(11, "pwd"))  # relative: the job's own directory
    assert [e.exit_code for e in wait_exits(backend, 10, 11).values()] == [0, 0]
    assert log_of(backend, 10) == f"{tmp_path}\n"
    assert log_of(backend, 11) == f"{data_dir / 'jobs' / '11'}\n"


def test_a_relative_data_dir_works(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.chdir(data_dir.parent)
    backend = LocalBackend(Path(data_dir.name), _Clock(), node_name=NODE)
    try:
        backend.launch(request(15, "pwd"))
        assert wait_exit(backend, 15).exit_code == 0
        assert log_of(backend, 15) == f"{data_dir / 'jobs' / '15'}\n"
    finally:
        backend.close()


def test_missing_workdir_cannot_launch(backend: LocalBackend, tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="does not exist"):
        backend.launch(request(12, "true", workdir=tmp_path / "missing"))
    assert backend.poll() == []


def test_a_placement_on_another_node_cannot_launch(backend: LocalBackend) -> None:
    spec = JobSpec(name="elsewhere", run="true")
    with pytest.raises(LaunchError, match="node-b"):
        backend.launch(LaunchRequest(13, 1, spec, Placement((NodeAssignment("node-b"),))))


def test_the_same_attempt_cannot_launch_twice(backend: LocalBackend, tmp_path: Path) -> None:
    backend.launch(request(14, GATE, workdir=tmp_path))
    with pytest.raises(LaunchError, match="already running"):
        backend.launch(request(14, GATE, workdir=tmp_path))
    (tmp_path / "go").touch()
    assert wait_exit(backend, 14).exit_code == 0


# ------------------------------------------------------------------------- terminate


def test_terminate_sends_sigterm(backend: LocalBackend) -> None:
    run = "trap 'echo got TERM; exit 7' TERM; echo ready; sleep 60 & wait $!"
    backend.launch(request(20, run))
    wait_for(lambda: "ready" in log_of(backend, 20), "the job to set its trap")
    backend.terminate(20, 1, 30.0)
    ended = wait_exit(backend, 20)
    assert (ended.exit_code, ended.reason) == (7, "exit code 7")
    assert log_of(backend, 20) == "ready\ngot TERM\n"


def test_terminate_without_a_trap(backend: LocalBackend, data_dir: Path) -> None:
    backend.launch(request(21, "sleep 60"))
    runner_info(data_dir, 21)
    backend.terminate(21, 1, 30.0)
    ended = wait_exit(backend, 21)
    assert (ended.exit_code, ended.reason) == (143, "terminated by signal 15 (SIGTERM)")


def test_sigkill_after_the_grace_period_kills_the_whole_group(
    backend: LocalBackend, tmp_path: Path, data_dir: Path
) -> None:
    run = "trap '' TERM; sleep 60 & echo $! > grandchild.pid; echo ready; wait"
    backend.launch(request(22, run, workdir=tmp_path))
    wait_for(lambda: "ready" in log_of(backend, 22), "the job to start")
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    pgid = runner_info(data_dir, 22)["pgid"]
    backend.terminate(22, 1, 0.3)
    # Not polling: the kill timer alone must end it.
    wait_for(lambda: not group_alive(pgid), "the process group to die")
    assert not pid_alive(grandchild)
    ended = wait_exit(backend, 22)
    assert (ended.exit_code, ended.reason) == (137, "killed by signal 9 (SIGKILL)")
    assert backend.read_log(22, 1).complete


def test_terminate_is_idempotent(backend: LocalBackend, data_dir: Path) -> None:
    backend.launch(request(23, "sleep 60"))
    runner_info(data_dir, 23)
    backend.terminate(23, 1, 30.0)
    backend.terminate(23, 1, 30.0)
    assert wait_exit(backend, 23).exit_code == 143
    backend.terminate(23, 1, 30.0)  # ended
    backend.terminate(99, 1, 30.0)  # never existed
    assert backend.poll() == []


def test_the_end_of_the_job_kills_what_it_left_running(backend: LocalBackend, tmp_path: Path) -> None:
    backend.launch(request(24, "sleep 60 & echo $! > background.pid", workdir=tmp_path))
    assert wait_exit(backend, 24).exit_code == 0
    background = int((tmp_path / "background.pid").read_text())
    wait_for(lambda: not pid_alive(background), "the background process to die")


# ------------------------------------------------------------------------- adoption


def test_a_new_backend_adopts_a_running_attempt(make_backend: Callable[[], LocalBackend], tmp_path: Path) -> None:
    first = make_backend()
    started = datetime.now(UTC)
    first.launch(request(30, f"{GATE}; echo done; exit 5", workdir=tmp_path))
    first.close()
    second = make_backend()
    assert second.adopt(attempt_record(30, started)) == AdoptOutcome.RUNNING
    assert not second.read_log(30, 1).complete
    (tmp_path / "go").touch()
    ended = wait_exit(second, 30)
    assert (ended.exit_code, ended.reason) == (5, "exit code 5")
    assert log_of(second, 30) == "done\n"


def test_an_attempt_whose_runner_was_killed_is_lost(
    make_backend: Callable[[], LocalBackend], tmp_path: Path, data_dir: Path
) -> None:
    first = make_backend()
    started = datetime.now(UTC)
    first.launch(request(31, GATE, workdir=tmp_path))
    pgid = runner_info(data_dir, 31)["pgid"]
    first.close()
    os.killpg(pgid, signal.SIGKILL)
    wait_for(lambda: not group_alive(pgid), "the process group to die")
    second = make_backend()
    assert second.adopt(attempt_record(31, started)) == AdoptOutcome.LOST
    assert second.poll() == []


def test_an_attempt_that_ended_while_nobody_watched(make_backend: Callable[[], LocalBackend], data_dir: Path) -> None:
    first = make_backend()
    started = datetime.now(UTC)
    first.launch(request(32, "exit 4"))
    first.close()
    exit_json = attempt_dir(data_dir, 32) / records.EXIT
    wait_for(exit_json.exists, "exit.json")
    runner = runner_info(data_dir, 32)["pid"]
    wait_for(lambda: not pid_alive(runner), "the runner to exit")  # it writes exit.json, then kills its group
    second = make_backend()
    assert second.adopt(attempt_record(32, started)) == AdoptOutcome.EXITED
    (ended,) = second.poll()
    assert (ended.job_id, ended.exit_code, ended.reason) == (32, 4, "exit code 4")
    assert second.poll() == []


def test_a_pending_kill_survives_a_restart(make_backend: Callable[[], LocalBackend], data_dir: Path) -> None:
    first = make_backend()
    started = datetime.now(UTC)
    first.launch(request(33, "trap '' TERM; echo ready; sleep 60 & wait"))
    wait_for(lambda: "ready" in log_of(first, 33), "the job to start")
    first.terminate(33, 1, 0.5)
    first.close()  # its kill timer stops with it
    second = make_backend()
    assert second.adopt(attempt_record(33, started)) == AdoptOutcome.RUNNING
    ended = wait_exit(second, 33)
    assert (ended.exit_code, ended.reason) == (137, "killed by signal 9 (SIGKILL)")


def test_a_runner_killed_alone_is_lost_and_its_job_killed(
    backend: LocalBackend, tmp_path: Path, data_dir: Path
) -> None:
    backend.launch(request(34, f"sleep 60 & echo $! > child.pid; {GATE}", workdir=tmp_path))
    pid_file = tmp_path / "child.pid"
    # Not just exists(): the shell creates the file before it writes the pid into it.
    wait_for(lambda: pid_file.exists() and bool(pid_file.read_text().strip()), "the job to start")
    child = int(pid_file.read_text())
    os.kill(runner_info(data_dir, 34)["pid"], signal.SIGKILL)
    ended = wait_exit(backend, 34)
    assert ended.exit_code is None
    assert ended.reason == "lost: the attempt's process ended without recording an exit status"
    wait_for(lambda: not pid_alive(child), "the orphaned job to be killed")


# ------------------------------------------------------------------------- logs


def test_read_log_in_pieces(backend: LocalBackend, tmp_path: Path) -> None:
    backend.launch(request(40, f"echo 0123456789; {GATE}", workdir=tmp_path))
    wait_for(lambda: log_of(backend, 40) == "0123456789\n", "the output")
    first = backend.read_log(40, 1, offset=0, limit=4)
    assert (first.data, first.next_offset, first.complete) == (b"0123", 4, False)
    rest = backend.read_log(40, 1, offset=first.next_offset)
    assert (rest.data, rest.next_offset, rest.complete) == (b"456789\n", 11, False)
    (tmp_path / "go").touch()
    wait_exit(backend, 40)
    assert backend.read_log(40, 1, offset=4, limit=3).complete is False  # ended, but bytes remain
    end = backend.read_log(40, 1, offset=11)
    assert (end.data, end.next_offset, end.complete) == (b"", 11, True)


def test_read_log_of_an_unknown_attempt(backend: LocalBackend) -> None:
    with pytest.raises(KeyError):
        backend.read_log(404, 1)
