"""Small builders for scheduler inputs, so each test states only what it is about."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from aidc.domain.decisions import Decision, NodeAssignment, Placement, Start, Wait
from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.domain.queues import Queue, Quota
from aidc.domain.resources import Resources
from aidc.sched.snapshot import Allocation, PendingJob, Snapshot

GiB = 2**30
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def node(
    name: str,
    *,
    gpus: int = 0,
    model: str = "NVIDIA H100 80GB HBM3",
    cpus: float = 64,
    memory: int = 512 * GiB,
    state: NodeState = NodeState.UP,
    models: Sequence[str] | None = None,
) -> Node:
    """A node with `gpus` GPUs of `model`, or one GPU per entry of `models` (mixed nodes)."""
    kinds = list(models) if models is not None else [model] * gpus
    return Node(
        name=name,
        cpus=cpus,
        memory=memory,
        state=state,
        gpus=tuple(Gpu(index=i, uuid=f"{name}-{i}", model=m, memory=80 * GiB) for i, m in enumerate(kinds)),
    )


def job(
    job_id: int,
    *,
    gpus: int = 0,
    gpu_type: str | None = None,
    cpus: float = 1,
    memory: int = GiB,
    num_nodes: int = 1,
    priority: int = 0,
    submitted: float = 0,
    queue: str = "default",
    not_before: datetime | None = None,
) -> PendingJob:
    """A pending job submitted `submitted` seconds before NOW."""
    return PendingJob(
        id=job_id,
        name=f"job-{job_id}",
        user="alice",
        queue=queue,
        priority=priority,
        submitted_at=NOW - timedelta(hours=1) + timedelta(seconds=submitted),
        resources=Resources(gpus=gpus, gpu_type=gpu_type, cpus=cpus, memory=memory),
        num_nodes=num_nodes,
        not_before=not_before,
    )


def alloc(
    job_id: int,
    on: Mapping[str, Sequence[int]],
    *,
    gpus: int | None = None,
    cpus: float = 1,
    memory: int = GiB,
    queue: str = "default",
) -> Allocation:
    """A running allocation holding, on each node of `on`, those GPU indices, cpus and memory."""
    per_node = gpus if gpus is not None else max((len(v) for v in on.values()), default=0)
    return Allocation(
        job_id=job_id,
        queue=queue,
        resources=Resources(gpus=per_node, cpus=cpus, memory=memory),
        placement=Placement(assignments=tuple(NodeAssignment(node=n, gpus=tuple(g)) for n, g in on.items())),
    )


def snapshot(
    nodes: Iterable[Node],
    pending: Iterable[PendingJob],
    running: Iterable[Allocation] = (),
    queues: Iterable[Queue] | None = None,
) -> Snapshot:
    qs = list(queues) if queues is not None else [Queue(name="default")]
    return Snapshot(
        nodes=tuple(nodes),
        pending=tuple(pending),
        running=tuple(running),
        queues={q.name: q for q in qs},
    )


def queue(name: str, gpus: int | None = None, cpus: float | None = None, memory: int | None = None) -> Queue:
    return Queue(name=name, quota=Quota(gpus=gpus, cpus=cpus, memory=memory))


def by_id(decisions: Iterable[Decision]) -> dict[int, Decision]:
    return {d.job_id: d for d in decisions}


def started(decision: Decision) -> Placement:
    assert isinstance(decision, Start), f"expected a start, got {decision}"
    return decision.placement


def reason(decision: Decision) -> str:
    assert isinstance(decision, Wait), f"expected a wait, got {decision}"
    return decision.reason
