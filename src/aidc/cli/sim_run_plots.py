"""The plots of `aidc sim run/compare --report DIR` now live in `aidc.reports.sim_plots`, shared with the
control plane's simulations service; kept here under their old names for callers of this module."""

from __future__ import annotations

from aidc.reports.sim_plots import ALLOCATION_PLOT, JCT_PLOT, plot_runs

__all__ = ["ALLOCATION_PLOT", "JCT_PLOT", "plot_runs"]
