"""What the scheduler decides: start a job on a placement, let it wait and say why, stop a running job
so that another may start (preempt), or cancel a pending job that can never run (a failed dependency)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NodeAssignment:
    """The part of a placement on one node: the node and the indices of the GPUs given there."""

    node: str
    gpus: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Placement:
    assignments: tuple[NodeAssignment, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(a.node for a in self.assignments)


@dataclass(frozen=True, slots=True)
class Start:
    job_id: int
    placement: Placement


@dataclass(frozen=True, slots=True)
class Wait:
    job_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop the running job `job_id` and put it back in its queue: SIGTERM, then SIGKILL after `grace`
    seconds. It resumes later from its last checkpoint; the preemption is not counted as a failure."""

    job_id: int
    reason: str
    grace: float = 30.0


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the pending job `job_id`, which can never run (e.g. a dependency it needs failed)."""

    job_id: int
    reason: str


Decision = Start | Wait | Preempt | Cancel
