"""Serving verbs: deploy, models (list, show, stats, delete), scale, rollout status/promote/abort, usage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, api_errors, config, fail
from aidc.domain.jobs import NAME_PATTERN

models_app = typer.Typer(help="Served models: deployments and their replicas", no_args_is_help=False)
rollout_app = typer.Typer(help="Roll a deployment to a new version: status, promote, abort", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="Deployment name (the serve job's name)", metavar="NAME")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _name(value: str) -> str:
    import re

    if not re.match(NAME_PATTERN, value):
        fail(f"NAME: {value!r} is not a deployment name (letters, digits, '.', '_', '-')", EXIT_USAGE)
    return value


def print_applied(result: dict[str, Any]) -> None:
    d = result["deployment"]
    what = {
        "created": f"deployment {d['name']} created: {d['replicas']} replica(s) of {', '.join(d['models'])}",
        "unchanged": f"deployment {d['name']} unchanged",
        "scaled": f"deployment {d['name']} now wants {d['replicas']} replica(s)",
        "rollout": f"deployment {d['name']}: version {(d.get('rollout') or {}).get('version')} rolling out "
        f"({(d.get('rollout') or {}).get('strategy')}); see `aidc rollout status {d['name']}`",
    }
    print(what.get(result["outcome"], result["outcome"]))


def deploy(
    file: Annotated[Path, typer.Argument(help="A kind serve job spec (YAML)")],
    json_out: JsonOut = False,
) -> None:
    """Deploy a model: create the deployment, scale it, or roll out a new version (like kubectl apply)."""
    from aidc.cli.jobs import load_job_file

    apply_spec(file, load_job_file(file, None), json_out)


def apply_spec(file: Path, spec: dict[str, Any], json_out: bool) -> None:
    with api_errors(str(file)), config.client() as client:
        result = client.deploy(spec)
    if json_out:
        render.print_json(result)
    else:
        print_applied(result)


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context, json_out: JsonOut = False) -> None:
    """List deployments with their replicas and states."""
    if ctx.invoked_subcommand is not None:
        return
    with api_errors(), config.client() as client:
        found = client.deployments()
    if json_out:
        render.print_json(found)
        return
    t = render.table("NAME", "MODELS", "READY", "VERSION", "POLICY", "QUEUE", "ROLLOUT", "REPLICAS")
    for d in found:
        rollout = d.get("rollout") or {}
        rolling = f"v{rollout['version']} {rollout['state']}" if rollout else ""
        replicas = " ".join(f"{r['job_id']}:{'ready' if r['ready'] else r['state'].lower()}" for r in d["replica_list"])
        t.add_row(
            d["name"], ", ".join(d["models"]), f"{d['ready_replicas']}/{d['replicas']}", str(d["version"]),
            d["policy"], d["queue"], rolling, replicas,
        )  # fmt: skip
    render.console.print(t)


@models_app.command("show")
def show(name: Name, json_out: JsonOut = False) -> None:
    """One deployment: its replicas (jobs), readiness, endpoints and rollout."""
    with api_errors(), config.client() as client:
        d = client.deployment(_name(name))
    if json_out:
        render.print_json(d)
        return
    print(f"{d['name']}: {', '.join(d['models'])} (version {d['version']}, policy {d['policy']}, queue {d['queue']})")
    print(f"replicas: {d['ready_replicas']} ready of {d['replicas']} wanted")
    if d.get("autoscale"):
        a = d["autoscale"]
        print(f"autoscale: {a['min']:g}..{a['max']:g}, target {a['target_in_flight_per_replica']:g} in flight/replica")
    t = render.table("JOB", "VERSION", "STATE", "READY", "IN FLIGHT", "ENDPOINT")
    for r in d["replica_list"]:
        t.add_row(
            str(r["job_id"]), str(r["version"]), render.state(r["state"]), "yes" if r["ready"] else "no",
            str(r["in_flight"]), r.get("endpoint") or "",
        )  # fmt: skip
    render.console.print(t)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


@models_app.command("stats")
def stats(
    window: Annotated[str, typer.Option(help='The window the figures cover, e.g. "5m", "1h" (10s to 6h)')] = "5m",
    json_out: JsonOut = False,
) -> None:
    """Requests/s, errors, latency and time to first token per served model, from the gateway beside `aidc up`."""
    from aidc.domain.units import parse_duration

    try:
        parse_duration(window)
    except ValueError as exc:
        fail(f"--window: {exc}", EXIT_USAGE)
    with api_errors(), config.client() as client:
        rows = client.serving_stats(window)
    if json_out:
        render.print_json(rows)
        return
    t = render.table(
        "MODEL", "DEPLOYMENT", "READY", "REQ/S", "ERRORS", "P50", "P95", "TTFT P50", "TTFT P95", "TOK/S IN/OUT",
        "IN FLIGHT",
    )  # fmt: skip
    for r in rows:
        errors = "-" if r["error_ratio"] is None else f"{r['error_ratio'] * 100:.1f}% ({r['errors']:.0f})"
        t.add_row(
            r["model"], r["deployment"], f"{r['ready_replicas']}/{r['replicas']}", f"{r['requests_per_second']:.2f}",
            errors, _seconds(r["latency_p50_seconds"]), _seconds(r["latency_p95_seconds"]),
            _seconds(r["ttft_p50_seconds"]), _seconds(r["ttft_p95_seconds"]),
            f"{r['prompt_tokens_per_second']:.1f}/{r['completion_tokens_per_second']:.1f}", f"{r['in_flight']:.0f}",
        )  # fmt: skip
    render.console.print(t)


@models_app.command("delete")
def delete(name: Name) -> None:
    """Stop serving: the deployment's replica jobs are cancelled."""
    with api_errors(), config.client() as client:
        client.delete_deployment(_name(name))
    print(f"deployment {name} deleted")


def scale(
    name: Name,
    replicas: Annotated[int, typer.Argument(min=0, max=256, help="Wanted replicas")],
    json_out: JsonOut = False,
) -> None:
    """Set a deployment's replica count (new replicas wait in the queue like any job)."""
    with api_errors(), config.client() as client:
        d = client.scale(_name(name), replicas)
    if json_out:
        render.print_json(d)
    else:
        print(f"deployment {d['name']} now wants {d['replicas']} replica(s) ({d['ready_replicas']} ready)")


def _rollout_line(d: dict[str, Any]) -> str:
    rollout = d.get("rollout")
    if not rollout:
        return f"deployment {d['name']}: version {d['version']}, no rollout"
    line = f"deployment {d['name']}: stable v{d['version']}, rollout v{rollout['version']} ({rollout['strategy']}) "
    line += str(rollout["state"])
    if rollout.get("reason"):
        line += f": {rollout['reason']}"
    by_version: dict[int, list[str]] = {}
    for r in d["replica_list"]:
        by_version.setdefault(r["version"], []).append("ready" if r["ready"] else r["state"].lower())
    for version, states in sorted(by_version.items()):
        line += f"\n  v{version}: {len(states)} replica(s), {states.count('ready')} ready"
    return line


@rollout_app.command("status")
def rollout_status(name: Name, json_out: JsonOut = False) -> None:
    """The rollout in progress (or the last one) and the replicas of each version."""
    with api_errors(), config.client() as client:
        d = client.deployment(_name(name))
    if json_out:
        render.print_json({"name": d["name"], "version": d["version"], "rollout": d.get("rollout"),
                           "replicas": d["replica_list"]})  # fmt: skip
    else:
        print(_rollout_line(d))


@rollout_app.command("promote")
def rollout_promote(name: Name) -> None:
    """Promote the canary: the new version replaces the stable one, replica by replica."""
    with api_errors(), config.client() as client:
        d = client.rollout(_name(name), "promote")
    print(_rollout_line(d))


@rollout_app.command("abort")
def rollout_abort(name: Name) -> None:
    """Abort the rollout: the new version's replicas stop; the stable version serves."""
    with api_errors(), config.client() as client:
        d = client.rollout(_name(name), "abort")
    print(_rollout_line(d))


def usage(
    by: Annotated[str, typer.Option(help="team, user, key or model")] = "team",
    since: Annotated[str, typer.Option(help='How far back, e.g. "24h", "30d"')] = "30d",
    json_out: JsonOut = False,
) -> None:
    """Tokens used through the gateway, per team, user, key or model."""
    if by not in ("team", "user", "key", "model"):
        fail(f"--by: must be team, user, key or model, not {by!r}", EXIT_USAGE)
    with api_errors(), config.client() as client:
        rows = client.usage(by, since)
    if json_out:
        render.print_json(rows)
        return
    t = render.table(by.upper(), "REQUESTS", "PROMPT", "COMPLETION", "TOTAL")
    for r in rows:
        t.add_row(
            r["key"] or "-", str(r["requests"]), str(r["prompt_tokens"]), str(r["completion_tokens"]),
            str(r["total_tokens"]),
        )  # fmt: skip
    render.console.print(t)
