"""The comparison core shared by `aidc sim compare` and the simulations service: the rows it builds are the
rows the CLI prints, and bad input is an InputProblem naming the field."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from aidc.cli import main as cli_main
from aidc.sim.compare import (
    InputProblem,
    label_rows,
    load_inputs,
    report_markdown,
    scheduler_config,
    simulate_policy,
)

TRACE = "synthetic:jobs=300,gpus=64,seed=2"
CLUSTER = "synthetic:gpus=64"


def core_rows(policies: list[str], placement: str = "bestfit", backfill: bool = False) -> list[dict[str, object]]:
    inputs = load_inputs(TRACE, None, CLUSTER)
    runs = [
        simulate_policy(p, scheduler_config(p, placement, backfill, False), inputs.trace.jobs, inputs.nodes,
                        time.perf_counter)
        for p in policies
    ]  # fmt: skip
    return label_rows(runs, inputs, placement, backfill)


def without_wall(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in rows]


def test_the_core_gives_the_rows_the_cli_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["aidc", "sim", "compare", "--trace", TRACE, "--cluster", CLUSTER, "--policy", "fifo", "--policy", "sjf"]
    monkeypatch.setattr(sys, "argv", [*args, "--backfill", "--json"])
    with pytest.raises(SystemExit) as done:
        cli_main.main()
    assert done.value.code in (0, None)
    printed = json.loads(capsys.readouterr().out)
    core = core_rows(["fifo", "sjf"], backfill=True)
    assert without_wall(core) == without_wall(printed)
    assert [row["policy"] for row in core] == ["fifo", "sjf"]
    assert core[0]["mean_jct_s"] != core[1]["mean_jct_s"]  # the policies really differ on this trace


def test_the_report_has_a_row_per_policy_and_names_its_plots(tmp_path: Path) -> None:
    rows = core_rows(["fifo", "priority"])
    text = report_markdown(rows, "the source", plotted=True)
    assert "| fifo |" in text
    assert "| priority |" in text
    assert "](allocation.png)" in text
    assert "](jct_cdf.png)" in text
    assert text.rstrip().endswith("Trace: the source")
    assert "No plots" in report_markdown(rows, "the source", plotted=False)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: scheduler_config("lottery", "bestfit", False, False), "policy"),
        (lambda: scheduler_config("fifo", "magic", False, False), "placement"),
        (lambda: load_inputs("no-such-trace", None, CLUSTER), "trace"),
        (lambda: load_inputs(TRACE, None, None), "cluster"),  # a synthetic trace has no nodes of its own
        (lambda: load_inputs(TRACE, None, "no-such-cluster"), "cluster"),
    ],
)
def test_bad_input_names_the_field(call: object, field: str) -> None:
    with pytest.raises(InputProblem) as refused:
        call()  # type: ignore[operator]
    assert refused.value.field == field
