"""The scheduler: snapshot + clock in, decisions out.

No I/O, so the simulator runs the very same code."""

from aidc.sched.placement import fits_anywhere
from aidc.sched.priority_fifo import PriorityFifoScheduler
from aidc.sched.registry import DEFAULT_SCHEDULER, register, scheduler_by_name, scheduler_names
from aidc.sched.snapshot import Allocation, PendingJob, Scheduler, Snapshot

__all__ = [
    "DEFAULT_SCHEDULER",
    "Allocation",
    "PendingJob",
    "PriorityFifoScheduler",
    "Scheduler",
    "Snapshot",
    "fits_anywhere",
    "register",
    "scheduler_by_name",
    "scheduler_names",
]
