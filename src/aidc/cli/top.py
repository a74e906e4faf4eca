"""`aidc top`: a live terminal view of nodes, GPUs and running jobs, refreshed in place."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from aidc.cli import render
from aidc.cli.context import api_errors, config
from aidc.client.http import AidcClient

GPU_SERIES = {
    "util": "DCGM_FI_DEV_GPU_UTIL",
    "temp": "DCGM_FI_DEV_GPU_TEMP",
    "power": "DCGM_FI_DEV_POWER_USAGE",
    "fb": "DCGM_FI_DEV_FB_USED",
}
JOB_SERIES = {
    "cpu": "aidc_job_cpu_utilization_ratio",
    "rss": "aidc_job_memory_rss_bytes",
    "gpu": "aidc_job_gpu_utilization_percent",
}
NODE_SERIES = {"cpu": "aidc_node_cpu_utilization_ratio", "mem": "aidc_node_memory_used_ratio"}


def _latest(client: AidcClient, name: str, key: str) -> dict[str, float]:
    """The newest value of each series of `name` over the last minute, by the value of label `key`."""
    result = client.metric_query(name, since="60s", step="5s")
    return {s.labels.get(key, ""): s.points[-1][1] for s in result.series if s.points}


def _gpu_latest(client: AidcClient, name: str) -> dict[tuple[str, str], float]:
    result = client.metric_query(name, since="60s", step="5s")
    return {(s.labels.get("Hostname", ""), s.labels.get("gpu", "")): s.points[-1][1] for s in result.series if s.points}


def frame(client: AidcClient) -> Group:
    nodes = client.nodes()
    running = client.jobs(states=["RUNNING"], limit=50)
    firing = client.alerts(firing=True)
    node_cpu = _latest(client, NODE_SERIES["cpu"], "node")
    node_mem = _latest(client, NODE_SERIES["mem"], "node")
    nt = render.table("NODE", "STATE", "CPU", "MEMORY", "GPUS USED", "JOBS", "HEARTBEAT")
    for n in nodes:
        used = sum(1 for g in n.gpus if g.allocated)
        cpu = f"{node_cpu[n.name] * 100:.0f}%" if n.name in node_cpu else "-"
        mem = f"{node_mem[n.name] * 100:.0f}%" if n.name in node_mem else "-"
        nt.add_row(
            n.name, n.state + (f" ({n.state_reason})" if n.state_reason else ""), cpu, mem,
            f"{used}/{len(n.gpus)}", str(len(n.jobs)), render.ago(n.last_seen),
        )  # fmt: skip
    parts: list[Table] = [nt]
    gpu = {field: _gpu_latest(client, name) for field, name in GPU_SERIES.items()}
    if gpu["util"]:
        gt = render.table("HOST", "GPU", "UTIL", "TEMP", "POWER", "MEMORY USED")
        for host, index in sorted(gpu["util"], key=lambda k: (k[0], int(k[1]) if k[1].isdigit() else 0)):
            where = (host, index)
            temp = gpu["temp"].get(where)
            power = gpu["power"].get(where)
            fb = gpu["fb"].get(where)
            gt.add_row(
                host, index, f"{gpu['util'][where]:.0f}%", "-" if temp is None else f"{temp:.0f} C",
                "-" if power is None else f"{power:.0f} W", "-" if fb is None else f"{fb:.0f} MiB",
            )  # fmt: skip
        parts.append(gt)
    job = {field: _latest(client, name, "job_id") for field, name in JOB_SERIES.items()}
    jt = render.table("JOB", "NAME", "USER", "QUEUE", "GPUS", "CPU", "MEMORY", "GPU UTIL", "RUNNING FOR")
    for j in running:
        key = str(j.id)
        jt.add_row(
            key, j.name, j.user, j.queue, f"{j.resources.gpus * j.num_nodes:g}",
            f"{job['cpu'][key]:.2f}" if key in job["cpu"] else "-",
            render.size(int(job["rss"][key])) if key in job["rss"] else "-",
            f"{job['gpu'][key]:.0f}%" if key in job["gpu"] else "-",
            render.ago(j.started_at).removesuffix(" ago"),
        )  # fmt: skip
    parts.append(jt)
    if firing:
        at = render.table("FIRING", "SEVERITY", "SUMMARY")
        for a in firing:
            at.add_row(f"[red]{a.name}[/]", a.severity, a.annotations.get("summary", ""))
        parts.append(at)
    return Group(*parts)


def top(
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit")] = False,
) -> None:
    """Live view of nodes, GPUs and running jobs (Ctrl-C to leave)."""
    with api_errors(), config.client() as client:
        if once:
            render.console.print(frame(client))
            return
        with Live(frame(client), console=render.console, refresh_per_second=4, screen=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    live.update(frame(client))
            except KeyboardInterrupt:
                pass
