"""The plots of a simulation comparison: GPU allocation over time and the CDF of job completion times, one
line per policy. matplotlib comes with the `sim` (and `dev`) extra and is imported only here; without it
the report has no plots and says so."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aidc.sim.compare import ALLOCATION_PLOT, JCT_PLOT
from aidc.sim.engine import SimResult

__all__ = ["ALLOCATION_PLOT", "JCT_PLOT", "plot_runs"]


def plot_runs(directory: Path, runs: Sequence[tuple[str, SimResult]]) -> bool:
    """Write both plots into `directory`; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, result in runs:
        if not result.total_gpu_milli:
            continue
        times = [t / 3600 for t, _ in result.allocation] + [result.end_time / 3600]
        shares = [100 * held / result.total_gpu_milli for _, held in result.allocation]
        ax.step(times, [*shares, shares[-1]], where="post", label=name, linewidth=1)
    ax.set_xlabel("time since the trace started (h)")
    ax.set_ylabel("GPUs allocated (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(directory / ALLOCATION_PLOT, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, result in runs:
        jct = sorted(
            r.ended_at - r.job.submit_time
            for r in result.records.values()
            if r.ended_at is not None and r.started_at is not None and not r.cancelled
        )
        if jct:
            ax.step([j / 3600 for j in jct], [(i + 1) / len(jct) for i in range(len(jct))], where="post", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (h, log scale)")
    ax.set_ylabel("share of jobs")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(directory / JCT_PLOT, dpi=120)
    plt.close(fig)
    return True
