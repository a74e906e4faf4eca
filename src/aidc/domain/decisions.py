"""What the scheduler decides: start a job on a placement, or let it wait and say why."""

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


Decision = Start | Wait
