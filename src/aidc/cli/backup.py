"""Backup verbs: key, create, list, verify (through the server) and restore (offline, into a new data dir)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, api_errors, config, fail

backup_app = typer.Typer(help="Encrypted backups of the control plane and its artifacts.", no_args_is_help=True)


@backup_app.command("key")
def key() -> None:
    """Print a new random backup key (64 hex digits). Keep it away from the data dir and the backups."""
    from aidc.storage.crypto import generate_key

    print(generate_key())


@backup_app.command("create")
def create(
    name: Annotated[str | None, typer.Option(help="Default: aidc-<UTC time>")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Back up now: database, keys and artifacts, encrypted, to the server's backup target."""
    with api_errors("backup create"), config.client() as client:
        info = client.create_backup(name)
    if json_out:
        render.print_json(info.model_dump(mode="json"))
        return
    print(f"backup {info.name} written to {info.target} ({render.size(info.size)}, {info.members} files)")


@backup_app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the backups at the server's backup target, oldest first."""
    with api_errors(), config.client() as client:
        found = client.backups()
    if json_out:
        render.print_json([b.model_dump(mode="json") for b in found])
        return
    t = render.table("NAME", "CREATED", "SIZE", "TARGET")
    for b in found:
        t.add_row(b.name, render.when(b.created_at), render.size(b.size), b.target)
    render.console.print(t)


@backup_app.command("verify")
def verify(name: str, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Restore a backup into a temporary place and check every hash and the database; exit 1 if anything
    is off (a wrong key, a changed byte, a missing record)."""
    with api_errors(f"backup {name}"), config.client() as client:
        result = client.verify_backup(name)
    if json_out:
        render.print_json(result.model_dump(mode="json"))
    else:
        print(result.message)


@backup_app.command("restore")
def restore(
    name: str,
    data_dir: Annotated[Path, typer.Option(help="A new (or empty) data dir to restore into")],
    target: Annotated[str, typer.Option(help="Where the backups are: a path or fsspec URL")],
    key_file: Annotated[Path | None, typer.Option(help="Backup key file (or set AIDC_BACKUP_KEY)")] = None,
    database_url: Annotated[str | None, typer.Option(help="PostgreSQL backups: the database to restore into")] = None,
) -> None:
    """Restore a backup while the control plane is stopped: all of it, checked, or nothing. Then start
    `aidc up --data-dir DATA_DIR` (with the same --database-url for PostgreSQL)."""
    from aidc.server.backup_plan import RestoreFailed
    from aidc.server.backup_plan import restore as restore_backup
    from aidc.storage.errors import StorageError

    try:
        from aidc.storage.crypto import load_key

        secret = load_key(key_file, os.environ.get("AIDC_BACKUP_KEY") if key_file is None else None)
    except StorageError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        summary = restore_backup(target, name, secret, data_dir, database_url)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    except (StorageError, RestoreFailed, OSError) as exc:
        fail(f"backup {name}: {exc}")
    print(f"restored {name} into {data_dir}: {summary}")
