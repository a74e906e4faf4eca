"""PolicyScheduler: the one scheduler the control plane and the simulator run (work in progress)."""

from __future__ import annotations

from datetime import datetime

from aidc.domain.decisions import Decision
from aidc.sched.config import SchedulerConfig
from aidc.sched.priority_fifo import PriorityFifoScheduler
from aidc.sched.snapshot import Snapshot


class PolicyScheduler:
    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self._inner = PriorityFifoScheduler()

    def schedule(self, snapshot: Snapshot, now: datetime) -> list[Decision]:
        return self._inner.schedule(snapshot, now)
