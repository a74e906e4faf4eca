"""What if the scheduler were set up differently: the same workload on the same cluster, once with the
baseline configuration and once changed, measured against the SLO side by side.

Changes (`apply_changes`), each `KEY=VALUE`, several combine:
- `policy=fifo|priority|sjf|fairshare`, `placement=SCORER` or weights (`fgd=3,bestfit=1`),
- `backfill=on|off`, `preemption=on|off`,
- `quota:QUEUE=GPUS` (a GPU quota on a queue of the workload; `none` lifts it).
Left out: cohorts with borrowing and lending, time-sharing and fair-share half-life, which need more than
one value each (write a scheduler config for those)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aidc.domain.nodes import Node
from aidc.domain.queues import Queue, Quota
from aidc.plan.capacity_eval import Evaluation, Progress, SimSettings, evaluate
from aidc.plan.capacity_slo import Slo
from aidc.sched.config import OrderingPolicy, PreemptionConfig, SchedulerConfig
from aidc.sim.frag import parse_placement
from aidc.sim.workload import TraceJob

KEYS = ("policy", "placement", "backfill", "preemption", "quota:QUEUE")
_SWITCH = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}

# Fields whose change (changed - baseline) the comparison reports.
DELTA_FIELDS = ("value", "energy_mwh_per_year", "cost_per_year", "failures", "preemptions")


def apply_changes(config: SchedulerConfig, changes: Sequence[str], queues: Iterable[str] = ()) -> SchedulerConfig:
    """`config` with `changes` applied (see the module); `queues` are the workload's queues, which a quota
    must name. Raises ValueError naming the change and what is wrong with it."""
    known_queues = sorted(set(queues))
    for change in changes:
        raw_key, eq, value = (part.strip() for part in change.partition("="))
        if not eq or not value:
            raise ValueError(f"expected KEY=VALUE with KEY one of {', '.join(KEYS)}, got {change!r}")
        key = raw_key.lower()
        if key == "policy":
            try:
                config = config.model_copy(update={"policy": OrderingPolicy(value.lower())})
            except ValueError:
                raise ValueError(
                    f"policy: unknown policy {value!r}; known: {', '.join(p.value for p in OrderingPolicy)}"
                ) from None
        elif key == "placement":
            try:
                config = config.model_copy(update={"placement": parse_placement(value)})
            except ValueError as exc:
                raise ValueError(f"placement: {exc}") from None
        elif key in ("backfill", "preemption"):
            on = _SWITCH.get(value.lower())
            if on is None:
                raise ValueError(f"{key}: expected on or off, got {value!r}")
            update: Any = on if key == "backfill" else PreemptionConfig(enabled=on)
            config = config.model_copy(update={key: update})
        elif key.startswith("quota:"):
            config = _quota(config, raw_key[len("quota:") :].strip(), value, known_queues)
        else:
            raise ValueError(f"unknown change {key!r}; known: {', '.join(KEYS)}")
    return config


def _quota(config: SchedulerConfig, queue: str, value: str, known: list[str]) -> SchedulerConfig:
    if known and queue not in known:
        raise ValueError(f"quota:{queue}: no job of the workload is in queue {queue!r}; queues: {', '.join(known)}")
    if value.lower() == "none":
        gpus = None
    else:
        try:
            gpus = float(value)
        except ValueError:
            raise ValueError(f"quota:{queue}: {value!r} is not a number of GPUs (or none)") from None
        if not gpus >= 0:
            raise ValueError(f"quota:{queue}: GPUs must be at least 0, not {value}")
    queues = {q.name: q for q in config.queues}
    try:
        current = queues.get(queue) or Queue(name=queue)
        queues[queue] = Queue.model_validate(
            {**current.model_dump(), "quota": Quota.model_validate({**current.quota.model_dump(), "gpus": gpus})}
        )
        return config.model_copy(update={"queues": tuple(queues.values())})
    except ValueError as exc:  # pydantic's ValidationError is one
        raise ValueError(f"quota:{queue}: {_first_error(exc)}") from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc)


@dataclass(frozen=True)
class WhatIf:
    """The baseline and the changed run on one cluster, and the changes."""

    slo: Slo
    changes: tuple[str, ...]
    baseline: Evaluation
    changed: Evaluation

    @property
    def delta(self) -> dict[str, float | None]:
        """changed - baseline of `DELTA_FIELDS` (None where either is unknown)."""
        out: dict[str, float | None] = {}
        for name in DELTA_FIELDS:
            a, b = getattr(self.baseline, name), getattr(self.changed, name)
            out[name] = None if a is None or b is None else b - a
        a, b = self.baseline.utilization, self.changed.utilization
        out["utilization"] = None if a is None or b is None else b - a
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "slo": str(self.slo),
            "changes": list(self.changes),
            "baseline": self.baseline.as_dict(),
            "changed": self.changed.as_dict(),
            "delta": self.delta,
        }


def what_if(
    jobs: Sequence[TraceJob],
    nodes: Sequence[Node],
    slo: Slo,
    settings: SimSettings,
    changes: Sequence[str],
    *,
    progress: Progress | None = None,
) -> WhatIf:
    """Run `jobs` on `nodes` with `settings.config` and with it changed by `changes` (see the module).
    Raises ValueError for a change it cannot apply, `SimulationStuck` from a run that makes no progress."""
    changed_config = apply_changes(settings.config, changes, (j.queue for j in jobs))
    base = evaluate(jobs, nodes, slo, settings, label="baseline", run=0, progress=progress)
    changed = evaluate(
        jobs, nodes, slo, replace(settings, config=changed_config), label="changed", run=1, progress=progress
    )
    return WhatIf(slo, tuple(changes), base, changed)
