"""The plot of `aidc energy report --plot FILE.png`: facility energy per group (measured and estimated
apart) and over time for the largest groups. matplotlib is imported only here."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

TOP = 8  # groups drawn apart over time; the rest are "other"


def label(key: str | None) -> str:
    return "(unallocated)" if key is None else key


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Write the PNG. Raises ImportError without matplotlib, OSError when the file cannot be written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    rows = report["rows"][:20]
    fig, (bars, over_time) = plt.subplots(2, 1, figsize=(10, 8))
    names = [label(r["key"]) for r in rows]
    pue = report["pue"]
    measured = [(r["it_kwh"] - r["estimated_kwh"]) * pue for r in rows]
    estimated = [r["estimated_kwh"] * pue for r in rows]
    bars.barh(names, measured, color="#0072B2", label="measured")  # Okabe-Ito: safe for colour blindness
    bars.barh(names, estimated, left=measured, color="#E69F00", hatch="//", label="estimate")
    bars.invert_yaxis()
    bars.set_xlabel("facility energy (kWh)")
    bars.set_title(f"Energy by {report['by']} since {report['since'][:10]} (PUE {pue:g})")
    bars.legend(loc="lower right")
    if report["priced"]:
        for i, r in enumerate(rows):
            if r["cost"] is not None:
                bars.annotate(
                    f" {r['cost']:,.2f} {report['currency']}", (measured[i] + estimated[i], i), va="center", fontsize=8
                )
    top = [r["key"] for r in report["rows"][:TOP]]
    series: dict[str, dict[datetime, float]] = defaultdict(lambda: defaultdict(float))
    hours = sorted({datetime.fromisoformat(h["hour"]) for h in report["hourly"]})
    for h in report["hourly"]:
        name = label(h["key"]) if h["key"] in top else "other"
        series[name][datetime.fromisoformat(h["hour"])] += h["facility_kwh"]
    if hours:
        names_t = [label(k) for k in top if label(k) in series] + (["other"] if "other" in series else [])
        over_time.stackplot(
            hours, [[series[n].get(h, 0.0) for h in hours] for n in names_t], labels=names_t, step="post"
        )
        over_time.legend(loc="upper left", fontsize=8, ncol=2)
    over_time.set_ylabel("facility kWh per hour")
    over_time.set_title("Over time")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
