"""The plot of `aidc energy report --plot FILE.png`: facility energy per group (measured and estimated
apart) and over time for the largest groups. matplotlib is imported only here."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

TOP = 8  # groups drawn apart over time; the rest are "(other)" (the server sums them so too)


def label(key: str | None) -> str:
    return "(unallocated)" if key is None else key


def _unit(values: list[float]) -> tuple[str, float]:
    """The unit that keeps the figures readable: MWh, kWh or Wh, and the factor from kWh."""
    top = max(values, default=0.0)
    if top >= 1000:
        return "MWh", 0.001
    return ("kWh", 1.0) if top >= 1 else ("Wh", 1000.0)


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Write the PNG. Raises ImportError without matplotlib, OSError when the file cannot be written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    rows = report["rows"][:20]
    fig, (bars, over_time) = plt.subplots(2, 1, figsize=(10, 8))
    names = [label(r["key"]) for r in rows]
    pue = report["pue"]
    unit, k = _unit([r["facility_kwh"] for r in rows])
    measured = [(r["it_kwh"] - r["estimated_kwh"]) * pue * k for r in rows]
    estimated = [r["estimated_kwh"] * pue * k for r in rows]
    # Okabe-Ito colours (safe for colour blindness), and hatching: the estimate reads without colour too.
    bars.barh(names, measured, color="#0072B2", label="measured")
    bars.barh(names, estimated, left=measured, color="#E69F00", hatch="//", label="estimate")
    bars.invert_yaxis()
    bars.set_xlabel(f"facility energy ({unit})")
    bars.set_title(f"Energy by {report['by']} since {report['since'][:10]} (PUE {pue:g})")
    bars.legend(loc="lower right")
    if report["priced"]:
        for i, r in enumerate(rows):
            if r["cost"] is not None:
                bars.annotate(f" {money(r['cost'], report['currency'])}", (measured[i] + estimated[i], i), va="center")
    top = [r["key"] for r in report["rows"][:TOP]]
    series: dict[str, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))
    hours = sorted({datetime.fromisoformat(h["hour"]) for h in report["hourly"]})
    for h in report["hourly"]:
        name = label(h["key"]) if h["key"] in top else "(other)"
        series[name][datetime.fromisoformat(h["hour"])] += h["facility_kwh"]
    unit_t, k_t = _unit([sum(v.get(h, 0.0) for v in series.values()) for h in hours])
    bottom = [0.0] * len(hours)
    colors = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#999999"]
    names_t = [label(key) for key in top if label(key) in series] + (["(other)"] if "(other)" in series else [])
    for i, name in enumerate(names_t):
        heights = [series[name].get(h, 0.0) * k_t for h in hours]
        over_time.bar(hours, heights, width=1 / 24, bottom=bottom, align="edge", label=name, color=colors[i % 9])
        bottom = [b + v for b, v in zip(bottom, heights, strict=True)]
    if names_t:
        over_time.legend(loc="upper left", fontsize=8, ncol=2)
    locator = over_time.xaxis.get_major_locator()
    over_time.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    over_time.set_ylabel(f"facility {unit_t} per hour")
    over_time.set_title("Per hour")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}" if value >= 0.01 or value == 0 else f"{value:.2g} {currency}"
