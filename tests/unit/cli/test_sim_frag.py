"""`aidc sim frag`: a table with a column per placement, --json with the means over seeds, --report files,
and bad options refused in one line naming the option, exit 2. Runs on small files made here (a
normalized-CSV trace and a cluster YAML); one test runs the real openb trace when it is present."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from aidc.cli import main as cli_main

from ..sim.trace_files import needs_traces

TRACE = """job_id,submit_time,duration,num_gpus,gpu_milli,gpu_type,cpus,memory_mb,num_nodes
1,0,,1,1000,,2,4096,1
2,0,,1,500,,1,2048,1
3,0,,2,1000,,4,8192,1
4,0,,1,250,T4|P100,1,1024,1
5,0,,0,1000,,8,1024,1
"""
CLUSTER = """nodes:
  - {name: t4, count: 4, cpus: 32, memory: 128GiB, gpus: 2, gpu_model: T4}
  - {name: p100, count: 2, cpus: 16, memory: 64GiB, gpus: 4, gpu_model: P100}
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    trace, cluster = tmp_path / "jobs.csv", tmp_path / "cluster.yaml"
    trace.write_text(TRACE)
    cluster.write_text(CLUSTER)
    return trace, cluster


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["aidc", "sim", "frag", *args])
    with pytest.raises(SystemExit) as done:
        cli_main.main()
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def small(files: tuple[Path, Path], *args: str) -> list[str]:
    return ["--trace-file", str(files[0]), "--cluster", str(files[1]), *args]


def test_one_column_per_placement(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], files: tuple[Path, Path]
) -> None:
    code, out, err = run(
        monkeypatch,
        capsys,
        *small(files, "--placement", "fgd", "-p", "bestfit", "-p", "fgd=3,bestfit=1", "--seeds", "2"),
    )
    assert code == 0, err
    lines = out.splitlines()
    assert "mean of 2 seeds (42..43)" in lines[0]
    assert "of 16 GPUs" in lines[0]
    assert "jobs" in lines[0]  # the trace is named after its file
    header = lines[1].split()
    assert header == ["ARRIVED", "fgd", "bestfit", "bestfit=1,fgd=3"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:] if line.strip()}
    for point in ("50%", "75%", "90%", "100%", "110%", "120%", "130%"):
        values = [float(v) for v in rows[point]]
        assert len(values) == 3
        assert all(0 <= v <= 100 for v in values)
    assert "failed" in rows
    assert err == ""  # no progress bar when stderr is not a terminal


def test_json_carries_the_means_and_every_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], files: tuple[Path, Path]
) -> None:
    code, out, _ = run(monkeypatch, capsys, *small(files, "--placement", "bestfit", "--seeds", "3", "--json"))
    assert code == 0
    data = json.loads(out)
    assert data["placement"] == "bestfit"
    assert data["seeds"] == [42, 43, 44]
    assert list(data["allocation_ratio_at"]) == [str(x) for x in range(131)]
    assert data["seconds_per_seed"] > 0
    assert data["capacity_gpus"] == 16
    assert data["cluster_nodes"] == 6
    assert len(data["runs"]) == 3
    mean_100 = sum(r["allocation_ratio_at"]["100"] for r in data["runs"]) / 3
    assert data["allocation_ratio_at"]["100"] == pytest.approx(mean_100)
    assert {"failed_tasks", "arrived_tasks", "inflation", "trace", "scorers"} <= set(data)


def test_json_for_several_placements_is_a_list(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], files: tuple[Path, Path]
) -> None:
    code, out, _ = run(
        monkeypatch, capsys, *small(files, "-p", "random", "-p", "packing", "--json", "--inflation", "1.1")
    )
    assert code == 0
    data = json.loads(out)
    assert [d["placement"] for d in data] == ["random", "packing"]
    assert list(data[0]["allocation_ratio_at"])[-1] == "110"


def test_the_same_seed_prints_the_same_figures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], files: tuple[Path, Path]
) -> None:
    def curve() -> Any:
        code, out, _ = run(monkeypatch, capsys, *small(files, "-p", "fgd", "--first-seed", "7", "--json"))
        assert code == 0
        return json.loads(out)["allocation_ratio_at"]

    assert curve() == curve()


def test_report_writes_markdown_metrics_and_a_plot(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], files: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib comes with the dev and sim extras")
    out_dir = tmp_path / "out" / "frag"
    code, out, err = run(monkeypatch, capsys, *small(files, "-p", "fgd", "-p", "bestfit", "--report", str(out_dir)))
    assert code == 0
    assert "report written to" in err
    report = (out_dir / "report.md").read_text()
    assert "| arrived | fgd | bestfit |" in report
    assert "| 100% |" in report
    assert "![allocation ratio" in report
    assert "built" not in report  # the credit line is the trace's own
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert [m["placement"] for m in metrics] == ["fgd", "bestfit"]
    png = (out_dir / "allocation.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert "ARRIVED" in out  # the table still prints


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-p", "magic"], "--placement: placement.scorers: unknown scorer 'magic'; known: "),
        (["-p", "fgd=x"], "--placement: fgd: weight 'x' is not a number"),
        ([], "--placement: name at least one"),
        (["-p", "fgd", "--seeds", "0"], "--seeds"),
        (["-p", "fgd", "--inflation", "0"], "--inflation"),
        (["-p", "fgd", "--inflation", "lots"], "--inflation"),
        (["-p", "fgd", "--trace", "nope"], "--trace: unknown trace 'nope'"),
        (["-p", "fgd", "--trace", "openb", "--trace-file", "x.csv"], "--trace-file: give --trace or --trace-file"),
        (["-p", "fgd", "--trace-file", "/nonexistent/jobs.csv"], "--trace-file: /nonexistent/jobs.csv: no such file"),
        (["-p", "fgd", "--cluster", "/nonexistent/c.yaml"], "--cluster: unknown cluster"),
        (["-p", "fgd", "--format", "xml"], "unknown trace format 'xml'"),
    ],
)
def test_bad_options_name_the_option(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    files: tuple[Path, Path],
    args: list[str],
    needle: str,
) -> None:
    if "--trace" not in args and "--trace-file" not in args:
        args = ["--trace-file", str(files[0]), *args]
    if "--cluster" not in args:
        args = [*args, "--cluster", str(files[1])]
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


def test_a_cluster_without_gpus_or_a_trace_without_gpu_work_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], files: tuple[Path, Path], tmp_path: Path
) -> None:
    cpu_only = tmp_path / "cpu.yaml"
    cpu_only.write_text("nodes:\n  - {name: c, count: 2, cpus: 8, memory: 16GiB}\n")
    code, _, err = run(monkeypatch, capsys, "--trace-file", str(files[0]), "--cluster", str(cpu_only), "-p", "fgd")
    assert code == 2
    assert err.startswith("aidc: --cluster: ")
    assert "no GPUs" in err
    no_gpu_work = tmp_path / "cpu_jobs.csv"
    no_gpu_work.write_text("job_id,submit_time,duration,num_gpus,cpus,memory_mb\n1,0,,0,1,1024\n")
    code, _, err = run(monkeypatch, capsys, "--trace-file", str(no_gpu_work), "--cluster", str(files[1]), "-p", "fgd")
    assert code == 2
    assert err.startswith("aidc: --trace-file: ")
    assert "asks for no GPUs" in err


def test_a_trace_without_nodes_needs_a_cluster(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], files: tuple[Path, Path]
) -> None:
    code, _, err = run(monkeypatch, capsys, "--trace-file", str(files[0]), "-p", "fgd")
    assert code == 2
    assert "--cluster: trace 'jobs' has no node list of its own" in err


@needs_traces
def test_openb_by_name_on_the_papers_cluster(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(monkeypatch, capsys, "--trace", "openb", "--cluster", "openb-gpu", "-p", "bestfit", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["capacity_gpus"] == 6212
    assert data["cluster_nodes"] == 1213
    assert 91 < data["allocation_ratio_at"]["130"] < 95
