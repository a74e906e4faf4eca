"""Energy as the store keeps it: what each attempt (and each node's unallocated part) used per hour, and
the totals reports give (joules are summed; kWh are what people read)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["J_PER_KWH", "ByEnergy", "EnergyRecord", "EnergyTotal"]

J_PER_KWH = 3.6e6
ByEnergy = Literal["job", "user", "team", "queue", "node", "attempt"]


class EnergyRecord(BaseModel):
    """Energy of one attempt on one node within one hour (job_id 0: the node's unallocated energy).
    Records of the same hour, node and attempt add up."""

    model_config = ConfigDict(frozen=True)

    hour: datetime
    node: str
    job_id: int = Field(ge=0)
    attempt: int = Field(ge=0)
    user: str | None = None
    queue: str | None = None
    team: str | None = None
    gpu_j_measured: float = Field(default=0.0, ge=0)
    gpu_j_estimated: float = Field(default=0.0, ge=0)
    cpu_j_measured: float = Field(default=0.0, ge=0)
    cpu_j_estimated: float = Field(default=0.0, ge=0)
    gpu_seconds: float = Field(default=0.0, ge=0)
    facility_j: float = Field(default=0.0, ge=0)
    cost: float | None = None
    carbon_kg: float | None = None


class EnergyTotal(BaseModel):
    """Energy summed over a period for one value of the grouping. `key` None: unallocated (no job)."""

    model_config = ConfigDict(frozen=True)

    key: str | None
    gpu_kwh: float
    cpu_kwh: float
    it_kwh: float
    facility_kwh: float
    estimated_kwh: float = Field(description="the part of it_kwh that is an estimate, not a measurement")
    gpu_hours: float
    cost: float | None
    carbon_kg: float | None
    first: datetime | None = None
    last: datetime | None = None
