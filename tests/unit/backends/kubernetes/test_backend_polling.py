"""The backend's own rules, on a stub API (no HTTP): at most one list of Jobs per poll interval, exits found by
adopt() reported at once, and nothing listed while nothing is watched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aidc.backends.context import BackendContext
from aidc.backends.kubernetes.backend import KubernetesBackend
from aidc.backends.kubernetes.client import KubeApi
from aidc.backends.kubernetes.config import KubernetesConfig
from aidc.domain.jobs import Attempt
from aidc.ports import AdoptOutcome
from tests.fixtures.clock import T0, FakeClock

COMPLETE = {"conditions": [{"type": "Complete", "status": "True"}]}


class StubApi(KubeApi):
    """Answers from `jobs` (name -> Job) and counts the lists."""

    def __init__(self) -> None:  # no ApiClient: nothing here talks HTTP
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lists = 0
        self.pods: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, int]] = []

    @property
    def namespace(self) -> str:
        return "ml"

    def list_jobs(self, selector: str) -> list[dict[str, Any]]:
        self.lists += 1
        return list(self.jobs.values())

    def list_pods(self, selector: str) -> list[dict[str, Any]]:
        return self.pods

    def delete_job(self, name: str, grace_seconds: int) -> bool:
        self.deleted.append((name, grace_seconds))
        self.jobs.pop(name, None)
        return True

    def delete_pods(self, selector: str, grace_seconds: int) -> None:
        self.pods = []

    def read_job(self, name: str) -> dict[str, Any] | None:
        return self.jobs.get(name)

    def close(self) -> None:
        pass


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _job(name: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status or {"active": 1}}


def _backend(tmp_path: Path, api: StubApi, clock: Monotonic) -> KubernetesBackend:
    context = BackendContext(data_dir=tmp_path, clock=FakeClock(), cancel_grace=10.0)
    config = KubernetesConfig(image="img", poll_interval=1.0, pod_check_interval=10.0, image_pull_grace=300.0)
    return KubernetesBackend(config, context, api, monotonic=clock)


def test_at_most_one_list_per_interval(tmp_path: Path) -> None:
    api, clock = StubApi(), Monotonic()
    api.jobs["aidc-1-1"] = _job("aidc-1-1")
    backend = _backend(tmp_path, api, clock)
    assert backend.adopt(Attempt(job_id=1, number=1, nodes=(), started_at=T0)) == AdoptOutcome.RUNNING

    assert backend.poll() == []
    clock.now += 0.5
    api.jobs["aidc-1-1"] = _job("aidc-1-1", COMPLETE)
    assert backend.poll() == []  # too soon: not listed
    assert api.lists == 1
    clock.now += 0.5
    assert [e.exit_code for e in backend.poll()] == [0]
    assert api.lists == 2


def test_nothing_watched_nothing_listed(tmp_path: Path) -> None:
    api, clock = StubApi(), Monotonic()
    backend = _backend(tmp_path, api, clock)
    assert backend.poll() == []
    assert api.lists == 0


def test_an_exit_found_by_adopt_is_reported_by_the_very_next_poll(tmp_path: Path) -> None:
    api, clock = StubApi(), Monotonic()
    api.jobs["aidc-1-1"] = _job("aidc-1-1", COMPLETE)
    backend = _backend(tmp_path, api, clock)
    assert backend.adopt(Attempt(job_id=1, number=1, nodes=(), started_at=T0)) == AdoptOutcome.EXITED

    [ended] = backend.poll()

    assert (ended.job_id, ended.attempt, ended.exit_code) == (1, 1, 0)
    assert api.lists == 0
    assert backend.poll() == []


def test_an_image_that_keeps_failing_to_pull_fails_the_attempt_after_the_grace(tmp_path: Path) -> None:
    api, clock = StubApi(), Monotonic()
    api.jobs["aidc-1-1"] = _job("aidc-1-1")
    waiting = {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
    api.pods = [
        {
            "metadata": {"name": "aidc-1-1-abcde", "labels": {"aidc.dev/job-id": "1", "aidc.dev/attempt": "1"}},
            "status": {"containerStatuses": [{"name": "main", "state": {"waiting": waiting}}]},
        }
    ]
    backend = _backend(tmp_path, api, clock)
    backend.adopt(Attempt(job_id=1, number=1, nodes=(), started_at=T0))

    clock.now += 10  # first look at the pods: stuck since now
    assert backend.poll() == []
    clock.now += 290  # 290 s stuck: still within the grace
    assert backend.poll() == []
    assert api.deleted == []
    clock.now += 10  # 300 s: stopped at once
    assert backend.poll() == []
    assert api.deleted == [("aidc-1-1", 0)]
    clock.now += 1
    [ended] = backend.poll()  # its Job is gone
    assert ended.exit_code is None
    assert "ImagePullBackOff" in ended.reason


def test_a_serve_replica_is_reached_through_the_service_named_after_its_attempt(tmp_path: Path) -> None:
    from aidc.backends.kubernetes.manifests import AttemptManifests, build
    from aidc.domain.decisions import Placement
    from aidc.domain.jobs import JobSpec
    from aidc.ports import SupportsEndpoints

    backend = _backend(tmp_path, StubApi(), Monotonic())
    assert isinstance(backend, SupportsEndpoints)
    url, port = backend.reserve_endpoint(7, 2, Placement(()))
    assert url == "http://aidc-7-2.default.svc:80"
    # The Service the backend creates for that attempt has that name and maps port 80 to the port given.
    spec = JobSpec.model_validate(
        {"name": "m", "kind": "serve", "run": "serve", "image": "img", "serve": {"models": ["m"]}}
    )
    config = KubernetesConfig(image="img")
    objects = build(AttemptManifests(7, 2, spec, env={"AIDC_PORT": str(port)}), config)
    service = next(o for o in objects if o["kind"] == "Service")
    assert service["metadata"]["name"] == "aidc-7-2"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": port}]
