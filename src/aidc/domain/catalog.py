"""The GPU catalog: what aidc knows of each GPU model (power, memory), shipped as package data
(`aidc/domain/data/gpu_catalog.yaml`, where each figure's source is written beside it).

`gpu_spec("NVIDIA H100 80GB HBM3")` finds a model's entry by the rules a job's `gpu_type` uses
(`nodes.gpu_model_matches`: whole words, in any order, case and '-'/'_' ignored): an entry whose name or
an alias equals the model name wins; otherwise, among the names and aliases whose words all appear in
the model name, the one with the most words (so "NVIDIA H100 PCIe" is the PCIe card, not the "H100"
that stands for the SXM module), then the first in the file. A model no entry names gives None: callers
report it as unknown rather than guess.

Idle watts are estimates for every model (the file says how they were chosen); TDPs, peak dense TFLOP/s,
memory bandwidth and interconnect are the vendors' datasheet figures (`source`, `perf_source`). Prices are
not shipped: a site sets them in its own file, merged over the shipped one by `load_site_catalog`, and
`use_catalog` installs the result as the catalog `default_catalog()` and `gpu_spec()` answer from.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aidc.domain.nodes import gpu_model_matches

__all__ = [
    "CatalogError",
    "GpuCatalog",
    "GpuSpec",
    "default_catalog",
    "gpu_spec",
    "load_catalog",
    "load_site_catalog",
    "shipped_catalog",
    "use_catalog",
]

CATALOG_FILE = "gpu_catalog.yaml"


class CatalogError(ValueError):
    """A catalog file that cannot be read or does not validate."""


class GpuSpec(BaseModel):
    """One GPU model. Unknown fields are refused so that a typo in the file is caught."""

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
    perf_source: str | None = Field(
        default=None, description="where bf16_tflops, fp8_tflops, memory_bandwidth_gbs and interconnect come from"
    )
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
        seen: dict[str, int] = {}
        for position, spec in enumerate(self.gpus):
            for key in spec.keys:
                norm = _normalize(key)
                if not norm:
                    raise ValueError(f"{spec.name}: an empty alias")
                other = seen.setdefault(norm, position)
                if other != position:
                    raise ValueError(f"{key!r} names both {self.gpus[other].name} and {spec.name}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """Every model's name, in file order."""
        return tuple(spec.name for spec in self.gpus)

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


def load_site_catalog(path: Path, base: GpuCatalog | None = None) -> GpuCatalog:
    """The shipped catalog (or `base`) with a site's YAML file merged over it.

    The file holds a `gpus:` list, or the bare list. An entry whose `name` or one of its `aliases` is,
    exactly (case and '-'/'_' aside), the name or an alias of a model of the base updates that model with
    only the fields it gives (aliases it gives are added to the model's, its `name` only finds the model):
    `- {name: H100, hourly_price_usd: 2.4}`. Any other entry is a new model, validated in full. Exact names
    rather than the word matching of `spec()`, so that a new "H100 Custom" is not taken for the H100.
    Raises CatalogError naming the file, the entry (its position and name) and the field."""
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"{where}: {exc}") from exc
    entries = raw.get("gpus") if isinstance(raw, dict) and set(raw) == {"gpus"} else raw
    if entries is None:  # an empty file changes nothing
        entries = []
    if not isinstance(entries, list):
        raise CatalogError(f"{where}: expected a `gpus:` list of GPU models (or the bare list)")
    merged = list((shipped_catalog() if base is None else base).gpus)
    # Entries apply in order: a later entry naming a model an earlier one added updates it.
    index = {_normalize(key): i for i, spec in enumerate(merged) for key in spec.keys}
    for number, entry in enumerate(entries, start=1):
        spec, at = _site_entry(where, number, entry, index, merged)
        if at is None:
            at = len(merged)
            merged.append(spec)
        else:
            merged[at] = spec
        index.update((_normalize(key), at) for key in spec.keys)
    try:
        return GpuCatalog(gpus=tuple(merged))
    except ValidationError as exc:
        problems = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
        raise CatalogError(f"{where}: {problems}") from exc


def _site_entry(
    where: str, number: int, entry: object, index: Mapping[str, int], merged: list[GpuSpec]
) -> tuple[GpuSpec, int | None]:
    """One site entry as a model, and the position of the base model it updates (None: a new model)."""
    label = f"{where}: entry {number}"
    if not isinstance(entry, dict):
        raise CatalogError(f"{label}: expected a mapping of fields such as {{name: H100, hourly_price_usd: 2.4}}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CatalogError(f"{label}: field name: a GPU model name is required")
    label = f"{label} ({name})"
    aliases = entry.get("aliases", ())
    if isinstance(aliases, str) or not isinstance(aliases, list | tuple):
        raise CatalogError(f"{label}: field aliases: expected a list of names")
    if not all(_normalize(str(alias)) for alias in aliases):
        raise CatalogError(f"{label}: field aliases: an empty alias")
    hits = {index[key] for key in map(_normalize, [name, *map(str, aliases)]) if key in index}
    if len(hits) > 1:
        models = ", ".join(merged[i].name for i in sorted(hits))
        raise CatalogError(f"{label}: field aliases: its names name several models ({models})")
    at = hits.pop() if hits else None
    fields: dict[str, Any] = dict(entry)
    if at is not None:
        current = merged[at]
        fields = current.model_dump() | {k: v for k, v in entry.items() if k != "name"}
        fields["aliases"] = tuple(dict.fromkeys((*current.aliases, *map(str, aliases))))
    try:
        return GpuSpec.model_validate(fields), at
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(part) for part in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        raise CatalogError(f"{label}: {'field ' + field + ': ' if field else ''}{message}") from exc


@lru_cache(maxsize=1)
def shipped_catalog() -> GpuCatalog:
    """The catalog shipped with aidc, read once."""
    return load_catalog()


# The catalog `default_catalog()` answers with: the shipped one unless `use_catalog` installed another.
# Process-wide on purpose: it is reference data that the scheduler's scorers and the simulator's energy
# metrics read deep inside pure code (through `gpu_spec`), installed once when a process starts (the server
# from its settings, a CLI command from --catalog), not state that changes while it runs.
_installed: GpuCatalog | None = None


def use_catalog(catalog: GpuCatalog | None) -> None:
    """Make `catalog` the process-wide catalog of `default_catalog()` and `gpu_spec()`; None restores the
    shipped one. Clears their caches, so answers given before do not outlive the change."""
    global _installed  # noqa: PLW0603 -- the process-wide catalog, see above
    _installed = catalog
    default_catalog.cache_clear()
    gpu_spec.cache_clear()


@lru_cache(maxsize=1)
def default_catalog() -> GpuCatalog:
    """The process-wide catalog: the one `use_catalog` installed, else the one shipped with aidc."""
    return _installed if _installed is not None else shipped_catalog()


@lru_cache(maxsize=1024)
def gpu_spec(model_name: str) -> GpuSpec | None:
    """The process-wide catalog's entry for a GPU model name (see the module), None when it has none."""
    return default_catalog().spec(model_name)
