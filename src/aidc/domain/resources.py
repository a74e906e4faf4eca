"""What a job asks for on each node, and what a node offers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aidc.domain.units import format_size, parse_gpus, parse_size

# Limits past which a request is surely a typo (per node): larger than any machine sold today.
MAX_GPUS_PER_NODE = 1024
MAX_CPUS_PER_NODE = 65536
MAX_MEMORY_PER_NODE = 64 * 2**40  # 64 TiB


class Resources(BaseModel):
    """Resources per node. `gpus` also accepts "MODEL:COUNT" (e.g. "H100:8"), `memory` a size ("16GB")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: int = Field(default=0, ge=0, le=MAX_GPUS_PER_NODE, description='GPUs per node; also "H100:8"')
    gpu_type: str | None = Field(
        default=None, min_length=1, max_length=64, description="GPU model, matched against a node's GPU model name"
    )
    cpus: float = Field(default=1.0, gt=0, le=MAX_CPUS_PER_NODE, description="CPU cores per node")
    memory: int = Field(
        default=2**30,
        ge=0,
        le=MAX_MEMORY_PER_NODE,
        description='Memory per node in bytes; also "512MB", "16GB", "1.5TiB"',
        json_schema_extra={"type": ["integer", "string"]},
    )

    @model_validator(mode="before")
    @classmethod
    def _split_gpu_model(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("gpus"), str):
            return data
        count, model = parse_gpus(data["gpus"])
        declared = data.get("gpu_type")
        if model and declared and declared != model:
            raise ValueError(f"gpus says {model!r} but gpu_type says {declared!r}")
        return {**data, "gpus": count, "gpu_type": declared or model}

    @field_validator("memory", mode="before")
    @classmethod
    def _parse_memory(cls, value: Any) -> Any:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return parse_size(value)
        return value

    @model_validator(mode="after")
    def _gpu_type_needs_gpus(self) -> Resources:
        if self.gpu_type and self.gpus == 0:
            raise ValueError("gpu_type is set but gpus is 0")
        return self

    def describe(self) -> str:
        gpu = f"{self.gpus}x{self.gpu_type}" if self.gpu_type else str(self.gpus)
        return f"{gpu} GPUs, {self.cpus:g} CPUs, {format_size(self.memory)}"
