"""A site's power limits, as the operator declares them in the cluster file (`power:`).

```yaml
power:
  budget_kw: 400          # the whole site's IT power budget
  racks: {r1: 40, r2: 40} # per rack (nodes name their rack with `rack:`), kW
  caps:                   # GPU power limits by policy, first matching rule wins
    - team: research
      limit: 70%          # of the GPU's TDP (catalog), or watts: 450W
    - kind: serve
      limit: 500W
```

Matching and the arithmetic of limits live here (pure); the scheduler keeps the estimated draw under the
budgets (`aidc.sched`), and the control plane applies caps through NVML where it can (`aidc.energy`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aidc.domain.jobs import JobKind

__all__ = ["AttemptKey", "GpuKey", "PowerCapRecord", "PowerCapRule", "PowerSpec", "parse_power_limit"]

GpuKey = tuple[str, int]  # (node, GPU index)
AttemptKey = tuple[int, int]  # (job id, attempt number)

MAX_SITE_KW = 10_000_000.0  # 10 GW: beyond any site; a larger figure is a typo (watts given as kW)
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|[wW])\s*$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$"


def parse_power_limit(text: str) -> tuple[float, bool]:
    """ "70%" -> (0.7, True): a share of TDP; "450W" -> (450.0, False): watts. Raises ValueError."""
    m = _LIMIT.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a power limit: write a share of TDP such as 70% or watts such as 450W")
    value, unit = float(m.group(1)), m.group(2)
    if unit == "%":
        if not 0 < value <= 100:
            raise ValueError(f"{text!r}: a share of TDP must be above 0% and at most 100%")
        return value / 100.0, True
    if value <= 0:
        raise ValueError(f"{text!r}: watts must be above 0")
    return value, False


class PowerCapRule(BaseModel):
    """Cap the GPUs of matching jobs. Every selector given must match; a rule without selectors matches all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    team: str | None = Field(default=None, pattern=_NAME)
    queue: str | None = Field(default=None, pattern=_NAME)
    user: str | None = Field(default=None, pattern=_NAME)
    kind: JobKind | None = None
    limit: str = Field(description="share of the GPU's TDP (70%) or watts (450W)")

    @field_validator("limit")
    @classmethod
    def _limit_parses(cls, value: str) -> str:
        parse_power_limit(value)
        return value.strip()

    def matches(self, *, team: str | None, queue: str, user: str, kind: JobKind) -> bool:
        return (
            (self.team is None or self.team == team)
            and (self.queue is None or self.queue == queue)
            and (self.user is None or self.user == user)
            and (self.kind is None or self.kind == kind)
        )

    def watts(self, tdp_watts: float) -> float:
        """The limit for a GPU of this TDP: a share of it, or the watts given (never above the TDP)."""
        value, is_share = parse_power_limit(self.limit)
        return tdp_watts * value if is_share else min(value, tdp_watts)


class PowerSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    budget_kw: float | None = Field(default=None, gt=0, le=MAX_SITE_KW, description="the site's IT power budget, kW")
    racks: dict[str, float] = Field(default_factory=dict, description="power budget per rack, kW")
    caps: tuple[PowerCapRule, ...] = ()

    @model_validator(mode="after")
    def _racks_valid(self) -> Self:
        for rack, kw in self.racks.items():
            if not re.match(_NAME, rack):
                raise ValueError(f"racks: {rack!r} is not a rack name")
            if not 0 < kw <= MAX_SITE_KW:
                raise ValueError(f"racks.{rack}: {kw:g} kW must be above 0 and at most {MAX_SITE_KW:g}")
        return self

    def cap_rule(self, *, team: str | None, queue: str, user: str, kind: JobKind) -> PowerCapRule | None:
        """The first rule matching a job, None when no rule does."""
        for rule in self.caps:
            if rule.matches(team=team, queue=queue, user=user, kind=kind):
                return rule
        return None


@dataclass(frozen=True)
class PowerCapRecord:
    """One GPU capped for one attempt, as recorded.

    `limit_watts`: the attempt's own limit (after clamping into the GPU's range where it was set).
    `previous_watts`: the GPU's limit before any attempt capped it (what it is restored to; None: unknown,
    restored to the GPU's default limit). `dry_run`: the hardware was not changed for this row, `reason` says
    why (a dry run, no permission, another node...); rows that are not dry runs hold the GPU capped."""

    job_id: int
    attempt: int
    node: str
    gpu_index: int
    limit_watts: float
    previous_watts: float | None
    rule: str
    dry_run: bool
    applied_at: datetime
    reason: str | None = None
    reverted_at: datetime | None = None

    @property
    def gpu(self) -> GpuKey:
        return (self.node, self.gpu_index)

    @property
    def key(self) -> AttemptKey:
        return (self.job_id, self.attempt)
