"""The kubernetes backend through the real `kubernetes` client (37.0.2) over HTTP, against a fake API server.

What this is: `create()` loads a kubeconfig that points at a local stdlib HTTP server; every call goes through the
official client (configuration, bearer token, serialization, errors). The server answers with JSON fixtures
(tests/fixtures/k8s_recorded) WRITTEN BY HAND FROM THE KUBERNETES API REFERENCE, NOT RECORDED FROM A LIVE CLUSTER
(none can run where these tests were written), and it asserts what it receives: method, path, query, body kind.

What this does NOT exercise: a real API server's validation and admission (webhooks, quotas, Kueue's webhook and
admission), the scheduler placing pods, the kubelet running containers, sending SIGTERM and SIGKILL and reporting
exit codes, the Job controller setting conditions, the garbage collector honouring ownerReferences and Foreground
deletion, DNS of the headless Service, Kueue unsuspending Jobs, and pod logs streamed from a real kubelet."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aidc.backends.kubernetes import manifests
from aidc.backends.kubernetes.backend import KubernetesBackend
from aidc.backends.kubernetes.config import KubernetesConfig
from aidc.domain.decisions import NodeAssignment, Placement
from aidc.domain.jobs import Attempt, JobSpec
from aidc.domain.nodes import NodeState
from aidc.ports import AdoptOutcome, LaunchError, LaunchRequest, SupportsEngineListing, SupportsLogs
from tests.fixtures.clock import T0
from tests.fixtures.common import unavailable
from tests.integration.backends.kubernetes.conftest import TOKEN
from tests.integration.backends.kubernetes.fake_apiserver import (
    NAMESPACE,
    FakeApiServer,
    deployment,
    fixture,
    job,
    listing,
    pods,
)

JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"
SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
SELECTOR = "app.kubernetes.io/managed-by=aidc"
PLACEMENT = Placement((NodeAssignment("gpu-node-1", (0,)),))


def _request(job_id: int = 7, attempt: int = 1, **spec: object) -> LaunchRequest:
    fields: dict[str, object] = {"name": "train", "run": "python train.py"} | spec
    secret_env = fields.get("secret_env") or {}
    assert isinstance(secret_env, dict)
    return LaunchRequest(
        job_id=job_id,
        attempt=attempt,
        spec=JobSpec.model_validate(fields),
        placement=PLACEMENT,
        env={"AIDC_JOB_ID": str(job_id), "AIDC_ATTEMPT": str(attempt), "AIDC_NUM_NODES": "1", "AIDC_QUEUE": "default"},
        secret_env=secret_env,
    )


def _jobs(*items: dict[str, object]) -> dict[str, object]:
    return listing("JobList", "batch/v1", list(items))


def _launch(backend: KubernetesBackend, apiserver: FakeApiServer) -> None:
    backend.launch(_request())
    apiserver.reset()


# ------------------------------------------------------------------------------------------------ launch


def test_launch_creates_secret_service_then_indexed_job_and_hands_them_to_the_job(
    backend: KubernetesBackend, apiserver: FakeApiServer
) -> None:
    backend.launch(_request(num_nodes=2, resources={"gpus": 8}, secret_env={"HF_TOKEN": "hf_secret_value"}))

    creates = apiserver.seen("POST")
    assert [(r.path, r.kind) for r in creates] == [(SECRETS, "Secret"), (SERVICES, "Service"), (JOBS, "Job")]
    assert all(r.authorization == f"Bearer {TOKEN}" for r in apiserver.requests)
    secret, service, job_body = (r.body for r in creates)
    assert secret["stringData"] == {"HF_TOKEN": "hf_secret_value"}
    assert "hf_secret_value" not in str(job_body)
    assert "hf_secret_value" not in str(service)
    assert job_body["spec"]["completionMode"] == "Indexed"
    assert job_body["spec"]["completions"] == 2
    assert job_body["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"] == "aidc-7-1"
    limits = job_body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "8"
    # The Secret and the Service are owned by the Job, so that they go with it.
    patches = apiserver.seen("PATCH")
    assert [r.path for r in patches] == [f"{SECRETS}/aidc-7-1", f"{SERVICES}/aidc-7-1"]
    assert all(r.content_type == "application/merge-patch+json" for r in patches)
    owner = patches[0].body["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Job"
    assert owner["name"] == "aidc-7-1"
    assert owner["uid"]


def test_the_bodies_the_client_sends_pass_the_kubernetes_schemas(
    backend: KubernetesBackend, apiserver: FakeApiServer
) -> None:
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError:
        unavailable("kubernetes-validate is not installed (pip install 'aidc[dev]')")
    backend.launch(_request(num_nodes=2, resources={"gpus": 1}, secret_env={"TOKEN": "x"}))
    backend.launch(_request(job_id=8, kind="serve", serve={"models": ["m"]}, resources={"gpus": 1}))

    sent = [r.body for r in apiserver.seen("POST")]
    assert [b["kind"] for b in sent] == ["Secret", "Service", "Job", "Service", "Deployment"]
    for body in sent:
        kubernetes_validate.validate(body, "1.37.0", strict=True)
    # The client's own models let every field through unchanged: what was built is what was sent.
    first = _request(num_nodes=2, resources={"gpus": 1}, secret_env={"TOKEN": "x"})
    built = manifests.build(
        manifests.AttemptManifests(
            7, 1, first.spec, env=first.env, secret_env=first.secret_env, nodes=("gpu-node-1",), replicas=1
        ),
        KubernetesConfig(namespace=NAMESPACE, image="python:3.11-slim"),
    )
    assert sent[:3] == built


def test_a_job_that_exists_already_is_a_launch_error_and_the_secret_is_removed(
    backend: KubernetesBackend, apiserver: FakeApiServer
) -> None:
    apiserver.reply("POST", JOBS, fixture("status-409.json"), status=409)
    apiserver.reply("DELETE", f"{SECRETS}/aidc-7-1", fixture("status-success.json"))

    with pytest.raises(LaunchError, match="launched before"):
        backend.launch(_request(secret_env={"K": "v"}))

    assert [r.method for r in apiserver.requests] == ["POST", "POST", "DELETE"]
    assert backend.poll() == []  # not tracked: nothing is listed


def test_a_refused_spec_is_a_launch_error_naming_the_field(backend: KubernetesBackend) -> None:
    with pytest.raises(LaunchError, match=r"resources\.gpus"):
        backend.launch(_request(resources={"gpus": 0.5}))


# ------------------------------------------------------------------------------------------------ poll


def test_poll_reports_a_completed_job_once(backend: KubernetesBackend, apiserver: FakeApiServer) -> None:
    _launch(backend, apiserver)
    apiserver.reply("GET", JOBS, _jobs(job()))
    assert backend.poll() == []
    apiserver.reply("GET", JOBS, _jobs(job(status="job-status-complete.json")))

    [ended] = backend.poll()

    assert (ended.job_id, ended.attempt, ended.exit_code, ended.reason) == (7, 1, 0, "completed")
    assert ended.ended_at == T0
    lists = apiserver.seen("GET", JOBS)
    assert [r.query["labelSelector"] for r in lists] == [[SELECTOR], [SELECTOR]]
    assert backend.poll() == []  # reported once; nothing is tracked, so nothing is listed
    assert len(apiserver.seen("GET", JOBS)) == 2


@pytest.mark.parametrize(
    ("job_status", "pod_status", "code", "words"),
    [
        ("job-status-failed.json", "pod-status-oomkilled.json", 137, ["BackoffLimitExceeded", "OOMKilled"]),
        ("job-status-failed.json", "pod-status-exit3.json", 3, ["BackoffLimitExceeded", "exit code 3"]),
        ("job-status-failed.json", "pod-status-evicted.json", None, ["Evicted", "low on resource"]),
        ("job-status-deadline.json", None, None, ["DeadlineExceeded"]),
    ],
)
def test_poll_reports_how_a_failed_job_ended(
    backend: KubernetesBackend,
    apiserver: FakeApiServer,
    job_status: str,
    pod_status: str | None,
    code: int | None,
    words: list[str],
) -> None:
    _launch(backend, apiserver)
    apiserver.reply("GET", JOBS, _jobs(job(status=job_status)))
    apiserver.reply("GET", PODS, pods("aidc-7-1", pod_status) if pod_status else listing("PodList", "v1", []))

    [ended] = backend.poll()

    assert ended.exit_code == code
    assert all(w in ended.reason for w in words), ended.reason
    [pod_list] = apiserver.seen("GET", PODS)
    assert pod_list.query["labelSelector"] == ["aidc.dev/job-id=7,aidc.dev/attempt=1"]


def test_a_job_deleted_behind_aidcs_back_is_reported_with_no_exit_code(
    backend: KubernetesBackend, apiserver: FakeApiServer
) -> None:
    _launch(backend, apiserver)
    apiserver.reply("GET", JOBS, _jobs())

    [ended] = backend.poll()

    assert ended.exit_code is None
    assert "disappeared" in ended.reason


def test_poll_survives_an_unreachable_api_server(backend: KubernetesBackend, apiserver: FakeApiServer) -> None:
    _launch(backend, apiserver)
    apiserver.reply("GET", JOBS, {"kind": "Status", "code": 503, "message": "etcd unavailable"}, status=503)
    assert backend.poll() == []
    apiserver.reply("GET", JOBS, _jobs(job(status="job-status-complete.json")))
    assert [e.exit_code for e in backend.poll()] == [0]


def test_a_container_that_cannot_start_is_stopped_and_reported_without_an_exit_code(
    make_backend: Callable[..., KubernetesBackend], apiserver: FakeApiServer
) -> None:
    backend = make_backend(pod_check_interval=0)
    _launch(backend, apiserver)
    apiserver.reply("GET", JOBS, _jobs(job()))
    apiserver.reply("GET", PODS, pods("aidc-7-1", "pod-status-invalid-image.json"))
    apiserver.reply("DELETE", f"{JOBS}/aidc-7-1", fixture("status-success.json"))
    apiserver.reply("DELETE", PODS, listing("PodList", "v1", []))

    assert backend.poll() == []

    [look] = apiserver.seen("GET", PODS)
    assert look.query["labelSelector"] == [SELECTOR]
    [delete_pods] = apiserver.seen("DELETE", PODS)
    assert delete_pods.query["gracePeriodSeconds"] == ["0"]
    apiserver.reply("GET", JOBS, _jobs())
    apiserver.reply("GET", PODS, listing("PodList", "v1", []))
    [ended] = backend.poll()
    assert ended.exit_code is None
    assert "InvalidImageName" in ended.reason


# ------------------------------------------------------------------------------------------------ terminate


def test_terminate_deletes_the_job_foreground_and_its_pods_with_the_grace(
    backend: KubernetesBackend, apiserver: FakeApiServer
) -> None:
    _launch(backend, apiserver)
    apiserver.reply("DELETE", f"{JOBS}/aidc-7-1", fixture("status-success.json"))
    apiserver.reply("DELETE", PODS, listing("PodList", "v1", []))

    backend.terminate(7, 1, 5.0)
    backend.terminate(7, 1, 10.0)  # a longer grace changes nothing: no request

    delete_job, delete_pods = apiserver.requests
    assert (delete_job.method, delete_job.path) == ("DELETE", f"{JOBS}/aidc-7-1")
    assert delete_job.query["gracePeriodSeconds"] == ["5"]
    assert delete_job.query["propagationPolicy"] == ["Foreground"]
    assert (delete_pods.method, delete_pods.path) == ("DELETE", PODS)
    assert delete_pods.query["labelSelector"] == ["aidc.dev/job-id=7,aidc.dev/attempt=1"]
    assert delete_pods.query["gracePeriodSeconds"] == ["5"]

    # While the pods stop, the Job is still there (Foreground): the exit code its pod shows is kept...
    stopping = job(deletionTimestamp="2026-03-01T12:04:00Z", finalizers=["foregroundDeletion"])
    apiserver.reply("GET", JOBS, _jobs(stopping))
    apiserver.reply("GET", PODS, pods("aidc-7-1", "pod-status-sigterm.json"))
    assert backend.poll() == []
    # ...and reported once the Job is gone.
    apiserver.reply("GET", JOBS, _jobs())
    [ended] = backend.poll()
    assert ended.exit_code == 143
    assert "stopped by aidc" in ended.reason


def test_terminate_again_with_a_shorter_grace_brings_the_kill_forward(
    backend: KubernetesBackend, apiserver: FakeApiServer
) -> None:
    _launch(backend, apiserver)
    apiserver.reply("DELETE", f"{JOBS}/aidc-7-1", fixture("status-success.json"), times=2)
    apiserver.reply("DELETE", PODS, listing("PodList", "v1", []), times=2)

    backend.terminate(7, 1, 30.0)
    backend.terminate(7, 1, 0.0)

    graces = [r.query["gracePeriodSeconds"] for r in apiserver.seen("DELETE", PODS)]
    assert graces == [["30"], ["0"]]
    apiserver.reply("GET", JOBS, _jobs())
    [ended] = backend.poll()
    assert ended.exit_code == 137  # gone before any exit could be read, after a grace of 0: SIGKILL's


def test_terminate_retries_on_the_next_poll_when_the_api_server_fails(
    backend: KubernetesBackend, apiserver: FakeApiServer
) -> None:
    _launch(backend, apiserver)
    apiserver.reply("DELETE", f"{JOBS}/aidc-7-1", {"kind": "Status", "code": 500, "message": "boom"}, status=500)

    backend.terminate(7, 1, 3.0)

    apiserver.reply("GET", JOBS, _jobs(job()))
    apiserver.reply("DELETE", f"{JOBS}/aidc-7-1", fixture("status-success.json"))
    apiserver.reply("DELETE", PODS, listing("PodList", "v1", []))
    apiserver.reply("GET", PODS, pods("aidc-7-1"))
    assert backend.poll() == []
    assert [r.query.get("gracePeriodSeconds") for r in apiserver.seen("DELETE")] == [["3"], ["3"], ["3"]]


def test_terminate_of_an_orphan_it_does_not_track_deletes_it_by_name(
    backend: KubernetesBackend, apiserver: FakeApiServer
) -> None:
    apiserver.reply("DELETE", f"{JOBS}/aidc-9-2", fixture("status-404.json"), status=404)
    apiserver.reply("DELETE", f"{DEPLOYMENTS}/aidc-9-2", fixture("status-success.json"))
    apiserver.reply("DELETE", PODS, listing("PodList", "v1", []))

    backend.terminate(9, 2, 0.0)

    assert [r.path for r in apiserver.requests] == [f"{JOBS}/aidc-9-2", f"{DEPLOYMENTS}/aidc-9-2", PODS]


# ------------------------------------------------------------------------------------------------ restart


def _attempt(job_id: int = 7, number: int = 1) -> Attempt:
    return Attempt(job_id=job_id, number=number, nodes=("gpu-node-1",), started_at=T0)


def test_adopt_a_running_job_and_watch_it_again(backend: KubernetesBackend, apiserver: FakeApiServer) -> None:
    apiserver.reply("GET", f"{JOBS}/aidc-7-1", job())

    assert backend.adopt(_attempt()) == AdoptOutcome.RUNNING

    apiserver.reply("GET", JOBS, _jobs(job(status="job-status-complete.json")))
    assert [e.exit_code for e in backend.poll()] == [0]


def test_adopt_a_job_that_ended_while_nobody_watched(backend: KubernetesBackend, apiserver: FakeApiServer) -> None:
    apiserver.reply("GET", f"{JOBS}/aidc-7-1", job(status="job-status-failed.json"))
    apiserver.reply("GET", PODS, pods("aidc-7-1", "pod-status-exit3.json"))

    assert backend.adopt(_attempt()) == AdoptOutcome.EXITED

    [ended] = backend.poll()  # reported by the next poll, without listing anything
    assert ended.exit_code == 3
    assert apiserver.seen("GET", JOBS) == []


def test_adopt_a_job_that_is_gone_is_lost(backend: KubernetesBackend, apiserver: FakeApiServer) -> None:
    apiserver.reply("GET", f"{JOBS}/aidc-7-1", fixture("status-404.json"), status=404)
    apiserver.reply("GET", f"{DEPLOYMENTS}/aidc-7-1", fixture("status-404.json"), status=404)

    assert backend.adopt(_attempt()) == AdoptOutcome.LOST


def test_engine_listing_finds_unfinished_aidc_work_by_label(
    backend: KubernetesBackend, apiserver: FakeApiServer
) -> None:
    assert isinstance(backend, SupportsEngineListing)
    apiserver.reply(
        "GET",
        JOBS,
        _jobs(
            job("aidc-7-1"),
            job("aidc-8-2", status="job-status-suspended.json"),  # queued by Kueue: held
            job("aidc-9-1", status="job-status-complete.json"),  # finished: not held
            job("someone-elses-job"),
        ),
    )
    apiserver.reply("GET", DEPLOYMENTS, listing("DeploymentList", "apps/v1", [deployment("aidc-11-3")]))

    assert backend.engine_attempts() == {(7, 1), (8, 2), (11, 3)}
    assert [r.query["labelSelector"] for r in apiserver.requests] == [[SELECTOR], [SELECTOR]]


# ------------------------------------------------------------------------------------------------ logs, nodes


def test_read_log_reads_the_first_pods_main_container(backend: KubernetesBackend, apiserver: FakeApiServer) -> None:
    assert isinstance(backend, SupportsLogs)
    apiserver.reply("GET", PODS, pods("aidc-7-1", "pod-status-succeeded.json", "pod-status-succeeded.json"))
    apiserver.reply("GET", f"{PODS}/aidc-7-1-0-x7k2p/log", b"hello\nworld\n")

    chunk = backend.read_log(7, 1, offset=6, limit=100)

    assert chunk.data == b"world\n"
    assert chunk.next_offset == 12
    assert chunk.complete
    assert chunk.size == 12
    log_request = apiserver.seen("GET", f"{PODS}/aidc-7-1-0-x7k2p/log")[0]
    assert log_request.query["container"] == ["main"]
    assert log_request.query["limitBytes"] == ["106"]


def test_read_log_of_a_running_pod_is_not_complete(backend: KubernetesBackend, apiserver: FakeApiServer) -> None:
    apiserver.reply("GET", PODS, pods("aidc-7-1"))
    apiserver.reply("GET", f"{PODS}/aidc-7-1-0-x7k2p/log", b"step 1\n")

    chunk = backend.read_log(7, 1, limit=3)

    assert chunk.data == b"ste"
    assert not chunk.complete
    assert chunk.size == -1


def test_read_log_without_any_pod_is_a_key_error(backend: KubernetesBackend, apiserver: FakeApiServer) -> None:
    apiserver.reply("GET", PODS, listing("PodList", "v1", []))
    with pytest.raises(KeyError):
        backend.read_log(7, 1)


def test_discover_nodes_reads_allocatable_gpus_and_state(backend: KubernetesBackend, apiserver: FakeApiServer) -> None:
    apiserver.reply("GET", "/api/v1/nodes", fixture("node-list.json"))

    nodes = {n.name: n for n in backend.discover_nodes()}

    h100 = nodes["gpu-node-1"]
    assert (h100.cpus, h100.memory, h100.state) == (95.5, 2112387420 * 1024, NodeState.UP)
    assert len(h100.gpus) == 8
    assert {g.model for g in h100.gpus} == {"NVIDIA-H100-80GB-HBM3"}
    assert h100.gpus[0].memory == 81559 * 2**20
    assert h100.backend == "kubernetes"
    assert nodes["gpu-node-2"].state == NodeState.CORDONED
    assert len(nodes["gpu-node-2"].gpus) == 4
    assert nodes["cpu-node-1"].state == NodeState.DOWN
    assert nodes["cpu-node-1"].gpus == ()


# ------------------------------------------------------------------------------------------------ serve


def test_a_serve_replica_is_a_deployment_and_a_stalled_one_is_reported(
    backend: KubernetesBackend, apiserver: FakeApiServer
) -> None:
    request = _request(kind="serve", serve={"models": ["m"], "replicas": 3})
    backend.launch(LaunchRequest(**{**request.__dict__, "env": {**request.env, "AIDC_PORT": "8123"}}))

    [service, created] = [r.body for r in apiserver.seen("POST")]
    assert created["kind"] == "Deployment"
    assert created["spec"]["replicas"] == 1
    assert service["spec"]["ports"][0]["targetPort"] == 8123
    apiserver.reset()
    apiserver.reply("GET", DEPLOYMENTS, listing("DeploymentList", "apps/v1", [deployment()]))
    assert backend.poll() == []
    stalled = deployment(status="deployment-status-stalled.json")
    apiserver.reply("GET", DEPLOYMENTS, listing("DeploymentList", "apps/v1", [stalled]))
    [ended] = backend.poll()
    assert ended.exit_code is None
    assert "ProgressDeadlineExceeded" in ended.reason
