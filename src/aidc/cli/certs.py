"""`aidc certs self-signed`: a TLS certificate and key for a lab, for `aidc up --tls-cert --tls-key`."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from aidc.cli import render
from aidc.cli.context import EXIT_USAGE, fail

app = typer.Typer(help="TLS certificates", no_args_is_help=True)


@app.command("self-signed")
def self_signed_command(
    out: Annotated[Path, typer.Option(help="Directory to write aidc.crt and aidc.key to")] = Path("."),
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Name or address clients use (repeat); localhost, 127.0.0.1 and ::1 always"),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days the certificate is valid")] = 365,
    force: Annotated[bool, typer.Option(help="Replace files that exist")] = False,
) -> None:
    """Write a self-signed certificate (aidc.crt) and its key (aidc.key, mode 0600). Clients trust it by
    its file: AIDC_CA_CERT=aidc.crt for the CLI, verify="aidc.crt" for httpx or the OpenAI SDK."""
    from aidc.security.certs import self_signed
    from aidc.security.files import write_atomic

    names = list(host or []) or [socket.gethostname()]
    cert_path, key_path = out / "aidc.crt", out / "aidc.key"
    for path in (cert_path, key_path):
        if path.exists() and not force:
            fail(f"{path}: exists (use --force to replace it)", EXIT_USAGE)
    try:
        pair = self_signed(names, datetime.now(UTC), days)
    except ValueError as exc:
        fail(f"--host: {exc}", EXIT_USAGE)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(key_path, pair.key_pem, 0o600)
        write_atomic(cert_path, pair.cert_pem, 0o644)
    except OSError as exc:
        fail(f"{exc.filename or out}: {exc.strerror or exc}", EXIT_USAGE)
    render.console.print(f"wrote {cert_path} and {key_path} (mode 0600), valid {days} days for {', '.join(names)}")
    render.console.print(f"start:   aidc up --tls-cert {cert_path} --tls-key {key_path}")
    render.console.print(f"clients: AIDC_URL=https://localhost:8470 AIDC_CA_CERT={cert_path} aidc queues")
