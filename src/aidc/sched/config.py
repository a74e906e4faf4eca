"""The scheduler's configuration (`aidc up --scheduler-config sched.yaml`): queues and cohorts, the
ordering policy, placement scoring, backfill and preemption.

```yaml
policy: fairshare            # fifo | priority | sjf | fairshare
fairshare:
  half_life: 7d              # past usage counts half as much after this long
placement:
  scorers: {bestfit: 1}      # weighted sum, e.g. {fgd: 3, energy: 1, spread: 1}
backfill: true               # EASY: the first blocked job gets a reservation; others may not delay it
preemption:
  enabled: true              # higher priority, or reclaiming nominal quota from a borrower
  grace_period: 30s          # SIGTERM, then SIGKILL after this long
queues:
  - name: research
    cohort: lab
    weight: 2
    quota: {gpus: 16, gpu_models: {H100: 8}, cpus: 256, memory: 2TiB}
    borrowing_limit: {gpus: 8}
    lending_limit: {gpus: 4}
  - name: sweeps
    cohort: lab
    quota: {gpus: 8}
    timeshare: roundrobin    # or las; jobs take turns on contended GPUs
    quantum: 10m
```
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aidc.domain.queues import Queue
from aidc.domain.units import parse_duration

DEFAULT_HALF_LIFE = 7 * 86400.0  # Slurm's PriorityDecayHalfLife default
DEFAULT_GRACE = 30.0


class OrderingPolicy(StrEnum):
    FIFO = "fifo"  # submission time only
    PRIORITY = "priority"  # priority, then submission time
    SJF = "sjf"  # shortest estimated duration first
    FAIRSHARE = "fairshare"  # the queue with the smallest weighted dominant share first (DRF)


def _duration(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return parse_duration(value)
    return value


class FairShareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    half_life: float = Field(default=DEFAULT_HALF_LIFE, gt=0, json_schema_extra={"type": ["number", "string"]})

    _half_life = field_validator("half_life", mode="before")(_duration)


class PlacementConfig(BaseModel):
    """Scoring plugins by name with their weights; the node (set) with the highest weighted sum wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scorers: dict[str, float] = Field(default_factory=lambda: {"bestfit": 1.0})
    seed: int = Field(default=0, description="Seed of the `random` scorer (decisions stay reproducible)")

    @field_validator("scorers")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("name at least one scorer, e.g. {bestfit: 1}")
        for name, weight in value.items():
            if weight < 0:
                raise ValueError(f"{name}: weight must not be negative")
        if not any(value.values()):
            raise ValueError("at least one scorer needs a weight above 0")
        return value


class PreemptionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    grace_period: float = Field(default=DEFAULT_GRACE, ge=0, le=86400, json_schema_extra={"type": ["number", "string"]})

    _grace = field_validator("grace_period", mode="before")(_duration)


class SchedulerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: OrderingPolicy = OrderingPolicy.PRIORITY
    fairshare: FairShareConfig = Field(default_factory=FairShareConfig)
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    backfill: bool = False
    preemption: PreemptionConfig = Field(default_factory=PreemptionConfig)
    queues: tuple[Queue, ...] = ()

    @model_validator(mode="after")
    def _unique_queues(self) -> SchedulerConfig:
        seen: set[str] = set()
        for queue in self.queues:
            if queue.name in seen:
                raise ValueError(f"queue {queue.name!r} appears twice")
            seen.add(queue.name)
        return self
