"""What the gateway tells the control plane, off the event loop: its routes refreshed about once a second,
a GatewayReport per replica every report interval, and the usage summed per minute and key (at the same
interval and at shutdown; usage whose write failed is kept for the next flush)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import anyio.to_thread

from aidc.gateway.backplane import Backplane
from aidc.gateway.limits import RateLimiter
from aidc.gateway.metering import UsageLedger
from aidc.gateway.probes import Prober
from aidc.gateway.routing import RouteTable
from aidc.gateway.upstream import UpstreamClient

log = logging.getLogger(__name__)


class Reporter:
    def __init__(
        self,
        backplane: Backplane,
        table: RouteTable,
        prober: Prober,
        ledger: UsageLedger,
        limiter: RateLimiter,
        client: UpstreamClient,
        gateway_id: str,
    ) -> None:
        self.backplane = backplane
        self.table = table
        self.prober = prober
        self.ledger = ledger
        self.limiter = limiter
        self.client = client
        self.gateway_id = gateway_id
        self._failing: set[str] = set()

    async def refresh_routes(self, *, probe: bool = True) -> bool:
        """Take the control plane's routes now; new replicas are checked at once (with `probe`). False on
        failure (the table keeps the routes it had)."""
        try:
            # Read-only: a call cut short (startup's time limit, shutdown) may be left to finish alone.
            routes = await anyio.to_thread.run_sync(self.backplane.routes, abandon_on_cancel=True)
        except Exception as exc:
            self._complain("routes", exc)
            return False
        self._recovered("routes")
        new = self.table.update(routes, time.time())
        if probe:
            self.prober.probe_soon(new)
        return True

    async def send_reports(self) -> None:
        reports = self.table.reports(self.gateway_id, time.monotonic(), datetime.now(UTC))
        if not reports:
            return
        try:
            await anyio.to_thread.run_sync(self.backplane.report, reports)
        except Exception as exc:
            self._complain("report", exc)
            return
        self._recovered("report")

    async def flush_usage(self) -> None:
        records = self.ledger.drain()
        if not records:
            return
        try:
            await anyio.to_thread.run_sync(self.backplane.record_usage, records)
        except Exception as exc:
            self.ledger.restore(records)
            self._complain("record_usage", exc)
            return
        self._recovered("record_usage")

    async def run_routes(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.refresh_routes()

    async def run_reports(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.send_reports()
            await self.flush_usage()
            self.limiter.prune(time.monotonic())
            self.client.prune()

    async def final_flush(self) -> None:
        await self.send_reports()
        await self.flush_usage()

    def _complain(self, what: str, exc: Exception) -> None:
        # Once per outage, not once per tick.
        if what not in self._failing:
            self._failing.add(what)
            log.warning("gateway: backplane %s failed: %s", what, exc)

    def _recovered(self, what: str) -> None:
        if what in self._failing:
            self._failing.discard(what)
            log.info("gateway: backplane %s works again", what)
