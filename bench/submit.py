"""Submit throughput: 10,000 small jobs through the REST API from 8 concurrent clients, SQLite and PostgreSQL.

Each submit is authorized and audited (its record is appended to the hash chain in the job's transaction).
On SQLite it runs twice: with the admin token (a cluster-wide role: one check) and with a team member's
token (the queue belongs to the team: the team-scoped check); their ratio is what team RBAC costs.

Starts a real `aidc up` (in a temp data dir) for each database, submits to a queue whose CPU quota is 0 so the
jobs stay PENDING (the scheduler still runs its cycles over all of them while they arrive; no process is
spawned to compete with the server), then checks every acknowledged job is stored. Side by side, the same
clients call GET /healthz: the HTTP floor of this machine, so the ratio shows what submitting adds.

The clients are hey (Debian's package; `make bench` installs it): 8 concurrent clients that cost the 2-core
machine little, so the server is what is measured. `--client python` uses 8 Python processes with httpx
instead (heavier: they take CPU from the server, so expect lower figures).

    .venv/bin/python bench/submit.py [--jobs 10000] [--clients 8] [--client hey|python] [--no-postgres] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import AidcServer  # noqa: E402

HEY_SPEC = {"name": "bench", "queue": "bench", "run": "true", "resources": {"cpus": 1}}
SLURM_PUBLISHED_JOBS_PER_S = 500.0  # Slurm's high-throughput guide: sustained simple batch jobs per second


def _client(args: tuple[str, str, str, int, int]) -> list[float]:
    url, token, mode, start, count = args
    latencies = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for i in range(start, start + count):
            began = time.perf_counter()
            if mode == "submit":
                spec = {"name": f"bench-{i}", "queue": "bench", "run": "true", "resources": {"cpus": 1}}
                response = http.post("/v1/jobs", json=spec)
                ok = response.status_code == 201
            else:
                response = http.get("/healthz")
                ok = response.status_code == 200
            latencies.append(time.perf_counter() - began)
            if not ok:
                raise RuntimeError(f"{mode} failed: {response.status_code} {response.text[:200]}")
    return latencies


def run_hey(server: AidcServer, mode: str, jobs: int, clients: int, token: str) -> dict[str, float]:
    argv = ["hey", "-n", str(jobs), "-c", str(clients), "-H", f"Authorization: Bearer {token}"]
    if mode == "submit":
        argv += ["-m", "POST", "-T", "application/json", "-d", json.dumps(HEY_SPEC), f"{server.url}/v1/jobs"]
    else:
        argv += [f"{server.url}/healthz"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    def seconds(pattern: str) -> float:
        match = re.search(pattern, out)
        if match is None:
            raise RuntimeError(f"unexpected output of hey:\n{out}")
        return float(match.group(1))

    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    expected = "201" if mode == "submit" else "200"
    if set(codes) != {expected}:
        raise RuntimeError(f"{mode}: status codes {codes}")
    return {
        "requests": float(codes[expected]),
        "per_second": seconds(r"Requests/sec:\s+([\d.]+)"),
        "p50_ms": seconds(r"50%+ in ([\d.]+) secs") * 1000,
        "p99_ms": seconds(r"99%+ in ([\d.]+) secs") * 1000,
        "wall_s": seconds(r"Total:\s+([\d.]+) secs"),
    }


def run_load(
    server: AidcServer, mode: str, jobs: int, clients: int, client: str = "python", token: str | None = None
) -> dict[str, float]:
    token = token or server.token
    if client == "hey":
        return run_hey(server, mode, jobs, clients, token)
    per = jobs // clients
    work = [(server.url, token, mode, c * per, per) for c in range(clients)]
    with mp.get_context("spawn").Pool(clients) as pool:
        pool.map(_client, [(server.url, token, "healthz", 0, 5)] * clients)  # warm up processes and imports
        began = time.perf_counter()
        results = pool.map(_client, work)
        wall = time.perf_counter() - began
    latencies = sorted(x for chunk in results for x in chunk)
    return {
        "requests": float(len(latencies)),
        "per_second": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "wall_s": wall,
    }


@contextmanager
def control_plane(tmp: Path, name: str, database_url: str | None) -> Iterator[AidcServer]:
    server = AidcServer(data_dir=tmp / name, database_url=database_url).start()
    try:
        for args in (
            ("team", "create", "bench"),
            ("queue", "create", "bench", "--cpus", "0", "--team", "bench"),
            ("user", "create", "member", "--team", "bench"),
        ):
            created = server.cli(*args)
            if created.code != 0:
                raise RuntimeError(created.stderr)
        yield server
    finally:
        server.stop()


def stored_jobs(server: AidcServer) -> int:
    with server.api() as api:
        return len(api.get("/v1/jobs", params={"queue": "bench", "limit": 10_000}).json())


def member_token(server: AidcServer) -> str:
    created = server.cli("token", "create", "--user", "member", "--json")
    if created.code != 0:
        raise RuntimeError(created.stderr)
    return str(created.json()["token"])


@contextmanager
def postgres_url() -> Iterator[str]:
    from tests.fixtures.postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found: run scripts/install-test-deps.sh, or pass --no-postgres")
    server = PostgresServer.start(bindir, fsync=True)  # durable commits, as in production
    try:
        yield server.fresh_database("aidc_bench")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--client", choices=["hey", "python"], default="hey" if shutil.which("hey") else "python")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    console = Console(stderr=True)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="aidc-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with console.status("SQLite: submitting"), control_plane(tmp, "sqlite", None) as server:
            rows["healthz (HTTP floor)"] = run_load(server, "healthz", args.jobs, args.clients, args.client)
            rows["submit, SQLite, admin"] = run_load(server, "submit", args.jobs, args.clients, args.client)
            rows["submit, SQLite, admin"]["stored"] = stored_jobs(server)
        with console.status("SQLite: submitting as a team member"), control_plane(tmp, "member", None) as server:
            token = member_token(server)
            rows["submit, SQLite, team member"] = run_load(
                server, "submit", args.jobs, args.clients, args.client, token
            )
            rows["submit, SQLite, team member"]["stored"] = stored_jobs(server)
        if not args.no_postgres:
            with (
                postgres_url() as url,
                console.status("PostgreSQL: submitting"),
                control_plane(tmp, "postgres", url) as server,
            ):
                rows["submit, PostgreSQL"] = run_load(server, "submit", args.jobs, args.clients, args.client)
                rows["submit, PostgreSQL"]["stored"] = stored_jobs(server)
    floor = rows["healthz (HTTP floor)"]["per_second"]
    for row in rows.values():
        row["vs_http_floor"] = row["per_second"] / floor
        row["vs_slurm_500"] = row["per_second"] / SLURM_PUBLISHED_JOBS_PER_S
    if args.json:
        print(
            json.dumps({"jobs": args.jobs, "clients": args.clients, "client": args.client, "results": rows}, indent=2)
        )
        return
    title = f"{args.jobs} requests from {args.clients} {args.client} clients (goal: >= 500 jobs/s, p99 < 50 ms)"
    table = Table(title=title)
    admin = rows["submit, SQLite, admin"]["per_second"]
    for row in rows.values():
        row["vs_admin"] = row["per_second"] / admin
    for column in ("run", "req/s", "p50 ms", "p99 ms", "x HTTP floor", "x admin", "x Slurm 500/s", "stored"):
        table.add_column(column, justify="right")
    for name, row in rows.items():
        table.add_row(
            name, f"{row['per_second']:.0f}", f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}",
            f"{row['vs_http_floor']:.2f}", f"{row['vs_admin']:.2f}", f"{row['vs_slurm_500']:.2f}",
            str(int(row.get("stored", 0))) or "-",
        )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
