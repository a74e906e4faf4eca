"""`aidc up --cluster FILE` declares more nodes; a bad file stops the start with one clear line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.server import AIDC, AidcServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.yaml"


def test_cluster_file_nodes_are_listed_with_their_gpus(tmp_path: Path) -> None:
    server = AidcServer(data_dir=tmp_path / "data", extra_args=["--cluster", str(EXAMPLE)]).start()
    try:
        nodes = {n["name"]: n for n in server.cli("nodes", "--json").json()}
        assert len(nodes) == 1 + 16 + 8  # this host and the declared ones
        h100 = nodes["h100-01"]
        assert h100["backend"] == "slurm"
        assert [g["index"] for g in h100["gpus"]] == list(range(8))
        assert h100["gpus"][0]["model"] == "NVIDIA H100 80GB HBM3"
        assert h100["labels"] == {"rack": "r1"}
        # Declared nodes belong to another engine: the local backend cannot run an H100 job.
        spec = tmp_path / "h100.yaml"
        spec.write_text("name: big\nresources: {gpus: 'H100:8'}\nrun: 'true'\n")
        rejected = server.cli("submit", str(spec))
        assert rejected.code == 2
        assert "can never run here" in rejected.stderr
    finally:
        server.stop()


def test_bad_cluster_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text("nodes:\n  - name: x\n    cpus: -1\n    memory: 1GB\n")
    done = subprocess.run(
        [AIDC, "up", "--data-dir", str(tmp_path / "d"), "--port", "0", "--cluster", str(bad)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "nodes.0.cpus" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
