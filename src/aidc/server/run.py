"""Serve the control plane with uvicorn."""

from __future__ import annotations

import gc
import logging
import sys

import uvicorn

from aidc.server.build import build
from aidc.settings import Settings


def serve(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The control loop's cycles are CPU work in a thread beside the API: hand the GIL over more often than
    # the default 5 ms so that a request never waits behind a long stretch of a cycle.
    sys.setswitchinterval(0.001)
    gc.set_threshold(50_000, 50, 1000)
    plane = build(settings)
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
