"""A bounded, thread-safe cache of parsed job specs by job id.

Specs never change after submit and job ids are never reused, so an entry never goes stale.
Parsing and validating a spec costs about 10 µs; the control loop lists every PENDING and RUNNING
job each second, so with 10,000 pending jobs the cache saves ~0.1 s of CPU per cycle."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from aidc.domain.jobs import JobSpec

DEFAULT_CAPACITY = 100_000


class SpecCache:
    """Least-recently-used eviction past `capacity` entries. One lock, taken once per batch."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._entries: OrderedDict[int, JobSpec] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(self, job_ids: Iterable[int]) -> dict[int, JobSpec]:
        """The cached specs among `job_ids` (missing ids are left out), marked as recently used."""
        found: dict[int, JobSpec] = {}
        with self._lock:
            entries = self._entries
            for job_id in job_ids:
                spec = entries.get(job_id)
                if spec is not None:
                    entries.move_to_end(job_id)
                    found[job_id] = spec
        return found

    def put_many(self, specs: Mapping[int, JobSpec]) -> None:
        if not specs or self._capacity == 0:
            return
        with self._lock:
            entries = self._entries
            for job_id, spec in specs.items():
                entries[job_id] = spec
                entries.move_to_end(job_id)
            while len(entries) > self._capacity:
                entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
