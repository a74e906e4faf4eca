"""Serve the control plane with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from aidc.server.build import build
from aidc.settings import Settings


def serve(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
