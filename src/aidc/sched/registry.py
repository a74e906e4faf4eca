"""Scheduling policies by name (SkyPilot's habit): each policy registers itself, a config string
picks one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aidc.sched.snapshot import Scheduler

DEFAULT_SCHEDULER = "priority-fifo"

_REGISTRY: dict[str, Callable[[], Scheduler]] = {}

F = TypeVar("F", bound=Callable[[], Scheduler])


def register(name: str) -> Callable[[F], F]:
    """Class (or factory) decorator: `@register("priority-fifo")` makes it available by that
    name."""

    def add(factory: F) -> F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"scheduler {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return add


def scheduler_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def scheduler_by_name(name: str = DEFAULT_SCHEDULER) -> Scheduler:
    """A new scheduler of the named policy. Raises ValueError naming the known policies."""
    factory = _REGISTRY.get(name)
    if factory is None:
        known = ", ".join(scheduler_names()) or "none"
        raise ValueError(f"scheduler: unknown policy {name!r}; known: {known}")
    return factory()
