"""Node use cases: list nodes with what is allocated on them; register the nodes a backend or cluster file knows;
heartbeats; cordon, drain, mark unhealthy and their reversal; node incidents and lemon quarantine."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from aidc.domain.errors import Conflict, NotFound
from aidc.domain.health import NodeIncident
from aidc.domain.nodes import Node, NodeState
from aidc.ports import Clock, Store, UnitOfWork
from aidc.security.rbac import Action, Principal
from aidc.services.audit_log import AuditLog
from aidc.services.authz import Guard
from aidc.services.snapshots import load_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeUsage:
    node: Node
    gpus_used: tuple[int, ...]
    cpus_used: float
    memory_used: int
    jobs: tuple[int, ...]


class NodeAction(StrEnum):
    CORDON = "cordon"  # no new work; what runs goes on (kubectl cordon)
    UNCORDON = "uncordon"
    DRAIN = "drain"  # cordon, and requeue its jobs gracefully (they resume from their checkpoints elsewhere)
    RESUME = "resume"  # back to service from any of the states an operator or a rule set (scontrol resume)
    UNHEALTHY = "unhealthy"  # an alert rule says the hardware is bad: no new work


# The states each action moves a node out of, and where to.
_TRANSITIONS: dict[NodeAction, tuple[frozenset[NodeState], NodeState]] = {
    NodeAction.CORDON: (frozenset({NodeState.UP}), NodeState.CORDONED),
    NodeAction.UNCORDON: (frozenset({NodeState.CORDONED, NodeState.UNHEALTHY}), NodeState.UP),
    NodeAction.DRAIN: (frozenset({NodeState.UP, NodeState.CORDONED, NodeState.UNHEALTHY}), NodeState.DRAINED),
    NodeAction.RESUME: (
        frozenset({NodeState.CORDONED, NodeState.DRAINED, NodeState.UNHEALTHY, NodeState.QUARANTINED}),
        NodeState.UP,
    ),
    NodeAction.UNHEALTHY: (frozenset({NodeState.UP, NodeState.CORDONED}), NodeState.UNHEALTHY),
}

INCIDENT_KIND_MAX = 63  # the column's width

# Nodes in these states are emptied by the control loop: their running jobs are requeued gracefully.
EVACUATED = frozenset({NodeState.DRAINED, NodeState.QUARANTINED})


@dataclass(frozen=True)
class LemonPolicy:
    """A node with `incidents` incidents within `window` seconds is quarantined (a "lemon")."""

    incidents: int = 3
    window: float = 24 * 3600.0


def _kept(old: Node) -> dict[str, object]:
    """What a report from an engine or a discovery does not change: the state set by an operator, a rule or
    the heartbeat watch, and the lemon count's start."""
    return {
        "state": old.state,
        "state_reason": old.state_reason,
        "state_since": old.state_since,
        "held_state": old.held_state,
        "held_reason": old.held_reason,
        "incidents_since": old.incidents_since,
    }


class NodeService:
    def __init__(
        self,
        store: Store,
        backend_name: str,
        guard: Guard,
        audit: AuditLog,
        clock: Clock,
        lemon: LemonPolicy | None = None,
    ) -> None:
        self._store = store
        self._backend_name = backend_name
        self._guard = guard
        self._audit = audit
        self._clock = clock
        self._lemon = lemon or LemonPolicy()
        # Told when a node's state changes (the control loop's wake): capacity came or went, jobs may need moving.
        self.on_change: Callable[[], None] | None = None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def register(self, nodes: Iterable[Node]) -> None:
        """Insert or refresh nodes (discovery at start, a cluster file). No permission check: called by the
        control plane itself, never on behalf of a user. A node an operator or a rule took out of service
        stays out whatever its engine reports; a DOWN node reported with a `last_seen` newer than its last
        heartbeat is back, in the state it held before."""
        with self._store.unit_of_work() as uow:
            stored = {n.name: n for n in uow.nodes.list()}
            for reported in nodes:
                node = reported
                old = stored.get(node.name)
                if old is not None and old.state != NodeState.UP and node.state == NodeState.UP:
                    fresh = node.last_seen is not None and (old.last_seen is None or node.last_seen > old.last_seen)
                    if old.state == NodeState.DOWN and fresh:
                        node = node.model_copy(update=self._back_up(uow, old))
                    else:
                        node = node.model_copy(update=_kept(old))
                elif old is not None:
                    node = node.model_copy(update={"incidents_since": old.incidents_since})
                uow.nodes.upsert(node)
            uow.commit()

    def heartbeat(self, principal: Principal | None, name: str) -> Node:
        """The node's agent is alive: `last_seen` is now; a DOWN node is UP again. `principal` is None for
        the agent inside the control plane (this host's)."""
        if principal is not None:
            self._guard.check(principal, Action.NODE_WRITE, target=f"node/{name}")
        now = self._clock.now()
        with self._store.unit_of_work() as uow:
            node = uow.nodes.get(name)
            if node is None:
                raise NotFound("node", name)
            update: dict[str, object] = {"last_seen": now}
            came_back = node.state == NodeState.DOWN
            if came_back:
                update |= self._back_up(uow, node)
            node = node.model_copy(update=update)
            uow.nodes.upsert(node)
            uow.commit()
        if came_back:
            self._changed()
        return node

    def _back_up(self, uow: UnitOfWork, node: Node) -> dict[str, object]:
        """A DOWN node heard from again: back to the state it held (a drained node stays drained), audited."""
        state = node.held_state or NodeState.UP
        log.info("node %s is back (%s): its heartbeat returned", node.name, state.value)
        detail = {"was": "DOWN", "now": state.value}
        self._audit.append(uow, self._audit.entry(None, "node.up", f"node/{node.name}", detail=detail))
        return {
            "state": state,
            "state_reason": node.held_reason if node.held_state else None,
            "state_since": self._clock.now(),
            "held_state": None,
            "held_reason": None,
        }

    def mark_down(self, name: str, reason: str) -> Node | None:
        """The node's heartbeats stopped: DOWN (the control loop requeues its jobs), an incident recorded."""
        now = self._clock.now()
        with self._store.unit_of_work() as uow:
            node = uow.nodes.get(name)
            if node is None or node.state == NodeState.DOWN:
                return None
            held = (node.state, node.state_reason) if node.state != NodeState.UP else (None, None)
            node = node.model_copy(
                update={
                    "state": NodeState.DOWN,
                    "state_reason": reason,
                    "state_since": now,
                    "held_state": held[0],
                    "held_reason": held[1],
                }
            )
            uow.nodes.upsert(node)
            self._audit.append(uow, self._audit.entry(None, "node.down", f"node/{name}", detail={"reason": reason}))
            uow.incidents.add(NodeIncident(name, now, "heartbeat-lost", reason))
            node = self._check_lemon(uow, node) or node
            uow.commit()
        log.warning("node %s is DOWN: %s", name, reason)
        return node

    def act(
        self, principal: Principal | None, name: str, action: NodeAction, reason: str | None = None, *, actor: str = ""
    ) -> Node:
        """Cordon, uncordon, drain, resume or mark a node unhealthy, audited. `principal` None: the control plane
        itself (an alert rule's action, with `actor` naming the rule). An action that changes nothing (a
        cordoned node cordoned again, a drained one cordoned) returns the node as it is."""
        if principal is not None:
            self._guard.check(principal, Action.NODE_WRITE, target=f"node/{name}")
        sources, target = _TRANSITIONS[action]
        now = self._clock.now()
        with self._store.unit_of_work() as uow:
            node = uow.nodes.get(name)
            if node is None:
                raise NotFound("node", name)
            if node.state == NodeState.DOWN:
                raise Conflict(f"node {name} is DOWN; it comes back by itself when its heartbeat does")
            if node.state not in sources:
                return node
            previous = node.state
            who = principal.name if principal is not None else actor or "aidc"
            why = reason or f"{action.value} by {who}"
            node = node.model_copy(
                update={
                    "state": target,
                    "state_reason": None if target == NodeState.UP else why,
                    "state_since": now,
                }
            )
            uow.nodes.upsert(node)
            detail = {"from": previous.value, "to": target.value, "reason": why}
            self._audit.append(
                uow, self._audit.entry(principal, f"node.{action.value}", f"node/{name}", detail=detail, actor=actor)
            )
            if previous == NodeState.QUARANTINED and target == NodeState.UP:
                node = node.model_copy(update={"incidents_since": now})  # repaired: count from here
                uow.nodes.upsert(node)
            if principal is None and target != NodeState.UP:
                uow.incidents.add(NodeIncident(name, now, (actor or action.value)[:INCIDENT_KIND_MAX], why))
                node = self._check_lemon(uow, node) or node
            uow.commit()
        log.info("node %s: %s (%s)", name, target.value, why)
        self._changed()
        return node

    def record_incident(self, name: str, kind: str, detail: str) -> Node | None:
        """A fault seen on the node (e.g. a job's transient failure there); quarantines a lemon."""
        with self._store.unit_of_work() as uow:
            node = uow.nodes.get(name)
            if node is None:
                return None
            uow.incidents.add(NodeIncident(name, self._clock.now(), kind[:INCIDENT_KIND_MAX], detail))
            quarantined = self._check_lemon(uow, node)
            uow.commit()
        return quarantined

    def _check_lemon(self, uow: UnitOfWork, node: Node) -> Node | None:
        """Quarantine the node if it is a lemon. A DOWN node stays DOWN (its jobs are lost, not stopping) and
        comes back QUARANTINED."""
        if NodeState.QUARANTINED in (node.state, node.held_state):
            return None
        now = self._clock.now()
        since = now - timedelta(seconds=self._lemon.window)
        if node.incidents_since is not None and node.incidents_since > since:
            since = node.incidents_since
        recent = uow.incidents.list(node.name, since=since)
        if len(recent) < self._lemon.incidents:
            return None
        kinds = ", ".join(sorted({i.kind for i in recent}))
        hours = self._lemon.window / 3600
        why = f"quarantined: {len(recent)} incidents in {hours:g}h ({kinds}); resume it after repair"
        if node.state == NodeState.DOWN:
            node = node.model_copy(update={"held_state": NodeState.QUARANTINED, "held_reason": why})
        else:
            node = node.model_copy(update={"state": NodeState.QUARANTINED, "state_reason": why, "state_since": now})
        uow.nodes.upsert(node)
        self._audit.append(uow, self._audit.entry(None, "node.quarantine", f"node/{node.name}", detail={"reason": why}))
        log.warning("node %s %s", node.name, why)
        return node

    def incidents(self, principal: Principal, name: str | None = None) -> list[NodeIncident]:
        self._guard.check(principal, Action.NODE_READ, target="nodes")
        with self._store.unit_of_work(read_only=True) as uow:
            return uow.incidents.list(name)

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
