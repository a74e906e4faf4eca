"""GPU power caps by policy (pure): which limit, in watts, each GPU of a starting attempt gets.

The site's `power.caps` rules (`aidc.domain.power`) are matched against the job (its queue's team, queue,
user, kind); the first matching rule gives a limit as a share of the GPU's TDP (from the GPU catalog) or in
watts (never above the TDP). A job no rule matches gets no cap. A GPU whose model the catalog does not know
is skipped with the reason (a share of an unknown TDP is no figure; a fixed-watts rule is skipped too, so
that a typo in a node's model never caps a card at a figure meant for another one).

Applying the limits (NVML, root) is the control plane's job (`aidc.control.power_caps`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aidc.domain.catalog import GpuSpec, gpu_spec
from aidc.domain.jobs import Attempt, Job, JobKind
from aidc.domain.nodes import Node
from aidc.domain.power import PowerCapRule, PowerSpec

__all__ = ["CapPlan", "GpuCap", "SkippedGpu", "describe_rule", "gpu_models_of", "plan_caps", "plan_job_caps"]

# node name -> {GPU index: model name}
GpuModels = Mapping[str, Mapping[int, str]]
CatalogLookup = Callable[[str], GpuSpec | None]


@dataclass(frozen=True)
class GpuCap:
    """The limit one GPU gets, and why."""

    node: str
    gpu_index: int
    model: str
    tdp_watts: float
    limit_watts: float
    rule: PowerCapRule

    @property
    def rule_text(self) -> str:
        return describe_rule(self.rule)


@dataclass(frozen=True)
class SkippedGpu:
    """A GPU of the placement that gets no cap although a rule matched, and why."""

    node: str
    gpu_index: int
    reason: str


@dataclass(frozen=True)
class CapPlan:
    """The rule that matched (None: no rule matches the job, so nothing is capped), the caps and the skips."""

    rule: PowerCapRule | None
    caps: tuple[GpuCap, ...] = ()
    skipped: tuple[SkippedGpu, ...] = ()


def describe_rule(rule: PowerCapRule) -> str:
    """ "team=research kind=train: 70%"; a rule without selectors: "every job: 500W"."""
    selectors = [
        f"{name}={value}"
        for name, value in (("team", rule.team), ("queue", rule.queue), ("user", rule.user), ("kind", rule.kind))
        if value is not None
    ]
    return f"{' '.join(selectors) or 'every job'}: {rule.limit}"


def gpu_models_of(nodes: Iterable[Node]) -> dict[str, dict[int, str]]:
    """{node name: {GPU index: model}} of the nodes as the store knows them."""
    return {node.name: {gpu.index: gpu.model for gpu in node.gpus} for node in nodes}


def plan_caps(
    *,
    team: str | None,
    queue: str,
    user: str,
    kind: JobKind | str,
    placement: Mapping[str, Sequence[int]],
    gpu_models: GpuModels,
    power: PowerSpec,
    catalog: CatalogLookup = gpu_spec,
) -> CapPlan:
    """The caps for a job of (`team`, `queue`, `user`, `kind`) placed on `placement` ({node: GPU indices}).

    `gpu_models` gives each node's GPU models; `catalog` finds a model's entry (the shipped catalog by default).
    GPUs listed twice on a node are capped once."""
    rule = power.cap_rule(team=team, queue=queue, user=user, kind=JobKind(kind))
    if rule is None:
        return CapPlan(rule=None)
    caps: list[GpuCap] = []
    skipped: list[SkippedGpu] = []
    for node, indices in placement.items():
        models = gpu_models.get(node)
        for index in sorted(set(indices)):
            model = None if models is None else models.get(index)
            if model is None:
                where = "the node is not known" if models is None else f"the node has no GPU {index}"
                skipped.append(SkippedGpu(node, index, f"GPU model unknown: {where}"))
                continue
            spec = catalog(model)
            if spec is None:
                reason = f"GPU model {model!r} is not in the GPU catalog, so its TDP is unknown"
                skipped.append(SkippedGpu(node, index, reason))
                continue
            tdp = spec.tdp_watts
            caps.append(GpuCap(node, index, model, tdp, round(rule.watts(tdp), 3), rule))
    return CapPlan(rule=rule, caps=tuple(caps), skipped=tuple(skipped))


def plan_job_caps(
    job: Job,
    attempt: Attempt,
    *,
    team: str | None,
    gpu_models: GpuModels,
    power: PowerSpec,
    catalog: CatalogLookup = gpu_spec,
) -> CapPlan:
    """`plan_caps` for an attempt of `job` (its placement: `attempt.nodes` with `attempt.gpus`)."""
    placement: dict[str, list[int]] = {}
    for i, node in enumerate(attempt.nodes):
        indices = attempt.gpus[i] if i < len(attempt.gpus) else ()
        placement.setdefault(node, []).extend(indices)
    return plan_caps(
        team=team,
        queue=job.spec.queue,
        user=job.user,
        kind=job.spec.kind,
        placement=placement,
        gpu_models=gpu_models,
        power=power,
        catalog=catalog,
    )
