"""The inference gateway's overhead, side by side with nginx, on this machine.

A real `aidc up` serves a deployment of two replicas of a fast stub (bench/stub_upstream.py: an
OpenAI-shaped answer in one write). The same requests then go three ways:

- direct: to one stub replica (the floor of this machine: client, loopback, stub);
- gateway: through aidc's gateway (token check, routing policy, limits, metering, metrics);
- nginx: through Debian's nginx as a plain reverse proxy to the same two replicas (keep-alive upstream);
- uvicorn floor: a bare ASGI app under the same uvicorn answering the fixed body itself (no proxying):
  the ceiling of any Python service served by uvicorn here.

Two measurements per path: latency at a fixed rate (hey, 500 requests/s by default; added latency =
p50/p99 minus direct's) and the highest throughput (wrk, 32 connections). nginx runs one worker, as the
gateway runs one process; `--nginx-workers auto` gives it every core. With `--chat`, also time to first
token through the gateway vs direct on the real SmolLM2 replica (needs scripts/install-serve-runtimes.sh).

    .venv/bin/python bench/gateway.py [--rate 500] [--seconds 10] [--chat] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import AidcServer, free_port, wait_for  # noqa: E402

BODY = json.dumps({"model": "stub", "messages": [{"role": "user", "content": "hi"}]})
PATH = "/v1/chat/completions"
NGINX_CONF = """
worker_processes {workers};
daemon off;
error_log {tmp}/nginx-error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream stubs {{
        {servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://stubs;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


def _hey(url: str, token: str, rate: int, seconds: int, clients: int) -> dict[str, float]:
    """Latency at a fixed total rate: `clients` workers of rate/clients requests per second each."""
    out = subprocess.run(
        ["hey", "-z", f"{seconds}s", "-c", str(clients), "-q", str(max(1, rate // clients)), "-m", "POST",
         "-T", "application/json", "-H", f"Authorization: Bearer {token}", "-d", BODY, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    figures = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": float(re.search(r"50% in ([\d.]+) secs", out).group(1)) * 1000,  # type: ignore[union-attr]
        "p99_ms": float(re.search(r"99% in ([\d.]+) secs", out).group(1)) * 1000,  # type: ignore[union-attr]
    }
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    failed = sum(int(n) for code, n in codes.items() if code != "200")
    if "Error distribution:" in out:  # transport errors: "  [count]\tPost ...: reason"
        failed += sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s", out.split("Error distribution:")[1], re.M))
    figures["errors"] = float(failed)
    return figures


def _wrk(url: str, token: str, seconds: int, connections: int, tmp: Path) -> dict[str, float]:
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=BODY, token=token))
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script), "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = int(bad.group(1)) if bad else 0
    failed += sum(int(g) for g in errors.groups()) if errors else 0
    return {"max_rps": rps, "max_errors": float(failed)}


def _deploy_stubs(server: AidcServer, tmp: Path) -> list[str]:
    spec = {
        "name": "stub",
        "kind": "serve",
        "workdir": str(ROOT / "bench"),
        "resources": {"cpus": 0.1, "memory": "64MB"},
        "run": f"exec {sys.executable} stub_upstream.py",
        "serve": {"models": ["stub"], "replicas": 2, "policy": "least_connections"},
    }
    path = tmp / "stub.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = server.cli("submit", str(path))
    assert result.code == 0, result.stderr

    def ready() -> list[str] | None:
        d = server.cli("models", "show", "stub", "--json").json()
        return [r["endpoint"] for r in d["replica_list"]] if d["ready_replicas"] == 2 else None

    endpoints: list[str] = wait_for(ready, timeout=60, every=0.5, what="two ready stub replicas")
    return endpoints


def _nginx(endpoints: list[str], workers: str, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    servers = "\n        ".join(f"server {e.removeprefix('http://')};" for e in endpoints)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, tmp=tmp, servers=servers, port=port))
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200, timeout=10)
    return proc, port


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def _ttft(url: str, token: str, count: int) -> float:
    """Median seconds to the first streamed content chunk of a chat completion."""
    samples = []
    body = {"model": "SmolLM2-135M-Instruct", "max_tokens": 8, "stream": True, "temperature": 0}
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
        for i in range(count):
            body["messages"] = [{"role": "user", "content": f"Say a word about the number {i}."}]
            began = time.perf_counter()
            with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and '"content"' in line:
                        samples.append(time.perf_counter() - began)
                        break
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=500, help="Requests per second of the latency runs")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=10, help="hey workers of the latency runs")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections of the throughput runs")
    parser.add_argument("--nginx-workers", default="1")
    parser.add_argument("--chat", action="store_true", help="Also time to first token on the real chat model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    console = Console(stderr=True)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="aidc-bench-gw-") as name:
        tmp = Path(name)
        server = AidcServer(tmp / "data").start()
        nginx = floor = None
        try:
            endpoints = _deploy_stubs(server, tmp)
            nginx, nginx_port = _nginx(endpoints, args.nginx_workers, tmp)
            floor_port = free_port()
            floor = subprocess.Popen(
                [sys.executable, "uvicorn_floor.py", str(floor_port)], cwd=ROOT / "bench", stderr=subprocess.DEVNULL
            )
            wait_for(lambda: _answers(f"http://127.0.0.1:{floor_port}/v1/models"), timeout=15)
            targets = {
                "direct": f"{endpoints[0]}{PATH}",
                "gateway": f"{server.gateway_url}{PATH}",
                "nginx": f"http://127.0.0.1:{nginx_port}{PATH}",
                "uvicorn floor": f"http://127.0.0.1:{floor_port}{PATH}",
            }
            for label, url in targets.items():
                console.print(f"[dim]{label}: {args.rate} req/s for {args.seconds}s, then wrk flat out[/dim]")
                _hey(url, server.token, min(args.rate, 200), 2, args.clients)  # warm-up: connections, caches
                results[label] = _hey(url, server.token, args.rate, args.seconds, args.clients)
                results[label] |= _wrk(url, server.token, args.seconds, args.connections, tmp)
            if args.chat:
                from tests.fixtures.runtimes import require_runtime

                require_runtime("serve_chat")
                chat = yaml.safe_load((ROOT / "examples/serve_chat/job.yaml").read_text())
                chat["workdir"] = str(ROOT / "examples/serve_chat")
                (tmp / "chat.yaml").write_text(yaml.safe_dump(chat))
                assert server.cli("submit", str(tmp / "chat.yaml")).code == 0

                def chat_ready() -> str | None:
                    d = server.cli("models", "show", "smollm2", "--json").json()
                    return d["replica_list"][0]["endpoint"] if d["ready_replicas"] == 1 else None

                direct = wait_for(chat_ready, timeout=120, every=1, what="the chat replica")
                _ttft(direct, server.token, 2)
                results["ttft"] = {
                    "direct_ms": _ttft(direct, server.token, 15) * 1000,
                    "gateway_ms": _ttft(server.gateway_url, server.token, 15) * 1000,
                }
        finally:
            for proc in (nginx, floor):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=10)
            server.stop()
            server.reap_jobs()
    direct, gateway, nginx_r = results["direct"], results["gateway"], results["nginx"]
    summary = {
        "gateway_added_p50_ms": gateway["p50_ms"] - direct["p50_ms"],
        "gateway_added_p99_ms": gateway["p99_ms"] - direct["p99_ms"],
        "nginx_added_p50_ms": nginx_r["p50_ms"] - direct["p50_ms"],
        "nginx_added_p99_ms": nginx_r["p99_ms"] - direct["p99_ms"],
        "gateway_vs_nginx_throughput": gateway["max_rps"] / nginx_r["max_rps"],
        "uvicorn_floor_vs_nginx_throughput": results["uvicorn floor"]["max_rps"] / nginx_r["max_rps"],
        "gateway_vs_uvicorn_floor_throughput": gateway["max_rps"] / results["uvicorn floor"]["max_rps"],
    }
    if args.json:
        print(json.dumps({"results": results, "summary": summary, "rate": args.rate}, indent=2))
        return
    table = Table(title=f"Gateway vs nginx vs direct ({args.rate} req/s latency runs; wrk {args.connections} conns)")
    for column in ("path", "p50 ms", "p99 ms", "added p50", "added p99", "errors", "max req/s", "max errors"):
        table.add_column(column, justify="right")
    for label in ("direct", "gateway", "nginx", "uvicorn floor"):
        r = results[label]
        table.add_row(
            label, f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['p50_ms'] - direct['p50_ms']:+.2f}",
            f"{r['p99_ms'] - direct['p99_ms']:+.2f}", f"{r['errors']:.0f}", f"{r['max_rps']:.0f}",
            f"{r['max_errors']:.0f}",
        )  # fmt: skip
    Console().print(table)
    print(
        f"gateway throughput = {summary['gateway_vs_nginx_throughput']:.2f} x nginx's "
        f"(goal >= 0.5); added latency p50 {summary['gateway_added_p50_ms']:+.2f} ms (goal <= 1), "
        f"p99 {summary['gateway_added_p99_ms']:+.2f} ms (goal <= 5)"
    )
    print(
        f"a bare uvicorn app (fixed answer, no proxying) = {summary['uvicorn_floor_vs_nginx_throughput']:.2f} x "
        f"nginx's throughput; the gateway = {summary['gateway_vs_uvicorn_floor_throughput']:.2f} x that floor"
    )
    if "ttft" in results:
        t = results["ttft"]
        print(
            f"time to first token (SmolLM2, median of 15): direct {t['direct_ms']:.0f} ms, gateway "
            f"{t['gateway_ms']:.0f} ms ({t['gateway_ms'] / t['direct_ms']:.2f}x)"
        )


if __name__ == "__main__":
    main()
