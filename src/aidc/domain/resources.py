"""What a job asks for on each node, and what a node offers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aidc.domain.units import GPU_MILLI, format_gpus, format_size, parse_gpus, parse_size, split_gpus

# Limits past which a request is surely a typo (per node): larger than any machine sold today.
MAX_GPUS_PER_NODE = 1024
MAX_CPUS_PER_NODE = 65536
MAX_MEMORY_PER_NODE = 64 * 2**40  # 64 TiB


class Resources(BaseModel):
    """Resources per node. `gpus` also accepts "MODEL:COUNT" (e.g. "H100:8") and a share of one GPU (0.25,
    "T4:0.5"), `memory` a size ("16GB")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: int = Field(
        default=0,
        ge=0,
        le=MAX_GPUS_PER_NODE,
        description='GPUs per node; also "H100:8", or a share of one GPU: 0.25, "T4:0.5"',
        json_schema_extra={"type": ["number", "string"]},
    )
    gpu_milli: int = Field(
        default=GPU_MILLI,
        ge=1,
        le=GPU_MILLI,
        description="Thousandths of each GPU the job uses (1000: whole GPUs); below 1000 only with gpus: 1. "
        "Set by writing gpus: 0.25",
    )
    gpu_type: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="GPU model, matched against a node's GPU model name; alternatives separated by '|' "
        '(e.g. "V100M16|V100M32") match any of them',
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
        if not isinstance(data, dict):
            return data
        value = data.get("gpus")
        if isinstance(value, bool) or not isinstance(value, str | float):
            return data
        try:
            amount, model = parse_gpus(value)
            count, milli = split_gpus(amount)
        except ValueError as exc:
            raise ValueError(f"gpus: {exc}") from None
        out = {**data, "gpus": count}
        declared = data.get("gpu_type")
        if model:
            if declared and declared != model:
                raise ValueError(f"gpus says {model!r} but gpu_type says {declared!r}")
            out["gpu_type"] = model
        if milli < GPU_MILLI:
            if data.get("gpu_milli", milli) != milli:
                raise ValueError(f"gpus says {format_gpus(1, milli)} of a GPU but gpu_milli says {data['gpu_milli']}")
            out["gpu_milli"] = milli
        return out

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
        if self.gpu_milli < GPU_MILLI and self.gpus != 1:
            raise ValueError(f"gpu_milli: a share of a GPU ({self.gpu_milli} < {GPU_MILLI}) needs gpus: 1")
        return self

    @property
    def gpu_amount(self) -> float:
        """GPUs per node as a number: 8.0, or 0.25 for a quarter of one GPU."""
        return self.gpus * self.gpu_milli / GPU_MILLI

    def describe(self) -> str:
        """ "8xH100 GPUs, 64 CPUs, 512GiB"; a share: "0.25 GPU, 4 CPUs, 16GiB"."""
        amount = format_gpus(self.gpus, self.gpu_milli)
        gpu = f"{amount}x{self.gpu_type}" if self.gpu_type else amount
        noun = "GPU" if self.gpu_milli < GPU_MILLI or self.gpus == 1 else "GPUs"
        return f"{gpu} {noun}, {self.cpus:g} CPUs, {format_size(self.memory)}"
