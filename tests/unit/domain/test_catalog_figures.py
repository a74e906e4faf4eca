"""The catalog's performance figures: every model the planning issue names has its dense BF16 peak, memory
bandwidth and interconnect with their source, the well-known dense figures are the dense ones (not the "with
sparsity" ones datasheets lead with), and prices are left for a site to set."""

from __future__ import annotations

import pytest

from aidc.domain.catalog import default_catalog, gpu_spec

# The models the issue names, by the names people write.
NAMED = ["H100 SXM", "H100 PCIe", "H200", "B200", "A100 80GB", "L40S", "L4", "MI300X", "T4", "P100", "V100", "A10"]


@pytest.mark.parametrize("model", NAMED)
def test_every_named_model_has_its_peak_bandwidth_and_interconnect(model: str) -> None:
    spec = gpu_spec(model)
    assert spec is not None, model
    assert spec.bf16_tflops is not None
    assert spec.bf16_tflops > 0
    assert spec.memory_bandwidth_gbs is not None
    assert spec.memory_bandwidth_gbs > 0
    assert spec.interconnect
    assert spec.perf_source


def test_every_model_of_the_file_has_the_figures_and_names_their_source() -> None:
    for spec in default_catalog().gpus:
        assert spec.bf16_tflops, spec.name
        assert spec.memory_bandwidth_gbs, spec.name
        assert spec.interconnect, spec.name
        assert spec.perf_source, spec.name


@pytest.mark.parametrize(
    ("model", "bf16", "fp8"),
    [
        # Datasheets: H100 SXM 1,979 / 3,958 "with sparsity"; A100 312 dense (624 sparse); MI300X 1,307.4 /
        # 2,614.9 dense; HGX B200 4.5 / 9 PFLOPS per GPU with sparsity.
        ("H100 SXM", 989, 1979),
        ("H200", 989, 1979),
        ("A100 80GB", 312, None),
        ("MI300X", 1307.4, 2614.9),
        ("B200", 2250, 4500),
    ],
)
def test_well_known_peaks_are_the_dense_figures(model: str, bf16: float, fp8: float | None) -> None:
    spec = gpu_spec(model)
    assert spec is not None
    assert spec.bf16_tflops == pytest.approx(bf16, rel=0.001)
    assert spec.fp8_tflops == (None if fp8 is None else pytest.approx(fp8, rel=0.001))


def test_fp8_is_twice_bf16_where_both_are_given_so_neither_is_a_sparse_figure_beside_a_dense_one() -> None:
    both = [spec for spec in default_catalog().gpus if spec.fp8_tflops is not None]
    assert len(both) >= 10
    for spec in both:
        assert spec.bf16_tflops is not None
        assert spec.fp8_tflops is not None
        assert spec.fp8_tflops / spec.bf16_tflops == pytest.approx(2, rel=0.03), spec.name


@pytest.mark.parametrize("model", ["A100", "V100", "T4", "P100", "A10", "A40"])
def test_gpus_without_fp8_have_no_fp8_figure(model: str) -> None:
    spec = gpu_spec(model)
    assert spec is not None
    assert spec.fp8_tflops is None


def test_prices_are_not_shipped() -> None:
    for spec in default_catalog().gpus:
        assert spec.list_price_usd is None, spec.name
        assert spec.hourly_price_usd is None, spec.name
