"""`aidc energy report`: energy, cost and carbon per job, user, team, queue or node."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, api_errors, config, fail
from aidc.cli.energy_plots import label, plot_report
from aidc.cli.energy_plots import money as plot_money

energy_app = typer.Typer(name="energy", no_args_is_help=True, help="Energy, cost and carbon of the work.")
BY = ("job", "user", "team", "queue", "node")


def kwh(value: float) -> str:
    """Energy in the unit that keeps three significant figures readable: Wh, kWh or MWh."""
    if value >= 1000:
        return f"{value / 1000:,.2f} MWh"
    if value >= 1:
        return f"{value:,.2f} kWh"
    return f"{value * 1000:,.3g} Wh"


def source(row: dict[str, Any]) -> str:
    """ "measured", "estimate", or the share that is an estimate."""
    if not row["estimate"]:
        return "measured"
    share = row["estimated_kwh"] / row["it_kwh"] if row["it_kwh"] else 1.0
    return "estimate" if share > 0.995 else f"{share:.0%} estimate"


def money(value: float | None, currency: str) -> str:
    return "-" if value is None else plot_money(value, currency)


def carbon(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f} kg" if value >= 1 else f"{value * 1000:,.3g} g"


@energy_app.command("report")
def report(
    by: Annotated[str, typer.Option(help="job, user, team, queue or node")] = "team",
    since: Annotated[str, typer.Option(help='How far back, e.g. "24h", "30d"')] = "30d",
    json_out: Annotated[bool, typer.Option("--json", help="The report as JSON")] = False,
    plot: Annotated[Path | None, typer.Option(help="Also write a PNG plot there")] = None,
) -> None:
    """Energy (GPUs and CPUs, measured or estimated), facility energy (x PUE), cost and carbon."""
    if by not in BY:
        fail(f"--by: must be one of {', '.join(BY)}, not {by!r}", EXIT_USAGE)
    if plot is not None and plot.suffix.lower() != ".png":
        fail(f"--plot: {plot} must end in .png", EXIT_USAGE)
    with api_errors(), config.client() as client:
        data = client.energy_report(by, since)
    if plot is not None:
        try:
            plot_report(data, plot)
        except ImportError:
            fail("--plot needs matplotlib: pip install 'aidc[sim]'", EXIT_USAGE)
        except OSError as exc:
            fail(f"--plot: cannot write {plot}: {exc.strerror}", EXIT_USAGE)
    if json_out:
        render.print_json(data)
        return
    cur = data["currency"]
    prices = "" if data["priced"] else "; no price configured"
    render.console.print(
        f"Energy by {by} since {data['since'][:16].replace('T', ' ')} UTC (PUE {data['pue']:g}{prices})", markup=False
    )
    t = render.table(by.upper(), "GPU-HOURS", "IT", "FACILITY", "COST", "CO2E", "SOURCE")
    for r in [*data["rows"], data["total"]]:
        t.add_row(
            label(r["key"]), f"{r['gpu_hours']:,.1f}", kwh(r["it_kwh"]), kwh(r["facility_kwh"]), money(r["cost"], cur),
            carbon(r["carbon_kg"]), source(r),
        )  # fmt: skip
    render.console.print(t)
    if plot is not None:
        print(f"plot written to {plot}")
