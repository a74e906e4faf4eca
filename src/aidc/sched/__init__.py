"""The scheduler: snapshot + clock in, decisions out.

No I/O, so the simulator runs the very same code."""

from aidc.sched.config import SchedulerConfig
from aidc.sched.cycle import CyclePlan, PolicyScheduler
from aidc.sched.placement import fits_anywhere
from aidc.sched.snapshot import Allocation, PendingJob, Scheduler, Snapshot

__all__ = [
    "Allocation",
    "CyclePlan",
    "PendingJob",
    "PolicyScheduler",
    "Scheduler",
    "SchedulerConfig",
    "Snapshot",
    "fits_anywhere",
]
