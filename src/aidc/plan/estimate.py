"""Back-of-the-envelope estimates for training and serving a model on a GPU model of the catalog: compute,
time, GPU-hours, energy, cost and memory. Pure: figures in, figures out (`aidc plan estimate` prints them).

Formulas and assumptions:
- Training compute: FLOPs = 6 x N x D (Kaplan et al. 2020; the Llama 3 paper's 3.8e25 for 405B on 15.6T
  tokens): 2 per parameter per token forward, 4 backward. N is the parameters each token goes through
  (`active_params` for a mixture of experts, otherwise all of them); attention's own FLOPs
  (~6 x layers x context x width per token) and activation recomputation are not counted.
- Time = FLOPs / (G x peak x MFU): G GPUs, peak = the catalog's dense BF16 TFLOP/s (or dense FP8 with
  precision fp8), MFU = the share of that peak the run achieves (Llama 3 405B reported 38-43% in BF16
  on 16,384 H100). Failures, restarts and checkpoint pauses are not counted: MFU is read as achieved
  over the whole wall time, so fold them into it (or add them) when comparing with a run's calendar time.
  gpu_hours = G x time; days = time / 86,400 s.
- Energy: IT = G x TDP x power_fraction x time; facility = IT x PUE. The default power_fraction 1.0 takes
  every GPU at its TDP the whole run (an upper bound for the GPUs; the Llama model cards count the same
  way), and CPUs, network and storage are left out: they sit in the PUE only as far as it covers them.
  The default PUE is 1.58, the industry average (Uptime Institute 2023), the same default as `aidc sim`;
  1.0 gives the GPUs' own energy. Both `it_energy_mwh` and `energy_mwh` (facility) are reported.
- Cost = gpu_hours x price per GPU-hour (given, else the catalog's `hourly_price_usd`, which only a site
  catalog sets) + facility energy x price per kWh when one is given (give it only when the GPU-hour price
  leaves power out, as an amortized price of owned GPUs may; rented GPU-hours include it). With no
  price per GPU-hour the cost is None and a note says which option gives it.
- Memory: see `aidc.plan.memory` (16 bytes per parameter to train, activations not counted; weights plus
  KV cache to serve, the KV cache only when the model's shape is known).

The notes of an estimate name the options of `aidc plan estimate` that change what they are about.
Inputs are checked here; a bad one raises InvalidEstimate naming the input by its option's name
(`mfu`, `power_fraction`...), so the CLI can say `--mfu: ...`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from aidc.domain.catalog import GpuSpec
from aidc.plan.memory import (
    KV_BYTES,
    TRAINING_BYTES_PER_PARAM,
    WEIGHT_BYTES,
    KvPrecision,
    ModelShape,
    ServePrecision,
    ServingMemory,
    TrainingMemory,
    serving_memory,
    training_memory,
)

__all__ = [
    "DEFAULT_MFU",
    "DEFAULT_PUE",
    "FLOPS_PER_PARAM_PER_TOKEN",
    "Estimate",
    "EstimateRequest",
    "InvalidEstimate",
    "TrainingEstimate",
    "TrainingPrecision",
    "estimate",
    "parse_count",
    "peak_tflops",
    "training_flops",
]

TrainingPrecision = Literal["bf16", "fp8"]

FLOPS_PER_PARAM_PER_TOKEN = 6  # 2 forward + 4 backward
DEFAULT_MFU = 0.4
# The same default as `aidc sim` (aidc.sim.metrics.DEFAULT_PUE): the Uptime Institute's 2023 average.
DEFAULT_PUE = 1.58
SECONDS_PER_DAY = 86_400.0
_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}


class InvalidEstimate(ValueError):
    """An input an estimate cannot use; `field` is the input's name (its option's, with '_' for '-')."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class EstimateRequest:
    """What to estimate. `tokens` and `gpus` None: no training time, energy or cost (memory only)."""

    params: float
    tokens: float | None = None
    gpus: int | None = None
    mfu: float = DEFAULT_MFU
    precision: TrainingPrecision = "bf16"
    active_params: float | None = None
    power_fraction: float = 1.0
    pue: float = DEFAULT_PUE
    price_per_gpu_hour: float | None = None
    price_per_kwh: float | None = None
    serve_precision: ServePrecision = "bf16"
    kv_precision: KvPrecision = "bf16"
    context: int = 8192
    batch: int = 1
    shape: ModelShape | None = None
    model: str | None = None  # the preset the figures came from, for the record


@dataclass(frozen=True)
class TrainingEstimate:
    flops: float
    peak_tflops: float  # per GPU, at the precision trained in
    seconds: float
    gpu_hours: float
    it_energy_mwh: float
    energy_mwh: float
    gpu_cost: float | None
    energy_cost: float | None
    price_per_gpu_hour: float | None
    price_from: str | None  # "option" or "catalog"

    @property
    def days(self) -> float:
        return self.seconds / SECONDS_PER_DAY

    @property
    def cost(self) -> float | None:
        """GPU time plus energy when priced; None without a price per GPU-hour (energy alone is not the cost)."""
        if self.gpu_cost is None:
            return None
        return self.gpu_cost + (self.energy_cost or 0.0)


@dataclass(frozen=True)
class Estimate:
    request: EstimateRequest
    gpu: GpuSpec
    training: TrainingEstimate | None
    training_memory: TrainingMemory
    serving: ServingMemory
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The estimate as JSON-ready data: training figures at the top (null without tokens), memory nested."""
        req, train, serve = self.request, self.training, self.serving
        return {
            "gpu_model": self.gpu.name,
            "model": req.model,
            "params": req.params,
            "active_params": req.active_params if req.active_params is not None else req.params,
            "tokens": req.tokens,
            "gpus": req.gpus,
            "mfu": req.mfu,
            "precision": req.precision,
            "peak_tflops_per_gpu": train.peak_tflops if train else peak_tflops(self.gpu, req.precision),
            "flops": train.flops if train else None,
            "seconds": train.seconds if train else None,
            "days": train.days if train else None,
            "gpu_hours": train.gpu_hours if train else None,
            "it_energy_mwh": train.it_energy_mwh if train else None,
            "energy_mwh": train.energy_mwh if train else None,
            "cost": train.cost if train else None,
            "cost_breakdown": {
                "gpu_usd": train.gpu_cost if train else None,
                "energy_usd": train.energy_cost if train else None,
                "price_per_gpu_hour": train.price_per_gpu_hour if train else None,
                "price_per_gpu_hour_from": train.price_from if train else None,
                "price_per_kwh": req.price_per_kwh,
            },
            "training_memory": {
                "bytes_per_param": self.training_memory.bytes_per_param,
                "total_gb": self.training_memory.total_bytes / 1e9,
                "gpu_memory_gb": self.training_memory.gpu_bytes / 1e9,
                "min_gpus": self.training_memory.min_gpus,
                "activations_counted": False,
            },
            "serving": {
                "precision": serve.precision,
                "kv_precision": serve.kv_precision,
                "weights_gb": serve.weight_bytes / 1e9,
                "kv_bytes_per_token": serve.kv_bytes_per_token,
                "kv_cache_gb": None if serve.kv_cache_bytes is None else serve.kv_cache_bytes / 1e9,
                "kv_counted": serve.kv_counted,
                "context": serve.context,
                "batch": serve.batch,
                "total_gb": serve.total_bytes / 1e9,
                "gpu_memory_gb": serve.gpu_bytes / 1e9,
                "fits_one_gpu": serve.fits_one_gpu,
                "min_gpus": serve.min_gpus,
            },
            "assumptions": {
                "flops_per_param_per_token": FLOPS_PER_PARAM_PER_TOKEN,
                "power_fraction": req.power_fraction,
                "pue": req.pue,
                "tdp_watts": self.gpu.tdp_watts,
                "training_bytes_per_param": TRAINING_BYTES_PER_PARAM,
                "serving_bytes_per_param": WEIGHT_BYTES[serve.precision],
                "kv_bytes_per_value": KV_BYTES[serve.kv_precision],
                "gpu_memory": "memory_gb x 1e9 bytes",
                "perf_source": self.gpu.perf_source,
            },
            "notes": list(self.notes),
        }


def parse_count(text: str) -> float:
    """A count as people write it: "405e9", "405B", "15.6T", "7_000_000"; k/M/B (or G)/T/P suffixes.
    Raises ValueError."""
    match = re.fullmatch(r"\s*([0-9][0-9_.,]*(?:e[+-]?[0-9]+)?)\s*([kmbgtp]?)\s*", text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"cannot read {text!r} as a number (e.g. 405e9, 405B, 15.6T)")
    try:
        value = float(match.group(1).replace(",", "").replace("_", ""))
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a number (e.g. 405e9, 405B, 15.6T)") from None
    return value * _SUFFIXES.get(match.group(2).lower(), 1.0)


def training_flops(params: float, tokens: float) -> float:
    """6 x N x D (see the module)."""
    return FLOPS_PER_PARAM_PER_TOKEN * params * tokens


def peak_tflops(gpu: GpuSpec, precision: TrainingPrecision) -> float | None:
    """The catalog's dense peak for a precision, None when the catalog has no figure."""
    return gpu.fp8_tflops if precision == "fp8" else gpu.bf16_tflops


def estimate(request: EstimateRequest, gpu: GpuSpec) -> Estimate:
    """Training time, energy and cost (when tokens are given) and memory, on GPUs of `gpu`'s model.
    Raises InvalidEstimate for an input it cannot use."""
    _check(request)
    notes: list[str] = []
    training = None
    if request.tokens is not None:
        if request.gpus is None:
            raise InvalidEstimate("gpus", "give the number of GPUs training runs on, with --tokens")
        training = _training(request, gpu, notes)
    else:
        notes.append("training time, energy and cost: give --tokens (and --gpus)")
    active = request.active_params if request.active_params is not None else request.params
    if active != request.params:
        notes.append(f"mixture of experts: FLOPs count {active:.4g} active parameters, memory all {request.params:.4g}")
    memory = training_memory(request.params, gpu)
    notes.append(
        f"training memory: {TRAINING_BYTES_PER_PARAM} bytes/param (bf16 weights and grads, fp32 master, Adam m and v),"
        " sharded over the GPUs; activations not counted"
    )
    serving = serving_memory(
        request.params,
        gpu,
        request.serve_precision,
        request.shape,
        request.context,
        request.batch,
        request.kv_precision,
    )
    if request.shape is None:
        notes.append("serving: KV cache not counted (no model shape): give --model, or --layers --kv-heads --head-dim")
    return Estimate(request, gpu, training, memory, serving, tuple(notes))


def _training(request: EstimateRequest, gpu: GpuSpec, notes: list[str]) -> TrainingEstimate:
    tokens, gpus = request.tokens, request.gpus
    if tokens is None or gpus is None:  # the caller checks; here for the type checker
        raise InvalidEstimate("tokens", "training needs --tokens and --gpus")
    peak = peak_tflops(gpu, request.precision)
    if peak is None:
        if request.precision == "fp8":
            raise InvalidEstimate("precision", f"{gpu.name} has no FP8 figure in the catalog (no FP8, or not given)")
        raise InvalidEstimate("gpu_model", f"{gpu.name} has no bf16_tflops in the catalog; add it in a site catalog")
    active = request.active_params if request.active_params is not None else request.params
    flops = training_flops(active, tokens)
    seconds = flops / (gpus * peak * 1e12 * request.mfu)
    gpu_hours = gpus * seconds / 3600.0
    it_mwh = gpu_hours * gpu.tdp_watts * request.power_fraction / 1e6
    energy_mwh = it_mwh * request.pue
    price, price_from = request.price_per_gpu_hour, "option"
    if price is None:
        price, price_from = gpu.hourly_price_usd, "catalog"
    energy_cost = None if request.price_per_kwh is None else energy_mwh * 1000.0 * request.price_per_kwh
    if price is None:
        notes.append(
            "cost: no price per GPU-hour known: give --price-per-gpu-hour, or set hourly_price_usd for"
            f" {gpu.name} in a site catalog (--catalog)"
        )
    notes.append(
        f"energy: GPUs at {request.power_fraction:g} x TDP ({gpu.tdp_watts:g} W) the whole run, PUE {request.pue:g};"
        " CPUs, network and storage not counted beyond the PUE"
    )
    notes.append("time: failures, restarts and checkpoint pauses not counted (fold them into --mfu)")
    return TrainingEstimate(
        flops=flops,
        peak_tflops=peak,
        seconds=seconds,
        gpu_hours=gpu_hours,
        it_energy_mwh=it_mwh,
        energy_mwh=energy_mwh,
        gpu_cost=None if price is None else gpu_hours * price,
        energy_cost=energy_cost,
        price_per_gpu_hour=price,
        price_from=None if price is None else price_from,
    )


def _check(request: EstimateRequest) -> None:
    def positive(name: str, value: float | None) -> None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InvalidEstimate(name, f"must be a number above 0, not {value:g}")

    positive("params", request.params)
    positive("tokens", request.tokens)
    positive("active_params", request.active_params)
    if request.active_params is not None and request.active_params > request.params:
        raise InvalidEstimate("active_params", f"{request.active_params:g} is above --params {request.params:g}")
    if request.gpus is not None and request.gpus < 1:
        raise InvalidEstimate("gpus", f"must be at least 1, not {request.gpus}")
    if not (0 < request.mfu <= 1):
        raise InvalidEstimate("mfu", f"must be in (0, 1] (a share of the peak, e.g. 0.4), not {request.mfu:g}")
    if not (0 < request.power_fraction <= 1):
        raise InvalidEstimate("power_fraction", f"must be in (0, 1] (a share of TDP), not {request.power_fraction:g}")
    if not (math.isfinite(request.pue) and request.pue >= 1):
        raise InvalidEstimate("pue", f"must be at least 1 (a facility draws at least its IT load), not {request.pue:g}")
    for name, price in (("price_per_gpu_hour", request.price_per_gpu_hour), ("price_per_kwh", request.price_per_kwh)):
        if price is not None and not (math.isfinite(price) and price >= 0):
            raise InvalidEstimate(name, f"must be 0 or more, not {price:g}")
    if request.precision not in ("bf16", "fp8"):
        raise InvalidEstimate("precision", f"must be bf16 or fp8, not {request.precision!r}")
    if request.serve_precision not in WEIGHT_BYTES:
        raise InvalidEstimate(
            "serve_precision", f"must be one of {', '.join(WEIGHT_BYTES)}, not {request.serve_precision!r}"
        )
    if request.kv_precision not in KV_BYTES:
        raise InvalidEstimate("kv_precision", f"must be one of {', '.join(KV_BYTES)}, not {request.kv_precision!r}")
    for name, count in (("context", request.context), ("batch", request.batch)):
        if count < 1:
            raise InvalidEstimate(name, f"must be at least 1, not {count}")
    if request.shape is not None:
        for name in ("layers", "kv_heads", "head_dim"):
            if getattr(request.shape, name) < 1:
                raise InvalidEstimate(name, f"must be at least 1, not {getattr(request.shape, name)}")
