"""Reading the API server's objects (plain JSON dicts): how a Job ended, a pod's exit code, a node's capacity.
Pure: no kubernetes import, no calls."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aidc.backends.kubernetes.manifests import COMPLETION_INDEX_ANNOTATION, CONTAINER, GPU_RESOURCE
from aidc.domain.nodes import Gpu, Node, NodeState

Obj = dict[str, Any]

GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"  # MiB, set by GPU feature discovery
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity ("3920m", "16318524Ki", "8") as a number. Raises ValueError."""
    if isinstance(text, int | float):
        return float(text)
    match = _QUANTITY.match(text.strip())
    if match is None or match.group(2) not in _SUFFIXES:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def condition(obj: Obj, kind: str) -> Obj | None:
    """The status condition of this type whose status is "True", if any."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


@dataclass(frozen=True)
class JobOutcome:
    succeeded: bool
    reason: str  # the condition's reason, e.g. BackoffLimitExceeded, DeadlineExceeded
    message: str


def job_outcome(job: Obj) -> JobOutcome | None:
    """How a batch/v1 Job ended (its Complete or Failed condition); None while it has not."""
    if condition(job, "Complete") is not None:
        return JobOutcome(True, "Complete", "")
    failed = condition(job, "Failed")
    if failed is not None:
        return JobOutcome(False, str(failed.get("reason") or "Failed"), str(failed.get("message") or ""))
    return None


def deployment_failure(deployment: Obj) -> str | None:
    """Why a Deployment will not come up (its Progressing condition False: ProgressDeadlineExceeded); else None."""
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Progressing" and cond.get("status") == "False":
            return f"{cond.get('reason') or 'not progressing'}: {cond.get('message') or ''}".rstrip(": ")
    return None


@dataclass(frozen=True)
class PodExit:
    exit_code: int | None
    reason: str  # e.g. "OOMKilled", "Error", "Evicted: ...", "" when nothing is known


def pod_exit(pods: list[Obj]) -> PodExit:
    """The exit of an attempt from its pods: the first non-zero exit of the main container (pods by completion
    index), else 0 when every one exited 0; a pod that died without its container recording an exit (evicted)
    gives its own reason and no code."""
    codes: list[PodExit] = []
    for pod in sorted(pods, key=_pod_order):
        found = _container_exit(pod)
        status = pod.get("status") or {}
        if found is None:
            if status.get("phase") == "Failed" and status.get("reason"):
                message = status.get("message") or ""
                return PodExit(None, f"{status['reason']}: {message}".rstrip(": "))
            continue
        codes.append(found)
    failures = [c for c in codes if c.exit_code != 0]
    if failures:
        return failures[0]
    return codes[0] if codes else PodExit(None, "")


def _container_exit(pod: Obj) -> PodExit | None:
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        if not isinstance(container, dict) or container.get("name") != CONTAINER:
            continue
        for state_key in ("state", "lastState"):
            terminated = (container.get(state_key) or {}).get("terminated")
            if isinstance(terminated, dict) and isinstance(terminated.get("exitCode"), int):
                return PodExit(int(terminated["exitCode"]), str(terminated.get("reason") or ""))
    return None


def _pod_order(pod: Obj) -> tuple[int, str]:
    meta = pod.get("metadata") or {}
    index = (meta.get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION, "")
    return (int(index) if str(index).isdigit() else 0, str(meta.get("name") or ""))


def first_pod(pods: list[Obj]) -> Obj | None:
    """The pod whose log is the attempt's log: completion index 0 (the rank-0 node), else the first by name."""
    return min(pods, key=_pod_order) if pods else None


# Waiting reasons of a container that will not start: at once (the spec is wrong), or after retrying a while.
_NEVER_STARTS = frozenset({"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"})
_MAY_START_LATER = frozenset({"ErrImagePull", "ImagePullBackOff"})


def cannot_start(pod: Obj) -> tuple[str, bool] | None:
    """Why the main container cannot start, and whether that is final (an invalid image name) or may pass (an
    image pull being retried); None when it is not stuck so."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if not isinstance(container, dict) or container.get("name") != CONTAINER:
            continue
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        if reason in _NEVER_STARTS or reason in _MAY_START_LATER:
            text = f"{reason}: {waiting.get('message') or ''}".rstrip(": ")
            return text, reason in _NEVER_STARTS
    return None


def attempt_of(obj: Obj, job_label: str, attempt_label: str) -> tuple[int, int] | None:
    """(job id, attempt) from an object's aidc labels."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    job, attempt = str(labels.get(job_label, "")), str(labels.get(attempt_label, ""))
    return (int(job), int(attempt)) if job.isdigit() and attempt.isdigit() else None


def pod_ended(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def node_from(obj: Obj, *, gpu_label: str, backend: str, now: datetime) -> Node | None:
    """aidc's view of a v1 Node: allocatable CPUs, memory and nvidia.com/gpu; the GPU model from the GPU feature
    discovery label; DOWN unless its Ready condition is True, CORDONED when unschedulable. None when unreadable."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    allocatable = (obj.get("status") or {}).get("allocatable") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    name = meta.get("name")
    try:
        cpus = parse_quantity(allocatable.get("cpu", "0"))
        memory = int(parse_quantity(allocatable.get("memory", "0")))
        gpu_count = int(parse_quantity(allocatable.get(GPU_RESOURCE, "0")))
        gpu_memory = int(parse_quantity(labels.get(GPU_MEMORY_LABEL, "0"))) * 2**20
    except ValueError:
        return None
    if not name or cpus <= 0:
        return None
    model = labels.get(gpu_label, "unknown")
    gpus = tuple(Gpu(index=i, uuid=f"{name}/gpu-{i}", model=model, memory=gpu_memory) for i in range(gpu_count))
    state, reason = NodeState.UP, None
    if condition(obj, "Ready") is None:
        state, reason = NodeState.DOWN, "its Ready condition is not True"
    elif spec.get("unschedulable"):
        state, reason = NodeState.CORDONED, "cordoned in Kubernetes (spec.unschedulable)"
    return Node(
        name=str(name),
        cpus=cpus,
        memory=memory,
        gpus=gpus,
        state=state,
        state_reason=reason,
        backend=backend,
        labels=labels,
        last_seen=now,
    )
