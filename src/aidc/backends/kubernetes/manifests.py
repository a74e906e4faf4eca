"""The Kubernetes objects of one attempt, as plain dicts (no kubernetes import: `aidc export k8s` uses this
offline). Output order is the order of creation: Secret, Service, then the Job or Deployment.

- batch/train (any kind but serve): a batch/v1 Job, `backoffLimit: 0` (aidc retries by launching a new attempt,
  a new Job `aidc-<installation>-<job>-<attempt>`); num_nodes > 1: an Indexed Job plus a headless Service,
  pods reach each other as `<job>-<index>.<service>` (MASTER_ADDR is index 0's name).
- serve: an apps/v1 Deployment and a Service (port 80 -> AIDC_PORT, default 8000).
- secret_env: a v1 Secret (stringData) that the container reads with secretKeyRef; the values are never inlined.
- Kueue: when the config maps the job's queue to a LocalQueue, the Job carries `kueue.x-k8s.io/queue-name` and
  is created with `suspend: true` (Kueue's documented convention for batch/v1 Jobs: its webhook would suspend it
  anyway; Kueue unsuspends it on admission), and `kueue.x-k8s.io/priority-class` for a WorkloadPriorityClass.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aidc.backends.context import ENGINE_NAME_PREFIX, engine_job_name
from aidc.backends.kubernetes.config import KubernetesConfig
from aidc.domain.errors import FieldProblem
from aidc.domain.jobs import JobKind, JobSpec
from aidc.domain.units import GPU_MILLI

Manifest = dict[str, Any]

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "aidc"
JOB_ID_LABEL = "aidc.dev/job-id"
ATTEMPT_LABEL = "aidc.dev/attempt"
QUEUE_LABEL = "aidc.dev/queue"
JOB_NAME_ANNOTATION = "aidc.dev/job-name"  # the aidc name may not be a valid label value; annotations take any
QUEUE_ANNOTATION = "aidc.dev/queue"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set by the Job controller on its pods
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER = "main"
SERVE_PORT = 80
DEFAULT_CONTAINER_PORT = 8000
MASTER_PORT = 29500  # torch.distributed's usual rendezvous port
DEFAULT_GRACE_SECONDS = 30
EPHEMERAL_CHECKPOINTS = "/aidc/checkpoints"
_CHECKPOINT_VOLUME = "aidc-checkpoints"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

# PID 1 in a container ignores the signals it installs no handler for, so a job's command run directly as PID 1
# would never see the kubelet's SIGTERM: this wrapper forwards it and exits with the command's own status.
_SIGNAL_WRAPPER = """\
trap 'kill -TERM "$child" 2>/dev/null' TERM
run_phase() {
  /bin/bash -c "$1" & child=$!
  wait "$child"
  while kill -0 "$child" 2>/dev/null; do wait "$child"; done
  wait "$child"  # a trapped signal cut the first wait short: this one returns the command's own status
}
"""


@dataclass(frozen=True)
class AttemptManifests:
    """What the manifests of one attempt are built from. `env` is what aidc sets for the attempt (AIDC_*);
    `nodes` the nodes aidc's scheduler chose (empty: let Kubernetes choose); `replicas` of a serve Deployment
    (None: the spec's initial count; the backend runs one replica per aidc job)."""

    job_id: int
    attempt: int
    spec: JobSpec
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()
    replicas: int | None = None
    grace_seconds: int = DEFAULT_GRACE_SECONDS
    prefix: str = ENGINE_NAME_PREFIX  # the installation's (BackendContext.name_prefix)

    @property
    def name(self) -> str:
        return engine_job_name(self.job_id, self.attempt, self.prefix)


def offline_config(namespace: str, image: str | None) -> KubernetesConfig:
    """The config `aidc export k8s` builds manifests with (no cluster to read one from). Raises pydantic's
    ValidationError naming the field."""
    return KubernetesConfig(namespace=namespace, image=image)


def problems(spec: JobSpec, config: KubernetesConfig) -> list[FieldProblem]:
    """What in a spec this backend cannot run, each naming its field."""
    found: list[FieldProblem] = []
    if spec.image is None and config.image is None:
        found.append(FieldProblem("image", "required on kubernetes (no default image is configured)"))
    if spec.resources.gpu_milli < GPU_MILLI:
        found.append(
            FieldProblem("resources.gpus", "Kubernetes gives whole GPUs (nvidia.com/gpu); a share of one is refused")
        )
    if spec.kind == JobKind.SERVE and spec.num_nodes > 1:
        found.append(FieldProblem("num_nodes", "a serve replica runs on one node on kubernetes"))
    if spec.resources.gpu_type is not None:
        for model in _gpu_models(spec.resources.gpu_type, config):
            if not _LABEL_VALUE.match(model):
                found.append(FieldProblem("resources.gpu_type", f"{model!r} cannot be a node label value"))
    return found


def build(attempt: AttemptManifests, config: KubernetesConfig) -> list[Manifest]:
    """The objects of one attempt, in creation order. Raises ValueError naming the field for a spec that
    `problems` refuses."""
    refused = problems(attempt.spec, config)
    if refused:
        raise ValueError("; ".join(str(p) for p in refused))
    out: list[Manifest] = []
    if attempt.secret_env:
        out.append(_secret(attempt, config))
    if attempt.spec.kind == JobKind.SERVE:
        out.append(_serve_service(attempt, config))
        out.append(_deployment(attempt, config))
        return out
    if attempt.spec.num_nodes > 1:
        out.append(_headless_service(attempt, config))
    out.append(_job(attempt, config))
    return out


# ------------------------------------------------------------------------------------------------ metadata


def labels(attempt: AttemptManifests) -> dict[str, str]:
    """The labels aidc finds its objects by (`app.kubernetes.io/managed-by=aidc`) and tells attempts apart with."""
    out = {
        MANAGED_BY: MANAGED_BY_VALUE,
        JOB_ID_LABEL: str(attempt.job_id),
        ATTEMPT_LABEL: str(attempt.attempt),
    }
    queue = _label_value(attempt.spec.queue)
    if queue:
        out[QUEUE_LABEL] = queue
    return out


def _metadata(attempt: AttemptManifests, config: KubernetesConfig, extra_labels: Mapping[str, str] = {}) -> Manifest:
    return {
        "name": attempt.name,
        "namespace": config.namespace,
        "labels": {**labels(attempt), **extra_labels},
        "annotations": {JOB_NAME_ANNOTATION: attempt.spec.name, QUEUE_ANNOTATION: attempt.spec.queue},
    }


def _label_value(text: str) -> str:
    """`text` as a label value (<= 63, alphanumeric at both ends); "" when nothing of it fits."""
    cleaned = re.sub(r"[^-A-Za-z0-9_.]", "-", text)[:63].strip("-_.")
    return cleaned if _LABEL_VALUE.match(cleaned) else ""


def _kueue_labels(attempt: AttemptManifests, config: KubernetesConfig) -> dict[str, str]:
    mapping = config.queues.get(attempt.spec.queue)
    if mapping is None:
        return {}
    out = {KUEUE_QUEUE_LABEL: mapping.local_queue}
    if mapping.priority_class:
        out[KUEUE_PRIORITY_LABEL] = mapping.priority_class
    return out


# ------------------------------------------------------------------------------------------------ objects


def _secret(attempt: AttemptManifests, config: KubernetesConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(attempt, config),
        "type": "Opaque",
        "stringData": dict(attempt.secret_env),
    }


def _headless_service(attempt: AttemptManifests, config: KubernetesConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(attempt, config),
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_NAME_LABEL: attempt.name},
            # Rendezvous starts before every pod is ready: their names must resolve at once.
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
        },
    }


def _serve_service(attempt: AttemptManifests, config: KubernetesConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(attempt, config),
        "spec": {
            "selector": _pod_selector(attempt),
            "ports": [{"name": "http", "port": SERVE_PORT, "targetPort": _container_port(attempt)}],
        },
    }


def _job(attempt: AttemptManifests, config: KubernetesConfig) -> Manifest:
    spec = attempt.spec
    kueue = _kueue_labels(attempt, config)
    pod = _pod_spec(attempt, config, restart_policy="Never", placed_by_kueue=bool(kueue))
    job_spec: Manifest = {"backoffLimit": 0}
    if spec.num_nodes > 1:
        pod["subdomain"] = attempt.name
        job_spec |= {"completionMode": "Indexed", "completions": spec.num_nodes, "parallelism": spec.num_nodes}
    deadline = _deadline(spec.estimated_duration, config.deadline_margin)
    if deadline is not None:
        job_spec["activeDeadlineSeconds"] = deadline
    if config.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = config.ttl_seconds_after_finished
    if kueue:
        job_spec["suspend"] = True
    job_spec["template"] = {"metadata": {"labels": labels(attempt)}, "spec": pod}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(attempt, config, kueue),
        "spec": job_spec,
    }


def _deployment(attempt: AttemptManifests, config: KubernetesConfig) -> Manifest:
    serve = attempt.spec.serve
    replicas = attempt.replicas if attempt.replicas is not None else (serve.initial_replicas if serve else 1)
    kueue = _kueue_labels(attempt, config)
    pod = _pod_spec(attempt, config, restart_policy="Always", placed_by_kueue=bool(kueue))
    container = pod["containers"][0]
    port = _container_port(attempt)
    container["ports"] = [{"name": "http", "containerPort": port}]
    container["readinessProbe"] = {
        "httpGet": {"path": serve.readiness_path if serve else "/", "port": port},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(attempt, config, kueue),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": _pod_selector(attempt)},
            "template": {"metadata": {"labels": labels(attempt)}, "spec": pod},
        },
    }


# ------------------------------------------------------------------------------------------------ the pod


def _pod_spec(
    attempt: AttemptManifests, config: KubernetesConfig, *, restart_policy: str, placed_by_kueue: bool
) -> Manifest:
    spec = attempt.spec
    image = spec.image or config.image
    container: Manifest = {
        "name": CONTAINER,
        "image": image,
        "command": ["/bin/bash", "-c", _script(spec.setup, spec.run, spec.workdir)],
        "env": _env(attempt, config),
        "resources": _resources(spec),
    }
    workdir = spec.workdir
    if workdir.startswith("/"):
        container["workingDir"] = workdir
    volumes: list[Manifest] = []
    if config.checkpoint_volume is not None:
        container["volumeMounts"] = [
            {
                "name": _CHECKPOINT_VOLUME,
                "mountPath": config.checkpoint_volume.mount_path,
                "subPath": f"aidc-{attempt.job_id}",  # created by the kubelet; one directory per job
            }
        ]
        volumes.append(
            {
                "name": _CHECKPOINT_VOLUME,
                "persistentVolumeClaim": {"claimName": config.checkpoint_volume.claim_name},
            }
        )
    else:
        # Without a configured volume the directory still exists, but dies with the pod: retries start over.
        container["volumeMounts"] = [{"name": _CHECKPOINT_VOLUME, "mountPath": EPHEMERAL_CHECKPOINTS}]
        volumes.append({"name": _CHECKPOINT_VOLUME, "emptyDir": {}})
    pod: Manifest = {
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": attempt.grace_seconds,
        "containers": [container],
        "volumes": volumes,
    }
    affinity = _affinity(attempt, config, placed_by_kueue)
    if affinity:
        pod["affinity"] = affinity
    models = _gpu_models(spec.resources.gpu_type, config) if spec.resources.gpu_type else []
    if len(models) == 1:
        pod["nodeSelector"] = {config.gpu_label: models[0]}
    if config.service_account:
        pod["serviceAccountName"] = config.service_account
    if config.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in config.image_pull_secrets]
    return pod


def _affinity(attempt: AttemptManifests, config: KubernetesConfig, placed_by_kueue: bool) -> Manifest:
    terms: list[Manifest] = []
    models = _gpu_models(attempt.spec.resources.gpu_type, config) if attempt.spec.resources.gpu_type else []
    if len(models) > 1:
        terms.append({"key": config.gpu_label, "operator": "In", "values": models})
    term: Manifest = {}
    if terms:
        term["matchExpressions"] = terms
    nodes = sorted(set(attempt.nodes))
    if nodes and config.follow_placement and not placed_by_kueue:
        # Node names, not the hostname label: the two may differ; metadata.name is what discover_nodes reports.
        term["matchFields"] = [{"key": "metadata.name", "operator": "In", "values": nodes}]
    if not term:
        return {}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def _gpu_models(gpu_type: str, config: KubernetesConfig | None = None) -> list[str]:
    """The node label values that a gpu_type ("H100", "A100|H100") selects, each alternative mapped through
    `gpu_products` when listed there."""
    products = config.gpu_products if config is not None else {}
    out: list[str] = []
    for model in (m.strip() for m in gpu_type.split("|")):
        for value in products.get(model, (model,) if model else ()):
            if value not in out:
                out.append(value)
    return out


def _script(setup: str | None, run: str, workdir: str) -> str:
    lines = [_SIGNAL_WRAPPER.rstrip("\n")]
    if not workdir.startswith("/") and workdir != ".":
        lines.append(f"cd -- {shlex.quote(workdir)} || exit $?")  # workingDir must be absolute
    if setup:
        lines.append(f"run_phase {shlex.quote(setup)} || exit $?")
    lines.append(f"run_phase {shlex.quote(run)}; exit $?")
    return "\n".join(lines) + "\n"


def _resources(spec: JobSpec) -> Manifest:
    res = spec.resources
    requests: dict[str, str] = {"cpu": _cpu_quantity(res.cpus), "memory": str(res.memory)}
    limits: dict[str, str] = {"memory": str(res.memory)}
    if res.gpus:
        # Extended resources are given as limits (requests default to them and may not differ).
        limits[GPU_RESOURCE] = str(res.gpus)
    # No CPU limit: CFS throttling slows data loaders for nothing; the request reserves the cores.
    return {"requests": requests, "limits": limits}


def _cpu_quantity(cpus: float) -> str:
    milli = math.ceil(cpus * 1000 - 1e-9)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _deadline(estimate: float | None, margin: float | None) -> int | None:
    if estimate is None or margin is None:
        return None
    return max(1, math.ceil(estimate * (1 + margin)))


def checkpoint_dir(config: KubernetesConfig) -> str:
    """AIDC_CHECKPOINT_DIR in the container: the job's directory on the checkpoint volume (shared by all its
    attempts), else a directory that lives as long as the pod."""
    return config.checkpoint_volume.mount_path if config.checkpoint_volume else EPHEMERAL_CHECKPOINTS


def _container_port(attempt: AttemptManifests) -> int:
    value = attempt.env.get("AIDC_PORT")
    return int(value) if value and value.isdigit() and 0 < int(value) < 65536 else DEFAULT_CONTAINER_PORT


def _env(attempt: AttemptManifests, config: KubernetesConfig) -> list[Manifest]:
    spec = attempt.spec
    values: dict[str, str] = dict(spec.env)
    values.update(attempt.env)
    values.setdefault("AIDC_JOB_ID", str(attempt.job_id))
    values.setdefault("AIDC_ATTEMPT", str(attempt.attempt))
    values.setdefault("AIDC_NUM_NODES", str(spec.num_nodes))
    values.setdefault("AIDC_QUEUE", spec.queue)
    values["AIDC_CHECKPOINT_DIR"] = checkpoint_dir(config)
    if spec.kind == JobKind.SERVE:
        values["AIDC_PORT"] = str(_container_port(attempt))
    if spec.resources.gpus == 0:
        # On nodes whose default runtime is NVIDIA's, a container that asks for no GPU would see them all.
        values["NVIDIA_VISIBLE_DEVICES"] = "void"
    if spec.num_nodes > 1:
        values |= {
            "MASTER_ADDR": f"{attempt.name}-0.{attempt.name}",
            "MASTER_PORT": str(MASTER_PORT),
            "WORLD_SIZE": str(spec.num_nodes),
        }
    out: list[Manifest] = [{"name": k, "value": v} for k, v in values.items()]
    if spec.num_nodes > 1:
        path = f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
        out.append({"name": "NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": path}}})
    for key in attempt.secret_env:
        out.append({"name": key, "valueFrom": {"secretKeyRef": {"name": attempt.name, "key": key}}})
    return out


def _pod_selector(attempt: AttemptManifests) -> dict[str, str]:
    return {JOB_ID_LABEL: str(attempt.job_id), ATTEMPT_LABEL: str(attempt.attempt)}
