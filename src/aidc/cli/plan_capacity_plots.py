"""The plot of `aidc plan capacity --plot FILE.png`: 2x2 panels against the cluster's GPUs, each size the
search ran, with failures and without: the SLO metric with the SLO's line, the utilization, the facility
energy per year and the cost per year; the chosen size marked on each. matplotlib (the `sim` extra) is
imported only here, with the Agg backend: files only, never a window."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aidc.plan.capacity import CapacityPlan, Search
from aidc.plan.capacity_eval import Evaluation

HOURS = 3600.0


def plot_plan(path: Path, plan: CapacityPlan) -> bool:
    """Write the plot to `path`; False when matplotlib is not installed. Raises OSError when it cannot write."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    slo = plan.slo
    time_scale = HOURS if slo.is_time else 1.0
    unit = " (h)" if slo.is_time else ""
    panels: list[tuple[str, Callable[[Evaluation], float | None]]] = [
        (f"{slo.metric}{unit}", lambda e: None if e.value is None else e.value / time_scale),
        ("utilization (%)", lambda e: None if e.utilization is None else e.utilization * 100),
        ("facility energy (MWh/yr)", lambda e: e.energy_mwh_per_year),
        ("cost (USD/yr)", lambda e: e.cost_per_year),
    ]
    from matplotlib.ticker import FuncFormatter

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    searches = [s for s in (plan.with_failures, plan.without_failures) if s is not None]
    for ax, (title, read) in zip(axes.flat, panels, strict=True):
        drawn = False
        for search in searches:
            drawn |= _line(ax, search, read)
        if title.startswith(slo.metric):
            ax.axhline(slo.value / time_scale, color="tab:red", linestyle="--", linewidth=1, label=f"SLO {slo}")
            # Waits span orders of magnitude between too small and big enough: linear near the SLO, log above.
            ax.set_yscale("symlog", linthresh=max(slo.value / time_scale, 1e-9))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if not drawn:
            ax.text(0.5, 0.5, "not known (no price)" if "cost" in title else "not known", ha="center",
                    va="center", transform=ax.transAxes)  # fmt: skip
        chosen = plan.primary.chosen
        if chosen is not None:
            ax.axvline(chosen.gpus, color="tab:green", linewidth=1, label=f"chosen: {chosen.gpus:,} GPUs")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    axes[0][0].set_xscale("log", base=2)  # shared: sizes are bisected, so they spread on a log scale
    axes[0][0].xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    for ax in axes[1]:
        ax.set_xlabel(f"GPUs ({plan.shape.gpu_model}, nodes of {plan.shape.gpus})")
    fig.suptitle(f"Capacity for {slo}", fontsize=11)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return True


def _line(ax: Any, search: Search, read: Callable[[Evaluation], float | None]) -> bool:
    """One search's points on `ax`; False when it has none to draw."""
    points = [(e.gpus, v) for e in search.evaluations if (v := read(e)) is not None]
    if not points:
        return False
    style = {"marker": "o", "linestyle": "-"} if search.failures else {"marker": "x", "linestyle": ":"}
    label = "with failures" if search.failures else "without failures"
    ax.plot([p[0] for p in points], [p[1] for p in points], label=label, linewidth=1, markersize=4, **style)
    return True
