"""`aidc plan estimate` (and the `plan gpus` / `plan models` listings): JSON for scripts, a table for people, a
site catalog through --catalog or AIDC_GPU_CATALOG, and bad input refused in one line naming the option, exit 2.
Driven with typer's CliRunner against the real app."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aidc.cli import main as cli_main
from aidc.cli.main import app
from aidc.cli.plan import use_catalog_option
from aidc.domain.catalog import gpu_spec, use_catalog

LLAMA3 = ["--params", "405e9", "--tokens", "15.6e12", "--gpus", "16384", "--gpu-model", "H100-SXM", "--mfu", "0.4"]


def plan(*args: str, env: dict[str, str | None] | None = None) -> Result:
    # A site catalog in the developer's own environment must not change what these tests see.
    return CliRunner().invoke(app, ["plan", *args], env={"AIDC_GPU_CATALOG": None, **(env or {})})


def test_json_has_the_training_figures_and_says_why_cost_is_unknown() -> None:
    result = plan("estimate", *LLAMA3, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["gpu_model"] == "NVIDIA H100 SXM5 80GB"
    assert data["flops"] == pytest.approx(6 * 405e9 * 15.6e12)
    assert data["gpu_hours"] == pytest.approx(data["gpus"] * data["seconds"] / 3600)
    assert data["days"] == pytest.approx(data["seconds"] / 86400)
    assert data["energy_mwh"] == pytest.approx(data["it_energy_mwh"] * data["assumptions"]["pue"])
    assert data["cost"] is None
    assert any("--price-per-gpu-hour" in note for note in data["notes"])
    assert data["training_memory"]["min_gpus"] >= 81
    assert data["serving"]["kv_counted"] is False


def test_the_table_reads_as_a_summary() -> None:
    result = plan("estimate", *LLAMA3)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "NVIDIA H100 SXM5 80GB" in out
    for needle in ("time", "days", "GPU-hours", "MWh IT", "MWh facility", "at least 81 GPUs", "KV cache not counted"):
        assert needle in out, needle


def test_a_model_preset_gives_the_shape_and_the_serving_verdict() -> None:
    result = plan("estimate", "--model", "llama-3.1-70b", "--gpu-model", "H100", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "llama-3.1-70b"
    assert data["params"] == pytest.approx(70.55e9, rel=0.001)
    assert data["serving"]["kv_counted"] is True
    assert data["serving"]["kv_bytes_per_token"] == 2 * 80 * 8 * 128 * 2
    assert (data["serving"]["fits_one_gpu"], data["serving"]["min_gpus"]) == (False, 2)
    assert data["flops"] is None  # no --tokens: memory only
    table = plan("estimate", "--model", "llama-3.1-70b", "--gpu-model", "H100")
    assert "does not fit one GPU: 2 GPUs" in table.stdout


def test_explicit_shape_options_override_the_preset() -> None:
    result = plan("estimate", "--model", "llama-3.1-8b", "--layers", "64", "--gpu-model", "H100", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["serving"]["kv_bytes_per_token"] == 2 * 64 * 8 * 128 * 2


def test_prices_from_a_site_catalog_in_the_environment_price_the_run(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("- {name: H100, hourly_price_usd: 2.0}\n")
    result = plan("estimate", *LLAMA3, "--price-per-kwh", "0.1", "--json", env={"AIDC_GPU_CATALOG": str(site)})
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    breakdown = data["cost_breakdown"]
    assert (breakdown["price_per_gpu_hour"], breakdown["price_per_gpu_hour_from"]) == (2.0, "catalog")
    assert data["cost"] == pytest.approx(data["gpu_hours"] * 2.0 + data["energy_mwh"] * 1000 * 0.1)
    spec = gpu_spec("H100")
    assert spec is not None
    assert spec.hourly_price_usd is None  # the command did not change the process-wide catalog


def test_the_price_option_wins_and_the_table_shows_the_cost(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("gpus:\n  - {name: H100, hourly_price_usd: 2.0}\n")
    args = ("estimate", *LLAMA3, "--catalog", str(site), "--price-per-gpu-hour", "1.0")
    data = json.loads(plan(*args, "--json").stdout)
    assert data["cost"] == pytest.approx(data["gpu_hours"] * 1.0)
    assert "$1/GPU-hour (option)" in plan(*args).stdout


@pytest.mark.parametrize(
    ("args", "option", "needle"),
    [
        (["--params", "0", "--gpu-model", "H100"], "--params", "above 0"),
        (["--params", "lots", "--gpu-model", "H100"], "--params", "cannot read 'lots'"),
        (["--gpu-model", "H100"], "--params", "give the parameter count"),
        (["--params", "7B", "--gpu-model", "X9"], "--gpu-model", "NVIDIA H100 SXM5 80GB"),  # names the catalog's
        (["--params", "7B"], "--gpu-model", "name a GPU model"),
        (["--params", "7B", "--gpu-model", "H100", "--mfu", "1.5"], "--mfu", "(0, 1]"),
        (["--params", "7B", "--gpu-model", "H100", "--mfu", "0"], "--mfu", "(0, 1]"),
        (["--params", "7B", "--gpu-model", "H100", "--tokens", "1T", "--gpus", "0"], "--gpus", "at least 1"),
        (["--params", "7B", "--gpu-model", "H100", "--tokens", "1T"], "--gpus", "number of GPUs"),
        (
            ["--params", "7B", "--gpu-model", "A100", "--tokens", "1T", "--gpus", "8", "--precision", "fp8"],
            "--precision",
            "no FP8",
        ),
        (["--params", "7B", "--gpu-model", "H100", "--pue", "0.5"], "--pue", "at least 1"),
        (["--params", "7B", "--gpu-model", "H100", "--power-fraction", "2"], "--power-fraction", "(0, 1]"),
        (["--params", "7B", "--gpu-model", "H100", "--serve-precision", "fp4"], "--serve-precision", "bf16, fp8"),
        (["--params", "7B", "--gpu-model", "H100", "--context", "0"], "--context", "at least 1"),
        (["--params", "7B", "--gpu-model", "H100", "--layers", "32"], "--kv-heads", "together"),
        (["--model", "gpt-9", "--gpu-model", "H100"], "--model", "llama-3.1-8b"),  # names the presets
        (["--params", "7B", "--active-params", "8B", "--gpu-model", "H100"], "--active-params", "above --params"),
    ],
)
def test_bad_input_is_one_line_naming_the_option_exit_2(args: list[str], option: str, needle: str) -> None:
    result = plan("estimate", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"aidc: {option}: ")
    assert needle in lines[0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [(None, "no such file"), ("- {name: H100, hourly_price_usd: -2}\n", "entry 1 (H100): field hourly_price_usd")],
)
def test_a_bad_catalog_file_is_one_line_naming_the_option(tmp_path: Path, text: str | None, needle: str) -> None:
    site = tmp_path / "site.yaml"
    if text is not None:
        site.write_text(text)
    result = plan("estimate", "--params", "7B", "--gpu-model", "H100", "--catalog", str(site))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aidc: --catalog: ")
    assert needle in lines[0]


def test_a_value_typer_cannot_parse_is_one_line_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["aidc", "plan", "estimate", "--params", "7B", "--gpus", "many"])
    with pytest.raises(SystemExit) as done:
        cli_main.main()
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert len(err.strip().splitlines()) == 1
    assert "--gpus" in err


def test_gpus_lists_the_catalog_with_a_sites_figures(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("- {name: H100, hourly_price_usd: 2.4}\n")
    result = plan("gpus", "--catalog", str(site), "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["NVIDIA H100 SXM5 80GB"]["hourly_price_usd"] == 2.4
    assert rows["AMD Instinct MI300X"]["bf16_tflops"] == pytest.approx(1307.4)
    table = plan("gpus", "--catalog", str(site)).stdout
    assert "NVIDIA H100 SXM5 80GB" in table
    assert "2.4" in table


def test_models_lists_the_presets() -> None:
    result = plan("models", "--json")
    assert result.exit_code == 0, result.stderr
    names = {row["name"] for row in json.loads(result.stdout)}
    assert {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-2-70b"} <= names
    assert "llama-3.1-405b" in plan("models").stdout


def test_use_catalog_option_installs_a_site_catalog_for_the_simulator_and_none_leaves_the_shipped_one(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("- {name: H100, hourly_price_usd: 2.4}\n")
    try:
        use_catalog_option(None)
        assert (spec := gpu_spec("H100")) is not None
        assert spec.hourly_price_usd is None
        use_catalog_option(site)
        assert (spec := gpu_spec("H100")) is not None
        assert spec.hourly_price_usd == 2.4
    finally:
        use_catalog(None)


def test_a_site_model_without_a_peak_gives_memory_but_refuses_training_time(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("- {name: Acme X1, vendor: Acme, memory_gb: 96, tdp_watts: 500, idle_watts: 60, source: s}\n")
    memory = plan("estimate", "--params", "40B", "--gpu-model", "Acme X1", "--catalog", str(site), "--json")
    assert memory.exit_code == 0, memory.stderr
    assert json.loads(memory.stdout)["serving"]["min_gpus"] == 1  # 80 GB of bf16 weights in 96 GB
    training = plan("estimate", "--params", "40B", "--tokens", "1T", "--gpus", "8", "--gpu-model", "Acme X1",
                    "--catalog", str(site))  # fmt: skip
    assert training.exit_code == 2
    assert training.stderr.startswith("aidc: --gpu-model: Acme X1 has no bf16_tflops")
