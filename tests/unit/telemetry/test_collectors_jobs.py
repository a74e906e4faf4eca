"""The job collector on real process trees: children started here burn CPU, hold memory, spawn and reap
short-lived processes. GPU figures come from a stand-in for the GPU collector's latest readings."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest

from aidc.telemetry import names
from aidc.telemetry.collectors.jobs import JobCollector, RunningAttempt, read_tree
from aidc.telemetry.series import Family

BURN = "while True: pass"
# Starts a CPU-burning child and waits on it: a tree of two processes.
PARENT_OF_BURNER = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURN!r}])"
# Holds 64 MiB of written (so resident) memory, says so, then waits.
HOLDER = "import sys, time; b = bytes(range(256)) * (256 * 1024); print('ready', flush=True); time.sleep(120)"
# Runs a short CPU-burning child to its end (reaped), says so, then waits.
REAPER = (
    "import subprocess, sys, time; "
    "subprocess.run([sys.executable, '-c', 'import time\\nt = time.process_time()\\n"
    "while time.process_time() - t < 0.2: pass']); "
    "print('reaped', flush=True); time.sleep(120)"
)


@contextmanager
def process(code: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []:
            child.kill()
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def wait_for(condition: object, what: str, timeout: float = 20.0) -> None:
    """Polls `condition()` (a callable) until true: the children need a moment to start and burn."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def values(families: list[Family], job: int = 7) -> dict[str, float]:
    out = {}
    for family in families:
        for labels, value in family.samples:
            if labels["job_id"] == str(job):
                out[family.name] = value
    return out


class FakeGpu:
    """Stands in for GpuCollector's latest readings (this host has no GPU)."""

    def __init__(self, utilization: dict[str, float], memory: dict[int, int]) -> None:
        self.utilization = utilization
        self.memory = memory

    def latest_utilization(self) -> dict[str, float]:
        return self.utilization

    def process_gpu_memory(self) -> dict[int, int]:
        return self.memory


def test_cpu_memory_and_processes_of_a_tree() -> None:
    with process(PARENT_OF_BURNER) as root:
        tree = psutil.Process(root.pid)
        wait_for(lambda: len(tree.children(recursive=True)) == 1, "the burner to start")
        attempt = RunningAttempt(job_id=7, attempt=2, pid=root.pid, queue="research", user="ada")
        collector = JobCollector("node-1", lambda: [attempt], gpu=None, interval=5.0)

        first = collector.collect(time.time())
        assert names.JOB_CPU.name not in values(first)  # a job's first collection has no CPU rate
        assert values(first)[names.JOB_PROCESSES.name] == 2
        assert values(first)[names.JOB_MEMORY.name] > 0
        assert names.JOB_GPU_MEMORY.name not in values(first)  # no GPU collector on this host

        before = read_tree(tree)
        assert before is not None
        wait_for(lambda: (now := read_tree(tree)) is not None and now.cpu_seconds > before.cpu_seconds, "CPU time")
        second = collector.collect(time.time())
        assert values(second)[names.JOB_CPU.name] > 0
        for family in second:
            assert family.type == "gauge"
            for labels, _ in family.samples:
                assert dict(labels) == {
                    "job_id": "7",
                    "attempt": "2",
                    "node": "node-1",
                    "queue": "research",
                    "user": "ada",
                }


def test_resident_memory_is_summed() -> None:
    with process(HOLDER) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ready\n"
        attempt = RunningAttempt(job_id=7, attempt=1, pid=holder.pid)
        families = JobCollector("n", lambda: [attempt], gpu=None).collect(0.0)
        assert values(families)[names.JOB_MEMORY.name] >= 64 * 2**20


def test_reaped_children_stay_counted() -> None:
    with process(REAPER) as root:
        assert root.stdout is not None
        assert root.stdout.readline() == "reaped\n"
        usage = read_tree(psutil.Process(root.pid))
        assert usage is not None
        assert usage.pids == (root.pid,)
        own = psutil.Process(root.pid).cpu_times()
        assert usage.cpu_seconds > own.user + own.system  # the reaped child's time is in the total


def test_gpu_figures_from_the_gpu_collector() -> None:
    with process("import time; time.sleep(120)") as root:
        gpu = FakeGpu({"GPU-a": 90.0, "GPU-b": 50.0, "GPU-other": 0.0}, {root.pid: 3 * 2**30, 999_999_999: 2**30})
        attempts = [
            RunningAttempt(job_id=7, attempt=1, pid=root.pid, gpu_uuids=("GPU-a", "GPU-b", "GPU-unknown")),
            RunningAttempt(job_id=8, attempt=1, pid=root.pid),  # a CPU job (same tree, for the test)
        ]
        families = JobCollector("n", lambda: attempts, gpu=gpu).collect(0.0)
        assert values(families)[names.JOB_GPU_MEMORY.name] == 3 * 2**30
        assert values(families)[names.JOB_GPU_UTIL.name] == 70.0  # the mean of the GPUs with a reading
        assert names.JOB_GPU_MEMORY.name not in values(families, job=8)
        assert names.JOB_GPU_UTIL.name not in values(families, job=8)


def test_vanished_and_finished_jobs_are_skipped_quietly() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with process("import time; time.sleep(120)") as root:
        attempts = [
            RunningAttempt(job_id=1, attempt=1, pid=gone.pid),
            RunningAttempt(job_id=2, attempt=1, pid=root.pid),
        ]
        collector = JobCollector("n", lambda: attempts, gpu=None)
        families = collector.collect(0.0)
        assert {labels["job_id"] for f in families for labels, _ in f.samples} == {"2"}
        root.kill()
        root.wait()
        assert collector.collect(1.0) == []
        attempts.clear()
        assert collector.collect(2.0) == []


def test_a_failing_listing_raises_for_the_sampler_to_report() -> None:
    def attempts() -> list[RunningAttempt]:
        raise RuntimeError("store unreachable")

    with pytest.raises(RuntimeError, match="store unreachable"):
        JobCollector("n", attempts, gpu=None).collect(0.0)
