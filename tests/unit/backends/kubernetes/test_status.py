"""Reading Kubernetes objects: quantities, how a Job ended, a pod's exit code, a node's capacity and state."""

from __future__ import annotations

from typing import Any

import pytest

from aidc.backends.kubernetes import status
from aidc.domain.nodes import NodeState
from tests.fixtures.clock import T0


@pytest.mark.parametrize(
    ("text", "value"),
    [("8", 8.0), ("3920m", 3.92), ("16Ki", 16384.0), ("1Gi", 2.0**30), ("1.5G", 1.5e9), ("1e3", 1000.0), (2, 2.0)],
)
def test_quantities(text: str | int, value: float) -> None:
    assert status.parse_quantity(text) == pytest.approx(value)


def test_a_bad_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="quantity"):
        status.parse_quantity("12XB")


def _pod(name: str, index: int | None, state: dict[str, Any] | None, **pod_status: Any) -> dict[str, Any]:
    annotations = {} if index is None else {"batch.kubernetes.io/job-completion-index": str(index)}
    containers = [] if state is None else [{"name": "main", "state": state}]
    return {
        "metadata": {"name": name, "annotations": annotations},
        "status": {"containerStatuses": containers, **pod_status},
    }


def _terminated(code: int, reason: str = "Error") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": reason}}


def test_the_first_failing_pod_by_index_gives_the_exit() -> None:
    pods = [
        _pod("b", 2, _terminated(1)),
        _pod("a", 1, _terminated(137, "OOMKilled")),
        _pod("c", 0, _terminated(0, "Completed")),
    ]
    assert status.pod_exit(pods) == status.PodExit(137, "OOMKilled")


def test_all_pods_succeeded_is_exit_zero_and_no_pod_is_unknown() -> None:
    assert status.pod_exit([_pod("a", 0, _terminated(0, "Completed"))]).exit_code == 0
    assert status.pod_exit([]) == status.PodExit(None, "")


def test_an_evicted_pod_gives_its_reason_without_a_code() -> None:
    evicted = _pod("a", 0, {"waiting": {"reason": "ContainerCreating"}}, phase="Failed", reason="Evicted", message="m")
    assert status.pod_exit([evicted]) == status.PodExit(None, "Evicted: m")


def test_a_restarted_containers_last_state_counts() -> None:
    pod = _pod("a", None, None)
    pod["status"]["containerStatuses"] = [{"name": "main", "state": {"waiting": {}}, "lastState": _terminated(2)}]
    assert status.pod_exit([pod]).exit_code == 2


def test_job_outcomes() -> None:
    assert status.job_outcome({"status": {}}) is None
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert status.job_outcome(complete) == status.JobOutcome(True, "Complete", "")
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}}
    outcome = status.job_outcome(failed)
    assert outcome is not None
    assert (outcome.succeeded, outcome.reason) == (False, "DeadlineExceeded")
    assert status.job_outcome({"status": {"conditions": [{"type": "Failed", "status": "False"}]}}) is None


def test_a_node_without_readable_capacity_is_left_out() -> None:
    bad = {"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "lots"}}}
    assert status.node_from(bad, gpu_label="nvidia.com/gpu.product", backend="kubernetes", now=T0) is None


def test_a_ready_gpu_node() -> None:
    obj = {
        "metadata": {"name": "n1", "labels": {"nvidia.com/gpu.product": "Tesla-T4"}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "7910m", "memory": "30Gi", "nvidia.com/gpu": "1"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    node = status.node_from(obj, gpu_label="nvidia.com/gpu.product", backend="kubernetes", now=T0)
    assert node is not None
    assert (node.cpus, node.memory, node.state, node.last_seen) == (7.91, 30 * 2**30, NodeState.UP, T0)
    assert [(g.index, g.model) for g in node.gpus] == [(0, "Tesla-T4")]
