"""Serve the control plane with uvicorn."""

from __future__ import annotations

import gc
import logging
import sys

import uvicorn

from aidc.domain.errors import InvalidInput
from aidc.server.build import ControlPlane, build
from aidc.settings import Settings


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
    except ValueError as exc:
        raise StartupError(str(exc), usage=True) from None
    except OSError as exc:
        raise StartupError(f"{exc.filename or settings.data_dir}: {exc.strerror or exc}") from None
    except Exception as exc:  # e.g. the database refuses the connection; its first line says why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StartupError(f"cannot start: {first}") from None


def serve(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The control loop's cycles are CPU work in a thread beside the API: hand the GIL over more often than
    # the default 5 ms so that a request never waits behind a long stretch of a cycle.
    sys.setswitchinterval(0.001)
    gc.set_threshold(50_000, 50, 1000)
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
    )
    uvicorn.Server(config).run()
