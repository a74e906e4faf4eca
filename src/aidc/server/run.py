"""Serve the control plane with uvicorn."""

from __future__ import annotations

import gc
import logging
import ssl
import sys

import uvicorn

from aidc.domain.errors import InvalidInput
from aidc.server.build import ControlPlane, build
from aidc.settings import Settings
from aidc.storage.errors import BackupKeyError


class StartupError(Exception):
    """The control plane cannot start; the message says why in one line. `usage` marks bad settings."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def _build(settings: Settings) -> ControlPlane:
    try:
        return build(settings)
    except InvalidInput:
        raise
    except (ValueError, BackupKeyError) as exc:
        raise StartupError(str(exc), usage=True) from None
    except OSError as exc:
        raise StartupError(f"{exc.filename or settings.data_dir}: {exc.strerror or exc}") from None
    except Exception as exc:  # e.g. the database refuses the connection; its first line says why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StartupError(f"cannot start: {first}") from None


def _tls_files(settings: Settings) -> tuple[str, str] | None:
    """The certificate and key to serve HTTPS with, checked before anything starts: a missing file, a
    key that does not match the certificate or a file that is not PEM is one line, not a traceback."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    for path in (settings.tls_cert, settings.tls_key):
        if not path.is_file():
            raise StartupError(f"{path}: no such file", usage=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise StartupError(
            f"--tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: not a matching PEM certificate and key "
            f"({getattr(exc, 'reason', None) or exc})",
            usage=True,
        ) from None
    return str(settings.tls_cert), str(settings.tls_key)


def serve(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: a line per poll of an engine's API (Ray's) would drown the log.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    # The control loop's cycles are CPU work in a thread beside the API: hand the GIL over more often than
    # the default 5 ms so that a request never waits behind a long stretch of a cycle.
    sys.setswitchinterval(0.001)
    gc.set_threshold(50_000, 50, 1000)
    tls = _tls_files(settings)  # before anything starts
    plane = _build(settings)
    log = logging.getLogger("aidc.server")
    if plane.admin_token_file:
        log.info("first start: admin token written to %s (mode 0600)", plane.admin_token_file)
    log.info("data dir %s", settings.data_dir)
    config = uvicorn.Config(
        plane.app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    if tls:
        log.info("serving HTTPS with %s", tls[0])
    uvicorn.Server(config).run()
    if plane.election.deposed:
        raise StartupError("this instance lost leadership (its database lock) and stopped; restart it to rejoin")
