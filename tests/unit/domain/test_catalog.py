"""The GPU catalog shipped as package data: the models it must know, how names and aliases find them,
what it refuses to guess, and a malformed catalog refused with the file named."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from aidc.domain.catalog import CatalogError, default_catalog, gpu_spec, load_catalog


def test_the_catalog_is_package_data() -> None:
    assert resources.files("aidc.domain").joinpath("data").joinpath("gpu_catalog.yaml").is_file()
    assert len(default_catalog().gpus) >= 20


@pytest.mark.parametrize(
    ("model", "name", "tdp"),
    [
        ("H100", "NVIDIA H100 SXM5 80GB", 700),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB", 700),  # what NVML reports for the SXM module
        ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe 80GB", 350),  # more words than "H100": the PCIe card
        ("NVIDIA H100 NVL", "NVIDIA H100 NVL 94GB", 400),
        ("NVIDIA H200", "NVIDIA H200 SXM 141GB", 700),
        ("NVIDIA H200 NVL", "NVIDIA H200 NVL 141GB", 600),
        ("NVIDIA B200", "NVIDIA B200", 1000),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 SXM4 80GB", 400),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 SXM4 40GB", 400),
        ("NVIDIA A100-PCIE-40GB", "NVIDIA A100 PCIe 40GB", 250),
        ("NVIDIA A100 80GB PCIe", "NVIDIA A100 PCIe 80GB", 300),
        ("NVIDIA L40S", "NVIDIA L40S", 350),
        ("NVIDIA L4", "NVIDIA L4", 72),
        ("AMD Instinct MI300X", "AMD Instinct MI300X", 750),
        ("Tesla T4", "NVIDIA Tesla T4", 70),
        ("T4", "NVIDIA Tesla T4", 70),
        ("NVIDIA A10", "NVIDIA A10", 150),  # not the A100: whole words
        ("P100", "NVIDIA Tesla P100 PCIe 16GB", 250),
        ("V100M16", "NVIDIA Tesla V100 SXM2 16GB", 300),
        ("v100m32", "NVIDIA Tesla V100 SXM2 32GB", 300),  # case does not matter
        ("Tesla V100-PCIE-32GB", "NVIDIA Tesla V100 PCIe 32GB", 250),
        ("GPU-12GB", "NVIDIA Tesla M40 12GB", 250),  # Philly: a documented guess
        ("GPU-24GB", "NVIDIA Tesla P40", 250),
        ("A800-SXM4-80GB", "NVIDIA A800 SXM4 80GB", 400),
        ("H800", "NVIDIA H800 SXM5 80GB", 700),
    ],
)
def test_models_are_found_by_name_alias_or_the_most_specific_words(model: str, name: str, tdp: float) -> None:
    spec = gpu_spec(model)
    assert spec is not None
    assert (spec.name, spec.tdp_watts) == (name, tdp)


@pytest.mark.parametrize("model", ["G2", "G3", "MISC", "GPU", "GPU-series-1", "Mystery X1", "", "A1000"])
def test_unknown_models_are_not_guessed(model: str) -> None:
    assert gpu_spec(model) is None


def test_every_entry_names_its_source_and_idles_below_its_tdp() -> None:
    for spec in default_catalog().gpus:
        assert spec.source
        assert 0 < spec.idle_watts < spec.tdp_watts
        assert spec.memory_gb > 0


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


ENTRY = "{name: X1, aliases: [%s], vendor: V, memory_gb: 8, tdp_watts: %s, idle_watts: 10, source: s%s}"


def test_a_custom_catalog_loads_and_matches_its_own_names(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, f"gpus:\n  - {ENTRY % ('x one', 100, '')}\n"))
    spec = catalog.spec("Vendor X-One")
    assert spec is not None
    assert spec.tdp_watts == 100
    assert catalog.spec("X2") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"gpus:\n  - {ENTRY % ('', 5, '')}\n", "idle_watts 10 is above tdp_watts 5"),
        (f"gpus:\n  - {ENTRY % ('', 100, ', peak: 3')}\n", "peak"),  # a field the model does not declare
        (f"gpus:\n  - {ENTRY % ('x', 100, '')}\n  - {ENTRY.replace('X1', 'X2') % ('X-', 100, '')}\n", "names both"),
        ("gpus: [", "catalog.yaml"),
    ],
)
def test_a_malformed_catalog_is_refused_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(CatalogError, match=r"catalog\.yaml") as caught:
        load_catalog(write(tmp_path, text))
    assert problem in str(caught.value)
