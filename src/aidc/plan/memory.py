"""GPU memory a model needs: to train it (weights, gradients and optimizer states) and to serve it
(weights and KV cache), and how many GPUs of a model that takes. Pure arithmetic.

Training, mixed precision with Adam: 16 bytes per parameter = bf16 weights 2 + bf16 gradients 2 + fp32
master weights 4 + Adam first moment 4 + second moment 4 (the ZeRO paper's accounting). The states are
taken as sharded over the GPUs (ZeRO-3 / FSDP style), so the minimum GPU count is the total over one GPU's
memory, rounded up. Activations are NOT counted: they depend on the micro-batch, the sequence length and
the recomputation chosen, and come on top.

Serving: weights (2 bytes per parameter in bf16, 1 in fp8, 0.5 in int4) plus the KV cache,
2 (K and V) x layers x kv_heads x head_dim x bytes per value x context x batch. Without the model's
shape the KV cache is not guessed: the result says it was left out. Activations, the CUDA context and
the serving engine's own overhead are not counted either (engines such as vLLM keep about 10% back),
and tensor parallelism usually wants a GPU count that divides the attention heads (1, 2, 4, 8): the
minimum here is the memory bound alone.

GPU memory is `memory_gb` x 1e9 bytes, the vendor's figure read as decimal GB. Vendors' "80GB" parts
often carry 80 GiB, of which less is usable, so the reading is on the safe side."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from aidc.domain.catalog import GpuSpec

__all__ = [
    "KV_BYTES",
    "TRAINING_BYTES_PER_PARAM",
    "WEIGHT_BYTES",
    "KvPrecision",
    "ModelShape",
    "ServePrecision",
    "ServingMemory",
    "TrainingMemory",
    "gpu_memory_bytes",
    "kv_bytes_per_token",
    "serving_memory",
    "training_memory",
]

ServePrecision = Literal["bf16", "fp8", "int4"]
KvPrecision = Literal["bf16", "fp8"]

TRAINING_BYTES_PER_PARAM = 16  # bf16 weights 2 + bf16 grads 2 + fp32 master 4 + Adam m 4 + Adam v 4
WEIGHT_BYTES: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "int4": 0.5}
KV_BYTES: dict[str, int] = {"bf16": 2, "fp8": 1}


@dataclass(frozen=True)
class ModelShape:
    """What the KV cache of a transformer follows."""

    layers: int
    kv_heads: int
    head_dim: int


@dataclass(frozen=True)
class TrainingMemory:
    bytes_per_param: int
    total_bytes: float
    gpu_bytes: float
    min_gpus: int


@dataclass(frozen=True)
class ServingMemory:
    precision: str
    kv_precision: str
    weight_bytes: float
    kv_bytes_per_token: int | None  # None: no shape, the KV cache is not counted
    kv_cache_bytes: float | None
    context: int
    batch: int
    total_bytes: float
    gpu_bytes: float
    min_gpus: int

    @property
    def fits_one_gpu(self) -> bool:
        return self.min_gpus == 1

    @property
    def kv_counted(self) -> bool:
        return self.kv_cache_bytes is not None


def gpu_memory_bytes(gpu: GpuSpec) -> float:
    """One GPU's memory in bytes (decimal GB, see the module)."""
    return gpu.memory_gb * 1e9


def _gpus_for(total_bytes: float, gpu_bytes: float) -> int:
    # A hair of tolerance, so that 6.48e12 over 80e9 stays 81 rather than 82 through float rounding.
    return max(1, math.ceil(total_bytes / gpu_bytes - 1e-9))


def training_memory(params: float, gpu: GpuSpec) -> TrainingMemory:
    """Weights, gradients and Adam states of `params` parameters, and the fewest GPUs that hold them."""
    total = params * TRAINING_BYTES_PER_PARAM
    gpu_bytes = gpu_memory_bytes(gpu)
    return TrainingMemory(TRAINING_BYTES_PER_PARAM, total, gpu_bytes, _gpus_for(total, gpu_bytes))


def kv_bytes_per_token(shape: ModelShape, kv_precision: KvPrecision = "bf16") -> int:
    """KV cache bytes per token of context: 2 (K and V) x layers x kv_heads x head_dim x bytes."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * KV_BYTES[kv_precision]


def serving_memory(
    params: float,
    gpu: GpuSpec,
    precision: ServePrecision = "bf16",
    shape: ModelShape | None = None,
    context: int = 8192,
    batch: int = 1,
    kv_precision: KvPrecision = "bf16",
) -> ServingMemory:
    """Weights plus (with a shape) the KV cache of `batch` sequences of `context` tokens, and the fewest
    GPUs of this model that hold them."""
    weights = params * WEIGHT_BYTES[precision]
    per_token = None if shape is None else kv_bytes_per_token(shape, kv_precision)
    kv_cache = None if per_token is None else float(per_token) * context * batch
    total = weights + (kv_cache or 0.0)
    gpu_bytes = gpu_memory_bytes(gpu)
    return ServingMemory(
        precision=precision,
        kv_precision=kv_precision,
        weight_bytes=weights,
        kv_bytes_per_token=per_token,
        kv_cache_bytes=kv_cache,
        context=context,
        batch=batch,
        total_bytes=total,
        gpu_bytes=gpu_bytes,
        min_gpus=_gpus_for(total, gpu_bytes),
    )
