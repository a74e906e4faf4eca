"""`aidc up` that cannot start says why in one line (exit 2 for bad settings, 1 otherwise), no traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.server import AIDC, free_port


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
    env = {**os.environ, "AIDC_BACKEND": "slurm"}
    argv = [AIDC, "up", "--data-dir", str(tmp_path / "d"), "--port", str(free_port())]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert "backend 'slurm' is not available" in done.stderr


@pytest.mark.parametrize("command", ["up", "gateway"])
def test_a_gateway_port_in_use_is_one_clear_line(tmp_path: Path, command: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if command == "up":
            argv = [AIDC, "up", "--port", str(free_port()), "--gateway-port", str(port)]
        else:  # the gateway alone needs a control plane's database: make one with `aidc up --no-gateway` first
            argv = [AIDC, "gateway", "--port", str(port)]
        argv += ["--data-dir", str(tmp_path / "d")]
        if command == "gateway":
            from tests.e2e.server import AidcServer

            AidcServer(tmp_path / "d", extra_args=["--no-gateway"]).start().stop()
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"aidc: gateway port {port}: cannot listen on 127.0.0.1:{port} (Address already in use); "
        "choose another with --gateway-port, or --no-gateway"
    )
