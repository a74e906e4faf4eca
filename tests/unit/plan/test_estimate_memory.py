"""Memory estimates: 16 bytes per parameter to train (states sharded over the GPUs), weights plus KV cache to
serve, the KV cache only from a known shape; and the model presets that give shapes, whose parameter counts
must follow from the attention shape they state."""

from __future__ import annotations

import pytest

from aidc.domain.catalog import GpuSpec, gpu_spec
from aidc.plan.estimate import EstimateRequest, estimate
from aidc.plan.memory import ModelShape, ServePrecision, kv_bytes_per_token, serving_memory, training_memory
from aidc.plan.presets import model_preset, shipped_presets


def gpu(name: str) -> GpuSpec:
    spec = gpu_spec(name)
    assert spec is not None
    return spec


def preset_shape(name: str) -> tuple[float, ModelShape]:
    preset = model_preset(name)
    assert preset is not None
    return preset.params, ModelShape(preset.layers, preset.kv_heads, preset.head_dim)


def test_training_405b_at_16_bytes_per_param_needs_at_least_81_gpus_of_80gb() -> None:
    memory = training_memory(405e9, gpu("H100"))
    assert memory.total_bytes == pytest.approx(405e9 * 16)
    assert memory.min_gpus >= 81
    assert training_memory(405e9, gpu("A100 80GB")).min_gpus >= 81


def test_training_gpus_are_the_total_over_one_gpus_memory_rounded_up() -> None:
    assert training_memory(5e9, gpu("H100")).min_gpus == 1  # 80 GB: exactly one
    assert training_memory(5.1e9, gpu("H100")).min_gpus == 2
    assert training_memory(12e9, gpu("MI300X")).min_gpus == 1  # 192 GB


def test_kv_cache_per_token_of_llama_3_1_8b_is_128_kib() -> None:
    _, shape = preset_shape("llama-3.1-8b")
    assert kv_bytes_per_token(shape) == 2 * 32 * 8 * 128 * 2 == 128 * 1024
    assert kv_bytes_per_token(shape, "fp8") == 64 * 1024


def test_serving_llama_3_1_70b_in_bf16_does_not_fit_one_h100_but_fits_two() -> None:
    params, shape = preset_shape("llama-3.1-70b")
    serving = serving_memory(params, gpu("H100"), "bf16", shape, context=8192, batch=1)
    assert not serving.fits_one_gpu
    assert serving.min_gpus == 2
    assert serving.kv_cache_bytes == pytest.approx(2 * 80 * 8 * 128 * 2 * 8192)
    assert serving.total_bytes == pytest.approx(params * 2 + 2 * 80 * 8 * 128 * 2 * 8192)


def test_lower_serving_precision_shrinks_the_weights() -> None:
    params, shape = preset_shape("llama-3.1-70b")
    precisions: tuple[ServePrecision, ...] = ("bf16", "fp8", "int4")
    sizes = {p: serving_memory(params, gpu("H100"), p, shape).weight_bytes for p in precisions}
    assert sizes == {"bf16": params * 2, "fp8": params * 1, "int4": params * 0.5}
    assert serving_memory(params, gpu("H100"), "int4", shape).fits_one_gpu


def test_the_kv_cache_grows_with_context_and_batch() -> None:
    params, shape = preset_shape("llama-3.1-8b")
    one = serving_memory(params, gpu("H100"), "bf16", shape, context=8192, batch=1)
    many = serving_memory(params, gpu("H100"), "bf16", shape, context=32768, batch=8)
    assert one.kv_cache_bytes is not None
    assert many.kv_cache_bytes == pytest.approx(one.kv_cache_bytes * 4 * 8)


def test_without_a_shape_the_kv_cache_is_not_guessed_and_a_note_says_so() -> None:
    serving = serving_memory(70e9, gpu("H100"), "bf16", None)
    assert serving.kv_cache_bytes is None
    assert serving.kv_bytes_per_token is None
    assert serving.total_bytes == pytest.approx(70e9 * 2)
    result = estimate(EstimateRequest(params=70e9), gpu("H100"))
    assert result.to_dict()["serving"]["kv_counted"] is False
    assert any("KV cache not counted" in note for note in result.notes)


def test_presets_name_their_source_and_are_found_by_name_or_alias_only_exactly() -> None:
    assert len(shipped_presets()) >= 5
    for preset in shipped_presets():
        assert "huggingface.co" in preset.source
        assert "config.json" in preset.source
    found = model_preset("meta-llama/Llama-3.1-70B")
    assert found is not None
    assert found.name == "llama-3.1-70b"
    assert model_preset("LLAMA_3.1_8B") is not None
    assert model_preset("llama-3.1") is None
    assert model_preset("llama-3.1-71b") is None


@pytest.mark.parametrize(
    ("name", "vocab", "hidden", "heads", "inter", "experts", "active"),
    [
        # Sizes from each model's config.json (the preset names the file).
        ("llama-3.1-8b", 128256, 4096, 32, 14336, 1, 1),
        ("llama-3.1-70b", 128256, 8192, 64, 28672, 1, 1),
        ("llama-3.1-405b", 128256, 16384, 128, 53248, 1, 1),
        ("llama-2-7b", 32000, 4096, 32, 11008, 1, 1),
        ("llama-2-70b", 32000, 8192, 64, 28672, 1, 1),
        ("mistral-7b-v0.1", 32000, 4096, 32, 14336, 1, 1),
        ("mixtral-8x7b", 32000, 4096, 32, 14336, 8, 2),
    ],
)
def test_preset_parameter_counts_follow_from_their_shapes(
    name: str, vocab: int, hidden: int, heads: int, inter: int, experts: int, active: int
) -> None:
    """The counted parameters (untied embeddings, q/k/v/o, SwiGLU MLP per expert, router, RMSNorms) equal
    the preset's, which ties its layers, kv_heads and head_dim to its params."""
    preset = model_preset(name)
    assert preset is not None
    hd, kv = preset.head_dim, preset.kv_heads
    attention = hidden * heads * hd * 2 + 2 * hidden * kv * hd
    router = hidden * experts if experts > 1 else 0

    def count(mlps: int) -> int:
        return (
            2 * vocab * hidden + preset.layers * (attention + mlps * 3 * hidden * inter + router + 2 * hidden) + hidden
        )

    assert preset.params == count(experts)
    assert (preset.active_params or preset.params) == count(active)
