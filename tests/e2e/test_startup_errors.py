"""`aidc up` that cannot start says why in one line (exit 2 for bad settings, 1 otherwise), no traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.server import AIDC, AidcServer, free_port


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--database-url", "mysql://x"], 2, "unsupported database 'mysql'"),
        (["--database-url", "postgresql+psycopg://nobody@127.0.0.1:{port}/none"], 1, "cannot start"),
        (["--port", "70000"], 2, "--port"),
    ],
)
def test_up_fails_with_one_clear_line(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    argv = [AIDC, "up", "--data-dir", str(tmp_path / "d"), *[a.format(port=free_port()) for a in args]]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "AIDC_BACKEND": "nomad"}
    argv = [AIDC, "up", "--data-dir", str(tmp_path / "d"), "--port", str(free_port())]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == "aidc: backend: unknown backend 'nomad'; choose one of local, slurm, kubernetes, ray"


def test_a_bad_backend_config_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "backend.yaml"
    config.write_text("local:\n  nodes: 0\n")
    argv = [AIDC, "up", "--data-dir", str(tmp_path / "d"), "--port", str(free_port()), "--backend-config", str(config)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert f"backend config {config}: nodes: Input should be greater than or equal to 1" in done.stderr


def test_a_second_instance_on_one_sqlite_database_is_refused(server: AidcServer) -> None:
    argv = [AIDC, "up", "--data-dir", str(server.data_dir), "--port", str(free_port()), "--no-gateway"]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "another aidc up" in done.stderr
    assert "run several instances on PostgreSQL" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert server.proc is not None
    assert server.proc.poll() is None
