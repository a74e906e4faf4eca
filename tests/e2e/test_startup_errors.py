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
