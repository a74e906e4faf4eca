"""The Ray backend against a fake dashboard (httpx.MockTransport answering as Ray 2.60 does): what it sends,
how it reports ends, adopts, stops and lists. The real head is exercised in tests/integration/backends/ray."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from aidc.backends.context import BackendContext
from aidc.backends.ray.backend import RayBackend
from aidc.backends.ray.client import RayJobsClient
from aidc.backends.ray.config import RayConfig
from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.jobs import Attempt, JobSpec
from aidc.ports import AdoptOutcome, LaunchError, LaunchRequest, SupportsEngineListing, SupportsLogs
from tests.fixtures.clock import FakeClock
from tests.unit.backends.ray.shapes import (
    DUPLICATE_ANSWER,
    SUBMIT_REQUEST_FIELDS,
    job_details,
    node_record,
    nodes_answer,
)

ADDRESS = "http://ray-head:8265"


class FakeRay:
    """The Job Submission API's routes, over a dict of JobDetails."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, str] = {}
        self.bodies: list[dict[str, Any]] = []
        self.calls: Counter[str] = Counter()
        self.stop_answer = True
        self.down = False
        self.timeout_after_submit = False

    def finish(self, submission_id: str, status: str, **fields: Any) -> None:
        self.jobs[submission_id].update({"status": status, "end_time": 1795533690000, **fields})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path, method = request.url.path, request.method
        self.calls[f"{method} {path}"] += 1
        if (method, path) == ("POST", "/api/jobs/"):
            body = json.loads(request.content)
            sid = body["submission_id"]
            if sid in self.jobs:
                return httpx.Response(500, text=DUPLICATE_ANSWER)
            self.bodies.append(body)
            self.jobs[sid] = job_details(sid, "PENDING", entrypoint=body["entrypoint"], runtime_env=body["runtime_env"])
            if self.timeout_after_submit:
                raise httpx.ReadTimeout("timed out", request=request)
            return httpx.Response(200, json={"job_id": sid, "submission_id": sid})
        if (method, path) == ("GET", "/api/jobs/"):
            return httpx.Response(200, json=list(self.jobs.values()))
        if (method, path) == ("GET", "/api/v0/nodes"):
            return httpx.Response(200, json=nodes_answer(node_record()))
        parts = path.strip("/").split("/")  # api, jobs, id[, logs|stop]
        job = self.jobs.get(parts[2]) if len(parts) >= 3 else None
        if job is None:
            return httpx.Response(404, text=f"Job {parts[-1]} does not exist")
        if len(parts) == 3:
            return httpx.Response(200, json=job)
        if parts[3] == "logs":
            return httpx.Response(200, json={"logs": self.logs.get(parts[2], "")})
        if parts[3] == "stop":
            return httpx.Response(200, json={"stopped": self.stop_answer and not _terminal(job)})
        return httpx.Response(404)


def _terminal(job: dict[str, Any]) -> bool:
    return job["status"] in ("SUCCEEDED", "FAILED", "STOPPED")


@pytest.fixture
def ray() -> FakeRay:
    return FakeRay()


def make(ray: FakeRay, **options: Any) -> RayBackend:
    config = RayConfig.model_validate({"address": ADDRESS, "poll_interval": 0, "jobs_dir": "/shared/jobs", **options})
    client = RayJobsClient(ADDRESS, timeout=1, transport=httpx.MockTransport(ray))
    return RayBackend(config, BackendContext(Path("/var/lib/aidc"), FakeClock(), 10.0), client=client)


@pytest.fixture
def backend(ray: FakeRay) -> Iterator[RayBackend]:
    made = make(ray)
    yield made
    made.close()


def request(job_id: int = 7, attempt: int = 1, node: str | None = None, **fields: Any) -> LaunchRequest:
    spec = JobSpec.model_validate({"name": "train", "run": "python train.py", **fields})
    placement = Placement((NodeAssignment(node, ()),)) if node else Placement(())
    return LaunchRequest(job_id, attempt, spec, placement, env={"AIDC_JOB_ID": str(job_id)})


def attempt_of(job_id: int, number: int = 1) -> Attempt:
    return Attempt(job_id=job_id, number=number, nodes=("n",), started_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_it_has_logs_and_engine_listing(backend: RayBackend) -> None:
    assert isinstance(backend, SupportsLogs)
    assert isinstance(backend, SupportsEngineListing)


def test_launch_submits_one_ray_job_named_after_the_attempt(backend: RayBackend, ray: FakeRay) -> None:
    backend.launch(request(queue="team-a"))

    [body] = ray.bodies
    assert set(body) <= SUBMIT_REQUEST_FIELDS
    assert body["submission_id"] == "aidc-7-1"
    assert body["runtime_env"]["env_vars"]["AIDC_CHECKPOINT_DIR"] == "/shared/jobs/7/checkpoints"
    assert body["runtime_env"]["env_vars"]["RAY_JOB_STOP_WAIT_TIME_S"] == "10"


def test_a_queue_adds_its_custom_resources(ray: FakeRay) -> None:
    backend = make(ray, queues={"team-a": {"resources": {"team-a": 1}}})
    backend.launch(request(queue="team-a"))
    backend.launch(request(8, queue="default"))
    assert ray.bodies[0]["entrypoint_resources"] == {"team-a": 1.0}
    assert "entrypoint_resources" not in ray.bodies[1]


def test_a_placed_job_is_pinned_to_its_ray_node(backend: RayBackend, ray: FakeRay) -> None:
    backend.launch(request(node="192.0.2.2"))
    assert ray.bodies[0]["entrypoint_resources"] == {"node:192.0.2.2": 0.001}
    with pytest.raises(LaunchError, match="the placement names elsewhere, not a live node of the Ray cluster at"):
        backend.launch(request(8, node="elsewhere"))


def test_pinning_can_be_turned_off(ray: FakeRay) -> None:
    make(ray, pin_to_node=False).launch(request(node="anywhere"))
    assert "entrypoint_resources" not in ray.bodies[0]


def test_launching_twice_is_refused_here_and_by_ray(backend: RayBackend, ray: FakeRay) -> None:
    backend.launch(request())
    with pytest.raises(LaunchError, match="already running"):
        backend.launch(request())
    with pytest.raises(LaunchError, match="was launched before: Ray already has aidc-7-1"):
        make(ray).launch(request())


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"num_nodes": 2}, "num_nodes"), ({"image": "nvcr.io/nvidia/pytorch:24.01"}, "image")],
)
def test_what_ray_cannot_run_is_refused_naming_the_field(
    backend: RayBackend, fields: dict[str, Any], field: str
) -> None:
    spec = request(**fields).spec
    assert [p.field for p in backend.validate(spec)] == [field]
    with pytest.raises(LaunchError, match=f"^{field}: "):
        backend.launch(request(**fields))


def test_serving_is_refused_naming_kind(backend: RayBackend) -> None:
    spec = JobSpec.model_validate({"name": "s", "run": "serve", "kind": "serve", "serve": {"models": ["m"]}})
    assert [p.field for p in backend.validate(spec)] == ["kind"]


def test_a_fractional_gpu_is_fine(backend: RayBackend, ray: FakeRay) -> None:
    assert backend.validate(request(resources={"gpus": 0.5}).spec) == []
    backend.launch(request(resources={"gpus": 0.5}))
    assert ray.bodies[0]["entrypoint_num_gpus"] == 0.5


def test_an_unreachable_head_is_a_launch_error_naming_it(backend: RayBackend, ray: FakeRay) -> None:
    ray.down = True
    with pytest.raises(LaunchError, match=f"cannot reach the Ray dashboard at {ADDRESS}"):
        backend.launch(request())


def test_a_submission_that_timed_out_after_ray_took_it_is_watched(backend: RayBackend, ray: FakeRay) -> None:
    ray.timeout_after_submit = True
    backend.launch(request())
    ray.finish("aidc-7-1", "SUCCEEDED", driver_exit_code=0)
    assert [e.exit_code for e in backend.poll()] == [0]


def test_poll_reports_each_end_once(backend: RayBackend, ray: FakeRay) -> None:
    backend.launch(request(7))
    backend.launch(request(8))
    assert backend.poll() == []
    ray.finish("aidc-7-1", "SUCCEEDED", driver_exit_code=0)
    ray.finish("aidc-8-1", "FAILED", driver_exit_code=3)

    exits = {e.job_id: e for e in backend.poll()}

    assert {k: (e.exit_code, e.reason) for k, e in exits.items()} == {7: (0, "exit code 0"), 8: (3, "exit code 3")}
    assert exits[7].ended_at == datetime.fromtimestamp(1795533690, UTC)
    assert backend.poll() == []


def test_poll_lists_the_jobs_at_most_once_per_interval(ray: FakeRay) -> None:
    backend = make(ray, poll_interval=60)
    backend.launch(request())
    backend.poll()
    backend.poll()
    assert ray.calls["GET /api/jobs/"] == 1


def test_poll_without_anything_to_watch_asks_nothing(backend: RayBackend, ray: FakeRay) -> None:
    assert backend.poll() == []
    assert ray.calls["GET /api/jobs/"] == 0


def test_a_submission_that_vanished_is_lost(backend: RayBackend, ray: FakeRay) -> None:
    backend.launch(request())
    del ray.jobs["aidc-7-1"]
    [ended] = backend.poll()
    assert ended.exit_code is None
    assert ended.reason.startswith(f"lost: the Ray head at {ADDRESS} no longer has submission aidc-7-1")


def test_poll_survives_an_unreachable_head(backend: RayBackend, ray: FakeRay) -> None:
    backend.launch(request())
    ray.down = True
    assert backend.poll() == []
    ray.down = False
    ray.finish("aidc-7-1", "SUCCEEDED", driver_exit_code=0)
    assert [e.exit_code for e in backend.poll()] == [0]


def test_terminate_asks_ray_to_stop_once(backend: RayBackend, ray: FakeRay) -> None:
    backend.launch(request())
    ray.jobs["aidc-7-1"]["status"] = "RUNNING"

    backend.terminate(7, 1, 10.0)
    backend.terminate(7, 1, 0.0)

    assert ray.calls["POST /api/jobs/aidc-7-1/stop"] == 1
    ray.finish("aidc-7-1", "STOPPED", end_time=None)
    [ended] = backend.poll()
    assert (ended.exit_code, ended.reason) == (143, "stopped in Ray: terminated by SIGTERM")


def test_the_grace_of_a_job_stopped_while_pending_starts_when_it_leaves_pending(
    backend: RayBackend, ray: FakeRay
) -> None:
    backend.launch(request())
    backend.terminate(7, 1, 10.0)  # Ray queues the stop: its supervisor waits for resources
    backend._stops[(7, 1)].sent_at = time.time() - 3600  # sent long ago, as if the job had waited an hour
    backend.poll()  # sees it still PENDING: the grace has not started
    ray.finish("aidc-7-1", "STOPPED", end_time=int((time.time() + 2) * 1000))  # 2 s later, within the 10 s grace

    [ended] = backend.poll()

    assert (ended.exit_code, ended.reason) == (143, "stopped in Ray: terminated by SIGTERM")


def test_a_stop_ray_could_not_act_on_is_sent_again_by_poll(backend: RayBackend, ray: FakeRay) -> None:
    backend.launch(request())
    ray.stop_answer = False  # e.g. its supervisor actor is not up yet
    backend.terminate(7, 1, 10.0)
    ray.stop_answer = True
    backend._stops[(7, 1)].retry_at = 0  # due now, without waiting for the retry delay

    backend.poll()

    assert ray.calls["POST /api/jobs/aidc-7-1/stop"] == 2


def test_terminate_of_an_unknown_attempt_is_ignored(backend: RayBackend, ray: FakeRay) -> None:
    backend.terminate(99, 1, 5.0)
    assert ray.calls["POST /api/jobs/aidc-99-1/stop"] == 1
    assert backend.poll() == []


def test_terminate_stops_an_orphan_this_instance_never_launched(backend: RayBackend, ray: FakeRay) -> None:
    ray.jobs["aidc-5-2"] = job_details("aidc-5-2", "RUNNING")
    assert backend.engine_attempts() == {(5, 2)}
    backend.terminate(5, 2, 5.0)
    assert ray.calls["POST /api/jobs/aidc-5-2/stop"] == 1


def test_engine_attempts_are_the_live_aidc_submissions(backend: RayBackend, ray: FakeRay) -> None:
    ray.jobs = {
        "aidc-1-1": job_details("aidc-1-1", "RUNNING"),
        "aidc-2-3": job_details("aidc-2-3", "PENDING"),
        "aidc-3-1": job_details("aidc-3-1", "SUCCEEDED"),
        "someone-else": job_details("someone-else", "RUNNING"),
    }
    assert backend.engine_attempts() == {(1, 1), (2, 3)}


@pytest.mark.parametrize(("status", "outcome"), [("PENDING", "RUNNING"), ("RUNNING", "RUNNING")])
def test_adopt_takes_back_a_live_job(backend: RayBackend, ray: FakeRay, status: str, outcome: str) -> None:
    ray.jobs["aidc-7-1"] = job_details("aidc-7-1", status)
    assert backend.adopt(attempt_of(7)) == AdoptOutcome(outcome)
    ray.finish("aidc-7-1", "SUCCEEDED", driver_exit_code=0)
    assert [(e.job_id, e.exit_code) for e in backend.poll()] == [(7, 0)]


def test_adopt_of_an_ended_job_reports_it_on_the_next_poll(backend: RayBackend, ray: FakeRay) -> None:
    ray.jobs["aidc-7-1"] = job_details("aidc-7-1", "FAILED", driver_exit_code=2, end_time=1795533690000)
    assert backend.adopt(attempt_of(7)) == AdoptOutcome.EXITED
    assert [(e.job_id, e.exit_code, e.reason) for e in backend.poll()] == [(7, 2, "exit code 2")]
    assert backend.poll() == []


def test_adopt_of_an_unknown_submission_is_lost(backend: RayBackend) -> None:
    assert backend.adopt(attempt_of(7)) == AdoptOutcome.LOST


def test_adopt_without_an_answer_watches_until_ray_answers(backend: RayBackend, ray: FakeRay) -> None:
    ray.down = True
    assert backend.adopt(attempt_of(7)) == AdoptOutcome.RUNNING
    ray.down = False
    [ended] = backend.poll()  # the head came back without the submission (it restarted)
    assert ended.exit_code is None
    assert ended.reason.startswith("lost: ")


def test_read_log_cuts_the_requested_bytes(backend: RayBackend, ray: FakeRay) -> None:
    backend.launch(request())
    ray.logs["aidc-7-1"] = "héllo\nworld\n"
    data = "héllo\nworld\n".encode()

    chunk = backend.read_log(7, 1, offset=2, limit=4)

    assert (chunk.data, chunk.next_offset, chunk.size, chunk.complete) == (data[2:6], 6, len(data), False)
    ray.finish("aidc-7-1", "SUCCEEDED", driver_exit_code=0)
    assert backend.read_log(7, 1, offset=6).complete
    assert backend.read_log(7, 1, offset=0, limit=3).complete is False  # ended, but not read to the end
    with pytest.raises(KeyError):
        backend.read_log(8, 1)
    ray.down = True
    with pytest.raises(OSError, match="cannot reach"):
        backend.read_log(7, 1)


def test_discover_nodes_lists_ray_nodes(backend: RayBackend) -> None:
    [node] = backend.discover_nodes()
    assert (node.name, node.backend, len(node.gpus)) == ("192.0.2.2", "ray", 2)
