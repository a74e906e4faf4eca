"""`--report DIR` of `aidc sim frag`: report.md (setup, table, credit), metrics.json (what --json prints,
always a list) and allocation.png (allocation ratio against arrived demand, one line per placement).

matplotlib comes with the `sim` (and `dev`) extra and is imported only here; without it the report
has no plot and says so."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aidc.sim.workload import Trace

POINTS = (50, 75, 90, 100, 110, 120, 130)
PLOT = "allocation.png"
ZOOM_FROM = 80  # the right panel starts here: below, every placement places everything


def write_frag_report(directory: Path, summaries: Sequence[dict[str, Any]], trace: Trace, cluster: str) -> list[str]:
    """Write the three files into `directory` (made if missing); returns notes for the user (what was
    written, or why there is no plot). Raises OSError when the directory cannot be written."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(json.dumps(list(summaries), indent=2) + "\n")
    plotted = plot_allocation(directory / PLOT, summaries)
    (directory / "report.md").write_text(frag_markdown(summaries, trace, cluster, plotted))
    notes = [f"report written to {directory}/ (report.md, metrics.json{', ' + PLOT if plotted else ''})"]
    if not plotted:
        notes.append("no plot: matplotlib is not installed (pip install 'aidc[sim]')")
    return notes


def frag_markdown(summaries: Sequence[dict[str, Any]], trace: Trace, cluster: str, plotted: bool) -> str:
    first = summaries[0]
    seeds = first["seeds"]
    top = round(first["inflation"] * 100)
    seed_text = (
        f"Seed {seeds[0]}." if len(seeds) == 1 else f"Seeds {', '.join(map(str, seeds))}; figures are their means."
    )
    lines = [
        "# GPU fragmentation experiment",
        "",
        f"The FGD paper's experiment (Weng et al., USENIX ATC'23) on the scheduler's own placer: tasks of "
        f"trace `{trace.name}` ({len(trace.jobs):,} tasks) arrive in a random order, then as random copies, "
        f"until their GPU demand reaches {first['inflation']:g} x the GPU capacity of cluster `{cluster}` "
        f"({first['cluster_nodes']:,} nodes, {first['capacity_gpus']:,.0f} GPUs); they never leave. {seed_text}",
        "",
        "GPU allocation ratio (% of GPU capacity allocated) by arrived GPU demand (% of capacity):",
        "",
        "| arrived | " + " | ".join(s["placement"] for s in summaries) + " |",
        "| ---: | " + " | ".join("---:" for _ in summaries) + " |",
    ]
    for point in (p for p in POINTS if p <= top):
        values = " | ".join(f"{s['allocation_ratio_at'][str(point)]:.2f}" for s in summaries)
        lines.append(f"| {point}% | {values} |")
    lines.append("| failed tasks | " + " | ".join(f"{s['failed_tasks']:,.0f}" for s in summaries) + " |")
    lines.append("| seconds/seed | " + " | ".join(f"{s['seconds_per_seed']:.2f}" for s in summaries) + " |")
    lines.append("")
    if plotted:
        lines += [f"![allocation ratio against arrived demand]({PLOT})", ""]
    lines += [f"Trace: {trace.source}", "", "Every figure per seed is in `metrics.json`.", ""]
    return "\n".join(lines)


def plot_allocation(path: Path, summaries: Sequence[dict[str, Any]]) -> bool:
    """Allocation ratio against arrived demand, a line per placement and the diagonal (all placed), on
    the whole range and zoomed where the placements part (from 80 %); False when matplotlib is not
    installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    first = summaries[0]
    top = round(first["inflation"] * 100)
    xs = list(range(top + 1))
    zoom_from = min(ZOOM_FROM, top)
    fig, (whole, zoom) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    try:
        for ax, lo in ((whole, 0), (zoom, zoom_from)):
            part = xs[lo:]
            ax.plot(part, part, color="0.75", linestyle="--", linewidth=1, label="arrived (all placed)")
            for s in summaries:
                ax.plot(part, [s["allocation_ratio_at"][str(x)] for x in part], linewidth=1.6, label=s["placement"])
            ax.set_xlim(lo, top)
            ax.set_xlabel(f"Arrived GPU demand (% of {first['capacity_gpus']:,.0f} GPUs)")
            ax.grid(True, linewidth=0.5, alpha=0.5)
        whole.set_ylim(0, 100)
        whole.set_ylabel("GPU allocation ratio (%)")
        whole.legend(loc="upper left", fontsize="small")
        lowest = min(s["allocation_ratio_at"][str(top)] for s in summaries)
        zoom.set_ylim(max(0.0, min(zoom_from, lowest) - 2), 100)
        zoom.set_title(f"from {zoom_from} %", fontsize="small")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return True
