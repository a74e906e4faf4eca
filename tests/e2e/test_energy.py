"""Energy and cost as a user reads them: `aidc energy report` (table, --json, --plot), energy on `aidc show`,
the Prometheus series on /metrics, and a cluster file whose prices are wrong stopping `aidc up` in one line.

This host has no GPU and no readable RAPL (a VM): the jobs here use CPUs only, so their energy is the
estimate (busy cores x W per core) and must say so; the measured paths are covered with NVML-shaped samples
in tests/integration/store/test_store_energy.py."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import AIDC, AidcServer, wait_for

CLUSTER = """\
energy:
  pue: 1.4
  currency: EUR
  tariff:
    - {from: "00:00", to: "12:00", price_per_kwh: 0.25}
    - {from: "12:00", to: "24:00", price_per_kwh: 0.25}
  carbon_file: grid.csv
"""
GRID = "timestamp,g_per_kwh\n2020-01-01T00:00:00Z,350\n"
BURN = """\
name: burn
queue: ml-q
resources: {cpus: 1, memory: 100MB}
run: |
  python -c "
  import time
  t = time.time()
  while time.time() - t < 6: pass
  "
"""


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AidcServer]:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "grid.csv").write_text(GRID)
    monkeypatch.setenv("AIDC_ENERGY_EVERY", "1")
    monkeypatch.setenv("AIDC_METRICS_INTERVAL", "0.5")
    srv = AidcServer(data_dir=tmp_path / "data", extra_args=["--cluster", str(tmp_path / "cluster.yaml")]).start()
    yield srv
    srv.stop()


def test_a_jobs_energy_cost_and_carbon_are_reported(server: AidcServer, tmp_path: Path) -> None:
    assert server.cli("team", "create", "ml").code == 0
    assert server.cli("queue", "create", "ml-q", "--team", "ml").code == 0
    job = server.submit(BURN, tmp_path)
    server.wait_state(job, "RUNNING")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as http:

        def job_power() -> str | None:
            text = http.get("/metrics").text
            lines = [line for line in text.splitlines() if line.startswith("aidc_job_power_watts{")]
            return next((line for line in lines if f'job_id="{job}"' in line), None)

        line = wait_for(job_power, timeout=20, what="the job's power on /metrics")
        assert 'team="ml"' in line
        assert 'source="estimate"' in line
        assert "aidc_site_pue 1.4" in http.get("/metrics").text
    server.wait_state(job, "SUCCEEDED")

    def reported() -> dict[str, object] | None:
        report = server.cli("energy", "report", "--by", "job", "--json").json()
        rows = {r["key"]: r for r in report["rows"]}
        row = rows.get(str(job))
        return report if row is not None and row["last"] is not None and row["cpu_kwh"] > 0 else None

    report = wait_for(reported, timeout=20, what="the job in the energy report")
    assert report["currency"] == "EUR"
    assert report["priced"] is True
    assert report["carbon"] is True
    row = next(r for r in report["rows"] if r["key"] == str(job))
    # ~6 s of one busy core at 5 W: about 30 J; the run's edges and the sampling make it vary a little.
    joules = row["it_kwh"] * 3.6e6
    assert 10 < joules < 60
    assert row["estimate"] is True
    assert row["estimated_kwh"] == pytest.approx(row["it_kwh"])
    assert row["facility_kwh"] == pytest.approx(row["it_kwh"] * 1.4)
    assert row["cost"] == pytest.approx(row["facility_kwh"] * 0.25)
    assert row["carbon_kg"] == pytest.approx(row["facility_kwh"] * 0.35)

    by_team = server.cli("energy", "report", "--by", "team")
    assert by_team.code == 0
    assert "ml" in by_team.stdout
    assert "estimate" in by_team.stdout
    assert "EUR" in by_team.stdout

    plot = tmp_path / "energy.png"
    plotted = server.cli("energy", "report", "--by", "team", "--plot", str(plot))
    assert plotted.code == 0, plotted.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    shown = server.cli("show", str(job))
    assert "energy" in shown.stdout
    assert "estimate" in shown.stdout
    detail = server.cli("show", str(job), "--json").json()
    assert [e["key"] for e in detail["energy"]["attempts"]] == ["1"]  # one attempt
    assert detail["energy"]["currency"] == "EUR"
    assert "EUR" in shown.stdout


def test_bad_report_options_are_one_line(server: AidcServer) -> None:
    bad_by = server.cli("energy", "report", "--by", "galaxy")
    assert bad_by.code == 2
    assert "--by" in bad_by.stderr
    assert len(bad_by.stderr.strip().splitlines()) == 1
    bad_since = server.cli("energy", "report", "--since", "forever")
    assert bad_since.code == 2
    assert "since" in bad_since.stderr
    bad_plot = server.cli("energy", "report", "--plot", "energy.svg")
    assert bad_plot.code == 2
    assert ".png" in bad_plot.stderr


def test_a_tariff_that_leaves_a_gap_stops_the_start_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text('energy:\n  tariff:\n    - {from: "07:00", to: "22:00", price_per_kwh: 0.3}\n')
    done = subprocess.run(
        [AIDC, "up", "--data-dir", str(tmp_path / "d"), "--port", "0", "--cluster", str(bad)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "energy" in done.stderr
    assert "00:00 is not covered" in done.stderr  # the first minute no period covers
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "aidc.db").exists()  # refused before the database was made
