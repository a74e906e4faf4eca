"""`aidc plan capacity` on a slice of a real trace (openb, Alibaba 2023; pollux-1, sampled from Microsoft's
Philly): the search as JSON and as a table, the plot, a site catalog's price, an SLO out of reach, the
what-if comparison, and bad input refused in one line naming the option, exit 2. Driven with typer's
CliRunner against the real app (errors through `main()`, which turns usage errors into one line)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import aidc.cli.plan_capacity  # registers `capacity` on `aidc plan` (cli/plan.py imports it too)
from aidc.cli import main as cli_main
from aidc.cli.main import app
from aidc.domain.catalog import use_catalog
from aidc.plan.capacity_eval import HOURS_PER_YEAR
from aidc.sim.traces import ENV_VAR, traces_dir

_ = aidc.cli.plan_capacity

pytestmark = pytest.mark.skipif(
    not traces_dir().is_dir(),
    reason=f"the real traces are not here ({traces_dir()}); set {ENV_VAR} to the shared traces directory",
)

OPENB_SLICE = ["--trace", "openb", "--jobs", "300"]


def capacity(*args: str) -> Result:
    # A site catalog in the developer's own environment must not change what these tests see.
    return CliRunner().invoke(app, ["plan", "capacity", *args], env={"AIDC_GPU_CATALOG": None})


@pytest.fixture(scope="module")
def openb_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    plot = tmp_path_factory.mktemp("plot") / "capacity.png"
    result = capacity(*OPENB_SLICE, "--slo", "p95_queue_wait<1h", "--json", "--plot", str(plot))
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), plot


def test_the_search_json_names_the_answer_and_every_size_it_ran(openb_plan: tuple[dict[str, Any], Path]) -> None:
    data, _ = openb_plan
    assert data["trace"] == "openb"
    assert data["slo"] == {"text": "p95_queue_wait<1h", "metric": "p95_queue_wait", "op": "<", "value": 3600.0}
    assert data["node"]["gpus"] == 8
    assert data["node"]["gpu_model"] == "NVIDIA H100 SXM5 80GB"
    assert data["jobs"] + data["jobs_left_out_cpu_only"] == 300
    assert data["met"] is True
    assert data["failure_model"]["mtbf_gpu_hours"] == 50_700
    with_failures, without = data["with_failures"], data["without_failures"]
    assert isinstance(with_failures, dict)
    assert isinstance(without, dict)
    chosen = [e for e in with_failures["evaluations"] if e["gpus"] == data["chosen_gpus"]]
    assert len(chosen) == 1
    assert chosen[0]["met"] is True
    assert chosen[0]["value"] < 3600
    assert chosen[0]["nodes"] * 8 == chosen[0]["gpus"]
    smaller = [e for e in with_failures["evaluations"] if e["gpus"] == data["chosen_gpus"] - 8]
    assert data["chosen_gpus"] > data["range"]["min_gpus"]  # the smallest size misses: a real search
    assert len(smaller) == 1  # bisection goes down to one node...
    assert smaller[0]["met"] is False  # ...and a node less misses
    assert data["spare_for_failures_gpus"] == data["chosen_gpus"] - data["chosen_gpus_without_failures"]
    assert data["spare_for_failures_gpus"] >= 0
    for evaluation in with_failures["evaluations"]:
        for key in ("gpus", "nodes", "value", "utilization", "energy_mwh_per_year", "cost_per_year", "failures"):
            assert key in evaluation
        assert evaluation["cost_per_year"] is None  # the shipped catalog has no prices
    assert any("--price-per-gpu-hour" in note for note in data["notes"])
    assert data["simulations"] >= 4


def test_the_plot_is_a_png(openb_plan: tuple[dict[str, Any], Path]) -> None:
    _, plot = openb_plan
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_the_table_marks_the_answer_and_the_spare_for_failures() -> None:
    result = capacity("--trace", "pollux-1", "--slo", "p95_queue_wait<30m", "--failures", "mtbf=5000,repair=6h")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "<- chosen" in out
    assert "Meets p95_queue_wait<30m with failures:" in out
    assert "spare for failures:" in out
    assert "one per 5,000 GPU-hours per GPU, repaired in 6h" in out


def test_a_price_gives_the_cost_per_year(tmp_path: Path) -> None:
    result = capacity(
        *OPENB_SLICE, "--failures", "off", "--price-per-gpu-hour", "2", "--price-per-kwh", "0.1", "--json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["with_failures"] is None
    for e in data["without_failures"]["evaluations"]:
        energy_cost = e["energy_mwh_per_year"] * 1000 * 0.1
        assert e["cost_per_year"] == pytest.approx(e["gpus"] * 2 * HOURS_PER_YEAR + energy_cost)
    site = tmp_path / "site.yaml"
    site.write_text("- {name: H100, hourly_price_usd: 3}\n")
    try:
        result = capacity(*OPENB_SLICE, "--failures", "off", "--catalog", str(site), "--json")
    finally:
        use_catalog(None)
    assert result.exit_code == 0, result.stderr
    chosen = json.loads(result.stdout)["without_failures"]["evaluations"][-1]
    assert chosen["gpu_cost_per_year"] == pytest.approx(chosen["gpus"] * 3 * HOURS_PER_YEAR)


def test_an_slo_out_of_reach_is_a_result_not_an_error() -> None:
    result = capacity(*OPENB_SLICE, "--slo", "p95_queue_wait<1h", "--max", "8", "--failures", "off", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["met"], data["chosen_gpus"]) == (False, None)
    table = capacity(*OPENB_SLICE, "--slo", "p95_queue_wait<1h", "--max", "8", "--failures", "off")
    assert "No size up to 8 GPUs meets p95_queue_wait<1h" in table.stdout


def test_what_if_puts_the_baseline_and_the_change_side_by_side() -> None:
    args = ["--trace", "pollux-1", "--gpus", "96", "--what-if", "policy=sjf", "--failures", "off"]
    result = capacity(*args, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["changes"] == ["policy=sjf"]
    assert data["baseline"]["gpus"] == data["changed"]["gpus"] == 96
    assert data["delta"]["value"] == pytest.approx(data["changed"]["value"] - data["baseline"]["value"])
    table = capacity(*args)
    assert table.exit_code == 0, table.stderr
    for needle in ("BASELINE", "CHANGED", "DELTA", "p95_queue_wait", "utilization", "MWh/yr", "cost/yr"):
        assert needle in table.stdout


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["aidc", "plan", "capacity", *args])
    monkeypatch.delenv("AIDC_GPU_CATALOG", raising=False)
    with pytest.raises(SystemExit) as done:
        cli_main.main()
    return int(done.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "option", "says"),
    [
        (["--slo", "p95_wait<1h"], "--slo", "metrics: mean_queue_wait"),
        (["--slo", "p95_queue_wait>1h"], "--slo", "use < or <="),
        (["--gpu-model", "Z100"], "--gpu-model", "unknown GPU model"),
        (["--failures", "mtbf=soon"], "--failures", "'soon' is not a number"),
        (["--max", "4"], "--max", "less than one node"),
        (["--min", "800", "--max", "400"], "--max", "below --min"),
        (["--cpus-per-node", "1"], "--cpus-per-node", "below the"),
        (["--memory-per-node", "lots"], "--memory-per-node", "cannot read"),
        (["--policy", "lottery"], "--policy", "unknown policy"),
        (["--cluster", "openb"], "--cluster", "only with --what-if"),
        (["--what-if", "policy=sjf", "--plot", "x.png"], "--plot", "not with --what-if"),
        (["--what-if", "quota:ghost=8"], "--what-if", "no job of the workload is in queue 'ghost'"),
        (["--trace", "nosuch"], "--trace", "unknown trace"),
    ],
)
def test_bad_input_is_one_line_naming_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], option: str, says: str
) -> None:
    base = [] if "--trace" in args else ["--trace", "tiresias", "--jobs", "20"]
    if "--what-if" in args and "--cluster" not in args:
        base += ["--cluster", "tiresias"]
    code, err = run_main(monkeypatch, capsys, *base, *args)
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"aidc: {option}: ")
    assert says in err
