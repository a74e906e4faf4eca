"""Policies by name."""

from __future__ import annotations

import pytest

from aidc.sched import (
    DEFAULT_SCHEDULER,
    PriorityFifoScheduler,
    register,
    scheduler_by_name,
    scheduler_names,
)
from aidc.sched.snapshot import Scheduler


def test_priority_fifo_is_registered_and_the_default() -> None:
    assert DEFAULT_SCHEDULER == "priority-fifo"
    assert "priority-fifo" in scheduler_names()
    assert isinstance(scheduler_by_name("priority-fifo"), PriorityFifoScheduler)
    assert isinstance(scheduler_by_name(), PriorityFifoScheduler)


def test_each_call_gives_a_new_scheduler() -> None:
    assert scheduler_by_name() is not scheduler_by_name()


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown policy 'fair-share'; known: priority-fifo"):
        scheduler_by_name("fair-share")


def test_a_name_cannot_be_taken_twice() -> None:
    def other() -> Scheduler:
        return PriorityFifoScheduler()

    with pytest.raises(ValueError, match="already registered"):
        register("priority-fifo")(other)
    assert isinstance(scheduler_by_name("priority-fifo"), PriorityFifoScheduler)
