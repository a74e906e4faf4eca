"""Audit verbs: list and verify."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, api_errors, config, fail
from aidc.domain.units import parse_duration

audit_app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)


def _since(value: str) -> datetime:
    """ "2h", "7d" (ago) or an ISO 8601 time."""
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since: {value!r} is neither a duration (2h, 7d) nor an ISO 8601 time", EXIT_USAGE)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@audit_app.command("list")
def audit_list(
    since: Annotated[str | None, typer.Option(help='How far back: "2h", "7d", or an ISO 8601 time')] = None,
    actor: Annotated[str | None, typer.Option(help="Only this user")] = None,
    action: Annotated[
        str | None, typer.Option(help='An action (job.submit) or a prefix ("token.", "security.")')
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List audit records, oldest first."""
    params = {
        "since": _since(since).isoformat() if since else None,
        "actor": actor,
        "action": action,
        "limit": limit,
    }
    with api_errors(), config.client() as client:
        records = client.audit(**params)
    if json_out:
        render.print_json([r.model_dump(mode="json") for r in records])
        return
    t = render.table("SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "REQUEST")
    for r in records:
        t.add_row(str(r.seq), render.when(r.at), r.actor, r.action, r.target, r.outcome, r.request_id[:12] or "-")
    render.console.print(t)


@audit_app.command("verify")
def audit_verify(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Walk the hash chain and check the signed head; exit 1 naming the first record edited, removed or
    reordered."""
    with api_errors(), config.client() as client:
        verdict = client.audit_verify()
    if json_out:
        render.print_json(verdict.model_dump(mode="json"))
    elif verdict.ok:
        print(verdict.message)
    if not verdict.ok:
        fail(verdict.message)
