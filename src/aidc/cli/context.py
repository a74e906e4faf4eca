"""Where the CLI finds the server and its token, and how it turns failures into one line and an exit code."""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import typer

from aidc.client import AidcClient, ApiError, ConnectionFailed
from aidc.settings import DEFAULT_PORT, default_data_dir

EXIT_ERROR = 1
EXIT_USAGE = 2  # bad input: the user must change what they typed or wrote


@dataclass
class CliConfig:
    url: str | None = None
    token: str | None = None

    def resolved_url(self) -> str:
        return self.url or os.environ.get("AIDC_URL") or f"http://127.0.0.1:{DEFAULT_PORT}"

    def resolved_token(self) -> str | None:
        if self.token:
            return self.token
        if os.environ.get("AIDC_TOKEN"):
            return os.environ["AIDC_TOKEN"]
        path = default_data_dir() / "admin.token"
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    def client(self) -> AidcClient:
        try:
            return AidcClient(self.resolved_url(), self.resolved_token())
        except (OSError, ssl.SSLError) as exc:  # the CA file AIDC_CA_CERT names is missing or not PEM
            fail(f"AIDC_CA_CERT={os.environ.get('AIDC_CA_CERT')}: {getattr(exc, 'strerror', None) or exc}", EXIT_USAGE)


config = CliConfig()


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    print(f"aidc: {message}", file=sys.stderr)
    raise typer.Exit(code)


@contextmanager
def api_errors(what: str | None = None) -> Iterator[None]:
    """Turn client errors into one line on stderr: exit 2 for rejected input, 1 for everything else."""
    prefix = f"{what}: " if what else ""
    try:
        yield
    except ConnectionFailed as exc:
        fail(str(exc))
    except ApiError as exc:
        if exc.status == 401:
            hint = " (set AIDC_TOKEN, or read it from the data dir's admin.token)"
            fail(f"{prefix}not authenticated: {exc.detail}{hint}")
        if exc.status in (400, 422):
            problems = "; ".join(f"{e.field}: {e.problem}" if e.field else e.problem for e in exc.errors)
            fail(f"{prefix}{problems or exc.detail}", EXIT_USAGE)
        fail(f"{prefix}{exc.detail}")


def read_text_file(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        fail(f"{path}: no such file", EXIT_USAGE)
    except IsADirectoryError:
        fail(f"{path}: is a directory", EXIT_USAGE)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read ({exc})", EXIT_USAGE)
