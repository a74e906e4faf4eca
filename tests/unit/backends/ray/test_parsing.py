"""Reading Ray's answers: job details, the job list, the node list, error texts."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from aidc.backends.ray.client import (
    RayError,
    RayJobsClient,
    RayJobStatus,
    RayNotFound,
    RayUnreachable,
    parse_job,
    parse_jobs,
    parse_nodes,
)
from aidc.backends.ray.nodes import to_nodes
from tests.unit.backends.ray.shapes import (
    DRIVER_JOB,
    DUPLICATE_ANSWER,
    FAILED_MESSAGE,
    job_details,
    node_record,
    nodes_answer,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_a_failed_job_reads_with_its_exit_code_message_times_and_grace() -> None:
    data = job_details(
        "aidc-7-1",
        "FAILED",
        message=FAILED_MESSAGE,
        error_type="JOB_ENTRYPOINT_COMMAND_ERROR",
        end_time=1795533683441,
        driver_exit_code=7,
    )

    job = parse_job(data)

    assert job.submission_id == "aidc-7-1"
    assert job.status == RayJobStatus.FAILED
    assert job.status.is_terminal
    assert job.driver_exit_code == 7
    assert job.error_type == "JOB_ENTRYPOINT_COMMAND_ERROR"
    assert (job.start_time, job.end_time) == (1795533680630, 1795533683441)
    assert job.stop_wait == 5
    assert job.message == FAILED_MESSAGE


def test_a_job_without_runtime_env_has_no_grace_of_its_own() -> None:
    assert parse_job(job_details("aidc-7-1", "RUNNING", runtime_env=None)).stop_wait is None


@pytest.mark.parametrize("status", ["PENDING", "RUNNING"])
def test_live_states_are_not_terminal(status: str) -> None:
    assert not parse_job(job_details("aidc-7-1", status)).status.is_terminal


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown status 'PAUSED'"):
        parse_job(job_details("aidc-7-1", "PAUSED"))


def test_the_job_list_keeps_submitted_jobs_only() -> None:
    jobs = parse_jobs([job_details("aidc-7-1", "RUNNING"), DRIVER_JOB, "junk", job_details("other", "SUCCEEDED")])
    assert [j.submission_id for j in jobs] == ["aidc-7-1", "other"]


def test_nodes_become_aidc_nodes_with_ray_gpus() -> None:
    dead = node_record(node_id="dead", node_name="10.0.0.9", state="DEAD")
    no_cpu = node_record(node_id="cpu0", node_name="10.0.0.8", resources_total={"CPU": 0.0, "memory": 1.0})
    a100 = node_record(
        node_id="gpu",
        node_ip="10.0.0.7",
        node_name="10.0.0.7",
        is_head_node=False,
        resources_total={"CPU": 8.0, "GPU": 1.0, "memory": 1e9, "accelerator_type:A100": 1.0},
    )

    nodes = to_nodes(parse_nodes(nodes_answer(node_record(), dead, no_cpu, a100)), NOW)

    head, worker = nodes
    assert (head.name, head.cpus, head.memory, head.backend, head.last_seen) == (
        "192.0.2.2",
        2,
        17356314215,
        "ray",
        NOW,
    )
    assert [(g.index, g.uuid, g.model, g.memory) for g in head.gpus] == [
        (0, "ray-192.0.2.2-gpu0", "unknown", 0),
        (1, "ray-192.0.2.2-gpu1", "unknown", 0),
    ]
    assert head.labels["ray_head"] == "true"
    assert head.labels["ray_node_ip"] == "192.0.2.2"
    assert [g.model for g in worker.gpus] == ["A100"]
    assert "ray_head" not in worker.labels


def test_a_refused_node_list_says_so() -> None:
    with pytest.raises(ValueError, match="refused to list nodes: boom"):
        parse_nodes({"result": False, "msg": "boom", "data": {}})
    with pytest.raises(ValueError, match="not shaped"):
        parse_nodes({"nodes": []})


def client_answering(handler: httpx.MockTransport) -> RayJobsClient:
    return RayJobsClient("http://ray-head:8265", timeout=1, transport=handler)


def test_a_duplicate_submission_is_an_error_that_says_already_exists() -> None:
    client = client_answering(httpx.MockTransport(lambda request: httpx.Response(500, text=DUPLICATE_ANSWER)))
    with pytest.raises(RayError, match="ValueError: Job with submission_id aidc-7-1 already exists") as caught:
        client.submit({"entrypoint": "true", "submission_id": "aidc-7-1"})
    assert caught.value.status == 500


def test_a_missing_job_is_not_found() -> None:
    client = client_answering(httpx.MockTransport(lambda request: httpx.Response(404, text="Job x does not exist")))
    with pytest.raises(RayNotFound, match="does not exist"):
        client.job("x")


def test_an_unreachable_head_names_its_address() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = client_answering(httpx.MockTransport(refuse))
    with pytest.raises(RayUnreachable, match=r"cannot reach the Ray dashboard at http://ray-head:8265"):
        client.jobs()


def test_an_answer_that_is_not_json_is_an_error() -> None:
    client = client_answering(httpx.MockTransport(lambda request: httpx.Response(200, text="<html>")))
    with pytest.raises(RayError, match="with no JSON"):
        client.jobs()


def test_the_token_is_sent_as_a_bearer_header() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json=[])

    client = RayJobsClient(
        "http://ray-head:8265",
        timeout=1,
        headers={"Authorization": "Bearer t0k"},
        transport=httpx.MockTransport(answer),
    )
    assert client.jobs() == []
    assert seen == ["Bearer t0k"]
