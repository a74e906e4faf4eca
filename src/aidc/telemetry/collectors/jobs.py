"""What the jobs running on this host use: CPU, memory and processes of each attempt's process tree (psutil),
its GPUs' utilization and its processes' GPU memory (from the GPU collector's latest readings)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import psutil

from aidc.telemetry import names
from aidc.telemetry.collectors.node import family
from aidc.telemetry.series import Family

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied)


class GpuUsage(Protocol):
    """What the job collector needs of the GPU collector (GpuCollector): its latest readings."""

    def latest_utilization(self) -> dict[str, float]: ...

    def process_gpu_memory(self) -> dict[int, int]: ...


@dataclass(frozen=True, slots=True)
class RunningAttempt:
    """An attempt running on this host: `pid` is the root of its process tree."""

    job_id: int
    attempt: int
    pid: int
    gpu_uuids: tuple[str, ...] = ()
    queue: str = ""
    user: str = ""


@dataclass(frozen=True, slots=True)
class TreeUsage:
    """One reading of a process tree."""

    cpu_seconds: float  # user + system, the tree's reaped descendants included
    rss: int
    pids: tuple[int, ...]


@dataclass
class _Tracked:
    root: psutil.Process
    labels: dict[str, str]
    cpu_seconds: float | None = None  # at `at` (monotonic), None before the first reading
    at: float = 0.0


def children_by_pid() -> dict[int, list[int]]:
    """Every process' children, from one pass over the process table (shared by all jobs of a collection:
    Process.children(recursive=True) makes one such pass per call)."""
    # psutil's own table (what Process.children reads), where the platform has one; else the public iterator.
    table = getattr(getattr(psutil, "_psplatform", None), "ppid_map", None)
    parents: dict[int, int] = (
        table() if table is not None else {p.pid: p.info["ppid"] for p in psutil.process_iter(["ppid"])}
    )
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        if pid != ppid:
            children.setdefault(ppid, []).append(pid)
    return children


def read_tree(
    root: psutil.Process,
    children: Mapping[int, list[int]] | None = None,
    processes: dict[int, psutil.Process] | None = None,
) -> TreeUsage | None:
    """CPU time, resident memory and pids of `root` and its descendants; None when `root` is gone.
    `children` is children_by_pid() (read here when not given); `processes` caches Process objects by pid.

    CPU time counts each live process' user + system time and its reaped children's (children_user,
    children_system): a short-lived process that exits between two readings is counted in its parent's
    total, and the tree's total only grows while the job's processes reap their children (shells do)."""
    try:
        if not root.is_running():  # the pid was reused by another process
            return None
        started = root.create_time()
    except _GONE:
        return None
    if children is None:
        children = children_by_pid()
    if processes is None:
        processes = {}
    processes[root.pid] = root
    cpu, rss, pids = 0.0, 0, []
    stack, seen = [root.pid], set()
    while stack:
        pid = stack.pop()
        if pid in seen:  # pids reused while the table was read can make a cycle
            continue
        seen.add(pid)
        try:
            process = processes.get(pid)
            if process is None:
                process = processes[pid] = psutil.Process(pid)
            if process.create_time() < started:  # an older process: its pid was reused, not our child
                continue
            with process.oneshot():
                times = process.cpu_times()
                memory = process.memory_info()
        except _GONE:  # exited since the listing, or not ours to read: skipped quietly
            processes.pop(pid, None)
            continue
        cpu += times.user + times.system + times.children_user + times.children_system
        rss += memory.rss
        pids.append(pid)
        stack.extend(children.get(pid, ()))
    return TreeUsage(cpu, rss, tuple(pids)) if pids else None


class JobCollector:
    """The aidc_job_* series of the attempts that `attempts()` names, labelled job, attempt, node, queue and
    user. CPU is the cores busy since the previous collection (a job's first collection has none); GPU series
    need `gpu` (none on a host without NVML) and come from its latest collection."""

    def __init__(
        self,
        node: str,
        attempts: Callable[[], list[RunningAttempt]],
        gpu: GpuUsage | None,
        interval: float = 5.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = "jobs"
        self.interval = interval
        self.node = node
        self._attempts = attempts
        self._gpu = gpu
        self._monotonic = monotonic  # CPU rates over real elapsed time: immune to wall-clock changes
        self._tracked: dict[tuple[int, int], _Tracked] = {}
        self._processes: dict[int, psutil.Process] = {}  # by pid: a Process reads its start time once

    def collect(self, now: float) -> list[Family]:
        attempts = self._attempts()
        utilization = self._gpu.latest_utilization() if self._gpu is not None else {}
        gpu_memory = self._gpu.process_gpu_memory() if self._gpu is not None else {}
        cpu: list[tuple[Mapping[str, str], float]] = []
        rss: list[tuple[Mapping[str, str], float]] = []
        processes: list[tuple[Mapping[str, str], float]] = []
        gpu_used: list[tuple[Mapping[str, str], float]] = []
        gpu_util: list[tuple[Mapping[str, str], float]] = []
        running: set[tuple[int, int]] = set()
        in_trees: set[int] = set()
        children = children_by_pid() if attempts else {}
        for attempt in attempts:
            key = (attempt.job_id, attempt.attempt)
            tracked = self._track(key, attempt)
            if tracked is None:
                continue
            usage = read_tree(tracked.root, children, self._processes)
            if usage is None:
                del self._tracked[key]
                continue
            running.add(key)
            in_trees.update(usage.pids)
            labels = tracked.labels
            at = self._monotonic()
            if tracked.cpu_seconds is not None and at > tracked.at:
                # A process leaving the tree unreaped takes its time along: never report a negative rate.
                cpu.append((labels, max(usage.cpu_seconds - tracked.cpu_seconds, 0.0) / (at - tracked.at)))
            tracked.cpu_seconds, tracked.at = usage.cpu_seconds, at
            rss.append((labels, float(usage.rss)))
            processes.append((labels, float(len(usage.pids))))
            if self._gpu is not None and attempt.gpu_uuids:
                gpu_used.append((labels, float(sum(gpu_memory.get(pid, 0) for pid in usage.pids))))
                known = [utilization[uuid] for uuid in attempt.gpu_uuids if uuid in utilization]
                if known:
                    gpu_util.append((labels, sum(known) / len(known)))
        for key in self._tracked.keys() - running:  # ended, or no longer listed
            del self._tracked[key]
        for pid in self._processes.keys() - in_trees:
            del self._processes[pid]
        families = [
            family(names.JOB_CPU, cpu),
            family(names.JOB_MEMORY, rss),
            family(names.JOB_PROCESSES, processes),
            family(names.JOB_GPU_MEMORY, gpu_used),
            family(names.JOB_GPU_UTIL, gpu_util),
        ]
        return [f for f in families if f.samples]

    def _track(self, key: tuple[int, int], attempt: RunningAttempt) -> _Tracked | None:
        tracked = self._tracked.get(key)
        if tracked is not None and tracked.root.pid == attempt.pid:
            return tracked
        try:
            root = psutil.Process(attempt.pid)
        except _GONE:
            self._tracked.pop(key, None)
            return None
        labels = {
            "job_id": str(attempt.job_id),
            "attempt": str(attempt.attempt),
            "node": self.node,
            "queue": attempt.queue,
            "user": attempt.user,
        }
        tracked = self._tracked[key] = _Tracked(root, labels)
        return tracked
