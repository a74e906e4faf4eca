"""Model deployments end to end on the real store (migrated SQLite): DeploymentService applies, scales, rolls
out, promotes, aborts and deletes; DeploymentController turns that into replica jobs; ServingBackplane gives
the gateway its routes and takes its reports and usage. The test plays the control loop (it starts replica
jobs, gives them an endpoint, ends them) and the gateways (it writes their reports), and moves a FakeClock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from aidc.control.deployments import DeploymentController
from aidc.domain.errors import Conflict, FieldProblem, InvalidInput, NotFound, PermissionDenied
from aidc.domain.identity import Team
from aidc.domain.jobs import Attempt, Job, JobKind, JobSpec, JobState
from aidc.domain.nodes import Node
from aidc.domain.queues import Queue
from aidc.domain.serving import GatewayReport, ReplicaRecord, RolloutState, RolloutStrategy, UsageRecord
from aidc.gateway.store_backplane import ServingBackplane
from aidc.ports import AdoptOutcome, AttemptExit, LaunchRequest
from aidc.security.rbac import Principal, Role
from aidc.security.secretbox import SecretBox, is_sealed
from aidc.services.auth import AuthService
from aidc.services.jobs import JobService
from aidc.services.serving import Applied, DeploymentService, DeploymentView
from aidc.store.sql_store import SqlStore
from tests.fixtures.clock import FakeClock
from tests.fixtures.identity import ADMIN, guard_and_audit, principal

ALICE = principal("alice", Role.MEMBER, "ml")  # a member of the team that owns queue `ml`
BOB = principal("bob", Role.MEMBER, "other")  # a member of another team
VERA = principal("vera", Role.VIEWER)  # reads the whole cluster, may change nothing


class FakeBackend:
    """The Backend port with nothing behind it: specs are fine, launches are remembered."""

    name = "fake"

    def __init__(self) -> None:
        self.launched: list[LaunchRequest] = []

    def discover_nodes(self) -> list[Node]:
        return []

    def validate(self, spec: JobSpec) -> list[FieldProblem]:
        return []

    def launch(self, request: LaunchRequest) -> None:
        self.launched.append(request)

    def poll(self) -> list[AttemptExit]:
        return []

    def terminate(self, job_id: int, attempt: int, grace_seconds: float) -> None:
        pass

    def adopt(self, attempt: Attempt) -> AdoptOutcome:
        return AdoptOutcome.RUNNING

    def close(self) -> None:
        pass


def serve_spec(name: str = "chat", **serve: Any) -> dict[str, Any]:
    """A `kind: serve` job as a user writes it; `run` and top-level fields may be overridden with `job_*`."""
    job = {k[4:]: serve.pop(k) for k in list(serve) if k.startswith("job_")}
    block = {"models": [name], **serve}
    return {"name": name, "kind": "serve", "queue": "ml", "run": "serve --port $AIDC_PORT", "serve": block, **job}


class Harness:
    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.clock = FakeClock()
        guard, audit = guard_and_audit(store, self.clock)
        self.woken: list[int] = []
        secrets = SecretBox(bytes(range(32)))
        self.jobs = JobService(store, FakeBackend(), self.clock, self.woken.append, guard, audit, secrets)
        self.controller = DeploymentController(store, self.clock, self.woken.append)
        self.service = DeploymentService(store, self.clock, guard, audit, self.jobs, self.controller.wake)
        self.backplane = ServingBackplane(store, AuthService(store, self.clock, audit))
        self._ports = iter(range(20000, 30000))
        now = self.clock.now()
        with store.unit_of_work() as uow:
            for team in ("ml", "other"):
                uow.identity.add_team(Team(team, now))
                uow.queues.add(Queue(name=team, team=team))
            uow.nodes.upsert(Node(name="node-a", cpus=64, memory=512 * 2**30, backend="fake", last_seen=now))
            uow.commit()

    def close(self) -> None:
        self.jobs.close()

    # --------------------------------------------------------------------------- the user

    def apply(self, data: dict[str, Any], who: Principal = ADMIN) -> tuple[DeploymentView, Applied]:
        return self.service.apply(who, JobSpec.model_validate(data))

    def view(self, name: str = "chat") -> DeploymentView:
        return self.service.get(ADMIN, name)

    # ----------------------------------------------------------------- the control loop

    def tick(self) -> int:
        return self.controller.tick()

    def replicas(self, name: str = "chat") -> list[ReplicaRecord]:
        """Live replica jobs (not ended), oldest first."""
        with self.store.unit_of_work(read_only=True) as uow:
            return [r for r in uow.serving.replicas([name]) if not JobState(r.state).is_terminal]

    def job(self, job_id: int) -> Job:
        with self.store.unit_of_work(read_only=True) as uow:
            found = uow.jobs.get(job_id)
        assert found is not None
        return found

    def start(self, job_id: int, *, endpoint: bool = True, ready: bool = True) -> None:
        """The control loop starts the replica job (its attempt listens on a port); a gateway finds it ready."""
        now = self.clock.now()
        with self.store.unit_of_work() as uow:
            job = uow.jobs.get(job_id)
            assert job is not None
            job = job.transition(JobState.RUNNING, now).model_copy(update={"attempts_made": job.attempts_made + 1})
            uow.jobs.save(job)
            url = f"http://127.0.0.1:{next(self._ports)}" if endpoint else None
            uow.jobs.add_attempt(
                Attempt(job_id=job_id, number=job.attempts_made, nodes=("node-a",), started_at=now, endpoint=url)
            )
            uow.commit()
        if ready:
            self.report(job_id)

    def end(self, job_id: int, state: JobState, reason: str = "exit code 1") -> None:
        now = self.clock.now()
        with self.store.unit_of_work() as uow:
            job = uow.jobs.get(job_id)
            assert job is not None
            for attempt in uow.jobs.attempts(job_id):
                if attempt.is_open:
                    uow.jobs.save_attempt(attempt.model_copy(update={"ended_at": now, "exit_code": 1}))
            uow.jobs.save(job.transition(state, now, reason))
            uow.commit()

    def start_pending(self, name: str = "chat") -> list[int]:
        started = [r.job_id for r in self.replicas(name) if r.state == JobState.PENDING]
        for job_id in started:
            self.start(job_id)
        return started

    # ---------------------------------------------------------------------- the gateways

    def report(
        self,
        job_id: int,
        *,
        ready: bool = True,
        in_flight: int = 0,
        requests: int = 0,
        errors: int = 0,
        latency_sum: float = 0.0,
        gateway: str = "gw-1",
    ) -> None:
        report = GatewayReport(
            gateway=gateway,
            job_id=job_id,
            ready=ready,
            in_flight=in_flight,
            requests=requests,
            errors=errors,
            latency_sum=latency_sum,
            at=self.clock.now(),
        )
        self.backplane.report([report])

    def report_running_ready(self, name: str = "chat") -> None:
        for r in self.replicas(name):
            if r.state == JobState.RUNNING:
                self.report(r.job_id)

    def steady(self, name: str = "chat", rounds: int = 3) -> None:
        """Tick, start what was created, report it ready, until nothing changes."""
        for _ in range(rounds):
            self.tick()
            self.start_pending(name)
            self.report_running_ready(name)


@pytest.fixture
def h(store: SqlStore) -> Iterator[Harness]:
    harness = Harness(store)
    try:
        yield harness
    finally:
        harness.close()


def _states(h: Harness, ids: list[int]) -> list[JobState]:
    return [h.job(i).state for i in ids]


# ------------------------------------------------------------------------------------------- apply


def test_apply_creates_a_deployment_and_the_controller_its_replica_jobs(h: Harness) -> None:
    view, outcome = h.apply(serve_spec(replicas=3), ALICE)
    assert outcome == Applied.CREATED
    assert view.deployment.name == "chat"
    assert view.deployment.version == 1
    assert view.deployment.replicas == 3
    assert view.deployment.user == "alice"
    assert view.team == "ml"
    assert view.replicas == []
    assert h.controller._wake.is_set()  # the service woke the controller

    assert h.tick() == 1
    replicas = h.replicas()
    assert len(replicas) == 3
    assert {r.version for r in replicas} == {1}
    for r in replicas:
        job = h.job(r.job_id)
        assert job.state == JobState.PENDING
        assert job.spec.kind == JobKind.SERVE
        assert job.spec.max_retries == 100  # a replica that dies is restarted
        assert job.user == "alice"
        assert job.queue == "ml"
    assert sorted(h.woken) == sorted(r.job_id for r in replicas)  # the control loop is told of each

    assert h.tick() == 0  # nothing more to do
    assert len(h.replicas()) == 3
    view = h.view()
    assert len(view.replicas) == 3
    assert view.ready_replicas == 0


def test_max_retries_given_in_the_spec_is_kept(h: Harness) -> None:
    h.apply(serve_spec(replicas=1, job_max_retries=3))
    h.tick()
    assert h.job(h.replicas()[0].job_id).spec.max_retries == 3


def test_apply_refuses_a_job_that_is_not_a_deployment(h: Harness) -> None:
    spec = JobSpec(name="train", queue="ml", run="python train.py")
    with pytest.raises(InvalidInput):
        h.service.apply(ADMIN, spec)


def test_kind_serve_cannot_be_submitted_as_a_plain_job(h: Harness) -> None:
    with pytest.raises(InvalidInput):
        h.jobs.submit(ADMIN, JobSpec.model_validate(serve_spec()))


def test_apply_to_an_unknown_queue_is_invalid(h: Harness) -> None:
    with pytest.raises(InvalidInput) as info:
        h.apply(serve_spec(job_queue="nowhere"))
    assert "nowhere" in str(info.value.problems)


def test_the_same_spec_again_is_unchanged(h: Harness) -> None:
    h.apply(serve_spec(replicas=2))
    h.tick()
    view, outcome = h.apply(serve_spec(replicas=2))
    assert outcome == Applied.UNCHANGED
    assert view.deployment.version == 1
    assert view.deployment.rollout is None
    assert h.tick() == 0
    assert len(h.replicas()) == 2


def test_changing_only_the_replica_count_scales_cancelling_pending_replicas_first(h: Harness) -> None:
    h.apply(serve_spec(replicas=3))
    h.tick()
    first, second, third = (r.job_id for r in h.replicas())
    h.start(first)
    h.start(third)  # `second` stays PENDING

    view, outcome = h.apply(serve_spec(replicas=1))
    assert outcome == Applied.SCALED
    assert view.deployment.version == 1
    assert view.deployment.replicas == 1
    h.tick()
    # The pending one goes first, then the newest running one; the oldest running one stays.
    assert _states(h, [first, second, third]) == [JobState.RUNNING, JobState.CANCELLED, JobState.CANCELLED]
    assert "scaled down to 1" in (h.job(second).state_reason or "")
    assert [r.job_id for r in h.replicas()] == [first]

    _, outcome = h.apply(serve_spec(replicas=2))
    assert outcome == Applied.SCALED
    h.tick()
    assert len(h.replicas()) == 2
    assert h.view().deployment.version == 1


def test_scale_changes_the_count(h: Harness) -> None:
    h.apply(serve_spec(replicas=1))
    h.steady()
    view = h.service.scale(ADMIN, "chat", 3)
    assert view.deployment.replicas == 3
    h.steady()
    assert len(h.replicas()) == 3
    assert h.view().ready_replicas == 3
    h.service.scale(ADMIN, "chat", 0)
    h.tick()
    assert h.replicas() == []


def test_scale_refuses_a_count_out_of_range(h: Harness) -> None:
    """The HTTP schema bounds the count, the service does not: a negative count is saved, then every read of
    the deployments (the controller's tick for all of them, list, get) fails validating it."""
    h.apply(serve_spec(replicas=1))
    for bad in (-1, 257):
        with pytest.raises(InvalidInput):
            h.service.scale(ADMIN, "chat", bad)
    h.tick()
    assert h.view().deployment.replicas == 1


def test_scale_of_an_autoscaled_deployment_stays_within_its_bounds(h: Harness) -> None:
    h.apply(serve_spec(autoscale={"min": 1, "max": 3, "target_in_flight_per_replica": 4}))
    with pytest.raises(InvalidInput):
        h.service.scale(ADMIN, "chat", 5)
    assert h.service.scale(ADMIN, "chat", 2).deployment.replicas == 2


def test_a_changed_run_is_a_rollout(h: Harness) -> None:
    h.apply(serve_spec(replicas=2))
    view, outcome = h.apply(serve_spec(replicas=2, job_run="serve --port $AIDC_PORT --v2"))
    assert outcome == Applied.ROLLOUT
    assert view.deployment.version == 1  # the stable version serves until the new one is in
    rollout = view.deployment.rollout
    assert rollout is not None
    assert rollout.version == 2
    assert rollout.strategy == RolloutStrategy.ROLLING
    assert rollout.state == RolloutState.PROGRESSING
    assert view.rollout_spec is not None
    assert view.rollout_spec.run.endswith("--v2")
    assert view.spec.run == "serve --port $AIDC_PORT"
    # A second change while it runs is refused.
    with pytest.raises(Conflict):
        h.apply(serve_spec(replicas=2, job_run="serve --v3"))


def test_the_same_spec_with_secret_env_again_is_unchanged(h: Harness) -> None:
    """Secrets are sealed (random nonce) before the spec is compared with the stored one: the same spec, or
    one whose replica count alone changed, must not become a new version rolled out over every replica."""
    h.apply(serve_spec(replicas=1, job_secret_env={"HF_TOKEN": "hf_abc"}))
    h.tick()
    stored = h.job(h.replicas()[0].job_id).spec.secret_env["HF_TOKEN"]
    assert is_sealed(stored)
    assert h.apply(serve_spec(replicas=1, job_secret_env={"HF_TOKEN": "hf_abc"}))[1] == Applied.UNCHANGED
    assert h.apply(serve_spec(replicas=2, job_secret_env={"HF_TOKEN": "hf_abc"}))[1] == Applied.SCALED


def test_a_changed_secret_is_a_rollout(h: Harness) -> None:
    h.apply(serve_spec(replicas=1, job_secret_env={"HF_TOKEN": "hf_abc"}))
    assert h.apply(serve_spec(replicas=1, job_secret_env={"HF_TOKEN": "hf_xyz"}))[1] == Applied.ROLLOUT


def test_changing_the_queue_of_a_deployment_is_refused(h: Harness) -> None:
    h.apply(serve_spec())
    with pytest.raises(InvalidInput):
        h.apply(serve_spec(job_queue="other"))


# ----------------------------------------------------------------------------------------- rolling


def test_a_rolling_update_replaces_replicas_one_at_a_time_never_below_the_wanted_ready_count(h: Harness) -> None:
    h.apply(serve_spec(replicas=3))
    h.steady()
    old = {r.job_id for r in h.replicas()}
    assert h.view().ready_replicas == 3

    h.apply(serve_spec(replicas=3, job_run="serve --port $AIDC_PORT --v2"))
    for _ in range(30):
        h.clock.advance(1)
        h.tick()
        view = h.view()
        assert view.ready_replicas >= 3, "a replica went before its replacement was ready"
        new_starting = [r for r in view.replicas if r.version == 2 and not r.ready]
        assert len(new_starting) <= 1, "more than one new replica at a time"
        if view.deployment.rollout is not None and view.deployment.rollout.state == RolloutState.PROMOTED:
            break
        h.start_pending()
        h.report_running_ready()
    else:
        pytest.fail("the rolling update never ended")

    deployment = h.view().deployment
    assert deployment.version == 2
    assert deployment.rollout is not None
    assert deployment.rollout.ended_at is not None
    live = h.replicas()
    assert len(live) == 3
    assert {r.version for r in live} == {2}
    assert not old & {r.job_id for r in live}
    for job_id in old:
        assert h.job(job_id).state == JobState.CANCELLED
        assert "replaced by version 2" in (h.job(job_id).state_reason or "")
    # Applying the new spec again now changes nothing.
    assert h.apply(serve_spec(replicas=3, job_run="serve --port $AIDC_PORT --v2"))[1] == Applied.UNCHANGED


def test_a_rolling_update_waits_while_the_new_replica_is_not_ready(h: Harness) -> None:
    h.apply(serve_spec(replicas=2))
    h.steady()
    h.apply(serve_spec(replicas=2, job_run="serve --v2"))
    h.tick()
    new = [r for r in h.replicas() if r.version == 2]
    assert len(new) == 1
    h.start(new[0].job_id, ready=False)  # running, but its readiness probe does not pass yet
    h.report(new[0].job_id, ready=False)
    for _ in range(3):
        h.clock.advance(1)
        h.report_running_ready()
        h.report(new[0].job_id, ready=False)
        h.tick()
    assert len([r for r in h.replicas() if r.version == 1]) == 2
    assert len([r for r in h.replicas() if r.version == 2]) == 1


def test_a_new_replica_that_restarts_is_not_ready_even_with_a_fresh_report(h: Harness) -> None:
    """Readiness is a fresh ready report AND a RUNNING job. A new replica that was found ready, then crashed
    and went back to PENDING for its retry, still has a report younger than REPORT_TTL: an old replica must
    not be cancelled for it."""
    h.apply(serve_spec(replicas=1))
    h.steady()
    (old,) = (r.job_id for r in h.replicas())
    h.apply(serve_spec(replicas=1, job_run="serve --v2"))
    h.tick()
    (new,) = (r.job_id for r in h.replicas() if r.version == 2)
    h.start(new)  # reported ready ...
    h.clock.advance(1)
    with h.store.unit_of_work() as uow:  # ... then it crashes: the control loop requeues it for a retry
        job = uow.jobs.get(new)
        assert job is not None
        for attempt in uow.jobs.attempts(new):
            uow.jobs.save_attempt(attempt.model_copy(update={"ended_at": h.clock.now(), "exit_code": 1}))
        uow.jobs.save(job.transition(JobState.PENDING, h.clock.now(), "attempt 1 failed, retrying"))
        uow.commit()
    h.report_running_ready()
    assert h.view().ready_replicas == 1  # the service sees only the old one as ready
    h.tick()
    assert h.job(old).state == JobState.RUNNING, "the only ready replica was cancelled"


# ------------------------------------------------------------------------------------------ canary


def _canary(h: Harness, **rollout: Any) -> tuple[list[int], int]:
    """v1 with two ready replicas, then v2 as a canary; returns the stable job ids and the canary's."""
    policy = {"strategy": "canary", **rollout}
    h.apply(serve_spec(replicas=2, rollout=policy))
    h.steady()
    stable = [r.job_id for r in h.replicas()]
    _, outcome = h.apply(serve_spec(replicas=2, rollout=policy, job_run="serve --port $AIDC_PORT --v2"))
    assert outcome == Applied.ROLLOUT
    h.clock.advance(1)
    h.tick()
    canary = [r.job_id for r in h.replicas() if r.version == 2]
    assert len(canary) == 1, "one canary replica"
    h.start(canary[0])
    h.report_running_ready()
    return stable, canary[0]


def test_a_canary_is_one_extra_replica_with_its_traffic_weight(h: Harness) -> None:
    stable, canary = _canary(h)
    view = h.view()
    assert view.deployment.rollout is not None
    assert view.deployment.rollout.strategy == RolloutStrategy.CANARY
    assert len(view.replicas) == 3
    assert view.ready_replicas == 3
    for _ in range(3):  # it stays one, next to the stable ones
        h.clock.advance(1)
        h.report_running_ready()
        h.tick()
    assert [r.job_id for r in h.replicas()] == [*stable, canary]

    (route,) = h.backplane.routes()
    assert route.model == "chat"
    assert route.deployment == "chat"
    assert route.canary_weight == pytest.approx(0.05)
    by_job = {u.job_id: u for u in route.upstreams}
    assert set(by_job) == {*stable, canary}
    assert by_job[canary].canary
    assert by_job[canary].version == 2
    assert not any(by_job[j].canary for j in stable)


def test_a_canary_with_a_bad_error_rate_is_rolled_back(h: Harness) -> None:
    stable, canary = _canary(h, min_requests=50)
    h.clock.advance(5)
    for job_id in stable:
        h.report(job_id, requests=500, errors=5, latency_sum=50.0)
    h.report(canary, requests=100, errors=30, latency_sum=7.0)
    h.tick()

    deployment = h.view().deployment
    assert deployment.version == 1
    rollout = deployment.rollout
    assert rollout is not None
    assert rollout.state == RolloutState.ROLLED_BACK
    assert rollout.ended_at == h.clock.now()
    assert rollout.reason is not None
    assert "error rate" in rollout.reason
    assert "30.0%" in rollout.reason
    canary_job = h.job(canary)
    assert canary_job.state == JobState.CANCELLED
    assert "canary rolled back" in (canary_job.state_reason or "")
    assert _states(h, stable) == [JobState.RUNNING, JobState.RUNNING]

    h.tick()
    assert [r.job_id for r in h.replicas()] == stable
    (route,) = h.backplane.routes()
    assert route.canary_weight == 0.0
    assert {u.job_id for u in route.upstreams} == set(stable)


def test_a_canary_is_not_judged_before_min_requests_while_it_could_still_pass(h: Harness) -> None:
    stable, canary = _canary(h, min_requests=50)
    h.clock.advance(5)
    for job_id in stable:
        h.report(job_id, requests=500, latency_sum=50.0)
    h.report(canary, requests=20, errors=2, latency_sum=60.0)  # 2 errors of 50 would be 4 %: within 5 %
    h.tick()
    rollout = h.view().deployment.rollout
    assert rollout is not None
    assert rollout.state == RolloutState.PROGRESSING
    assert h.job(canary).state == JobState.RUNNING


def test_a_slow_canary_is_rolled_back(h: Harness) -> None:
    stable, canary = _canary(h, min_requests=10, max_latency_ratio=1.5)
    h.clock.advance(5)
    for job_id in stable:
        h.report(job_id, requests=100, latency_sum=10.0)  # 100 ms
    h.report(canary, requests=20, latency_sum=6.0)  # 300 ms
    h.tick()
    rollout = h.view().deployment.rollout
    assert rollout is not None
    assert rollout.state == RolloutState.ROLLED_BACK
    assert "latency" in (rollout.reason or "")
    assert h.job(canary).state == JobState.CANCELLED


def test_a_healthy_canary_stays_until_promoted(h: Harness) -> None:
    stable, canary = _canary(h, min_requests=10)
    h.clock.advance(5)
    for job_id in stable:
        h.report(job_id, requests=500, errors=5, latency_sum=50.0)
    h.report(canary, requests=100, errors=1, latency_sum=10.0)
    h.tick()
    rollout = h.view().deployment.rollout
    assert rollout is not None
    assert rollout.state == RolloutState.PROGRESSING
    assert h.job(canary).state == JobState.RUNNING


def test_a_canary_is_judged_against_the_stable_versions_recent_traffic(h: Harness) -> None:
    """Gateway reports carry counters since the gateway began sending to a replica. The stable replicas had a
    bad spell long before the rollout (30 % errors); since the rollout began they served 1,000 requests with
    none failing. A canary failing 20 % must be rolled back: judged on the stable version's lifetime rate it
    is not."""
    h.apply(serve_spec(replicas=1, rollout={"strategy": "canary", "min_requests": 50}))
    h.steady()
    (stable,) = (r.job_id for r in h.replicas())
    h.report(stable, requests=10_000, errors=3_000, latency_sum=700.0)
    h.tick()
    h.clock.advance(5)
    h.apply(serve_spec(replicas=1, rollout={"strategy": "canary", "min_requests": 50}, job_run="serve --v2"))
    h.tick()
    (canary,) = (r.job_id for r in h.replicas() if r.version == 2)
    h.start(canary)
    h.tick()
    h.clock.advance(5)
    h.report(stable, requests=11_000, errors=3_000, latency_sum=800.0)
    h.report(canary, requests=100, errors=20, latency_sum=8.0)
    h.tick()
    rollout = h.view().deployment.rollout
    assert rollout is not None
    assert rollout.state == RolloutState.ROLLED_BACK


def test_promote_turns_the_canary_into_a_rolling_update(h: Harness) -> None:
    stable, canary = _canary(h)
    view = h.service.promote(ADMIN, "chat")
    assert view.deployment.rollout is not None
    assert view.deployment.rollout.strategy == RolloutStrategy.ROLLING
    assert view.deployment.rollout.state == RolloutState.PROGRESSING
    (route,) = h.backplane.routes()
    assert route.canary_weight == 0.0
    assert not any(u.canary for u in route.upstreams)

    for _ in range(20):
        h.clock.advance(1)
        h.tick()
        assert h.view().ready_replicas >= 2
        rollout = h.view().deployment.rollout
        if rollout is not None and rollout.state == RolloutState.PROMOTED:
            break
        h.start_pending()
        h.report_running_ready()
    deployment = h.view().deployment
    assert deployment.version == 2
    live = h.replicas()
    assert len(live) == 2
    assert {r.version for r in live} == {2}
    assert canary in {r.job_id for r in live}  # the canary became one of the new version's replicas
    assert _states(h, stable) == [JobState.CANCELLED, JobState.CANCELLED]
    with pytest.raises(Conflict):
        h.service.promote(ADMIN, "chat")


def test_abort_cancels_the_new_versions_replicas(h: Harness) -> None:
    stable, canary = _canary(h)
    view = h.service.abort(ALICE, "chat")  # alice may: the queue is her team's
    rollout = view.deployment.rollout
    assert rollout is not None
    assert rollout.state == RolloutState.ABORTED
    assert rollout.reason == "aborted by alice"
    h.tick()
    assert h.job(canary).state == JobState.CANCELLED
    assert [r.job_id for r in h.replicas()] == stable
    assert h.view().deployment.version == 1
    with pytest.raises(Conflict):
        h.service.abort(ADMIN, "chat")


def test_abort_of_a_rolling_update_restores_the_stable_count(h: Harness) -> None:
    h.apply(serve_spec(replicas=2))
    h.steady()
    stable = [r.job_id for r in h.replicas()]
    h.apply(serve_spec(replicas=2, job_run="serve --v2"))
    h.tick()
    h.start_pending()
    h.tick()  # one old replica is replaced by the ready new one
    assert len([r for r in h.replicas() if r.version == 1]) == 1
    h.service.abort(ADMIN, "chat")
    h.tick()
    h.start_pending()
    h.tick()
    live = h.replicas()
    assert {r.version for r in live} == {1}
    assert len(live) == 2
    assert set(stable) & {r.job_id for r in live}
    with pytest.raises(Conflict):
        h.service.promote(ADMIN, "chat")


# ------------------------------------------------------------------------------------------ delete


def test_delete_cancels_every_replica(h: Harness) -> None:
    h.apply(serve_spec(replicas=2))
    h.steady()
    h.service.scale(ADMIN, "chat", 3)
    h.tick()  # a third one, pending
    ids = [r.job_id for r in h.replicas()]
    assert len(ids) == 3
    h.service.delete(ADMIN, "chat")
    h.tick()
    assert set(_states(h, ids)) == {JobState.CANCELLED}
    assert "deleted" in (h.job(ids[0]).state_reason or "")
    assert h.replicas() == []
    with pytest.raises(NotFound):
        h.service.get(ADMIN, "chat")
    assert h.service.list(ADMIN) == []
    assert h.backplane.routes() == []
    h.tick()  # retires the cancelled replicas
    assert h.tick() == 0
    # The name may be used again: a new deployment, at a new version.
    view, outcome = h.apply(serve_spec(replicas=1))
    assert outcome == Applied.CREATED
    assert view.deployment.version == 2
    h.tick()
    assert len(h.replicas()) == 1


# --------------------------------------------------------------------------------------- autoscale


def test_autoscale_raises_replicas_when_in_flight_exceeds_the_target(h: Harness) -> None:
    h.apply(serve_spec(autoscale={"min": 1, "max": 4, "target_in_flight_per_replica": 2}))
    h.steady()
    (first,) = (r.job_id for r in h.replicas())
    assert h.view().deployment.replicas == 1
    h.clock.advance(1)
    h.report(first, in_flight=7)  # 7 in flight at 2 per replica: 4 replicas
    h.tick()
    assert h.view().deployment.replicas == 4
    assert len(h.replicas()) == 4  # the new replicas go to the scheduler as jobs
    h.clock.advance(1)
    h.report(first, in_flight=50)
    h.tick()
    assert h.view().deployment.replicas == 4  # never above max
    assert len(h.replicas()) == 4


def test_in_flight_reported_by_several_gateways_adds_up(h: Harness) -> None:
    h.apply(serve_spec(autoscale={"min": 1, "max": 8, "target_in_flight_per_replica": 2}))
    h.steady()
    (first,) = (r.job_id for r in h.replicas())
    h.clock.advance(1)
    h.report(first, in_flight=3, gateway="gw-1")
    h.report(first, in_flight=3, gateway="gw-2")
    h.tick()
    assert h.view().deployment.replicas == 3


def test_autoscale_scales_down_only_after_the_down_window(h: Harness) -> None:
    autoscale = {"min": 1, "max": 4, "target_in_flight_per_replica": 2, "scale_down_window": 60}
    h.apply(serve_spec(autoscale=autoscale))
    h.steady()
    (first,) = (r.job_id for r in h.replicas())
    h.clock.advance(1)
    h.report(first, in_flight=8)
    h.tick()
    assert h.view().deployment.replicas == 4
    h.start_pending()
    counts = []
    for _ in range(13):  # the load is gone; 5 s steps, from 5 to 65 s after the high recommendation
        h.clock.advance(5)
        for r in h.replicas():
            h.report(r.job_id, in_flight=0)
        h.tick()
        counts.append(h.view().deployment.replicas)
    assert counts[:12] == [4] * 12  # within 60 s of the last high recommendation
    assert counts[12] == 1
    h.tick()
    assert len(h.replicas()) == 1


def test_stale_reports_do_not_drive_autoscaling(h: Harness) -> None:
    h.apply(serve_spec(autoscale={"min": 1, "max": 4, "target_in_flight_per_replica": 2}))
    h.steady()
    (first,) = (r.job_id for r in h.replicas())
    h.report(first, in_flight=8)
    h.clock.advance(60)  # older than REPORT_TTL
    h.tick()
    assert h.view().deployment.replicas == 1


# ----------------------------------------------------------------------------------------- failures


def test_a_replica_that_ended_is_retired_and_replaced(h: Harness) -> None:
    h.apply(serve_spec(replicas=2))
    h.steady()
    dead, alive = (r.job_id for r in h.replicas())
    h.end(dead, JobState.FAILED)
    h.tick()
    live = h.replicas()
    assert len(live) == 2
    assert alive in {r.job_id for r in live}
    assert dead not in {r.job_id for r in live}
    with h.store.unit_of_work(read_only=True) as uow:
        assert dead not in {r.job_id for r in uow.serving.replicas()}  # retired
        retired = {r.job_id: r for r in uow.serving.replicas(retired=True)}
    assert retired[dead].state == JobState.FAILED
    assert h.tick() == 0


def test_a_replica_cancelled_by_hand_is_replaced(h: Harness) -> None:
    h.apply(serve_spec(replicas=1))
    h.steady()
    (job_id,) = (r.job_id for r in h.replicas())
    h.jobs.cancel(ADMIN, job_id)
    h.tick()
    (replacement,) = (r.job_id for r in h.replicas())
    assert replacement != job_id


# ------------------------------------------------------------------------------------------- models


def test_a_model_already_served_by_another_deployment_is_a_conflict(h: Harness) -> None:
    h.apply(serve_spec("chat"))
    with pytest.raises(Conflict) as info:
        h.apply({**serve_spec("chat-2"), "serve": {"models": ["embed", "chat"]}})
    assert "chat" in str(info.value)
    # Deleted deployments free their names.
    h.service.delete(ADMIN, "chat")
    _, outcome = h.apply({**serve_spec("chat-2"), "serve": {"models": ["embed", "chat"]}})
    assert outcome == Applied.CREATED


def test_a_model_added_by_another_deployments_rollout_is_taken(h: Harness) -> None:
    """`chat` rolls out a version that also serves `summarize`; while it rolls, `summarize` is taken: once
    it is promoted two deployments would serve the same name."""
    h.apply(serve_spec("chat", replicas=1))
    h.steady()
    _, outcome = h.apply({**serve_spec("chat"), "serve": {"models": ["chat", "summarize"], "replicas": 1}})
    assert outcome == Applied.ROLLOUT
    with pytest.raises(Conflict):
        h.apply({**serve_spec("summarizer"), "serve": {"models": ["summarize"]}})


def test_one_route_per_served_model(h: Harness) -> None:
    h.apply({**serve_spec("multi"), "serve": {"models": ["a", "b"], "replicas": 1, "policy": "round_robin"}})
    h.steady("multi")
    routes = {r.model: r for r in h.backplane.routes()}
    assert set(routes) == {"a", "b"}
    assert routes["a"].policy == "round_robin"
    assert routes["a"].deployment == "multi"
    assert routes["a"].upstreams == routes["b"].upstreams


# -------------------------------------------------------------------------------------- permissions


def test_a_viewer_cannot_apply(h: Harness) -> None:
    with pytest.raises(PermissionDenied):
        h.apply(serve_spec(), VERA)
    assert h.service.list(ADMIN) == []


def test_a_member_cannot_deploy_into_another_teams_queue(h: Harness) -> None:
    with pytest.raises(PermissionDenied):
        h.apply(serve_spec(job_queue="other"), ALICE)


def test_a_member_of_another_team_cannot_see_or_change_it(h: Harness) -> None:
    h.apply(serve_spec(replicas=1), ALICE)
    assert [v.deployment.name for v in h.service.list(ALICE)] == ["chat"]
    assert h.service.get(ALICE, "chat").deployment.name == "chat"
    assert h.service.list(BOB) == []
    with pytest.raises(NotFound):
        h.service.get(BOB, "chat")
    with pytest.raises((NotFound, PermissionDenied)):
        h.service.scale(BOB, "chat", 4)
    with pytest.raises((NotFound, PermissionDenied)):
        h.service.delete(BOB, "chat")
    with pytest.raises((NotFound, PermissionDenied, Conflict)):
        h.apply(serve_spec(replicas=5), BOB)
    assert h.view().deployment.replicas == 1
    # A cluster viewer sees it, and may change nothing.
    assert h.service.get(VERA, "chat").deployment.name == "chat"
    with pytest.raises(PermissionDenied):
        h.service.scale(VERA, "chat", 2)


# ------------------------------------------------------------------------------------------- usage


def test_usage_sums_by_team_user_key_and_model_within_the_callers_teams(h: Harness) -> None:
    minute = h.clock.now().replace(second=0, microsecond=0)
    old = minute - timedelta(days=2)

    def rec(at: Any, token: int | None, user: str, team: str | None, model: str, p: int, c: int) -> UsageRecord:
        return UsageRecord(
            minute=at, token_id=token, user=user, team=team, model=model, requests=1, prompt_tokens=p,
            completion_tokens=c,
        )  # fmt: skip

    h.backplane.record_usage(
        [
            rec(minute, 1, "alice", "ml", "chat", 100, 50),
            rec(minute + timedelta(minutes=1), 1, "alice", "ml", "chat", 10, 5),
            rec(minute, 2, "carol", "ml", "embed", 40, 0),
            rec(minute, 3, "bob", "other", "chat", 1000, 1000),
            rec(minute, None, "root", None, "chat", 7, 7),
            rec(old, 1, "alice", "ml", "chat", 99_999, 0),  # before `since`
        ]
    )
    h.backplane.record_usage([])
    since = minute - timedelta(hours=1)

    by_team = {u.key: u for u in h.service.usage(ADMIN, "team", since)}
    assert set(by_team) == {"ml", "other", None}
    assert (by_team["ml"].requests, by_team["ml"].prompt_tokens, by_team["ml"].completion_tokens) == (3, 150, 55)
    assert by_team["ml"].total_tokens == 205
    assert by_team["other"].total_tokens == 2000
    assert next(u.key for u in h.service.usage(ADMIN, "team", since)) == "other"  # most tokens first

    by_user = {u.key: u.total_tokens for u in h.service.usage(ADMIN, "user", since)}
    assert by_user == {"alice": 165, "carol": 40, "bob": 2000, "root": 14}
    by_key = {u.key: u.total_tokens for u in h.service.usage(ADMIN, "key", since)}
    assert by_key == {"1": 165, "2": 40, "3": 2000, None: 14}
    by_model = {u.key: u.total_tokens for u in h.service.usage(ADMIN, "model", since)}
    assert by_model == {"chat": 2179, "embed": 40}

    # A member sees their teams' usage only.
    assert {u.key for u in h.service.usage(ALICE, "team", since)} == {"ml"}
    assert {u.key: u.total_tokens for u in h.service.usage(ALICE, "model", since)} == {"chat": 165, "embed": 40}
    assert {u.key for u in h.service.usage(BOB, "user", since)} == {"bob"}
    # Everything since long ago includes the old row.
    everything = {u.key: u.prompt_tokens for u in h.service.usage(ALICE, "user", old)}
    assert everything["alice"] == 100 + 10 + 99_999


def test_usage_needs_a_role_that_reads_jobs(h: Harness) -> None:
    inference_only = principal("bot", Role.INFERENCE, "ml")
    with pytest.raises(PermissionDenied):
        h.service.usage(inference_only, "team", h.clock.now())


# ------------------------------------------------------------------------------------------ routes


def test_routes_list_only_running_replicas_with_an_endpoint(h: Harness) -> None:
    h.apply(serve_spec(replicas=4, timeout=120, readiness_path="/health", policy="power_of_two"))
    h.tick()
    ids = [r.job_id for r in h.replicas()]
    (route,) = h.backplane.routes()
    assert route.upstreams == ()  # nothing runs yet: the model is known, with no replica
    assert route.timeout == 120
    assert route.readiness_path == "/health"
    assert route.policy == "power_of_two"
    assert route.canary_weight == 0.0

    running, no_endpoint, ended, pending = ids
    h.start(running)
    h.start(no_endpoint, endpoint=False)
    h.start(ended)
    h.end(ended, JobState.FAILED)
    (route,) = h.backplane.routes()
    assert [u.job_id for u in route.upstreams] == [running]
    (upstream,) = route.upstreams
    assert upstream.url.startswith("http://127.0.0.1:")
    assert upstream.version == 1
    assert not upstream.canary
    assert h.job(pending).state == JobState.PENDING


def test_the_view_shows_replicas_with_readiness_and_load(h: Harness) -> None:
    h.apply(serve_spec(replicas=2))
    h.tick()
    a, b = (r.job_id for r in h.replicas())
    h.start(a)
    h.report(a, in_flight=3, gateway="gw-1")
    h.report(a, in_flight=2, gateway="gw-2")
    h.start(b, ready=False)
    h.report(b, ready=False)
    view = h.view()
    by_id = {r.job_id: r for r in view.replicas}
    assert by_id[a].ready
    assert by_id[a].in_flight == 5
    assert by_id[a].state == JobState.RUNNING
    assert by_id[a].endpoint is not None
    assert not by_id[b].ready
    assert view.ready_replicas == 1
    h.clock.advance(60)  # reports older than their TTL say nothing
    assert h.view().ready_replicas == 0
