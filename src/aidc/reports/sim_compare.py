"""The report of a simulation comparison in a directory: metrics.json (the rows), report.md and the plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aidc.reports.sim_plots import ALLOCATION_PLOT, JCT_PLOT, plot_runs
from aidc.sim.compare import report_markdown
from aidc.sim.engine import SimResult

METRICS = "metrics.json"
REPORT = "report.md"


def write_compare_report(
    directory: Path, rows: Sequence[dict[str, Any]], source: str, runs: Sequence[tuple[str, SimResult]]
) -> list[str]:
    """Write the files into `directory` (made if missing); returns the names of the plots written (none
    without matplotlib). Raises OSError when the directory cannot be written."""
    directory.mkdir(parents=True, exist_ok=True)
    plotted = plot_runs(directory, runs)
    (directory / METRICS).write_text(json.dumps(list(rows), indent=2) + "\n")
    (directory / REPORT).write_text(report_markdown(rows, source, plotted))
    return [ALLOCATION_PLOT, JCT_PLOT] if plotted else []
