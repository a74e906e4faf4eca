"""Queues: where jobs wait, with an optional quota per resource and a weight for fair share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aidc.domain.jobs import NAME_PATTERN
from aidc.domain.resources import MAX_CPUS_PER_NODE, MAX_MEMORY_PER_NODE
from aidc.domain.units import parse_size

DEFAULT_QUEUE = "default"


class Quota(BaseModel):
    """Cluster-wide caps on what the running jobs of one queue may hold; None means no cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: int | None = Field(default=None, ge=0)
    cpus: float | None = Field(default=None, ge=0, le=MAX_CPUS_PER_NODE * 100_000)
    memory: int | None = Field(default=None, ge=0, le=MAX_MEMORY_PER_NODE * 100_000, description="bytes or a size")

    @field_validator("memory", mode="before")
    @classmethod
    def _parse_memory(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return parse_size(value)
        return value


class Queue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    quota: Quota = Field(default_factory=Quota)
    weight: float = Field(default=1.0, gt=0, le=1_000_000)
    created_at: datetime | None = None
