import pytest
import yaml
from pydantic import ValidationError

from aidc.domain.jobs import JobKind, JobSpec
from aidc.domain.resources import Resources

EXAMPLE = """
name: digits-cnn
kind: train            # train | batch | serve
queue: default
priority: 0            # higher runs first
resources: {gpus: 0, gpu_type: null, cpus: 1, memory: 2GB}
num_nodes: 1
estimated_duration: 30m
max_retries: 2
checkpoint_dir: ./ckpt
workdir: .
env: {EPOCHS: "5"}
setup: pip install -r requirements.txt   # optional
run: python train.py
"""


def _errors(data: dict[str, object]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(data)
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in info.value.errors()}


def test_the_documented_example_parses() -> None:
    spec = JobSpec.model_validate(yaml.safe_load(EXAMPLE))
    assert spec.kind == JobKind.TRAIN
    assert spec.resources == Resources(gpus=0, cpus=1, memory=2 * 10**9)
    assert spec.estimated_duration == 1800
    assert spec.env == {"EPOCHS": "5"}
    assert spec.max_retries == 2


def test_gpus_accepts_model_and_count() -> None:
    spec = JobSpec.model_validate({"name": "llm", "run": "x", "resources": {"gpus": "H100:8"}})
    assert (spec.resources.gpus, spec.resources.gpu_type) == (8, "H100")


def test_gpus_model_conflicting_with_gpu_type_is_rejected() -> None:
    errors = _errors({"name": "a", "run": "x", "resources": {"gpus": "H100:8", "gpu_type": "A100"}})
    assert "H100" in errors["resources"]
    assert "A100" in errors["resources"]


def test_unknown_fields_are_rejected_with_their_path() -> None:
    errors = _errors({"name": "a", "run": "x", "gpus": 2, "resources": {"gpu": 1}})
    assert set(errors) == {"gpus", "resources.gpu"}


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"gpus": -1}, "resources.gpus"),
        ({"gpus": 100_000}, "resources.gpus"),
        ({"cpus": 0}, "resources.cpus"),
        ({"cpus": -2}, "resources.cpus"),
        ({"memory": "-1GB"}, "resources.memory"),
        ({"memory": "1000PB"}, "resources.memory"),
        ({"memory": "lots"}, "resources.memory"),
    ],
)
def test_negative_or_absurd_resources_are_rejected(resources: dict[str, object], field: str) -> None:
    assert field in _errors({"name": "a", "run": "x", "resources": resources})


def test_gpu_type_without_gpus_is_rejected() -> None:
    assert "resources" in _errors({"name": "a", "run": "x", "resources": {"gpu_type": "H100"}})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "has space", "run": "x"}, "name"),
        ({"name": "a", "run": "   "}, "run"),
        ({"name": "a"}, "run"),
        ({"name": "a", "run": "x", "num_nodes": 0}, "num_nodes"),
        ({"name": "a", "run": "x", "max_retries": -1}, "max_retries"),
        ({"name": "a", "run": "x", "kind": "party"}, "kind"),
        ({"name": "a", "run": "x", "estimated_duration": "soon"}, "estimated_duration"),
        ({"name": "a", "run": "x", "env": {"AIDC_JOB_ID": "7"}}, "env"),
        ({"name": "a", "run": "x", "env": {"CUDA_VISIBLE_DEVICES": "0"}}, "env"),
        ({"name": "a", "run": "x", "env": {"1BAD": "v"}}, "env"),
    ],
)
def test_invalid_fields_are_named(data: dict[str, object], field: str) -> None:
    assert field in _errors(data)


def test_env_values_become_text() -> None:
    spec = JobSpec.model_validate({"name": "a", "run": "x", "env": {"EPOCHS": 5, "DEBUG": True, "LR": 0.1}})
    assert spec.env == {"EPOCHS": "5", "DEBUG": "true", "LR": "0.1"}


def test_spec_survives_a_json_round_trip() -> None:
    spec = JobSpec.model_validate(yaml.safe_load(EXAMPLE))
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec


def test_json_schema_is_published_with_the_fields() -> None:
    schema = JobSpec.model_json_schema()
    assert schema["additionalProperties"] is False
    assert {"name", "run", "resources", "num_nodes", "max_retries", "env"} <= set(schema["properties"])
    assert schema["required"] == ["name", "run"]
