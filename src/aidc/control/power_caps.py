"""GPU power caps by policy, applied while attempts run: capped when an attempt starts, restored when it ends,
and restored at startup where a crash left caps of attempts that are no longer open.

The policy (which rule, how many watts) is `aidc.energy.capping`; the hardware side is a `PowerLimits`
executor (`aidc.telemetry.collectors.power_limits`: NVML, or a dry run). Only the node this control plane
runs on (the local backend's) is capped for real: other nodes get a dry run that says so. Every cap is
recorded (`CapRecorder`) before the attempt goes on, so a restart knows what to undo.

GPU shares: two attempts never hold the same whole GPU, but shares of one GPU can run side by side. A shared
GPU is kept at the LOWEST limit of the attempts capping it (the cautious choice: a budget someone set is
never exceeded); when one ends, the GPU goes to the lowest limit of those left, and only when none is left is
it restored to the limit it had before the first of them (each row keeps that original limit).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from aidc.domain.catalog import gpu_spec
from aidc.domain.jobs import Attempt, Job
from aidc.domain.power import AttemptKey, GpuKey, PowerCapRecord, PowerSpec
from aidc.energy.capping import CatalogLookup, GpuCap, plan_job_caps
from aidc.ports import Clock
from aidc.telemetry.collectors.power_limits import DryRunPowerLimits, LimitOutcome, PowerLimits

log = logging.getLogger(__name__)

OTHER_NODE = "caps on other nodes are not applied yet"


class CapRecorder(Protocol):
    """Where caps are kept (the store implements it; `InMemoryCapRecorder` for tests)."""

    def record(self, row: PowerCapRecord) -> None: ...

    def mark_reverted(self, job_id: int, attempt: int, at: datetime) -> None:
        """Every row of the attempt is reverted (`reverted_at` = `at`)."""
        ...

    def open_caps(self) -> list[PowerCapRecord]:
        """The rows not reverted, oldest first."""
        ...


class InMemoryCapRecorder:
    """A `CapRecorder` in a list (tests; nothing survives the process)."""

    def __init__(self) -> None:
        self.rows: list[PowerCapRecord] = []

    def record(self, row: PowerCapRecord) -> None:
        self.rows.append(row)

    def mark_reverted(self, job_id: int, attempt: int, at: datetime) -> None:
        self.rows = [
            replace(r, reverted_at=at) if r.key == (job_id, attempt) and r.reverted_at is None else r for r in self.rows
        ]

    def open_caps(self) -> list[PowerCapRecord]:
        return [r for r in self.rows if r.reverted_at is None]


class PowerCaps:
    """Applies `power.caps` to attempts as they start and end.

    `local_node`: the node this control plane runs on, whose GPUs `limits` sets; `gpu_models(node)` gives a
    node's {GPU index: model} (None: node unknown); `catalog` finds a model's TDP. Calls are serialized (the
    control loop launches attempts from several threads)."""

    def __init__(
        self,
        power: PowerSpec,
        *,
        local_node: str,
        limits: PowerLimits,
        recorder: CapRecorder,
        gpu_models: Callable[[str], Mapping[int, str] | None],
        clock: Clock,
        catalog: CatalogLookup = gpu_spec,
    ) -> None:
        self._power = power
        self._local_node = local_node
        self._limits = limits
        self._remote = DryRunPowerLimits(OTHER_NODE)
        self._recorder = recorder
        self._gpu_models = gpu_models
        self._clock = clock
        self._catalog = catalog
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when the site has no cap rules (nothing to do at all)."""
        return bool(self._power.caps)

    def _executor(self, node: str) -> PowerLimits:
        return self._limits if node == self._local_node else self._remote

    # ------------------------------------------------------------------------------------------ start
    def on_start(self, job: Job, attempt: Attempt, team: str | None) -> list[PowerCapRecord]:
        """Caps the attempt's GPUs by the first rule matching the job and records each; the rows recorded.
        No rule matching: nothing. GPUs of unknown models are skipped (logged with the reason)."""
        if not self.enabled:
            return []
        models = {node: m for node in dict.fromkeys(attempt.nodes) if (m := self._gpu_models(node)) is not None}
        plan = plan_job_caps(job, attempt, team=team, gpu_models=models, power=self._power, catalog=self._catalog)
        for skipped in plan.skipped:
            log.warning(
                "job %s attempt %s: GPU %d of node %s not capped: %s",
                job.id,
                attempt.number,
                skipped.gpu_index,
                skipped.node,
                skipped.reason,
            )
        rows = []
        with self._lock:
            open_rows = self._recorder.open_caps()
            done = {r.gpu for r in open_rows if r.key == (job.id, attempt.number)}  # on_start called twice
            for cap in plan.caps:
                if (cap.node, cap.gpu_index) in done:
                    continue
                holders = [r for r in open_rows if r.gpu == (cap.node, cap.gpu_index) and not r.dry_run]
                row = self._cap(job.id, attempt.number, cap, holders)
                self._recorder.record(row)
                rows.append(row)
        return rows

    def _cap(self, job_id: int, number: int, cap: GpuCap, holders: list[PowerCapRecord]) -> PowerCapRecord:
        now = self._clock.now()
        if holders:
            original = holders[0].previous_watts  # the limit before the first attempt sharing this GPU capped it
            lowest = min(r.limit_watts for r in holders)
            if cap.limit_watts >= lowest:  # the GPU is already at or under this cap: leave it there
                reason = f"GPU shared: kept at {lowest:g} W, the lowest cap of the attempts sharing it"
                log.info("job %s attempt %s: GPU %d of node %s %s", job_id, number, cap.gpu_index, cap.node, reason)
                return PowerCapRecord(
                    job_id,
                    number,
                    cap.node,
                    cap.gpu_index,
                    cap.limit_watts,
                    original,
                    cap.rule_text,
                    False,
                    now,
                    reason,
                )
            outcome = self._executor(cap.node).apply(cap.node, cap.gpu_index, cap.limit_watts, cap.rule_text)
            return _row(job_id, number, cap, outcome, original, now)
        outcome = self._executor(cap.node).apply(cap.node, cap.gpu_index, cap.limit_watts, cap.rule_text)
        return _row(job_id, number, cap, outcome, outcome.previous_watts, now)

    # -------------------------------------------------------------------------------------------- end
    def on_end(self, job_id: int, attempt: int) -> bool:
        """Restores the GPUs the attempt capped (or lowers them to the caps of attempts still sharing them) and
        marks its rows reverted. False, rows left open, when a GPU could not be restored: `reconcile` retries."""
        with self._lock:
            open_rows = self._recorder.open_caps()
            ending = [r for r in open_rows if r.key == (job_id, attempt)]
            if not ending:
                return True
            remaining = [r for r in open_rows if r.key != (job_id, attempt)]
            failed = self._release(ending, remaining)
            if failed:
                log.warning(
                    "job %s attempt %s: caps on %s not restored; they stay recorded and are retried at startup",
                    job_id,
                    attempt,
                    ", ".join(f"GPU {i} of {n}" for n, i in sorted(failed)),
                )
                return False
            self._recorder.mark_reverted(job_id, attempt, self._clock.now())
            return True

    def reconcile(self, open_attempts: Iterable[Attempt]) -> list[AttemptKey]:
        """At startup: restores the caps of attempts that are no longer open (a crash between start and end)
        and returns those attempts (job id, number) whose caps are now reverted."""
        with self._lock:
            still_open = {(a.job_id, a.number) for a in open_attempts}
            rows = self._recorder.open_caps()
            stale = [r for r in rows if r.key not in still_open]
            if not stale:
                return []
            failed = self._release(stale, [r for r in rows if r.key in still_open])
            reverted = []
            now = self._clock.now()
            for key in dict.fromkeys(r.key for r in stale):
                if any(r.gpu in failed for r in stale if r.key == key):
                    continue
                self._recorder.mark_reverted(key[0], key[1], now)
                reverted.append(key)
            if reverted:
                log.info("power caps left by %d ended attempt(s) restored: %s", len(reverted), reverted)
            return reverted

    def _release(self, ending: list[PowerCapRecord], remaining: list[PowerCapRecord]) -> set[GpuKey]:
        """Takes the caps of `ending` off their GPUs, keeping those of `remaining`; the GPUs that failed."""
        failed: set[GpuKey] = set()
        by_gpu: dict[GpuKey, list[PowerCapRecord]] = {}
        for row in ending:
            if not row.dry_run:  # nothing was changed for a dry-run row
                by_gpu.setdefault(row.gpu, []).append(row)
        for gpu, rows in by_gpu.items():
            node, index = gpu
            holders = [r for r in remaining if r.gpu == gpu and not r.dry_run]
            executor = self._executor(node)
            outcome: LimitOutcome | None = None
            if holders:
                lowest = min(holders, key=lambda r: r.limit_watts)
                if lowest.limit_watts > min(r.limit_watts for r in rows):  # the ending cap was the tighter one
                    why = f"{lowest.rule}, still shared with job {lowest.job_id}"
                    outcome = executor.apply(node, index, lowest.limit_watts, why)
            else:
                original = next((r.previous_watts for r in rows if r.previous_watts is not None), None)
                outcome = executor.restore(node, index, original)
            if outcome is not None and outcome.dry_run:
                failed.add(gpu)
        return failed


def _row(
    job_id: int, number: int, cap: GpuCap, outcome: LimitOutcome, previous: float | None, now: datetime
) -> PowerCapRecord:
    limit = cap.limit_watts if outcome.limit_watts is None else outcome.limit_watts
    return PowerCapRecord(
        job_id, number, cap.node, cap.gpu_index, limit, previous, cap.rule_text, outcome.dry_run, now, outcome.reason
    )
