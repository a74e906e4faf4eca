"""The `aidc` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

# Typer ships its own copy of click; its exceptions live here (typer is pinned in pyproject.toml).
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from aidc import __version__
from aidc.cli import (
    agent,
    alerts,
    artifacts,
    audit,
    backup,
    certs,
    cluster,
    energy,
    export,
    identity,
    jobs,
    plan,
    serving,
    sim,
    sim_run,
    top,
)
from aidc.cli.context import EXIT_USAGE, config, fail

app = typer.Typer(
    name="aidc",
    help="aidc: the control plane of an AI datacenter.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    url: Annotated[str | None, typer.Option(help="Server URL (env AIDC_URL; default http://127.0.0.1:8470)")] = None,
    token: Annotated[str | None, typer.Option(help="API token (env AIDC_TOKEN; default DATA_DIR/admin.token)")] = None,
) -> None:
    config.url = url
    config.token = token


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8470,
    data_dir: Annotated[Path | None, typer.Option(help="Default: $AIDC_DATA_DIR or ~/.local/share/aidc")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Default: SQLite in the data dir; or postgresql+psycopg://...")
    ] = None,
    cluster_file: Annotated[
        Path | None, typer.Option("--cluster", help="Cluster file: more nodes, power budgets and caps, energy prices")
    ] = None,
    gpu_catalog: Annotated[
        Path | None, typer.Option(help="A site GPU catalog (YAML) merged over the shipped one: prices, new models")
    ] = None,
    scheduler_config: Annotated[
        Path | None, typer.Option(help="Scheduler config (YAML): policy, placement, backfill, preemption, queues")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="The engine that runs jobs: local (default), slurm (SLURM_CONF), kubernetes or ray"),
    ] = None,
    backend_config: Annotated[
        Path | None, typer.Option(help="The backend's options (YAML; see docs/backends.md)")
    ] = None,
    instance: Annotated[
        str | None, typer.Option(help="This instance's name when several share a PostgreSQL database (host:port)")
    ] = None,
    log_level: Annotated[str, typer.Option()] = "info",
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate: serve HTTPS (`aidc certs self-signed` makes one for a lab)")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert")] = None,
    backup_target: Annotated[
        str | None, typer.Option(help="Backups go here: a path or fsspec URL (default: DATA_DIR/backups)")
    ] = None,
    backup_key_file: Annotated[
        Path | None, typer.Option(help="Backup key file (`aidc backup key` makes one); or AIDC_BACKUP_KEY")
    ] = None,
    backup_every: Annotated[str | None, typer.Option(help='Back up on a schedule, e.g. "24h"')] = None,
    backup_keep: Annotated[int | None, typer.Option(min=1, help="Scheduled backups keep the newest N (7)")] = None,
    local_nodes: Annotated[
        int | None, typer.Option(min=1, max=64, help="Split this host into N nodes; nodes 2..N need `aidc agent`")
    ] = None,
    node_timeout: Annotated[str | None, typer.Option(help='A node silent this long is DOWN (default "30s")')] = None,
    alert_rules: Annotated[Path | None, typer.Option(help="More alert rules: a Prometheus rule file")] = None,
    no_default_rules: Annotated[bool, typer.Option("--no-default-rules", help="Skip the default rule pack")] = False,
    alert_webhook: Annotated[
        str | None, typer.Option(help="Send alerts to this URL in Alertmanager's webhook format")
    ] = None,
    alert_every: Annotated[str | None, typer.Option(help='Evaluate alert rules this often (default "15s")')] = None,
    gateway_port: Annotated[
        int, typer.Option(min=1, max=65535, help="The OpenAI-compatible inference gateway's port")
    ] = 8471,
    no_gateway: Annotated[bool, typer.Option("--no-gateway", help="Do not start the inference gateway")] = False,
    gateway_limits: Annotated[
        Path | None, typer.Option(help="Gateway rate limits per key and team (YAML; see docs/gateway.md)")
    ] = None,
) -> None:
    """Start the control plane (REST API, scheduler, the backend that runs jobs) and the inference gateway.

    Several instances may share one PostgreSQL database: one leads (schedules, reconciles), all serve the API."""
    from pydantic import ValidationError

    from aidc.domain.errors import InvalidInput
    from aidc.server.run import StartupError, serve
    from aidc.settings import Settings

    overrides: dict[str, object] = {"host": host, "port": port, "log_level": log_level}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    if cluster_file is not None:
        overrides["cluster_file"] = cluster_file
    if gpu_catalog is not None:
        overrides["gpu_catalog"] = gpu_catalog
    if scheduler_config is not None:
        overrides["scheduler_config"] = scheduler_config
    if tls_cert is not None:
        overrides["tls_cert"] = tls_cert
    if tls_key is not None:
        overrides["tls_key"] = tls_key
    for setting, value in (
        ("backend", backend),
        ("backend_config", backend_config),
        ("instance", instance),
        ("backup_target", backup_target),
        ("backup_key_file", backup_key_file),
        ("backup_every", backup_every),
        ("backup_keep", backup_keep),
        ("local_nodes", local_nodes),
        ("node_timeout", node_timeout),
        ("alert_rules", alert_rules),
        ("alert_webhook", alert_webhook),
        ("alert_every", alert_every),
    ):
        if value is not None:
            overrides[setting] = value
    if no_default_rules:
        overrides["default_rules"] = False
    overrides["gateway_port"] = None if no_gateway else gateway_port
    if gateway_limits is not None:
        overrides["gateway_limits"] = gateway_limits
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        serve(settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        fail(f"{where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}", EXIT_USAGE)
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    except StartupError as exc:
        fail(str(exc), EXIT_USAGE if exc.usage else 1)


@app.command()
def gateway(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8471,
    data_dir: Annotated[Path | None, typer.Option(help="The control plane's data dir (its audit key)")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="The control plane's database (default: SQLite in data dir)")
    ] = None,
    limits: Annotated[Path | None, typer.Option(help="Rate limits per key and team (YAML)")] = None,
    log_level: Annotated[str, typer.Option()] = "info",
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert")] = None,
) -> None:
    """Run the inference gateway alone, on a running control plane's database (`aidc up` starts one too)."""
    from pydantic import ValidationError

    from aidc.server.gateway_plan import serve_gateway
    from aidc.settings import Settings

    overrides: dict[str, object] = {"host": host, "gateway_port": port, "log_level": log_level}
    for setting, value in (
        ("data_dir", data_dir),
        ("database_url", database_url),
        ("gateway_limits", limits),
        ("tls_cert", tls_cert),
        ("tls_key", tls_key),
    ):
        if value is not None:
            overrides[setting] = value
    try:
        serve_gateway(Settings(**overrides))  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        fail(f"{where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}", EXIT_USAGE)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


app.command()(jobs.submit)
app.command("jobs")(jobs.jobs)
app.command()(jobs.show)
app.command()(jobs.cancel)
app.command()(jobs.logs)
app.command()(serving.deploy)
app.add_typer(serving.models_app, name="models")
app.command()(serving.scale)
app.add_typer(serving.rollout_app, name="rollout")
app.command()(serving.usage)
app.command()(cluster.nodes)
app.command()(cluster.queues)
app.add_typer(cluster.queue_app, name="queue")
app.add_typer(cluster.node_app, name="node")
app.add_typer(alerts.alerts_app, name="alerts")
app.command()(alerts.metrics)
app.command()(top.top)
app.command()(agent.agent)
app.add_typer(identity.user_app, name="user")
app.add_typer(identity.team_app, name="team")
app.add_typer(identity.token_app, name="token")
app.command()(identity.whoami)
app.add_typer(audit.audit_app, name="audit")
app.add_typer(artifacts.artifacts_app, name="artifacts")
app.add_typer(export.export_app, name="export")
app.add_typer(backup.backup_app, name="backup")
app.add_typer(certs.app, name="certs")
app.add_typer(energy.energy_app, name="energy")
app.add_typer(sim.app, name="sim")  # `sim_run` adds its commands to `sim.app` on import
app.add_typer(plan.app, name="plan")
_ = sim_run


def main() -> None:
    # Usage errors in one line on stderr, exit code 2 (click would draw a box around several lines).
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        print((exc.ctx.get_help() if exc.ctx else "see `aidc --help`"), file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "aidc"
        print(f"aidc: {exc.format_message()} (see `{command} --help`)", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except ClickException as exc:
        print(f"aidc: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aidc: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
