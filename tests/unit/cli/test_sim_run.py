"""`aidc sim run` and `aidc sim compare` on a small normalized-CSV trace made here: the metrics in JSON, one
table row per policy, a report directory, and bad options refused in one line naming the option."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from aidc.cli import main as cli_main

# One 1-GPU node: job 1 (long) blocks it, then two jobs queue; sjf runs the short one first.
TRACE = """job_id,submit_time,duration,num_gpus,gpu_milli,gpu_type,cpus,memory_mb,num_nodes,user,queue,priority
1,0,100,1,1000,,1,1024,1,u,default,0
2,10,1000,1,1000,,1,1024,1,u,default,0
3,20,10,1,1000,,1,1024,1,u,default,0
"""
CLUSTER = "nodes:\n  - {name: n, cpus: 8, memory: 32GiB, gpus: 1, gpu_model: H100}\n"


@pytest.fixture
def small(tmp_path: Path) -> list[str]:
    trace, cluster = tmp_path / "jobs.csv", tmp_path / "cluster.yaml"
    trace.write_text(TRACE)
    cluster.write_text(CLUSTER)
    return ["--trace-file", str(trace), "--cluster", str(cluster)]


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["aidc", "sim", *args])
    with pytest.raises(SystemExit) as done:
        cli_main.main()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def test_run_prints_the_metrics_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], small: list[str]
) -> None:
    code, out, err = run(monkeypatch, capsys, "run", *small, "--policy", "fifo", "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["jobs"] == 3
    assert metrics["makespan_s"] == 1110  # 100 + 1000 + 10, back to back from t=0
    assert metrics["mean_jct_s"] == pytest.approx((100 + (1100 - 10) + (1110 - 20)) / 3)
    for key in ("p95_jct_s", "mean_queue_s", "gpu_allocation_ratio", "wall_s"):
        assert key in metrics


def test_compare_prints_one_row_per_policy_and_sjf_wins_here(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], small: list[str], tmp_path: Path
) -> None:
    code, out, err = run(
        monkeypatch, capsys, "compare", *small, "--policy", "fifo", "--policy", "sjf", "--report", str(tmp_path / "r")
    )
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in ("fifo", "sjf")}
    assert set(rows) == {"fifo", "sjf"}
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    by_policy = {r["policy"]: r for r in saved}
    assert by_policy["sjf"]["mean_jct_s"] < by_policy["fifo"]["mean_jct_s"]
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| sjf |" in report
    assert "queue SLO met" in report
    assert "stranded GPUs" in report
    # fifo: the 1000 s job blocks the 10 s one behind it; the GPU is never free while work waits
    assert f"{by_policy['fifo']['slo_met_share'] * 100:.1f}%" in report
    assert by_policy["fifo"]["stranded_gpu_share"] == 0
    for plot in ("allocation.png", "jct_cdf.png"):  # matplotlib comes with the dev extra
        assert (tmp_path / "r" / plot).read_bytes().startswith(b"\x89PNG")
        assert f"]({plot})" in report


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--policy", "lottery"], "--policy"),
        (["--placement", "magic"], "--placement"),
        (["--failures", "often=3"], "--failures"),
        (["--failures", "mtbf_gpu_hours=-1"], "--failures"),
        (["--checkpoint", "interval=soon"], "--checkpoint"),
        (["--pue", "0.9"], "--pue"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    small: list[str],
    args: list[str],
    option: str,
) -> None:
    code, _, err = run(monkeypatch, capsys, "run", *small, *args)
    assert code == 2
    assert err.strip().startswith(f"aidc: {option}:"), err
    assert len(err.strip().splitlines()) == 1


# The one H100 (700 W) is busy for the whole makespan of 1,110 s under fifo.
IT_KWH = 700 * 1110 / 3.6e6


def test_energy_is_in_the_json_and_follows_the_pue(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], small: list[str]
) -> None:
    code, out, err = run(monkeypatch, capsys, "run", *small, "--policy", "fifo", "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["it_energy_kwh"] == pytest.approx(IT_KWH)
    assert metrics["energy_kwh"] == pytest.approx(IT_KWH * 1.58)
    assert (metrics["pue"], metrics["unknown_gpu_models"]) == (1.58, [])
    code, out, err = run(monkeypatch, capsys, "run", *small, "--policy", "fifo", "--json", "--pue", "1.1")
    assert code == 0, err
    assert json.loads(out)["energy_kwh"] == pytest.approx(IT_KWH * 1.1)


def test_the_table_has_a_kwh_column_and_names_models_left_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], small: list[str], tmp_path: Path
) -> None:
    code, out, err = run(monkeypatch, capsys, "compare", *small, "--policy", "fifo", "--policy", "sjf")
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.startswith("POLICY"))
    assert header.split().index("KWH") == header.split().index("LOST") + 2  # after "LOST GPU-H"
    fifo = next(line for line in out.splitlines() if line.startswith("fifo"))
    assert f"{IT_KWH * 1.58:.2f}" in fifo.split()
    assert "x PUE 1.58" in out
    assert "left out" not in out
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(CLUSTER + "  - {name: g, cpus: 8, memory: 32GiB, gpus: 8, gpu_model: G2}\n")
    code, out, err = run(monkeypatch, capsys, "run", *small[:2], "--cluster", str(mixed))
    assert code == 0, err
    assert "GPU models not in the catalog, left out: G2" in out


def test_the_cli_default_pue_is_the_metrics_default() -> None:
    from aidc.cli.sim_run import DEFAULT_PUE as CLI_PUE
    from aidc.sim.metrics import DEFAULT_PUE

    assert CLI_PUE == DEFAULT_PUE


def test_a_run_that_cannot_finish_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], small: list[str]
) -> None:
    # The node fails every ~4 s and jobs never checkpoint: the 1000 s job restarts for ever.
    code, out, err = run(
        monkeypatch, capsys, "run", *small, "--failures", "mtbf_gpu_hours=0.001,repair_hours=0.0001", "--json"
    )
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "was started 1000 times without finishing" in err


def test_synthetic_trace_and_cluster_by_spec(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        monkeypatch,
        capsys,
        "run",
        "--trace",
        "synthetic:jobs=300,gpus=64,seed=2",
        "--cluster",
        "synthetic:gpus=64",
        "--json",
    )
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["jobs"] == 300
    assert 0 < metrics["gpu_allocation_ratio"] <= 1


def test_a_cluster_files_power_budget_holds_in_simulation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Two 1-GPU H100 nodes: without a budget jobs 2 and 3 run side by side; with a budget that holds one busy
    H100 (700 W) and one idle (70 W) only, job 3 waits for job 1 and the mean queueing delay grows."""
    trace = tmp_path / "jobs.csv"
    trace.write_text(TRACE)
    nodes = "nodes:\n  - {name: n, count: 2, cpus: 8, memory: 32GiB, gpus: 1, gpu_model: H100}\n"
    free, capped = tmp_path / "free.yaml", tmp_path / "capped.yaml"
    free.write_text(nodes)
    capped.write_text(nodes + "power: {budget_kw: 0.78}\n")
    waits = []
    for cluster in (free, capped):
        code, out, err = run(
            monkeypatch, capsys, "run", "--trace-file", str(trace), "--cluster", str(cluster), "--policy", "fifo",
            "--json",
        )  # fmt: skip
        assert code == 0, err
        waits.append(json.loads(out)["mean_queue_s"])
    assert waits[1] > waits[0]
