"""Training estimates checked against published runs, and the formulas and input checks behind them.

Published runs used as checks (each within 2x, an estimate's honest reach):
- Llama 3 405B: "The Llama 3 Herd of Models" (Llama Team, AI @ Meta, 2024), sections 3.3-3.4: 405B parameters
  on 15.6T tokens, 3.8e25 FLOPs, up to 16,384 H100 GPUs at 38-43% MFU (BF16); the reliability section
  covers a 54-day snapshot of the pre-training. Llama 3.1 model card (github.com/meta-llama/llama-models,
  models/llama3_1/MODEL_CARD.md): 30.84M H100-80GB GPU-hours for 405B.
- Llama 2 70B: "Llama 2: Open Foundation and Fine-Tuned Chat Models" (Touvron et al., 2023), Table 2:
  2.0T tokens, 1,720,320 A100-80GB GPU-hours."""

from __future__ import annotations

import pytest

from aidc.domain.catalog import GpuSpec, gpu_spec
from aidc.plan.estimate import (
    DEFAULT_PUE,
    EstimateRequest,
    InvalidEstimate,
    estimate,
    parse_count,
    training_flops,
)


def gpu(name: str) -> GpuSpec:
    spec = gpu_spec(name)
    assert spec is not None
    return spec


def test_llama3_405b_training_flops_are_the_papers_3_8e25_within_1_percent() -> None:
    assert training_flops(405e9, 15.6e12) == pytest.approx(3.8e25, rel=0.01)


@pytest.mark.parametrize("mfu", [0.38, 0.40, 0.43])
def test_llama3_405b_on_16384_h100_lands_within_2x_of_the_reported_days_and_gpu_hours(mfu: float) -> None:
    result = estimate(EstimateRequest(params=405e9, tokens=15.6e12, gpus=16384, mfu=mfu), gpu("H100 SXM"))
    training = result.training
    assert training is not None
    assert 54 / 2 <= training.days <= 54 * 2
    assert 30.84e6 / 2 <= training.gpu_hours <= 30.84e6 * 2


def test_llama2_70b_gpu_hours_on_a100_80gb_land_within_2x_of_the_reported_1_72m() -> None:
    result = estimate(EstimateRequest(params=70e9, tokens=2e12, gpus=2048, mfu=0.4), gpu("A100 80GB"))
    assert result.training is not None
    assert 1.72e6 / 2 <= result.training.gpu_hours <= 1.72e6 * 2


def test_time_is_flops_over_gpus_times_peak_times_mfu_and_gpu_hours_do_not_depend_on_the_gpu_count() -> None:
    h100 = gpu("H100")
    small = estimate(EstimateRequest(params=1e9, tokens=1e12, gpus=8, mfu=0.5), h100).training
    large = estimate(EstimateRequest(params=1e9, tokens=1e12, gpus=64, mfu=0.5), h100).training
    assert small is not None
    assert large is not None
    assert h100.bf16_tflops is not None
    assert small.seconds == pytest.approx(6 * 1e9 * 1e12 / (8 * h100.bf16_tflops * 1e12 * 0.5))
    assert small.seconds == pytest.approx(large.seconds * 8)
    assert small.gpu_hours == pytest.approx(large.gpu_hours)
    assert small.days == pytest.approx(small.seconds / 86_400)


def test_fp8_uses_the_fp8_peak_and_a_gpu_without_fp8_is_refused_naming_precision() -> None:
    h100 = gpu("H100")
    bf16 = estimate(EstimateRequest(params=1e9, tokens=1e12, gpus=8), h100).training
    fp8 = estimate(EstimateRequest(params=1e9, tokens=1e12, gpus=8, precision="fp8"), h100).training
    assert bf16 is not None
    assert fp8 is not None
    assert h100.fp8_tflops is not None
    assert fp8.peak_tflops == h100.fp8_tflops
    assert bf16.seconds / fp8.seconds == pytest.approx(h100.fp8_tflops / (h100.bf16_tflops or 1))
    with pytest.raises(InvalidEstimate) as caught:
        estimate(EstimateRequest(params=1e9, tokens=1e12, gpus=8, precision="fp8"), gpu("A100"))
    assert caught.value.field == "precision"


def test_energy_is_gpus_at_tdp_times_the_power_fraction_and_facility_energy_adds_the_pue() -> None:
    h100 = gpu("H100")
    result = estimate(EstimateRequest(params=1e9, tokens=1e12, gpus=8, power_fraction=0.8, pue=1.2), h100)
    t = result.training
    assert t is not None
    assert t.it_energy_mwh == pytest.approx(t.gpu_hours * h100.tdp_watts * 0.8 / 1e6)
    assert t.energy_mwh == pytest.approx(t.it_energy_mwh * 1.2)


def test_the_default_pue_is_the_simulators() -> None:
    from aidc.sim.metrics import DEFAULT_PUE as SIM_DEFAULT_PUE

    assert DEFAULT_PUE == SIM_DEFAULT_PUE
    assert EstimateRequest(params=1).pue == DEFAULT_PUE


def test_cost_is_unknown_without_a_price_and_a_note_names_the_options_that_give_one() -> None:
    result = estimate(EstimateRequest(params=1e9, tokens=1e12, gpus=8, price_per_kwh=0.1), gpu("H100"))
    assert result.training is not None
    assert result.training.cost is None
    assert result.training.energy_cost is not None  # known, but energy alone is not the cost
    assert any("--price-per-gpu-hour" in note and "hourly_price_usd" in note for note in result.notes)
    data = result.to_dict()
    assert data["cost"] is None
    assert data["cost_breakdown"]["energy_usd"] == pytest.approx(result.training.energy_mwh * 1000 * 0.1)


def test_cost_is_gpu_hours_at_the_price_plus_facility_energy_at_the_kwh_price() -> None:
    result = estimate(
        EstimateRequest(params=1e9, tokens=1e12, gpus=8, price_per_gpu_hour=2.0, price_per_kwh=0.1), gpu("H100")
    )
    t = result.training
    assert t is not None
    assert t.price_from == "option"
    assert t.cost == pytest.approx(t.gpu_hours * 2.0 + t.energy_mwh * 1000 * 0.1)
    assert not any(note.startswith("cost:") for note in result.notes)


def test_the_catalogs_hourly_price_is_used_when_no_price_is_given() -> None:
    priced = gpu("H100").model_copy(update={"hourly_price_usd": 3.0})
    t = estimate(EstimateRequest(params=1e9, tokens=1e12, gpus=8), priced).training
    assert t is not None
    assert (t.price_per_gpu_hour, t.price_from) == (3.0, "catalog")
    assert t.cost == pytest.approx(t.gpu_hours * 3.0)
    given = estimate(EstimateRequest(params=1e9, tokens=1e12, gpus=8, price_per_gpu_hour=1.0), priced).training
    assert given is not None
    assert given.cost == pytest.approx(given.gpu_hours * 1.0)  # the option wins over the catalog


def test_a_mixture_of_experts_counts_active_parameters_for_flops_and_all_for_memory() -> None:
    h100 = gpu("H100")
    result = estimate(EstimateRequest(params=47e9, active_params=13e9, tokens=1e12, gpus=8), h100)
    assert result.training is not None
    assert result.training.flops == pytest.approx(6 * 13e9 * 1e12)
    assert result.training_memory.total_bytes == pytest.approx(16 * 47e9)


def test_without_tokens_there_is_no_training_estimate_but_memory_still_is() -> None:
    result = estimate(EstimateRequest(params=7e9), gpu("H100"))
    assert result.training is None
    data = result.to_dict()
    assert (data["flops"], data["gpu_hours"], data["days"], data["energy_mwh"], data["cost"]) == (None,) * 5
    assert data["training_memory"]["min_gpus"] >= 1
    assert any("--tokens" in note for note in result.notes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"params": 0}, "params"),
        ({"params": -5}, "params"),
        ({"params": float("nan")}, "params"),
        ({"tokens": 0}, "tokens"),
        ({"gpus": 0}, "gpus"),
        ({"gpus": None}, "gpus"),
        ({"mfu": 0}, "mfu"),
        ({"mfu": 1.2}, "mfu"),
        ({"power_fraction": 0}, "power_fraction"),
        ({"power_fraction": 1.5}, "power_fraction"),
        ({"pue": 0.9}, "pue"),
        ({"price_per_gpu_hour": -1}, "price_per_gpu_hour"),
        ({"price_per_kwh": -0.1}, "price_per_kwh"),
        ({"active_params": 2e9}, "active_params"),
        ({"precision": "fp4"}, "precision"),
        ({"serve_precision": "fp16"}, "serve_precision"),
        ({"kv_precision": "int4"}, "kv_precision"),
        ({"context": 0}, "context"),
        ({"batch": 0}, "batch"),
    ],
)
def test_bad_inputs_are_refused_naming_the_input(changes: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"params": 1e9, "tokens": 1e12, "gpus": 8} | changes
    with pytest.raises(InvalidEstimate) as caught:
        estimate(EstimateRequest(**base), gpu("H100"))  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_gpu_without_a_bf16_peak_is_refused_naming_the_gpu_model() -> None:
    bare = gpu("H100").model_copy(update={"bf16_tflops": None})
    with pytest.raises(InvalidEstimate) as caught:
        estimate(EstimateRequest(params=1e9, tokens=1e12, gpus=8), bare)
    assert caught.value.field == "gpu_model"


@pytest.mark.parametrize(
    ("text", "value"),
    [("405e9", 405e9), ("405B", 405e9), ("15.6T", 15.6e12), ("15.6t", 15.6e12), ("7_000", 7000), ("2.5M", 2.5e6)],
)
def test_counts_are_read_as_people_write_them(text: str, value: float) -> None:
    assert parse_count(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "lots", "5X", "1e", "B"])
def test_unreadable_counts_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        parse_count(text)
