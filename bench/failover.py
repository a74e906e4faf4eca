"""Failover time of the control plane, against the peer it replaces: restarting a single instance.

Two `aidc up` share one PostgreSQL database (durable commits) and one data dir, with `--jobs` attempts running.
Each round SIGKILLs the leader and times, from the kill, until the follower answers /readyz as the leader with
its reconciliation done (every running attempt adopted), and until a job submitted right after the kill is
RUNNING. The killed instance is then started again (as a follower) for the next round. The peer run: a single
instance SIGKILLed and started again at once (what a supervisor such as systemd does without HA), timed the
same way. Both print per-round figures, medians and their ratio.

    .venv/bin/python bench/failover.py [--rounds 5] [--jobs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.submit import postgres_url  # noqa: E402
from tests.e2e.server import AidcServer, wait_for  # noqa: E402


def leader_ready(server: AidcServer) -> bool:
    try:
        response = httpx.get(f"{server.url}/readyz", timeout=2)
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.json().get("detail", {}).get("role") == "leader"


def timed_takeover(
    kill: AidcServer, survivor: Callable[[], AidcServer], workdir: Path, name: str
) -> tuple[float, float, AidcServer]:
    """SIGKILL `kill`; seconds until `survivor()` leads and is ready, and until a job submitted then runs."""
    kill.kill()
    began = time.monotonic()
    server = survivor()
    wait_for(lambda: leader_ready(server), timeout=60, every=0.02, what="a ready leader")
    ready = time.monotonic() - began
    job = server.submit(f"name: {name}\nrun: sleep 30\nresources: {{cpus: 0.1}}\n", workdir, f"{name}.yaml")
    wait_for(lambda: server.job(job)["state"] == "RUNNING", timeout=60, every=0.02, what="the new job to run")
    return ready, time.monotonic() - began, server


def fill(server: AidcServer, workdir: Path, jobs: int) -> None:
    ids = [
        server.submit(f"name: busy-{i}\nrun: sleep 600\nresources: {{cpus: 0.1}}\n", workdir, f"busy-{i}.yaml")
        for i in range(jobs)
    ]
    for job_id in ids:
        server.wait_state(job_id, "RUNNING", timeout=60)


def run_ha(url: str, tmp: Path, rounds: int, jobs: int) -> list[tuple[float, float]]:
    data, workdir = tmp / "ha", tmp / "ha-work"
    workdir.mkdir(parents=True)
    a = AidcServer(data_dir=data, database_url=url, extra_args=["--instance", "a", "--no-gateway"]).start()
    wait_for(lambda: leader_ready(a), timeout=60, what="the first leader")
    b = AidcServer(data_dir=data, database_url=url, extra_args=["--instance", "b", "--no-gateway"]).start()
    leader, follower = a, b
    figures = []
    try:
        fill(leader, workdir, jobs)
        for i in range(rounds):
            ready, running, _ = timed_takeover(leader, lambda f=follower: f, workdir, f"ha-{i}")  # type: ignore[misc]
            figures.append((ready, running))
            leader, follower = follower, leader.start()
    finally:
        a.stop()
        b.stop()
        a.reap_jobs()
    return figures


def run_restart(url: str, tmp: Path, rounds: int, jobs: int) -> list[tuple[float, float]]:
    data, workdir = tmp / "single", tmp / "single-work"
    workdir.mkdir(parents=True)
    server = AidcServer(data_dir=data, database_url=url, extra_args=["--instance", "only", "--no-gateway"]).start()
    figures = []
    try:
        fill(server, workdir, jobs)
        for i in range(rounds):
            ready, running, server = timed_takeover(
                server,
                lambda s=server: AidcServer(  # type: ignore[misc]
                    data_dir=s.data_dir, database_url=url, extra_args=s.extra_args, port=s.port
                ).start(),
                workdir,
                f"restart-{i}",
            )
            figures.append((ready, running))
    finally:
        server.stop()
        server.reap_jobs()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=5, help="attempts running when the leader dies")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aidc-failover-") as tmp, postgres_url() as url:
        ha = run_ha(url, Path(tmp), args.rounds, args.jobs)
    with tempfile.TemporaryDirectory(prefix="aidc-restart-") as tmp, postgres_url() as url:
        restart = run_restart(url, Path(tmp), args.rounds, args.jobs)
    result: dict[str, Any] = {
        "rounds": args.rounds,
        "running_attempts": args.jobs,
        "ha_ready_s": [r for r, _ in ha],
        "ha_new_job_running_s": [n for _, n in ha],
        "restart_ready_s": [r for r, _ in restart],
        "restart_new_job_running_s": [n for _, n in restart],
    }
    for key in list(result):
        if key.endswith("_s"):
            result[f"median_{key}"] = statistics.median(result[key])
    result["ratio_ready"] = result["median_ha_ready_s"] / result["median_restart_ready_s"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"failover with {args.jobs} running attempts, {args.rounds} rounds (median)")
    table.add_column("after SIGKILL of the leader")
    table.add_column("ready leader (s)", justify="right")
    table.add_column("a new job running (s)", justify="right")
    table.add_row(
        "HA: the follower takes over",
        f"{result['median_ha_ready_s']:.2f}",
        f"{result['median_ha_new_job_running_s']:.2f}",
    )
    table.add_row(
        "peer: restart the single instance",
        f"{result['median_restart_ready_s']:.2f}",
        f"{result['median_restart_new_job_running_s']:.2f}",
    )
    Console().print(table)
    print(f"HA / restart (ready leader): {result['ratio_ready']:.2f}x")


if __name__ == "__main__":
    main()
