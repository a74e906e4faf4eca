"""Node use cases: list nodes with what is allocated on them; register the nodes a backend or cluster file knows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aidc.domain.errors import Conflict, NotFound
from aidc.domain.nodes import Node, NodeState
from aidc.ports import Store
from aidc.security.rbac import Action, Principal
from aidc.services.audit_log import AuditLog
from aidc.services.authz import Guard
from aidc.services.snapshots import load_state


@dataclass(frozen=True)
class NodeUsage:
    node: Node
    gpus_used: tuple[int, ...]
    cpus_used: float
    memory_used: int
    jobs: tuple[int, ...]


class NodeService:
    def __init__(self, store: Store, backend_name: str, guard: Guard, audit: AuditLog) -> None:
        self._store = store
        self._backend_name = backend_name
        self._guard = guard
        self._audit = audit

    def register(self, nodes: Iterable[Node]) -> None:
        """Insert or refresh nodes (discovery at start, heartbeats, a cluster file). No permission check:
        called by the control plane itself, never on behalf of a user. A node an operator drained stays
        drained whatever its engine reports."""
        with self._store.unit_of_work() as uow:
            drained = {n.name for n in uow.nodes.list() if n.state == NodeState.DRAINED}
            for node in nodes:
                kept = node.name in drained and node.state == NodeState.UP
                uow.nodes.upsert(node.model_copy(update={"state": NodeState.DRAINED}) if kept else node)
            uow.commit()

    def set_drained(self, principal: Principal, name: str, drained: bool) -> Node:
        """Drain a node (no new work is placed there; what runs finishes, as in Slurm) or resume it."""
        self._guard.check(principal, Action.NODE_WRITE, target=f"node/{name}")
        with self._store.unit_of_work() as uow:
            node = uow.nodes.get(name)
            if node is None:
                raise NotFound("node", name)
            if node.state == NodeState.DOWN:
                raise Conflict(f"node {name} is DOWN; it comes back by itself when its heartbeat does")
            wanted = NodeState.DRAINED if drained else NodeState.UP
            if node.state != wanted:
                node = node.model_copy(update={"state": wanted})
                uow.nodes.upsert(node)
                action = "node.drain" if drained else "node.resume"
                self._audit.append(uow, self._audit.entry(principal, action, f"node/{name}"))
                uow.commit()
        return node

    def list(self, principal: Principal) -> list[NodeUsage]:
        self._guard.check(principal, Action.NODE_READ, target="nodes")
        with self._store.unit_of_work(read_only=True) as uow:
            snapshot = load_state(uow, self._backend_name).snapshot
            nodes = uow.nodes.list()
        gpus: dict[str, list[int]] = {}
        cpus: dict[str, float] = {}
        memory: dict[str, int] = {}
        jobs: dict[str, list[int]] = {}
        for alloc in snapshot.running:
            for a in alloc.placement.assignments:
                gpus.setdefault(a.node, []).extend(a.gpus)
                cpus[a.node] = cpus.get(a.node, 0.0) + alloc.resources.cpus
                memory[a.node] = memory.get(a.node, 0) + alloc.resources.memory
                jobs.setdefault(a.node, []).append(alloc.job_id)
        return [
            NodeUsage(
                node=n,
                gpus_used=tuple(sorted(gpus.get(n.name, []))),
                cpus_used=cpus.get(n.name, 0.0),
                memory_used=memory.get(n.name, 0),
                jobs=tuple(jobs.get(n.name, [])),
            )
            for n in nodes
        ]
