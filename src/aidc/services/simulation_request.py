"""What a simulation run asks for, checked before it is queued: a known shared trace or a `synthetic:` spec
within the shared control plane's limits, a cluster the simulator knows by name (never a path: the API must
not read the server's files), known policies and scorers, and a job count and seed in range.

`validate` returns the request with its defaults filled in (cluster, policies, jobs), so what runs, and what
`request.json` records, is exactly what was checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from aidc.domain.errors import FieldProblem, InvalidInput
from aidc.sim.compare import InputProblem, all_policies, scheduler_config
from aidc.sim.synthetic import PREFIX, parse_spec

MAX_JOBS = 20_000  # a couple of seconds per policy (bench/sim_run.py): a shared control plane stays responsive
MAX_GPUS = 100_000  # a synthetic cluster's GPUs: its nodes are built in memory
MAX_SEED = 2**31 - 1
MAX_TEXT = 200
SYNTHETIC = PREFIX + ":"


@dataclass(frozen=True)
class TraceInfo:
    """A trace a run may use: its jobs, its credit line, and the cluster it runs on unless told otherwise
    (None: its own node list)."""

    name: str
    jobs: int
    source: str
    own_nodes: bool
    default_cluster: str | None


@dataclass(frozen=True)
class SimulationRequest:
    trace: str
    cluster: str | None = None  # None: the trace's own nodes
    policies: tuple[str, ...] = ()  # empty: every ordering policy
    placement: str = "bestfit"
    backfill: bool = False
    preemption: bool = False
    jobs: int | None = None  # None: the whole trace, up to MAX_JOBS
    seed: int = 0  # of the failure model
    failures: bool = False  # node failures at the Llama 3 rates (FailureModel's defaults)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["policies"] = list(self.policies)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimulationRequest:
        return cls(**{**data, "policies": tuple(data.get("policies", ()))})


def _synthetic(field: str, spec: str, allowed: dict[str, type]) -> dict[str, float | int]:
    try:
        values = parse_spec(spec, allowed)
    except ValueError as exc:
        raise InvalidInput([FieldProblem(field, str(exc))]) from None
    if "gpus" in allowed and not 1 <= values.get("gpus", 0) <= MAX_GPUS:
        raise InvalidInput([FieldProblem(field, f"gpus: give 1 to {MAX_GPUS:,} (synthetic:...,gpus=G)")])
    return values


def validate(request: SimulationRequest, traces: Mapping[str, TraceInfo], clusters: list[str]) -> SimulationRequest:
    """The request with its defaults filled in; InvalidInput naming the first field that is wrong."""
    problems: list[FieldProblem] = []
    trace, cluster, jobs = request.trace.strip(), request.cluster, request.jobs
    if cluster is not None:
        cluster = cluster.strip() or None
    if len(trace) > MAX_TEXT or (cluster is not None and len(cluster) > MAX_TEXT):
        field = "trace" if len(trace) > MAX_TEXT else "cluster"
        raise InvalidInput([FieldProblem(field, f"at most {MAX_TEXT} characters")])
    if jobs is not None and not 1 <= jobs <= MAX_JOBS:
        problems.append(FieldProblem("jobs", f"give 1 to {MAX_JOBS:,} (a shared control plane's limit)"))
    if trace.startswith(SYNTHETIC):
        values = _synthetic("trace", trace, {"jobs": int, "gpus": int, "load": float, "seed": int})
        if not 1 <= values.get("jobs", 0) <= MAX_JOBS:
            problems.append(FieldProblem("trace", f"jobs: give 1 to {MAX_JOBS:,} (synthetic:jobs=N,gpus=G)"))
        if not 0 < values.get("load", 0.9) <= 10:
            problems.append(FieldProblem("trace", "load: must be above 0 and at most 10"))
        if cluster is None:
            cluster = f"{SYNTHETIC}gpus={int(values['gpus'])}"
        available = int(values.get("jobs", 0))
    elif trace in traces:
        info = traces[trace]
        available = info.jobs
        if cluster is None and not info.own_nodes:
            cluster = info.default_cluster
            if cluster is None:
                problems.append(FieldProblem("cluster", f"trace {trace!r} has no node list of its own; name a cluster"))
    else:
        known = ", ".join([*traces, f"{SYNTHETIC}jobs=N,gpus=G[,load=L][,seed=S]"])
        raise InvalidInput([FieldProblem("trace", f"unknown trace {trace!r}; known: {known}")])
    if cluster is not None and cluster.startswith(SYNTHETIC):
        _synthetic("cluster", cluster, {"gpus": int})
    elif cluster is not None and cluster not in clusters:
        known = ", ".join([*clusters, f"{SYNTHETIC}gpus=G"])
        problems.append(FieldProblem("cluster", f"unknown cluster {cluster!r}; known: {known}"))
    policies = tuple(dict.fromkeys(p.strip() for p in request.policies)) or tuple(all_policies())
    for policy in policies:
        try:
            scheduler_config(policy, request.placement, request.backfill, request.preemption)
        except InputProblem as exc:
            problems.append(FieldProblem("policies" if exc.field == "policy" else exc.field, exc.problem))
            break
    if len(request.placement) > MAX_TEXT:
        problems.append(FieldProblem("placement", f"at most {MAX_TEXT} characters"))
    if not 0 <= request.seed <= MAX_SEED:
        problems.append(FieldProblem("seed", f"give 0 to {MAX_SEED}"))
    if problems:
        raise InvalidInput(problems)
    return replace(
        request, trace=trace, cluster=cluster, policies=policies, jobs=min(jobs or available, available, MAX_JOBS)
    )
