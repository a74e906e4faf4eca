"""Run-time estimates for jobs that do not say how long they run (shortest-job-first and backfill).

A job's own `estimated_duration` wins. Otherwise the median of the last runs of the same user's jobs of
the same name (people resubmit the same training script), then the median of the queue's last runs;
with neither, there is no estimate."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable

from aidc.sched.snapshot import Allocation, PendingJob

PER_JOB = 50  # runs kept per (user, job name)
PER_QUEUE = 200  # runs kept per queue


class RuntimeHistory:
    """Recent run times in seconds, the last `per_job` per (user, job name) and the last `per_queue`
    per queue. Runs are added in the order they ended; older ones fall off."""

    def __init__(self, per_job: int = PER_JOB, per_queue: int = PER_QUEUE) -> None:
        if per_job < 1 or per_queue < 1:
            raise ValueError("history sizes must be at least 1")
        self.per_job = per_job
        self.per_queue = per_queue
        self._jobs: dict[tuple[str, str], deque[float]] = {}
        self._queues: dict[str, deque[float]] = {}
        # medians are asked for once per pending job per cycle; remember them until the key changes
        self._job_medians: dict[tuple[str, str], float] = {}
        self._queue_medians: dict[str, float] = {}

    def add(self, user: str, name: str, queue: str, seconds: float) -> None:
        """Record one finished run. Negative or non-finite times are ignored (a clock went back)."""
        if not seconds >= 0 or seconds == float("inf"):
            return
        key = (user, name)
        runs = self._jobs.get(key)
        if runs is None:
            runs = self._jobs[key] = deque(maxlen=self.per_job)
        runs.append(seconds)
        self._job_medians.pop(key, None)
        in_queue = self._queues.get(queue)
        if in_queue is None:
            in_queue = self._queues[queue] = deque(maxlen=self.per_queue)
        in_queue.append(seconds)
        self._queue_medians.pop(queue, None)

    def extend(self, runs: Iterable[tuple[str, str, str, float]]) -> None:
        """Add (user, name, queue, seconds) runs in order."""
        for user, name, queue, seconds in runs:
            self.add(user, name, queue, seconds)

    def job_runs(self, user: str, name: str) -> tuple[float, ...]:
        return tuple(self._jobs.get((user, name), ()))

    def queue_runs(self, queue: str) -> tuple[float, ...]:
        return tuple(self._queues.get(queue, ()))

    def job_median(self, user: str, name: str) -> float | None:
        key = (user, name)
        found = self._job_medians.get(key)
        if found is None:
            runs = self._jobs.get(key)
            if not runs:
                return None
            found = self._job_medians[key] = statistics.median(runs)
        return found

    def queue_median(self, queue: str) -> float | None:
        found = self._queue_medians.get(queue)
        if found is None:
            runs = self._queues.get(queue)
            if not runs:
                return None
            found = self._queue_medians[queue] = statistics.median(runs)
        return found

    def __len__(self) -> int:
        """Runs kept across all queues."""
        return sum(len(runs) for runs in self._queues.values())


class Estimator:
    """Estimates how long a job runs, in seconds (None: no idea)."""

    def __init__(self, history: RuntimeHistory | None = None) -> None:
        self.history = history

    def estimate(self, job: PendingJob | Allocation) -> float | None:
        """The job's `estimated_duration`, else the median of the same user's runs of a job of that
        name, else its queue's median, else None."""
        if job.estimated_duration is not None:
            return job.estimated_duration
        history = self.history
        if history is None:
            return None
        found = history.job_median(job.user, job.name)
        if found is None:
            found = history.queue_median(job.queue)
        return found
