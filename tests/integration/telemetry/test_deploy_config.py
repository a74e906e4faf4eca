"""deploy/prometheus/prometheus.yml is a configuration Debian's `promtool check config` accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "prometheus.yml"


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed: scripts/install-test-deps.sh installs it (CI runs it)",
)
def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    token = tmp_path / "aidc-token"
    token.write_text("aidc_example\n")
    (tmp_path / "prometheus.yml").write_text(PROMETHEUS.read_text().replace("/etc/prometheus/aidc-token", str(token)))
    (tmp_path / "aidc-rules.yml").write_text("groups: []\n")  # what the export writes when no rule is enabled
    checked = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
