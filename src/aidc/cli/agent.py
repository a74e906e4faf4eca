"""`aidc agent`: a node's agent. It sends the node's heartbeat with its telemetry (psutil, and NVML where there are
NVIDIA GPUs) to the control plane every few seconds; a node whose agent falls silent is marked DOWN and its jobs
are requeued."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from typing import Annotated, Any

import typer

from aidc.cli.context import api_errors, config
from aidc.client.http import ApiError, ConnectionFailed
from aidc.telemetry.collectors.base import Collector
from aidc.telemetry.collectors.gpu import GpuCollector
from aidc.telemetry.collectors.node import NodeCollector
from aidc.telemetry.collectors.rapl import RaplCollector
from aidc.telemetry.series import Family

log = logging.getLogger("aidc.agent")


def _wire(families: list[Family]) -> list[dict[str, Any]]:
    """Families as the heartbeat carries them; values JSON cannot hold (NaN, infinities) are left out."""
    return [
        {
            "name": f.name,
            "help": f.help,
            "type": f.type,
            "samples": [[dict(labels), value] for labels, value in f.samples if math.isfinite(value)],
        }
        for f in families
        if f.type != "histogram"
    ]


def agent(
    node: Annotated[str, typer.Option(help="The node this agent speaks for (as `aidc nodes` lists it)")],
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between heartbeats")] = 5.0,
    no_telemetry: Annotated[bool, typer.Option("--no-telemetry", help="Heartbeats only")] = False,
) -> None:
    """Run a node agent: heartbeats and telemetry for NODE, until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    collectors: list[Collector] = []
    if not no_telemetry:
        collectors.append(NodeCollector(node, interval))
        rapl = RaplCollector.open(node, interval)
        if rapl is not None:
            collectors.append(rapl)
        gpu = GpuCollector.open(node, interval)
        if gpu is not None:
            collectors.append(gpu)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    failing = False
    with api_errors(f"node {node}"), config.client() as client:
        log.info("agent for node %s: heartbeat every %gs to %s", node, interval, client.base_url)
        while not stop.is_set():
            began = time.monotonic()
            now = time.time()
            families = [f for c in collectors for f in _collect(c, now)]
            try:
                client.heartbeat(node, _wire(families))
                if failing:
                    log.info("the control plane answers again")
                failing = False
            except ApiError as exc:
                if exc.status in (401, 403, 404):
                    raise  # a wrong token or node name will not fix itself
                failing = _report(failing, f"HTTP {exc.status}: {exc.detail}")
            except ConnectionFailed as exc:
                failing = _report(failing, str(exc))
            stop.wait(max(0.0, interval - (time.monotonic() - began)))
    for collector in collectors:
        close = getattr(collector, "close", None)
        if close is not None:
            close()


def _collect(collector: Collector, now: float) -> list[Family]:
    try:
        return collector.collect(now)
    except Exception as exc:  # one bad reading must not stop the heartbeat
        log.warning("collector %s failed: %s", collector.name, exc)
        return []


def _report(failing: bool, why: str) -> bool:
    if not failing:
        log.warning("heartbeat failed (%s); retrying", why)
    return True
