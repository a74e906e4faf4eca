"""The backend configs the README shows are valid: each `slurm:`, `kubernetes:` or `ray:` YAML block in it is
accepted by that backend's own options model (unknown or misspelt options would be errors)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from aidc.backends.kubernetes.config import KubernetesConfig
from aidc.backends.ray.config import RayConfig
from aidc.backends.slurm.config import SlurmConfig

README = Path(__file__).resolve().parents[3] / "README.md"
MODELS: dict[str, type[BaseModel]] = {"slurm": SlurmConfig, "kubernetes": KubernetesConfig, "ray": RayConfig}


def backend_blocks() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for block in re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.DOTALL):
        data = yaml.safe_load(block)
        if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in MODELS:
            name = next(iter(data))
            found.append((name, data[name]))
    return found


def test_the_readme_shows_a_config_for_each_engine() -> None:
    assert {name for name, _ in backend_blocks()} == set(MODELS)


@pytest.mark.parametrize(("backend", "options"), backend_blocks())
def test_a_readme_backend_config_is_valid(backend: str, options: dict[str, Any]) -> None:
    MODELS[backend].model_validate(options)
