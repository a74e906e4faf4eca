"""`aidc export k8s JOB.yaml`: the manifests as multi-document YAML on stdout (valid against the Kubernetes
schemas), or one line on stderr naming the field and exit 2. Driven with typer's CliRunner through an app that
mounts the verb as `aidc export` (main.py registers it the same way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from aidc.cli.export import export_app
from tests.unit.backends.kubernetes.conftest import Validate

app = typer.Typer()


@app.callback()
def _root() -> None:
    """aidc"""


app.add_typer(export_app, name="export")


def _export(tmp_path: Path, spec: str, *args: str) -> Result:
    path = tmp_path / "job.yaml"
    path.write_text(spec)
    return CliRunner().invoke(app, ["export", "k8s", str(path), *args])


def _documents(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d is not None]
    assert all(isinstance(d, dict) for d in docs)
    return docs


TRAIN = """
name: train-llm
image: nvcr.io/nvidia/pytorch:25.01-py3
num_nodes: 2
workdir: /workspace
resources: {gpus: "H100:8", cpus: 32, memory: 512GiB}
env: {EPOCHS: 5}
secret_env: {HF_TOKEN: hf_abc}
setup: pip install -r requirements.txt
run: torchrun --nnodes $WORLD_SIZE --node_rank $NODE_RANK train.py
"""


def test_a_multi_node_job_exports_valid_manifests(tmp_path: Path, k8s_validate: Validate) -> None:
    result = _export(tmp_path, TRAIN, "--namespace", "research", "--job-id", "42")

    docs = _documents(result)
    for doc in docs:
        k8s_validate(doc)
    assert [d["kind"] for d in docs] == ["Secret", "Service", "Job"]
    assert {d["metadata"]["name"] for d in docs} == {"aidc-42-1"}
    assert {d["metadata"]["namespace"] for d in docs} == {"research"}
    job = docs[2]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["workingDir"] == "/workspace"  # the image's path, not made absolute on this host
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert "hf_abc" not in yaml.safe_dump(job)
    assert result.stdout.startswith("---\n")


def test_a_serve_job_exports_a_deployment_and_a_service(tmp_path: Path, k8s_validate: Validate) -> None:
    spec = "name: chat\nkind: serve\nrun: vllm serve m\nserve: {models: [m], replicas: 2}\nresources: {gpus: 1}\n"
    docs = _documents(_export(tmp_path, spec, "--image", "vllm/vllm-openai:v0.9.0"))

    for doc in docs:
        k8s_validate(doc)
    assert [d["kind"] for d in docs] == ["Service", "Deployment"]
    assert docs[1]["spec"]["replicas"] == 2
    assert docs[1]["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.9.0"


def test_a_relative_workdir_is_entered_by_the_script(tmp_path: Path, k8s_validate: Validate) -> None:
    docs = _documents(_export(tmp_path, "name: t\nrun: make\nworkdir: src\n", "--image", "img"))
    k8s_validate(docs[0])
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    assert "workingDir" not in container
    assert "cd -- src || exit $?" in container["command"][2]


@pytest.mark.parametrize(
    ("spec", "args", "needle"),
    [
        ("name: t\nrun: x\n", [], "image: required on kubernetes"),
        ("name: t\nrun: x\nimage: i\nresources: {gpus: -1}\n", [], "resources.gpus: Input should be greater"),
        ("name: t\nrun: x\nimage: i\nresources: {gpus: 0.5}\n", [], "resources.gpus: Kubernetes gives whole GPUs"),
        ("name: t\nrun: x\nimage: i\nbogus: 1\n", [], "bogus: Extra inputs are not permitted"),
        ("name: t\nrun: x\nimage: i\n", ["--namespace", "Research"], "--namespace: String should match pattern"),
        ("name: [t\n", [], "invalid YAML at line"),
    ],
)
def test_a_bad_spec_is_one_line_naming_the_field_exit_2(
    tmp_path: Path, spec: str, args: list[str], needle: str
) -> None:
    result = _export(tmp_path, spec, *args)

    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]


def test_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "k8s", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
