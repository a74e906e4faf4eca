"""`aidc plan`: offline planning on the GPU catalog, no server needed.

`aidc plan estimate` prints the time, GPU-hours, energy and cost of training a model and the memory to
train and to serve it (`aidc.plan.estimate`, whose docstring gives the formulas); `aidc plan gpus` lists the
catalog, `aidc plan models` the model presets. Each takes `--catalog FILE` (env AIDC_GPU_CATALOG): a site's
catalog merged over the shipped one (`aidc.domain.catalog.load_site_catalog`), e.g. to set prices."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, fail
from aidc.plan.estimate import DEFAULT_MFU, DEFAULT_PUE

if TYPE_CHECKING:
    from aidc.domain.catalog import GpuCatalog, GpuSpec
    from aidc.plan.estimate import Estimate
    from aidc.plan.memory import ModelShape
    from aidc.plan.presets import ModelPreset

app = typer.Typer(
    name="plan",
    no_args_is_help=True,
    help="Plan hardware offline: training and serving estimates from the GPU catalog, capacity on the simulator.",
)

CatalogOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        envvar="AIDC_GPU_CATALOG",
        help="A site's GPU catalog (YAML) merged over the shipped one: prices, more models",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]


def load_catalog_option(path: Path | None) -> GpuCatalog:
    """The shipped catalog, or with `--catalog` a site's merged over it. A bad file ends the command in one
    line naming the option, exit 2. Commands that run the simulator want `use_catalog_option` instead."""
    from aidc.domain.catalog import CatalogError, load_site_catalog, shipped_catalog

    if path is None:
        return shipped_catalog()
    if not path.is_file():
        fail(f"--catalog: {path}: {'not a file' if path.exists() else 'no such file'}", EXIT_USAGE)
    try:
        return load_site_catalog(path)
    except CatalogError as exc:
        fail(f"--catalog: {exc}", EXIT_USAGE)


def use_catalog_option(path: Path | None) -> GpuCatalog:
    """`load_catalog_option`, and with a --catalog installed as the process-wide catalog (`use_catalog`), for
    commands whose simulator and scorers read the catalog through `gpu_spec`. A CLI process runs one command,
    so installing it for the process is installing it for that command."""
    from aidc.domain.catalog import use_catalog

    catalog = load_catalog_option(path)
    if path is not None:
        use_catalog(catalog)
    return catalog


def resolve_gpu(catalog: GpuCatalog, name: str | None, option: str = "--gpu-model") -> GpuSpec:
    """The catalog's entry for a GPU model name, or one line naming the option and the catalog's models."""
    spec = catalog.spec(name) if name else None
    if spec is None:
        what = f"unknown GPU model {name!r}" if name else "name a GPU model"
        fail(f"{option}: {what}; the catalog has: {', '.join(catalog.names)}", EXIT_USAGE)
    return spec


@app.command()
def estimate(
    params: Annotated[
        str | None, typer.Option("--params", help="Parameters, e.g. 405e9 or 405B (default: --model's)")
    ] = None,
    tokens: Annotated[
        str | None, typer.Option("--tokens", help="Training tokens, e.g. 15.6e12 or 15.6T (none: memory only)")
    ] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs the training runs on")] = None,
    gpu_model: Annotated[str | None, typer.Option("--gpu-model", help="A GPU model of the catalog, e.g. H100")] = None,
    mfu: Annotated[
        float, typer.Option("--mfu", help="Model FLOPs utilization in (0, 1]; Llama 3 405B: 0.38-0.43")
    ] = DEFAULT_MFU,
    precision: Annotated[
        str, typer.Option("--precision", help="Training math, bf16 or fp8: the catalog peak --mfu scales")
    ] = "bf16",
    active_params: Annotated[
        str | None, typer.Option("--active-params", help="Parameters per token of a mixture of experts (FLOPs)")
    ] = None,
    power_fraction: Annotated[
        float, typer.Option("--power-fraction", help="GPU draw as a share of TDP; 1.0 = at TDP all the run")
    ] = 1.0,
    pue: Annotated[float, typer.Option("--pue", help="Facility / IT power; 1.58 = industry average, 1.0 = IT only")] = (
        DEFAULT_PUE
    ),
    price_per_gpu_hour: Annotated[
        float | None, typer.Option("--price-per-gpu-hour", help="USD per GPU-hour (default: the catalog's)")
    ] = None,
    price_per_kwh: Annotated[
        float | None, typer.Option("--price-per-kwh", help="USD per facility kWh, when GPU-hours exclude power")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="A model preset (params and shape), e.g. llama-3.1-70b")
    ] = None,
    serve_precision: Annotated[str, typer.Option("--serve-precision", help="Serving weights: bf16, fp8 or int4")] = (
        "bf16"
    ),
    kv_precision: Annotated[str, typer.Option("--kv-precision", help="KV cache values: bf16 or fp8")] = "bf16",
    context: Annotated[int, typer.Option("--context", help="Tokens of context per sequence served")] = 8192,
    batch: Annotated[int, typer.Option("--batch", help="Sequences served at once")] = 1,
    layers: Annotated[int | None, typer.Option("--layers", help="Transformer layers (KV cache)")] = None,
    kv_heads: Annotated[int | None, typer.Option("--kv-heads", help="Key/value heads (KV cache)")] = None,
    head_dim: Annotated[int | None, typer.Option("--head-dim", help="Dimension per head (KV cache)")] = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Estimate training time, GPU-hours, energy and cost, and the GPU memory to train and to serve a model."""
    from aidc.plan.estimate import EstimateRequest, InvalidEstimate
    from aidc.plan.estimate import estimate as run_estimate
    from aidc.plan.presets import model_preset, shipped_presets

    preset = None
    if model is not None:
        preset = model_preset(model)
        if preset is None:
            known = ", ".join(p.name for p in shipped_presets())
            fail(f"--model: unknown model {model!r}; the presets are: {known}", EXIT_USAGE)
    n_params = _count("--params", params) if params is not None else (preset.params if preset else None)
    if n_params is None:
        fail("--params: give the parameter count (e.g. 70e9 or 70B), or a --model preset", EXIT_USAGE)
    n_active = _count("--active-params", active_params) if active_params is not None else None
    if n_active is None and preset is not None and params is None:
        n_active = preset.active_params  # the preset's own, only with its own parameter count
    shape = _shape(layers, kv_heads, head_dim, preset)
    gpu = resolve_gpu(load_catalog_option(catalog), gpu_model)
    request = EstimateRequest(
        params=n_params,
        tokens=_count("--tokens", tokens) if tokens is not None else None,
        gpus=gpus,
        mfu=mfu,
        precision=precision,  # type: ignore[arg-type]  # checked by the estimate
        active_params=n_active,
        power_fraction=power_fraction,
        pue=pue,
        price_per_gpu_hour=price_per_gpu_hour,
        price_per_kwh=price_per_kwh,
        serve_precision=serve_precision,  # type: ignore[arg-type]
        kv_precision=kv_precision,  # type: ignore[arg-type]
        context=context,
        batch=batch,
        shape=shape,
        model=preset.name if preset else None,
    )
    try:
        result = run_estimate(request, gpu)
    except InvalidEstimate as exc:
        fail(f"--{exc.field.replace('_', '-')}: {exc.problem}", EXIT_USAGE)
    if as_json:
        render.print_json(result.to_dict())
        return
    _print_estimate(result)


def _count(option: str, text: str) -> float:
    from aidc.plan.estimate import parse_count

    try:
        return parse_count(text)
    except ValueError as exc:
        fail(f"{option}: {exc}", EXIT_USAGE)


def _shape(
    layers: int | None, kv_heads: int | None, head_dim: int | None, preset: ModelPreset | None
) -> ModelShape | None:
    """The KV cache's shape: the options given, the rest from the preset; None when neither gives any."""
    given = {"--layers": layers, "--kv-heads": kv_heads, "--head-dim": head_dim}
    if preset is not None:
        given = {
            "--layers": layers if layers is not None else preset.layers,
            "--kv-heads": kv_heads if kv_heads is not None else preset.kv_heads,
            "--head-dim": head_dim if head_dim is not None else preset.head_dim,
        }
    missing = [option for option, value in given.items() if value is None]
    if len(missing) == len(given):
        return None
    if missing:
        fail(f"{missing[0]}: give --layers, --kv-heads and --head-dim together (or a --model preset)", EXIT_USAGE)
    from aidc.plan.memory import ModelShape

    return ModelShape(given["--layers"] or 0, given["--kv-heads"] or 0, given["--head-dim"] or 0)


def _print_estimate(result: Estimate) -> None:
    data = result.to_dict()
    gpu = result.gpu
    peak = data["peak_tflops_per_gpu"]
    peak_text = f"{peak:,.4g} TFLOP/s dense {result.request.precision.upper()}" if peak else "no peak in the catalog"
    what = result.request.model or f"{_human(result.request.params)} parameters"
    render.console.print(
        f"[bold]{escape(what)}[/bold] on {escape(gpu.name)} ({peak_text}, {gpu.tdp_watts:g} W,"
        f" {gpu.memory_gb:g} GB per GPU)"
    )
    table = render.table("", "estimate")
    table.show_header = False
    if result.training is not None:
        t = result.training
        table.add_row(
            "[bold]training[/bold]",
            f"{_human(data['tokens'])} tokens on {data['gpus']:,} GPUs at MFU {result.request.mfu:g}",
        )
        table.add_row("  compute", f"{t.flops:.3g} FLOPs (6 x {_human(data['active_params'])} x tokens)")
        table.add_row("  time", f"{t.days:,.1f} days")
        table.add_row("  GPU-hours", _human(t.gpu_hours))
        table.add_row(
            "  energy",
            f"{t.it_energy_mwh:,.0f} MWh IT, {t.energy_mwh:,.0f} MWh facility (PUE {result.request.pue:g})",
        )
        table.add_row("  cost", _cost(result))
    memory = result.training_memory
    table.add_row("[bold]memory[/bold]", "")
    table.add_row(
        "  to train",
        f"{memory.total_bytes / 1e9:,.0f} GB ({memory.bytes_per_param} bytes/param) -> at least {memory.min_gpus:,}"
        f" GPUs of {gpu.memory_gb:g} GB",
    )
    serving = result.serving
    kv = (
        f" + KV cache {serving.kv_cache_bytes / 1e9:,.1f} GB ({serving.context:,} tokens x {serving.batch})"
        if serving.kv_cache_bytes is not None
        else " (KV cache not counted)"
    )
    fit = "fits one GPU" if serving.fits_one_gpu else f"does not fit one GPU: {serving.min_gpus:,} GPUs"
    table.add_row(
        "  to serve",
        f"{serving.precision} weights {serving.weight_bytes / 1e9:,.1f} GB{kv} = {serving.total_bytes / 1e9:,.1f} GB"
        f" -> {fit}",
    )
    render.console.print(table)
    for note in result.notes:
        render.console.print(f"[dim]note: {escape(note)}[/dim]")


def _cost(result: Estimate) -> str:
    t = result.training
    if t is None or t.cost is None:
        return "unknown (no price per GPU-hour; see the note)"
    parts = f"GPU time ${t.gpu_cost:,.0f} at ${t.price_per_gpu_hour:g}/GPU-hour ({t.price_from})"
    if t.energy_cost is not None:
        parts += f" + energy ${t.energy_cost:,.0f}"
    return f"${t.cost:,.0f}: {parts}"


def _human(value: float) -> str:
    """A count in the units people use for parameters, tokens and hours: 405B, 15.6T, 26.6M."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


@app.command()
def gpus(catalog: CatalogOpt = None, as_json: JsonOpt = False) -> None:
    """List the GPU catalog's models and their figures (with --catalog, a site's merged over the shipped one)."""
    models = load_catalog_option(catalog).gpus
    if as_json:
        render.print_json([spec.model_dump(mode="json") for spec in models])
        return
    table = render.table("MODEL", "MEMORY", "TDP", "BF16 TFLOP/S", "FP8 TFLOP/S", "BANDWIDTH", "$/GPU-HOUR")
    for spec in models:
        table.add_row(
            escape(spec.name),
            f"{spec.memory_gb:g} GB",
            f"{spec.tdp_watts:g} W",
            _or_dash(spec.bf16_tflops),
            _or_dash(spec.fp8_tflops),
            "-" if spec.memory_bandwidth_gbs is None else f"{spec.memory_bandwidth_gbs:,.0f} GB/s",
            _or_dash(spec.hourly_price_usd),
        )
    render.console.print(table)


@app.command()
def models(as_json: JsonOpt = False) -> None:
    """List the model presets `estimate --model` takes (parameters and KV cache shape from config.json)."""
    from aidc.plan.presets import shipped_presets

    presets = shipped_presets()
    if as_json:
        render.print_json([preset.model_dump(mode="json") for preset in presets])
        return
    table = render.table("MODEL", "PARAMS", "ACTIVE", "LAYERS", "KV HEADS", "HEAD DIM")
    for p in presets:
        active = "-" if p.active_params is None else _human(p.active_params)
        table.add_row(p.name, _human(p.params), active, str(p.layers), str(p.kv_heads), str(p.head_dim))
    render.console.print(table)


def _or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:,.6g}"


from aidc.cli import plan_capacity  # noqa: E402  (adds `aidc plan capacity` to `app`; it imports `app` from here)

_ = plan_capacity
