"""Slurm's nodes as aidc's (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aidc.backends.slurm.parsing import SlurmNode, gpus_of
from aidc.domain.nodes import Gpu, Node, NodeState

MIB = 1 << 20
BACKEND = "slurm"
_DOWN = frozenset({"DOWN", "NOT_RESPONDING", "NO_RESPOND", "UNKNOWN", "FUTURE", "POWERED_DOWN", "POWER_DOWN"})
_UNHEALTHY = frozenset({"ERROR", "INVAL", "INVALID", "INVALID_REG"})
_DRAIN = frozenset({"DRAIN", "DRAINING", "DRAINED", "FAIL", "FAILING"})
_BUSY = frozenset({"ALLOCATED", "ALLOC", "MIXED", "COMPLETING", "DRAINING"})


def node_state(states: Iterable[str]) -> NodeState:
    """DOWN / NOT_RESPONDING (and nodes Slurm cannot use yet: UNKNOWN, FUTURE, powered down) -> DOWN; ERROR or
    an invalid registration -> UNHEALTHY. A drain (or FAIL, an admin's "about to fail") while work still runs
    there -> CORDONED (Slurm's DRAINING: no new work, the running jobs go on, as aidc's cordon); once nothing
    runs -> DRAINED (Slurm's DRAINED). Anything else (IDLE, MIXED, ALLOCATED, RESERVED, ...) -> UP."""
    words = set(states)
    if words & _DOWN:
        return NodeState.DOWN
    if words & _UNHEALTHY:
        return NodeState.UNHEALTHY
    if words & _DRAIN:
        return NodeState.CORDONED if words & _BUSY else NodeState.DRAINED
    return NodeState.UP


def to_node(slurm: SlurmNode, now: datetime) -> Node:
    """GPUs from the GRES: gpu:TYPE:N gives N Gpu(index i, uuid slurm-<node>-gpu<i>, model TYPE, memory 0
    (Slurm does not say)); an untyped gpu:N has model "gpu"."""
    gpus: list[Gpu] = []
    for kind, count in gpus_of(slurm.gres):
        for _ in range(count):
            index = len(gpus)
            gpus.append(Gpu(index=index, uuid=f"slurm-{slurm.name}-gpu{index}", model=kind or "gpu", memory=0))
    state = node_state(slurm.states)
    return Node(
        name=slurm.name,
        cpus=float(max(1, slurm.cpus)),
        memory=slurm.memory_mb * MIB,
        gpus=tuple(gpus),
        state=state,
        backend=BACKEND,
        labels={"partition": ",".join(slurm.partitions)} if slurm.partitions else {},
        last_seen=now,
        state_reason=(slurm.reason or "Slurm: " + "+".join(slurm.states)) if state != NodeState.UP else None,
    )
