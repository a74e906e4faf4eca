"""Node heartbeats: a node whose agent has not been heard from for `timeout` seconds is DOWN (the control loop
then requeues its jobs). Only nodes with an agent are watched: nodes declared in a cluster file for an engine
that reports them itself have never sent a heartbeat (`last_seen` is None)."""

from __future__ import annotations

import time
from datetime import timedelta

from aidc.domain.nodes import NodeState
from aidc.ports import Clock, Store
from aidc.services.nodes import NodeService


class HeartbeatWatch:
    def __init__(self, store: Store, nodes: NodeService, clock: Clock, timeout: float, every: float = 1.0) -> None:
        self._store = store
        self._nodes = nodes
        self._clock = clock
        self._timeout = timeout
        self._every = every
        self._last = 0.0

    @property
    def timeout(self) -> float:
        return self._timeout

    def check(self) -> list[str]:
        """Mark DOWN the nodes whose heartbeats stopped; their names."""
        began = time.monotonic()
        if began - self._last < self._every:
            return []
        self._last = began
        now = self._clock.now()
        limit = now - timedelta(seconds=self._timeout)
        with self._store.unit_of_work(read_only=True) as uow:
            silent = [
                n
                for n in uow.nodes.list()
                if n.last_seen is not None and n.last_seen < limit and n.state != NodeState.DOWN
            ]
        down = []
        for node in silent:
            assert node.last_seen is not None
            age = (now - node.last_seen).total_seconds()
            reason = f"no heartbeat from its agent for {age:.0f}s (timeout {self._timeout:g}s)"
            if self._nodes.mark_down(node.name, reason) is not None:
                down.append(node.name)
        return down
