"""Active health: GET each replica's readiness path every probe interval (a new replica at once); 2xx
within the probe timeout passes, anything else fails. Only replicas whose last check passed get
traffic (and only while their circuit breaker lets them). Ejections and readmissions are counted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aidc.gateway.metrics import GatewayMetrics
from aidc.gateway.routing import ProbeTarget, RouteTable
from aidc.gateway.upstream import UpstreamClient, UpstreamError

log = logging.getLogger(__name__)


class Prober:
    def __init__(self, table: RouteTable, client: UpstreamClient, metrics: GatewayMetrics, *, timeout: float) -> None:
        self.table = table
        self.client = client
        self.metrics = metrics
        self.timeout = timeout
        self._running: set[ProbeTarget] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def check(self, target: ProbeTarget) -> bool:
        """Does the replica answer its readiness path with a 2xx in time?"""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.request(
                    target.url, b"GET", target.path.encode(), headers=((b"accept", b"application/json"),)
                )
                try:
                    await response.read()
                finally:
                    response.close()
        except (UpstreamError, TimeoutError) as exc:
            log.debug("readiness check of %s%s failed: %s", target.url, target.path, exc or "timeout")
            return False
        return 200 <= response.status < 300

    async def probe(self, targets: Iterable[ProbeTarget]) -> None:
        """Check `targets` together (those being checked already are skipped) and apply the results."""
        todo = [t for t in targets if t not in self._running]
        if not todo:
            return
        self._running.update(todo)
        try:
            results = await asyncio.gather(*(self.check(t) for t in todo))
        finally:
            self._running.difference_update(todo)
        for target, ok in zip(todo, results, strict=True):
            for change in self.table.probed(target, ok):
                if change.change == "ejected":
                    log.info("replica %s of %s ejected: readiness check failed", change.replica, change.model)
                    self.metrics.ejection(change.model, change.replica, "probe")
                else:
                    log.info("replica %s of %s readmitted: readiness check passed", change.replica, change.model)
                    self.metrics.readmission(change.model, change.replica, "probe")

    def probe_soon(self, targets: Iterable[ProbeTarget]) -> None:
        """Check `targets` now, without waiting for the result."""
        todo = list(targets)
        if todo:
            task = asyncio.get_running_loop().create_task(self.probe(todo))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.probe(self.table.targets())
            except Exception:
                log.exception("readiness checks failed")

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
