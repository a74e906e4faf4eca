"""Every manifest the kubernetes backend builds is valid against the Kubernetes 1.37 OpenAPI schemas (strict:
an unknown field fails), and says what the spec asked for."""

from __future__ import annotations

from typing import Any

import pytest

from aidc.backends.kubernetes import manifests
from aidc.backends.kubernetes.config import KubernetesConfig
from aidc.domain.jobs import JobSpec
from tests.unit.backends.kubernetes.conftest import Validate

CONFIG = KubernetesConfig(namespace="ml", image="python:3.11-slim")


def _build(
    config: KubernetesConfig = CONFIG,
    *,
    job_id: int = 7,
    env: dict[str, str] | None = None,
    nodes: tuple[str, ...] = (),
    **fields: Any,
) -> list[dict[str, Any]]:
    spec = JobSpec.model_validate({"name": "train", "run": "python train.py"} | fields)
    attempt = manifests.AttemptManifests(
        job_id=job_id, attempt=2, spec=spec, env=env or {}, secret_env=spec.secret_env, nodes=nodes
    )
    return manifests.build(attempt, config)


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(obj: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(obj)["env"]}


def test_a_one_node_cpu_job(k8s_validate: Validate) -> None:
    [job] = _build(resources={"cpus": 2.5, "memory": "4GiB"}, estimated_duration="1h", setup="pip install x")
    k8s_validate(job)

    assert (job["apiVersion"], job["kind"], job["metadata"]["name"]) == ("batch/v1", "Job", "aidc-7-2")
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 4500  # 1h + the default 25% margin
    assert "completionMode" not in job["spec"]
    assert "suspend" not in job["spec"]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert "nodeSelector" not in pod
    assert "affinity" not in pod
    container = _container(job)
    assert container["command"][:2] == ["/bin/bash", "-c"]
    assert "run_phase 'pip install x' || exit $?" in container["command"][2]
    assert "run_phase 'python train.py'" in container["command"][2]
    assert container["resources"] == {
        "requests": {"cpu": "2500m", "memory": str(4 * 2**30)},
        "limits": {"memory": str(4 * 2**30)},
    }
    env = _env(job)
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"  # no GPU asked: none seen, whatever the node's runtime
    assert env["AIDC_CHECKPOINT_DIR"] == manifests.EPHEMERAL_CHECKPOINTS
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "aidc",
        "aidc.dev/job-id": "7",
        "aidc.dev/attempt": "2",
        "aidc.dev/queue": "default",
    }
    assert job["metadata"]["annotations"]["aidc.dev/job-name"] == "train"


def test_a_one_node_gpu_job_selects_the_gpu_model(k8s_validate: Validate) -> None:
    config = KubernetesConfig.model_validate({"image": "img", "gpu_products": {"H100": ["NVIDIA-H100-80GB-HBM3"]}})
    [job] = _build(config, resources={"gpus": "H100:8", "cpus": 32}, nodes=("gpu-node-1",), workdir="/workspace")
    k8s_validate(job)

    pod = job["spec"]["template"]["spec"]
    assert _container(job)["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-node-1"]}]}]
    assert _container(job)["workingDir"] == "/workspace"
    assert "NVIDIA_VISIBLE_DEVICES" not in _env(job)


def test_gpu_alternatives_become_a_node_affinity(k8s_validate: Validate) -> None:
    [job] = _build(resources={"gpus": 1, "gpu_type": "A100|H100"})
    k8s_validate(job)

    pod = job["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod
    [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == {
        "matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["A100", "H100"]}]
    }


def test_a_multi_node_job_is_indexed_with_a_headless_service(k8s_validate: Validate) -> None:
    objects = _build(num_nodes=4, resources={"gpus": 8})
    for obj in objects:
        k8s_validate(obj)

    assert [o["kind"] for o in objects] == ["Service", "Job"]
    service, job = objects
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": "aidc-7-2"}
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"]
    env = _env(job)
    assert env["MASTER_ADDR"] == "aidc-7-2-0.aidc-7-2"  # pod 0's hostname in the Service's subdomain
    assert (env["WORLD_SIZE"], env["MASTER_PORT"]) == ("4", "29500")
    assert env["NODE_RANK"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }


def test_a_serve_job_is_a_deployment_behind_a_service(k8s_validate: Validate) -> None:
    objects = _build(
        kind="serve",
        serve={"models": ["llama"], "autoscale": {"min": 2, "max": 4, "target_in_flight_per_replica": 8}},
        resources={"gpus": 1},
        env={"AIDC_PORT": "8123"},
    )
    for obj in objects:
        k8s_validate(obj)

    assert [o["kind"] for o in objects] == ["Service", "Deployment"]
    service, deployment = objects
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8123}]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["replicas"] == 2  # autoscale.min
    container = _container(deployment)
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models", "port": 8123}
    assert deployment["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert _env(deployment)["AIDC_PORT"] == "8123"


def test_a_serve_job_without_a_port_listens_on_8000(k8s_validate: Validate) -> None:
    service, deployment = _build(kind="serve", serve={"models": ["m"], "replicas": 3})
    k8s_validate(deployment)
    assert service["spec"]["ports"][0]["targetPort"] == 8000
    assert deployment["spec"]["replicas"] == 3


def test_secret_env_goes_in_a_secret_never_inline(k8s_validate: Validate) -> None:
    objects = _build(secret_env={"HF_TOKEN": "hf_value", "DB_PASSWORD": "pw"}, env={"EPOCHS": "3"})
    for obj in objects:
        k8s_validate(obj)

    secret, job = objects
    assert (secret["kind"], secret["type"]) == ("Secret", "Opaque")
    assert secret["stringData"] == {"HF_TOKEN": "hf_value", "DB_PASSWORD": "pw"}
    assert "hf_value" not in str(job)
    assert "pw" not in str(job["spec"])
    env = _env(job)
    assert env["HF_TOKEN"] == {"secretKeyRef": {"name": "aidc-7-2", "key": "HF_TOKEN"}}
    assert env["EPOCHS"] == "3"


def test_a_kueue_queue_labels_and_suspends_the_job(k8s_validate: Validate) -> None:
    config = KubernetesConfig.model_validate(
        {"image": "img", "queues": {"research": {"local_queue": "team-a", "priority_class": "high"}}}
    )
    [job] = _build(config, queue="research", resources={"gpus": 2}, nodes=("gpu-node-1",))
    k8s_validate(job)

    assert job["spec"]["suspend"] is True  # Kueue unsuspends it when it admits the workload
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "high"
    assert "affinity" not in job["spec"]["template"]["spec"]  # Kueue and the scheduler place it, not aidc
    [other] = _build(config, queue="default")
    assert "suspend" not in other["spec"]
    assert "kueue.x-k8s.io/queue-name" not in other["metadata"]["labels"]


def test_the_checkpoint_volume_is_mounted_per_job(k8s_validate: Validate) -> None:
    config = KubernetesConfig.model_validate(
        {"namespace": "ml", "image": "img", "checkpoint_volume": {"claim_name": "ckpt", "mount_path": "/ckpt"}}
    )
    [job] = _build(config, job_id=42)
    k8s_validate(job)

    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "aidc-checkpoints", "persistentVolumeClaim": {"claimName": "ckpt"}}]
    assert _container(job)["volumeMounts"] == [{"name": "aidc-checkpoints", "mountPath": "/ckpt", "subPath": "aidc-42"}]
    assert _env(job)["AIDC_CHECKPOINT_DIR"] == "/ckpt"


def test_cluster_settings_reach_the_pod(k8s_validate: Validate) -> None:
    config = KubernetesConfig.model_validate(
        {
            "image": "img",
            "service_account": "trainer",
            "image_pull_secrets": ["regcred"],
            "termination_grace_seconds": 120,
            "deadline_margin": None,
            "ttl_seconds_after_finished": None,
        }
    )
    spec = JobSpec.model_validate({"name": "t", "run": "true", "estimated_duration": 60, "image": "own:1"})
    [job] = manifests.build(manifests.AttemptManifests(1, 1, spec, grace_seconds=120), config)
    k8s_validate(job)

    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "trainer"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["terminationGracePeriodSeconds"] == 120
    assert "activeDeadlineSeconds" not in job["spec"]
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert _container(job)["image"] == "own:1"  # the spec's image wins over the default


def test_an_odd_queue_name_stays_out_of_labels_but_in_annotations(k8s_validate: Validate) -> None:
    [job] = _build(queue="team_a.")
    k8s_validate(job)
    assert job["metadata"]["labels"]["aidc.dev/queue"] == "team_a"
    assert job["metadata"]["annotations"]["aidc.dev/queue"] == "team_a."


@pytest.mark.parametrize(
    ("fields", "config", "field"),
    [
        ({"resources": {"gpus": 0.5}}, CONFIG, "resources.gpus"),
        ({}, KubernetesConfig(), "image"),
        ({"kind": "serve", "serve": {"models": ["m"]}, "num_nodes": 2}, CONFIG, "num_nodes"),
        ({"resources": {"gpus": 1, "gpu_type": "H100 SXM"}}, CONFIG, "resources.gpu_type"),
    ],
)
def test_what_kubernetes_cannot_run_is_refused_naming_the_field(
    fields: dict[str, Any], config: KubernetesConfig, field: str
) -> None:
    spec = JobSpec.model_validate({"name": "t", "run": "true"} | fields)

    assert [p.field for p in manifests.problems(spec, config)] == [field]
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        manifests.build(manifests.AttemptManifests(1, 1, spec), config)


def test_names_are_dns_1123_labels() -> None:
    [job] = _build(job_id=2**31 - 1)
    name = job["metadata"]["name"]
    assert name == name.lower()
    assert len(name) <= 63
    assert name.replace("-", "").isalnum()


def test_the_schema_check_is_strict(k8s_validate: Validate) -> None:
    [job] = _build()
    job["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1  # not a Container field
    with pytest.raises(AssertionError, match="'gpus' was unexpected"):
        k8s_validate(job)
