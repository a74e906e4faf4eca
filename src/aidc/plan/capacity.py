"""Capacity planning: the smallest homogeneous cluster on which a workload meets an SLO, searched by
running the simulator (the very scheduler of the control plane) on candidate sizes.

Pure, like `aidc.sim`: jobs, a node shape and settings in, evaluations out; no I/O, no clock.

The search. Every SLO metric falls (or stays level) as the cluster grows (`capacity_slo`), so whether a
size meets the SLO is close to monotone in the size, and the search bisects on whole nodes between the
smallest and the largest size allowed:
- sizes below the widest job (in nodes) cannot run it: they miss the SLO with that reason, unsimulated,
  and the search starts at the widest job;
- an upper bound (`p95_queue_wait<1h`): the largest size is run first; if it misses, no size in range
  meets the SLO (`met` False); if the smallest meets it, that is the answer; otherwise bisect until a
  missing size and a meeting one are `step_nodes` apart, and the meeting one is the answer;
- a floor (`utilization>=0.6`): the same the other way round, for the largest size that meets it.
Every size run is kept (the smallest, the largest and the bisection points) for the table and the plot.
Scheduling is not exactly monotone in the size (a larger cluster can place a gang differently and wait
longer): the answer meets the SLO and the size `step_nodes` below it (above, for a floor) was seen to
miss, which is what bisection can promise.

Failures. With a failure model (the simulator's default: the Llama 3 figures, a fixed seed), the search
runs with failures and again without, and the difference of the two answers is the capacity to keep
spare for failures. For an upper bound the second search starts from the first one's answer (a cluster
that meets the SLO with failures almost always meets it without), and looks above it only if it does
not."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from aidc.plan.capacity_eval import Evaluation, Progress, SimSettings, cannot_fit, evaluate
from aidc.plan.capacity_slo import Slo
from aidc.plan.capacity_workload import NodeShape, Workload, homogeneous_cluster


@dataclass(frozen=True)
class Search:
    """One search: every size evaluated (by size) and the answer, None when no size in range meets the SLO."""

    failures: bool
    min_nodes: int
    max_nodes: int
    evaluations: tuple[Evaluation, ...]
    chosen: Evaluation | None

    @property
    def met(self) -> bool:
        return self.chosen is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "failures": self.failures,
            "met": self.met,
            "chosen_gpus": None if self.chosen is None else self.chosen.gpus,
            "chosen_nodes": None if self.chosen is None else self.chosen.nodes,
            "evaluations": [e.as_dict() for e in self.evaluations],
        }


@dataclass(frozen=True)
class CapacityPlan:
    """The search with failures (None when there is no failure model) and the one without."""

    slo: Slo
    shape: NodeShape
    with_failures: Search | None
    without_failures: Search

    @property
    def primary(self) -> Search:
        """The search whose answer is the plan: with failures when they are modelled."""
        return self.with_failures or self.without_failures

    @property
    def spare_gpus(self) -> int | None:
        """GPUs the failures add to the answer; None without a failure model or when a search met nothing."""
        if self.with_failures is None or self.with_failures.chosen is None or self.without_failures.chosen is None:
            return None
        return self.with_failures.chosen.gpus - self.without_failures.chosen.gpus

    def as_dict(self) -> dict[str, Any]:
        shape, slo, chosen = self.shape, self.slo, self.primary.chosen
        plain = self.without_failures.chosen
        searches = [s for s in (self.with_failures, self.without_failures) if s is not None]
        return {
            "node": {
                "gpus": shape.gpus,
                "cpus": shape.cpus,
                "memory_bytes": shape.memory,
                "gpu_model": shape.gpu_model,
            },
            "slo": {"text": str(slo), "metric": slo.metric, "op": slo.op, "value": slo.value},
            "met": self.primary.met,
            "chosen_gpus": None if chosen is None else chosen.gpus,
            "chosen_nodes": None if chosen is None else chosen.nodes,
            "chosen_gpus_without_failures": None if plain is None else plain.gpus,
            "spare_for_failures_gpus": self.spare_gpus,
            "with_failures": None if self.with_failures is None else self.with_failures.as_dict(),
            "without_failures": self.without_failures.as_dict(),
            "simulations": sum(1 for s in searches for e in s.evaluations if e.value is not None),
        }


class _Runs:
    """Counts the simulations of a plan, for progress."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done = 0


class _Sizes:
    """Evaluates sizes of one setting (with or without failures), each once."""

    def __init__(
        self, workload: Workload, shape: NodeShape, slo: Slo, settings: SimSettings, runs: _Runs, tag: str
    ) -> None:
        self.workload, self.shape, self.slo, self.settings, self.runs, self.tag = (
            workload,
            shape,
            slo,
            settings,
            runs,
            tag,
        )
        self.seen: dict[int, Evaluation] = {}

    def __call__(self, nodes: int) -> Evaluation:
        found = self.seen.get(nodes)
        if found is not None:
            return found
        widest = self.workload.largest_gang_nodes
        if nodes < widest:
            found = cannot_fit(nodes, self.shape.gpus, widest)
        else:
            label = f"{nodes * self.shape.gpus:,} GPUs{self.tag}"
            found = evaluate(
                self.workload.jobs,
                homogeneous_cluster(self.shape, nodes),
                self.slo,
                self.settings,
                label=label,
                run=self.runs.done,
                progress=self.runs.progress,
            )
            self.runs.done += 1
        self.seen[nodes] = found
        return found

    def search(self, lo: int, hi: int, step: int) -> Evaluation | None:
        """The answer within [lo, hi] (see the module), evaluating `lo` (as given) and `hi` at least."""
        self(lo)
        start = max(lo, self.workload.largest_gang_nodes)
        if start > hi:
            self(hi)
            return None
        return bisect(self, start, hi, self.slo.grows, step)

    def search_result(self, lo: int, hi: int, chosen: Evaluation | None) -> Search:
        return Search(
            failures=self.settings.failures is not None,
            min_nodes=lo,
            max_nodes=hi,
            evaluations=tuple(self.seen[n] for n in sorted(self.seen)),
            chosen=chosen,
        )


def bisect(size: Callable[[int], Evaluation], lo: int, hi: int, grows: bool, step: int = 1) -> Evaluation | None:
    """The smallest size in [lo, hi] that meets (`grows`: met from some size up), or the largest (a floor:
    met up to some size), to within `step` nodes; None when none does. `size(n)` evaluates n nodes."""
    if step < 1:
        raise ValueError("step must be at least 1 node")
    if lo > hi:
        raise ValueError(f"empty range: {lo} > {hi}")
    near, far = (lo, hi) if grows else (hi, lo)  # `near`: the answer when it meets; `far`: meets if any does
    if not size(far).met:
        return None
    if size(near).met:
        return size(near)
    missing, meeting = near, far
    while abs(meeting - missing) > step:
        middle = (missing + meeting) // 2
        if size(middle).met:
            meeting = middle
        else:
            missing = middle
    return size(meeting)


def expected_runs(lo: int, hi: int, step: int = 1, searches: int = 1) -> int:
    """About how many simulations a plan runs (for a progress bar)."""
    span = max(1, (hi - lo) // max(1, step))
    return searches * (2 + math.ceil(math.log2(span)) if span > 1 else 2)


def plan_capacity(
    workload: Workload,
    shape: NodeShape,
    slo: Slo,
    settings: SimSettings,
    min_nodes: int,
    max_nodes: int,
    *,
    step_nodes: int = 1,
    progress: Progress | None = None,
) -> CapacityPlan:
    """Search the size that meets `slo` with `settings` (see the module); with a failure model, search
    again without it. Raises ValueError for an empty range, `SimulationStuck` from a run that makes no
    progress."""
    if min_nodes < 1 or max_nodes < min_nodes:
        raise ValueError(f"the range must be 1 <= min <= max nodes, not {min_nodes}..{max_nodes}")
    if not workload.jobs:
        raise ValueError("the workload has no job that asks for GPUs")
    runs = _Runs(progress)
    plain = _Sizes(workload, shape, slo, replace(settings, failures=None), runs, " (no failures)")
    if settings.failures is None:
        chosen = plain.search(min_nodes, max_nodes, step_nodes)
        return CapacityPlan(slo, shape, None, plain.search_result(min_nodes, max_nodes, chosen))
    failing = _Sizes(workload, shape, slo, settings, runs, " (failures)")
    with_failures = failing.search(min_nodes, max_nodes, step_nodes)
    if with_failures is not None and slo.grows:
        without = plain.search(min_nodes, with_failures.nodes, step_nodes)
        if without is None and with_failures.nodes < max_nodes:
            without = plain.search(with_failures.nodes, max_nodes, step_nodes)
    else:
        without = plain.search(min_nodes, max_nodes, step_nodes)
    return CapacityPlan(
        slo,
        shape,
        failing.search_result(min_nodes, max_nodes, with_failures),
        plain.search_result(min_nodes, max_nodes, without),
    )
