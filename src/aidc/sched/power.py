"""Power budgets in admission: the site's estimated GPU draw, kept under the cluster file's `power:` budgets.

The estimate (all of it from the GPU catalog, `aidc.domain.catalog`):

- every GPU of a node that is not DOWN draws its model's idle watts (a DRAINED or CORDONED node is still
  powered, and may still run work); a DOWN node draws nothing;
- a running allocation adds, per GPU it holds, the watts it may draw above idle: the model's TDP, or the
  limit of the job's power-cap rule (`PowerSpec.cap_rule(team=, queue=, user=, kind=)`, the team being
  its queue's `team`), less the idle watts; a share of a GPU (`gpus: 0.25`) adds that fraction;
- a GPU whose model the catalog does not know counts 0 W, idle or busy: such a cluster is under-counted,
  never refused;
- GPUs only: CPUs, memory, fans and the network are not counted, so `budget_kw` is read as what the
  GPUs may draw (IT power less the rest of the servers).

A pending job starts only when the site's draw plus its increment stays within `budget_kw`, and for each
rack its placement touches (node label `rack`), that rack's draw plus the increment there stays within the
rack's budget; nodes without a rack label are outside rack budgets. Rack budgets steer placement: nodes
where even one of the job's nodes would break a budget are kept off (`kept_off`), so the job goes to
another rack (a gang whose nodes together overflow a rack is placed again off that rack). Only when no
node is left does it wait, with a reason that starts with "power budget" and gives the figures, e.g.
"power budget: site would draw 412.3 kW of 400 kW", or "power budget: rack r1 would draw 41.0 kW of 40 kW
(2 nodes: rack r1 power budget)" with the nodes kept off per rack. Within a cycle each start counts
toward the draw of the next. A job blocked by power alone preempts nothing and gets no backfill
reservation (both are made for resources, not watts): it waits until running work ends.

Draws are kept in integer milliwatts, so that adding and taking away allocations never drifts: a ledger
kept between cycles (`session.SchedulingSession`) and one rebuilt from a snapshot agree. Without budgets
(`budgets_active` False: no `budget_kw`, no `racks`; caps alone change no admission) no ledger is built at
all: no effect and no cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from aidc.domain.catalog import gpu_spec
from aidc.domain.decisions import Placement
from aidc.domain.jobs import JobKind
from aidc.domain.nodes import Node, NodeState
from aidc.domain.power import PowerCapRule, PowerSpec
from aidc.domain.queues import Queue
from aidc.sched.capacity import NodeCapacity, Request, model_matches
from aidc.sched.reasons import groups_text
from aidc.sched.snapshot import Allocation, PendingJob

__all__ = [
    "GpuWatts",
    "PowerLedger",
    "budgets_active",
    "gpu_watts",
    "rack_reject_text",
]

MW_PER_W = 1000  # draws are integer milliwatts
MW_PER_KW = 1_000_000
RACK_LABEL = "rack"


@dataclass(frozen=True, slots=True)
class GpuWatts:
    """A GPU model's TDP and idle draw, watts."""

    tdp: float
    idle: float


@lru_cache(maxsize=1024)
def gpu_watts(model: str) -> GpuWatts | None:
    """The catalog's figures for a GPU model, None when the catalog does not know it (it then counts 0 W)."""
    spec = gpu_spec(model) if model else None
    return None if spec is None else GpuWatts(spec.tdp_watts, spec.idle_watts)


def budgets_active(spec: PowerSpec | None) -> bool:
    """Does `spec` set any budget? Caps alone change no admission."""
    return spec is not None and (spec.budget_kw is not None or bool(spec.racks))


def above_idle_mw(model: str, rule: PowerCapRule | None, milli: int) -> int:
    """Milliwatts a job adds holding `milli` thousandths of one GPU of `model`: (its TDP, or its cap) less
    idle, times the share; 0 for a model the catalog does not know."""
    watts = gpu_watts(model)
    if watts is None:
        return 0
    active = watts.tdp if rule is None else rule.watts(watts.tdp)
    return round(max(0.0, active - watts.idle) * milli)  # W x milli / 1000 GPU = W, in mW: W x milli


def rack_reject_text(rack: str) -> str:
    """The filter chain's word for a node kept off by its rack's budget: "rack r1 power budget"."""
    return f"rack {rack} power budget"


def _kw(mw: int, budget_mw: int) -> str:
    """kW with one decimal, more when one decimal would hide that the figure is over the budget."""
    text = f"{mw / MW_PER_KW:.1f}"
    if mw > budget_mw and round(mw / MW_PER_KW, 1) * MW_PER_KW <= budget_mw:
        text = f"{mw / MW_PER_KW:.4f}"
    return text


def _budget_text(mw: int) -> str:
    return f"{mw / MW_PER_KW:g}"


class PowerLedger:
    """The estimated draw of the site and of each rack, for one cycle or kept between cycles (see the
    module). Built only when `budgets_active(spec)`."""

    def __init__(
        self,
        spec: PowerSpec,
        nodes: Iterable[Node],
        running: Iterable[Allocation],
        queues: Mapping[str, Queue],
    ) -> None:
        self.spec = spec
        self.queues = queues
        self.site_budget = None if spec.budget_kw is None else round(spec.budget_kw * MW_PER_KW)
        self.rack_budget = {rack: round(kw * MW_PER_KW) for rack, kw in spec.racks.items()}
        self.site = 0
        self.racks: dict[str, int] = dict.fromkeys(self.rack_budget, 0)
        self._models: dict[str, dict[int, str]] = {}  # nodes that draw (not DOWN): GPU index -> model
        self._rack_of: dict[str, str | None] = {}
        # UP nodes by (rack, GPU models): nodes alike draw alike, so `kept_off` decides per group.
        groups: dict[tuple[str | None, tuple[str, ...]], list[str]] = {}
        seen: set[str] = set()
        for node in nodes:
            if node.name in seen or node.state is NodeState.DOWN:  # a repeated name keeps its first entry
                seen.add(node.name)
                continue
            seen.add(node.name)
            rack = node.labels.get(RACK_LABEL)
            models = {g.index: g.model for g in node.gpus}
            self._rack_of[node.name] = rack
            self._models[node.name] = models
            idle = sum(round(w.idle * MW_PER_W) for m in models.values() if (w := gpu_watts(m)) is not None)
            self._add(rack, idle)
            if node.state is NodeState.UP:
                groups.setdefault((rack, tuple(sorted(set(models.values())))), []).append(node.name)
        self._groups = [(rack, models, frozenset(names)) for (rack, models), names in sorted(groups.items(), key=str)]
        self._rules: dict[tuple[str, str, JobKind], PowerCapRule | None] = {}
        self._kept: dict[tuple[int, int, str | None, PowerCapRule | None], frozenset[str]] = {}
        for alloc in running:
            self.add(alloc)

    def copy(self) -> PowerLedger:
        """An independent copy of the draws (what a cycle charges its starts to); the rest is shared."""
        other = object.__new__(PowerLedger)
        other.__dict__.update(self.__dict__)
        other.racks = dict(self.racks)
        other._kept = {}
        return other

    # ---------------------------------------------------------------- the draw

    def _add(self, rack: str | None, mw: int) -> None:
        self.site += mw
        if rack is not None and rack in self.racks:
            self.racks[rack] += mw

    def rule(self, queue: str, user: str, kind: JobKind) -> PowerCapRule | None:
        """The cap rule of a job of `queue`, `user` and `kind` (its team: its queue's)."""
        key = (queue, user, kind)
        if key not in self._rules:
            found = self.queues.get(queue)
            team = found.team if found is not None else None
            self._rules[key] = self.spec.cap_rule(team=team, queue=queue, user=user, kind=kind)
        return self._rules[key]

    def placement_mw(self, placement: Placement, milli: int, rule: PowerCapRule | None) -> dict[str | None, int]:
        """Milliwatts above idle a placement adds, per rack (None: nodes without a rack label)."""
        out: dict[str | None, int] = {}
        for assignment in placement.assignments:
            models = self._models.get(assignment.node)
            if models is None:  # DOWN, or not in the snapshot: draws nothing
                continue
            mw = sum(above_idle_mw(models[g], rule, milli) for g in dict.fromkeys(assignment.gpus) if g in models)
            rack = self._rack_of[assignment.node]
            out[rack] = out.get(rack, 0) + mw
        return out

    def add(self, alloc: Allocation, sign: int = 1) -> None:
        """Count a running allocation (or, with `sign` -1, stop counting it)."""
        rule = self.rule(alloc.queue, alloc.user, alloc.kind)
        for rack, mw in self.placement_mw(alloc.placement, alloc.resources.gpu_milli, rule).items():
            self._add(rack, sign * mw)
        self._kept.clear()

    def charge(self, placement: Placement, req: Request, rule: PowerCapRule | None) -> None:
        """Count a job the cycle starts."""
        for rack, mw in self.placement_mw(placement, req.gpu_milli, rule).items():
            self._add(rack, mw)
        self._kept.clear()

    # ---------------------------------------------------------------- admission

    def node_mw(self, models: Sequence[str], req: Request, rule: PowerCapRule | None) -> int:
        """What one node of the request adds on a node of `models`: on a node of mixed models, as if on the
        hungriest model it may get (an estimate that never under-counts)."""
        if not req.gpus:
            return 0
        matching = [m for m in models if req.gpu_type is None or model_matches(req.gpu_type, m)]
        per_gpu = max((above_idle_mw(m, rule, req.gpu_milli) for m in matching), default=0)
        return per_gpu * req.gpus

    def kept_off(self, req: Request, rule: PowerCapRule | None) -> frozenset[str]:
        """The UP nodes on which even one node of `req` would take the site or its rack past the budget."""
        if not req.gpus:
            return frozenset()
        key = (req.gpus, req.gpu_milli, req.gpu_type, rule)
        found = self._kept.get(key)
        if found is not None:
            return found
        out: set[str] = set()
        for rack, models, names in self._groups:
            mw = self.node_mw(models, req, rule)
            if mw and self._over(rack, mw) is not None:
                out |= names
        found = self._kept[key] = frozenset(out)
        return found

    def _over(self, rack: str | None, mw: int) -> str | None:
        """Which budget `mw` more on `rack` breaks: "site", the rack's name, or None."""
        if self.site_budget is not None and self.site + mw > self.site_budget:
            return "site"
        if rack is not None and rack in self.rack_budget and self.racks[rack] + mw > self.rack_budget[rack]:
            return rack
        return None

    def check(self, nodes: Sequence[NodeCapacity], req: Request, rule: PowerCapRule | None) -> str | None:
        """None when `req` on `nodes` (all of a gang's) stays within every budget, else the wait reason."""
        if not req.gpus:
            return None
        per_rack: dict[str | None, int] = {}
        for node in nodes:
            rack = self._rack_of.get(node.name)
            per_rack[rack] = per_rack.get(rack, 0) + self.node_mw(node.models, req, rule)
        return self.over_text(per_rack)

    def racks_over(self, nodes: Sequence[NodeCapacity], req: Request, rule: PowerCapRule | None) -> list[str]:
        """The racks whose budget `req` on `nodes` (all of a gang's) breaks, by name."""
        per_rack: dict[str, int] = {}
        for node in nodes:
            rack = self._rack_of.get(node.name)
            if rack is not None and rack in self.rack_budget:
                per_rack[rack] = per_rack.get(rack, 0) + self.node_mw(node.models, req, rule)
        return sorted(r for r, mw in per_rack.items() if mw and self.racks[r] + mw > self.rack_budget[r])

    def nodes_in(self, racks: Iterable[str]) -> frozenset[str]:
        """The UP nodes of those racks."""
        wanted = set(racks)
        return frozenset(name for rack, _, names in self._groups if rack in wanted for name in names)

    def over_text(self, per_rack: Mapping[str | None, int]) -> str | None:
        """The reason when adding `per_rack` (mW per rack) breaks a budget: the site's first, then each
        rack's, e.g. "power budget: site would draw 412.3 kW of 400 kW"."""
        total = sum(per_rack.values())
        if not total:  # draws nothing more (unknown models): breaks nothing, even where a budget is over already
            return None
        if self.site_budget is not None and self.site + total > self.site_budget:
            after, budget = self.site + total, self.site_budget
            return f"power budget: site would draw {_kw(after, budget)} kW of {_budget_text(budget)} kW"
        parts = []
        for rack in sorted(r for r in per_rack if r is not None and r in self.rack_budget):
            after, budget = self.racks[rack] + per_rack[rack], self.rack_budget[rack]
            if per_rack[rack] and after > budget:
                parts.append(f"rack {rack} would draw {_kw(after, budget)} kW of {_budget_text(budget)} kW")
        return f"power budget: {'; '.join(parts)}" if parts else None

    def blocked_text(
        self, would_get: Sequence[NodeCapacity], kept: frozenset[str], req: Request, rule: PowerCapRule | None
    ) -> str:
        """The reason of a job that fits on `would_get` but for the power budgets, with the nodes kept off
        per rack, e.g. "power budget: rack r1 would draw 41.0 kW of 40 kW (4 nodes: rack r1 power budget)"."""
        reason = self.check(would_get, req, rule) or "power budget: no node within the budgets"
        counts: dict[str, int] = {}
        for name in kept:
            rack = self._rack_of.get(name)
            if rack is not None and rack in self.rack_budget:
                text = rack_reject_text(rack)
                counts[text] = counts.get(text, 0) + 1
        return f"{reason} ({groups_text(counts)})" if counts and not reason.startswith("power budget: site") else reason

    def job_rule(self, job: PendingJob) -> PowerCapRule | None:
        return self.rule(job.queue, job.user, job.kind)

    @property
    def site_kw(self) -> float:
        """The estimated draw, kW (for tools and tests)."""
        return self.site / MW_PER_KW

    def rack_kw(self, rack: str) -> float:
        """A rack's estimated draw, kW (racks with a budget only)."""
        return self.racks.get(rack, 0) / MW_PER_KW
