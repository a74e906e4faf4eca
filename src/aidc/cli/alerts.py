"""Alert verbs: what fires now, what fired, the rules (exported for Prometheus), silences and acknowledgements;
metric queries."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, api_errors, config, fail
from aidc.client import alerts as alerts_api
from aidc.domain.silences import Matcher, parse_matcher
from aidc.domain.units import parse_duration

alerts_app = typer.Typer(
    help="Alerts: firing, history, rules, silences, acknowledgements.", invoke_without_command=True
)
rules_app = typer.Typer(help="The alert rules.", no_args_is_help=True)
alerts_app.add_typer(rules_app, name="rules")

_STATE_STYLE = {"firing": "red", "pending": "yellow", "resolved": "green"}


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    firing: Annotated[bool, typer.Option("--firing", help="Only alerts that are firing")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List current alerts (firing, pending, recently resolved)."""
    if ctx.invoked_subcommand is not None:
        return
    with api_errors(), config.client() as client:
        found = client.alerts(firing=firing)
    if json_out:
        render.print_json([a.model_dump(mode="json") for a in found])
        return
    t = render.table("STATE", "ALERT", "SEVERITY", "ON", "SINCE", "VALUE", "SUMMARY", "HANDLED", "FINGERPRINT")
    for a in found:
        on = a.labels.get("node") or a.labels.get("Hostname") or a.labels.get("queue") or a.labels.get("job_id") or "-"
        if "gpu" in a.labels:
            on += f" gpu {a.labels['gpu']}"
        since = a.fired_at if a.state == "firing" else a.resolved_at if a.state == "resolved" else a.active_at
        value = "-" if a.value is None else f"{a.value:g}"
        style = _STATE_STYLE.get(a.state, "")
        handled = [f"silenced ({', '.join(s[:8] for s in a.silenced_by)})"] if a.silenced_by else []
        if a.acknowledged is not None:
            handled.append(f"acked by {a.acknowledged.by}")
        t.add_row(
            f"[{style}]{a.state}[/]", a.name, a.severity or "-", on, render.ago(since), value,
            a.annotations.get("summary", ""), "; ".join(handled) or "-", a.fingerprint,
        )  # fmt: skip
    render.console.print(t)


@alerts_app.command("history")
def history(
    since: Annotated[str | None, typer.Option(help='How far back: "2h", "7d", or an RFC 3339 time')] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Alerts that fired and resolved, newest first."""
    with api_errors(), config.client() as client:
        events = client.alert_history(since, limit)
    if json_out:
        render.print_json([e.model_dump(mode="json") for e in events])
        return
    t = render.table("TIME", "STATE", "ALERT", "SEVERITY", "LABELS", "SUMMARY")
    for e in events:
        labels = ",".join(f"{k}={v}" for k, v in sorted(e.labels.items()) if k not in {"alertname", "severity"})
        style = _STATE_STYLE.get(e.state, "")
        t.add_row(
            render.when(e.at), f"[{style}]{e.state}[/]", e.name, e.severity or "-", labels,
            e.annotations.get("summary", ""),
        )  # fmt: skip
    render.console.print(t)


def _matchers(texts: list[str]) -> list[Matcher]:
    out: list[Matcher] = []
    for text in texts:
        try:
            out.append(parse_matcher(text))
        except ValueError as exc:
            fail(f"--match: {exc}", EXIT_USAGE)
    return out


@alerts_app.command("silence")
def silence(
    match: Annotated[
        list[str], typer.Option("--match", help='A label matcher: alertname=X, node=~"gpu-.*", severity!=info')
    ],
    duration: Annotated[str, typer.Option("--for", help='How long from now, e.g. "2h" (at most 90 days)')],
    comment: Annotated[str, typer.Option(help="Why (required, as in Alertmanager)")],
) -> None:
    """Silence the notifications of the alerts every --match matches (node actions still happen). Prints the id."""
    matchers = _matchers(match)
    try:
        if parse_duration(duration) <= 0:
            fail("--for: must be longer than 0s", EXIT_USAGE)
    except ValueError as exc:
        fail(f"--for: {exc}", EXIT_USAGE)
    if not comment.strip():
        fail("--comment: required: say why the alerts are silenced", EXIT_USAGE)
    with api_errors(), config.client() as client:
        created = alerts_api.create_silence(client, matchers, comment, duration)
    print(created.id)


@alerts_app.command("silences")
def silences(
    show_all: Annotated[bool, typer.Option("--all", help="Expired silences too")] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Silences that are active or pending (with --all: expired ones too), newest first."""
    with api_errors(), config.client() as client:
        found = alerts_api.silences(client)
    if not show_all:
        found = [s for s in found if s.state != "expired"]
    if json_out:
        render.print_json([s.model_dump(mode="json") for s in found])
        return
    t = render.table("ID", "STATE", "MATCHERS", "STARTS", "ENDS", "BY", "COMMENT")
    for s in found:
        shown = ", ".join(str(Matcher(m.name, m.value, m.is_regex, m.is_equal)) for m in s.matchers)
        t.add_row(s.id, s.state, shown, render.when(s.starts_at), render.when(s.ends_at), s.created_by, s.comment)
    render.console.print(t)


@alerts_app.command("expire")
def expire(silence_id: Annotated[str, typer.Argument(help="The silence's id")]) -> None:
    """End a silence now."""
    with api_errors(), config.client() as client:
        done = alerts_api.expire_silence(client, silence_id)
    print(f"expired silence {done.id}")


@alerts_app.command("ack")
def ack(
    fingerprint: Annotated[str, typer.Argument(help="The firing alert's fingerprint (see `aidc alerts`)")],
    comment: Annotated[str | None, typer.Option(help="A note for the others on call")] = None,
) -> None:
    """Acknowledge a firing alert: it shows who has it in hand, and is not re-notified, until it resolves."""
    with api_errors(), config.client() as client:
        done = alerts_api.acknowledge(client, fingerprint, comment)
    print(f"acknowledged {fingerprint} as {done.by}")


@rules_app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="prometheus: a rule file for rule_files")] = "prometheus",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE (default: stdout)")] = None,
) -> None:
    """Write the rules (defaults and --alert-rules) as a Prometheus rule file `promtool check rules` accepts."""
    if fmt != "prometheus":
        fail(f"--format: {fmt!r} is not supported; use prometheus", EXIT_USAGE)
    with api_errors(), config.client() as client:
        text = client.alert_rules(fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        print(f"wrote {output}")


def metrics(
    name: Annotated[str, typer.Argument(help="Metric name, e.g. DCGM_FI_DEV_GPU_TEMP")],
    labels: Annotated[str | None, typer.Option(help='Label matchers, e.g. gpu="0",Hostname=~"n.*"')] = None,
    since: Annotated[str, typer.Option(help='Start: "1h" ago, Unix seconds or RFC 3339')] = "1h",
    until: Annotated[str | None, typer.Option(help="End (default: now)")] = None,
    step: Annotated[str | None, typer.Option(help='Resolution, e.g. "1m" (default: ~240 points)')] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Query a metric's history from the embedded time-series buffer (no Prometheus needed)."""
    with api_errors(), config.client() as client:
        result = client.metric_query(name, labels=labels, since=since, until=until, step=step)
    if json_out:
        render.print_json(result.model_dump(mode="json"))
        return
    t = render.table("SERIES", "POINTS", "LAST", "MIN", "MAX", "AVG")
    for s in result.series:
        shown = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "__name__") or "-"
        values = [v for _, v in s.points]
        if not values:
            continue
        t.add_row(
            shown, str(len(values)), f"{values[-1]:g}", f"{min(values):g}", f"{max(values):g}",
            f"{sum(values) / len(values):.4g}",
        )  # fmt: skip
    render.console.print(t)
