"""Node use cases: list nodes with what is allocated on them; register the nodes a backend or cluster file knows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aidc.domain.nodes import Node
from aidc.ports import Store
from aidc.security.rbac import Action, Principal
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
    def __init__(self, store: Store, backend_name: str, guard: Guard) -> None:
        self._store = store
        self._backend_name = backend_name
        self._guard = guard

    def register(self, nodes: Iterable[Node]) -> None:
        """Insert or refresh nodes (discovery at start, heartbeats, a cluster file). No permission check:
        called by the control plane itself, never on behalf of a user."""
        with self._store.unit_of_work() as uow:
            for node in nodes:
                uow.nodes.upsert(node)
            uow.commit()

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
