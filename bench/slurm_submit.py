"""Submitting to a real Slurm cluster: straight with `sbatch`, and through aidc (admission + sbatch), side by side.

Starts Debian's slurmctld + slurmd on this machine (the test fixture's cluster: this host with two fake GPUs, and a
second slurmd as another node) and
submits `--jobs` jobs (`sleep 600`, so that Slurm holds every one of them when counted) twice:

- peer: `sbatch --parsable --wrap 'sleep 600'` once per job, from `--clients` threads (what a script that loops over
  sbatch does);
- aidc: `aidc up --backend slurm`, the same jobs POSTed to /v1/jobs from `--clients` threads; aidc authorizes,
  audits, stores, admits them (its scheduler) and its control loop runs sbatch for each.

Both are timed from the first submit until Slurm holds every job (squeue counts them; polled every 0.5 s for
aidc's run). The jobs ask for a sliver of CPU and memory so that aidc's admission
does not hold them back for capacity: Slurm queues them all, as it does for the peer. The queue is emptied
(scancel) between runs.

    .venv/bin/python bench/slurm_submit.py [--jobs 2000] [--clients 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import AidcServer, wait_for  # noqa: E402
from tests.fixtures.slurm import SlurmCluster, find_programs  # noqa: E402

SPEC = {"name": "tiny", "run": "sleep 600", "resources": {"cpus": 0.0005, "memory": "1MB"}}


def in_slurm(cluster: SlurmCluster) -> int:
    out = cluster.run(["squeue", "-h", "-o", "%i"], timeout=60).stdout
    return len(out.split())


def empty(cluster: SlurmCluster) -> None:
    cluster.cancel_all()
    wait_for(lambda: in_slurm(cluster) == 0, timeout=120, every=0.5, what="Slurm's queue to empty")


def run_sbatch(cluster: SlurmCluster, jobs: int, clients: int, out: Path) -> float:
    def one(i: int) -> None:
        cluster.run(
            [
                "sbatch",
                "--parsable",
                "--job-name",
                f"peer-{i}",
                "--output",
                str(out),
                "--mem",
                "1",
                "--wrap",
                "sleep 600",
            ],
            timeout=60,
        )

    began = time.monotonic()
    with Progress(transient=True) as progress, ThreadPoolExecutor(clients) as pool:
        task = progress.add_task("sbatch", total=jobs)
        for _ in pool.map(one, range(jobs)):
            progress.advance(task)
    return time.monotonic() - began


def run_aidc(server: AidcServer, cluster: SlurmCluster, jobs: int, clients: int, workdir: Path) -> tuple[float, float]:
    """Seconds until every job was acknowledged by the API, and until Slurm held every one of them."""
    spec = {**SPEC, "workdir": str(workdir)}
    headers = {"Authorization": f"Bearer {server.token}"}
    local = threading.local()  # one kept-alive client per thread (making a client costs more than a submit)

    def one(_: int) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.url, headers=headers, timeout=60)
        local.client.post("/v1/jobs", json=spec).raise_for_status()

    began = time.monotonic()
    with Progress(transient=True) as progress:
        task = progress.add_task("POST /v1/jobs", total=jobs)
        with ThreadPoolExecutor(clients) as pool:
            for _ in pool.map(one, range(jobs)):
                progress.advance(task)
        acked = time.monotonic() - began
        launched = progress.add_task("aidc -> sbatch", total=jobs)
        while (held := in_slurm(cluster)) < jobs:
            progress.update(launched, completed=held)
            time.sleep(0.5)
    return acked, time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cluster = SlurmCluster.start(find_programs())
    try:
        with tempfile.TemporaryDirectory(prefix="aidc-slurm-bench-") as tmp_name:
            tmp = Path(tmp_name)
            peer = run_sbatch(cluster, args.jobs, args.clients, tmp / "peer.out")
            assert in_slurm(cluster) == args.jobs
            empty(cluster)
            os.environ["SLURM_CONF"] = str(cluster.conf)
            (tmp / "backend.yaml").write_text("slurm: {}\n")
            (tmp / "work").mkdir()
            server = AidcServer(
                data_dir=tmp / "data",
                extra_args=["--backend", "slurm", "--backend-config", str(tmp / "backend.yaml"), "--no-gateway"],
            ).start()
            try:
                acked, launched = run_aidc(server, cluster, args.jobs, args.clients, tmp / "work")
                failed = server.cli("jobs", "--state", "FAILED", "--json").json()
                if failed or in_slurm(cluster) != args.jobs:
                    why = {j["state_reason"] for j in failed}
                    raise SystemExit(f"{in_slurm(cluster)} jobs in Slurm; {len(failed)} failed in aidc: {why}")
            finally:
                server.stop()
                empty(cluster)
    finally:
        cluster.stop()
    result: dict[str, Any] = {
        "jobs": args.jobs,
        "clients": args.clients,
        "sbatch_jobs_per_s": args.jobs / peer,
        "aidc_api_jobs_per_s": args.jobs / acked,
        "aidc_jobs_per_s": args.jobs / launched,
    }
    result["ratio"] = result["aidc_jobs_per_s"] / result["sbatch_jobs_per_s"]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"{args.jobs} jobs into Slurm, {args.clients} clients")
    table.add_column("path")
    table.add_column("jobs/s", justify="right")
    table.add_row("sbatch straight (peer)", f"{result['sbatch_jobs_per_s']:.0f}")
    table.add_row("aidc: acknowledged by the API", f"{result['aidc_api_jobs_per_s']:.0f}")
    table.add_row("aidc: admitted and sbatch'ed", f"{result['aidc_jobs_per_s']:.0f}")
    Console().print(table)
    print(f"aidc / sbatch: {result['ratio']:.2f}x")


if __name__ == "__main__":
    main()
