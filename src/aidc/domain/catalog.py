"""The GPU catalog: what aidc knows of each GPU model (power, memory), shipped as package data
(`aidc/domain/data/gpu_catalog.yaml`, where each figure's source is written beside it).

`gpu_spec("NVIDIA H100 80GB HBM3")` finds a model's entry by the rules a job's `gpu_type` uses
(`nodes.gpu_model_matches`: whole words, in any order, case and '-'/'_' ignored): an entry whose name or
an alias equals the model name wins; otherwise, among the names and aliases whose words all appear in
the model name, the one with the most words (so "NVIDIA H100 PCIe" is the PCIe card, not the "H100"
that stands for the SXM module), then the first in the file. A model no entry names gives None: callers
report it as unknown rather than guess.

Idle watts are estimates for every model (the file says how they were chosen); TDPs are the vendors'.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aidc.domain.nodes import gpu_model_matches

__all__ = ["CatalogError", "GpuCatalog", "GpuSpec", "default_catalog", "gpu_spec", "load_catalog"]

CATALOG_FILE = "gpu_catalog.yaml"


class CatalogError(ValueError):
    """A catalog file that cannot be read or does not validate."""


class GpuSpec(BaseModel):
    """One GPU model. Later issues add fields (peak TFLOP/s, prices); unknown fields are refused so a
    typo in the file is caught."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    vendor: str = Field(min_length=1)
    architecture: str | None = None
    memory_gb: float = Field(gt=0, description="memory per GPU, GB as the vendor states it")
    tdp_watts: float = Field(gt=0, description="the vendor's maximum board power per GPU")
    idle_watts: float = Field(ge=0, description="typical idle draw per GPU: an estimate")
    source: str = Field(min_length=1, description="where tdp_watts comes from")
    bf16_tflops: float | None = Field(
        default=None, gt=0, description="peak dense BF16 tensor TFLOP/s (FP16 where the model has no BF16)"
    )
    fp8_tflops: float | None = Field(default=None, gt=0, description="peak dense FP8 tensor TFLOP/s; None: no FP8")
    memory_bandwidth_gbs: float | None = Field(default=None, gt=0, description="memory bandwidth, GB/s")
    interconnect: str | None = Field(default=None, description="GPU-to-GPU link, e.g. 'NVLink 4, 900 GB/s'")
    list_price_usd: float | None = Field(default=None, gt=0, description="purchase price per GPU: the site fills it in")
    hourly_price_usd: float | None = Field(
        default=None, gt=0, description="price per GPU-hour (owned: amortized; rented: the rate): the site fills it in"
    )
    notes: str = ""

    @model_validator(mode="after")
    def _idle_below_tdp(self) -> Self:
        if self.idle_watts > self.tdp_watts:
            raise ValueError(f"{self.name}: idle_watts {self.idle_watts:g} is above tdp_watts {self.tdp_watts:g}")
        return self

    @property
    def keys(self) -> tuple[str, ...]:
        """The names it is matched by: its name and aliases."""
        return (self.name, *self.aliases)


class GpuCatalog(BaseModel):
    """Every GPU model of a catalog file, each name and alias naming one model only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpus: tuple[GpuSpec, ...]

    @model_validator(mode="after")
    def _keys_are_unique(self) -> Self:
        seen: dict[str, str] = {}
        for spec in self.gpus:
            for key in spec.keys:
                norm = _normalize(key)
                if not norm:
                    raise ValueError(f"{spec.name}: an empty alias")
                other = seen.setdefault(norm, spec.name)
                if other != spec.name:
                    raise ValueError(f"{key!r} names both {other} and {spec.name}")
        return self

    def spec(self, model: str) -> GpuSpec | None:
        """The entry for a GPU model name (see the module), None when no entry names it."""
        wanted = _normalize(model)
        if not wanted:
            return None
        best: tuple[int, GpuSpec] | None = None
        for spec in self.gpus:
            for key in spec.keys:
                norm = _normalize(key)
                if norm == wanted:
                    return spec
                if gpu_model_matches(key, model):
                    words = len(norm.split())
                    if best is None or words > best[0]:
                        best = (words, spec)
        return None if best is None else best[1]


def _normalize(name: str) -> str:
    """The form names are compared in (as `nodes.gpu_model_matches` compares them)."""
    return " ".join(name.lower().replace("-", " ").replace("_", " ").split())


def load_catalog(path: Path | None = None) -> GpuCatalog:
    """A catalog from a YAML file, or the one shipped with aidc. Raises CatalogError naming the file
    and the problem."""
    where = str(path) if path is not None else f"aidc/domain/data/{CATALOG_FILE}"
    try:
        if path is None:
            text = resources.files("aidc.domain").joinpath("data").joinpath(CATALOG_FILE).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        return GpuCatalog.model_validate(yaml.safe_load(text) or {})
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise CatalogError(f"{where}: {exc}") from exc


@lru_cache(maxsize=1)
def default_catalog() -> GpuCatalog:
    """The catalog shipped with aidc, read once."""
    return load_catalog()


@lru_cache(maxsize=1024)
def gpu_spec(model_name: str) -> GpuSpec | None:
    """The shipped catalog's entry for a GPU model name (see the module), None when it has none."""
    return default_catalog().spec(model_name)
