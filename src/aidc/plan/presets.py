"""Model presets: the parameter counts and attention shapes of a few published models, shipped as package
data (`aidc/domain/data/model_presets.yaml`, each with its config.json named), so that
`aidc plan estimate --model llama-3.1-70b` needs no shape typed in.

Names match case-insensitively, '-', '_' and '/' aside, on the name or an alias ("meta-llama/Llama-3.1-70B").
Only exact names: a model no preset names gives None, never a near one."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["ModelPreset", "PresetError", "load_presets", "model_preset", "shipped_presets"]

PRESETS_FILE = "model_presets.yaml"


class PresetError(ValueError):
    """A presets file that cannot be read or does not validate."""


class ModelPreset(BaseModel):
    """One published model: its parameters and the shape its KV cache follows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    params: float = Field(gt=0, description="total parameters")
    active_params: float | None = Field(default=None, gt=0, description="parameters per token (mixture of experts)")
    layers: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _active_within_total(self) -> Self:
        if self.active_params is not None and self.active_params > self.params:
            raise ValueError(f"{self.name}: active_params is above params")
        return self

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


class _PresetFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    models: tuple[ModelPreset, ...]


def _normalize(name: str) -> str:
    return " ".join(name.lower().replace("-", " ").replace("_", " ").replace("/", " ").split())


def load_presets(path: Path | None = None) -> tuple[ModelPreset, ...]:
    """The presets of a YAML file, or the shipped ones. Raises PresetError naming the file."""
    where = str(path) if path is not None else f"aidc/domain/data/{PRESETS_FILE}"
    try:
        if path is None:
            text = resources.files("aidc.domain").joinpath("data").joinpath(PRESETS_FILE).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        return _PresetFile.model_validate(yaml.safe_load(text) or {}).models
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise PresetError(f"{where}: {exc}") from exc


@lru_cache(maxsize=1)
def shipped_presets() -> tuple[ModelPreset, ...]:
    """The presets shipped with aidc, read once."""
    return load_presets()


def model_preset(name: str, presets: tuple[ModelPreset, ...] | None = None) -> ModelPreset | None:
    """The preset a name or alias names exactly (see the module), None when none does."""
    wanted = _normalize(name)
    for preset in shipped_presets() if presets is None else presets:
        if any(_normalize(key) == wanted for key in preset.keys):
            return preset
    return None
