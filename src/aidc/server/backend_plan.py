"""Pick and build the backend named by the settings (SkyPilot's habit: engines register by name, and a config
string picks one). Each engine's package is imported only when chosen, so its client library (kubernetes) is
needed only where it is used."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aidc.backends.context import BackendContext
from aidc.ports import Backend

BACKENDS: Mapping[str, str] = {
    "local": "aidc.backends.local",
    "slurm": "aidc.backends.slurm",
    "kubernetes": "aidc.backends.kubernetes",
    "ray": "aidc.backends.ray",
}


def load_backend_options(path: Path | None, backend: str) -> dict[str, Any]:
    """The backend config file's options: the whole file, or its section named after the backend (so that one
    file may hold sections for several: `slurm: {...}`, `ray: {...}`)."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ValueError(f"backend config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"backend config {path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"backend config {path}: expected a mapping of options, got {type(data).__name__}")
    if set(data) & set(BACKENDS):
        section = data.get(backend)
        if section is None:
            return {}
        if not isinstance(section, dict):
            raise ValueError(f"backend config {path}: {backend}: expected a mapping of options")
        return section
    return data


def build_backend(name: str, options: Mapping[str, Any], context: BackendContext, source: str = "") -> Backend:
    """The backend `name`, built from its options. Bad options are a ValueError naming the field (one line)."""
    module_name = BACKENDS.get(name)
    if module_name is None:
        raise ValueError(f"backend: unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"backend {name}: cannot be loaded ({exc})") from None
    prefix = f"backend config {source}: " if source else f"backend {name}: "
    try:
        backend: Backend = module.create(options, context)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{prefix}{where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}") from None
    return backend
