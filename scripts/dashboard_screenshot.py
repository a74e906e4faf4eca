"""Takes the README's dashboard screenshot: a real `aidc up` with a cluster file of 6 GPU nodes beside this host,
a few jobs, and GPU readings posted the way node agents post them (this machine has no GPU: the readings are
made up here, with a fixed seed, and the caption says so). Needs Debian's chromium and playwright (the dev extra).

    .venv/bin/python scripts/dashboard_screenshot.py [--out docs/images/dashboard-overview.png]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.server import AidcServer

NODES = 6
GPUS = 8
CLUSTER = f"""\
nodes:
  - {{name: h100, count: {NODES}, cpus: 224, memory: 2TiB, gpus: {GPUS}, gpu_model: H100, backend: slurm}}
"""
RULES = """\
groups:
  - name: demo
    rules:
      - alert: GpuHot
        expr: DCGM_FI_DEV_GPU_TEMP > 83
        labels: {severity: warning}
        annotations: {summary: "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} is at {{ $value }} C"}
"""


def readings(node: str, rng: random.Random) -> dict[str, Any]:
    busy = rng.random() < 0.7
    samples: dict[str, list[Any]] = {"DCGM_FI_DEV_GPU_UTIL": [], "DCGM_FI_DEV_GPU_TEMP": []}
    for gpu in range(GPUS):
        labels = {"gpu": str(gpu), "UUID": f"GPU-{node}-{gpu}", "Hostname": node, "modelName": "NVIDIA H100"}
        util = rng.uniform(55, 99) if busy else rng.uniform(0, 8)
        samples["DCGM_FI_DEV_GPU_UTIL"].append([labels, round(util)])
        samples["DCGM_FI_DEV_GPU_TEMP"].append([labels, round(32 + util * 0.5 + rng.uniform(-3, 6))])
    return {"families": [{"name": k, "type": "gauge", "samples": v} for k, v in samples.items()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/dashboard-overview.png"))
    parser.add_argument("--size", default="1400x860", help="Viewport WIDTHxHEIGHT (e.g. 3840x2160 for a wall screen)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "cluster.yaml").write_text(CLUSTER)
        (Path(tmp) / "rules.yaml").write_text(RULES)
        extra = ["--cluster", f"{tmp}/cluster.yaml", "--alert-rules", f"{tmp}/rules.yaml"]
        os.environ.setdefault("AIDC_ENERGY_EVERY", "5")  # the power tile fills in within seconds
        server = AidcServer(data_dir=Path(tmp) / "data", extra_args=extra).start()
        try:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as api:
                api.post("/v1/queues", json={"name": "research", "quota": {"gpus": 32, "cpus": 2}}).raise_for_status()
                for i in range(3):
                    api.post("/v1/jobs", json={"name": f"prep-{i}", "run": "sleep 300"}).raise_for_status()
                for i in range(5):
                    spec = {"name": f"sweep-{i}", "queue": "research", "run": "sleep 300", "resources": {"cpus": 1}}
                    api.post("/v1/jobs", json=spec).raise_for_status()  # two run, three wait for the quota
                api.post(f"/v1/nodes/h100-{NODES:02d}/cordon", json={"reason": "fan replaced, burn-in pending"})
                for n in range(1, NODES + 1):
                    api.post(
                        f"/v1/nodes/h100-{n:02d}/heartbeat", json=readings(f"h100-{n:02d}", rng)
                    ).raise_for_status()
            time.sleep(20)  # the alert rule's first evaluations and the energy meter's first minute
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
                width, height = (int(v) for v in args.size.split("x"))
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(server.url + "/login")
                page.fill("#token", server.token)
                page.click("button[type=submit]")
                page.wait_for_url(server.url + "/")
                page.select_option("#colour-by", "utilization")
                page.wait_for_function("() => document.querySelectorAll('#heatmap .gpu.measured').length > 0")
                page.wait_for_timeout(2500)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=False)
                browser.close()
        finally:
            server.stop()
            server.reap_jobs()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
