"""The route table: per served model, its replica Pool, routing policy, retry budget and canary split,
kept up to date from Backplane.routes(). Pure: time comes in as arguments.

A replica is identified by its job id (as a string in the Pool). A new replica gets no traffic until its
first readiness check passes; the checks are done per (url, readiness path) and their results apply to
every model the replica serves.

Canary: while a model has canary replicas and a weight w > 0, requests go to the canary group exactly
floor(k * w) times among the first k requests that could go to either group (w as a fraction with a
small denominator, so 5 % is exactly 1 in 20); the policy picks within the group. When one group has no
available replica, the other takes the request (and the split does not count it).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Literal

from aidc.domain.serving import GatewayReport
from aidc.gateway.backplane import ModelRoute, Upstream
from aidc.gateway.health import BreakerState, HealthConfig
from aidc.gateway.policies import Policy, PolicyOptions, RouteRequest, policy_for
from aidc.gateway.replicas import Pool, Replica
from aidc.gateway.retry import BudgetConfig, RetryBudget


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    url: str
    path: str


@dataclass(slots=True)
class Counters:
    """Cumulative per replica (job) since this gateway first saw it, over all its models: requests that
    ended with a verdict (success or failure of the replica), failures, and seconds summed over successes."""

    requests: int = 0
    errors: int = 0
    latency_sum: float = 0.0


@dataclass(frozen=True, slots=True)
class Transition:
    model: str
    replica: str
    change: Literal["ejected", "readmitted"]


class CanarySplit:
    """Deterministic: the k-th call says canary iff floor(k * w) > floor((k - 1) * w)."""

    def __init__(self, weight: float) -> None:
        if not 0 <= weight <= 1:
            raise ValueError("canary weight must be within 0..1")
        self.weight = weight
        fraction = Fraction(weight).limit_denominator(100_000)
        self._num = fraction.numerator
        self._den = fraction.denominator
        self.calls = 0
        self.canary = 0

    def next(self) -> bool:
        self.calls += 1
        k = self.calls
        if (k * self._num) // self._den > ((k - 1) * self._num) // self._den:
            self.canary += 1
            return True
        return False


@dataclass
class ModelState:
    model: str
    route: ModelRoute
    pool: Pool
    policy: Policy
    budget: RetryBudget
    created: int  # epoch seconds this gateway first saw the model (for /v1/models)
    canary_policy: Policy | None = None  # the canary group's own (cursors, rings), made with it
    canary_ids: frozenset[str] = frozenset()
    stable_ids: frozenset[str] = frozenset()
    split: CanarySplit | None = None
    urls: dict[str, str] = field(default_factory=dict)  # replica id -> url

    def choose(self, request: RouteRequest, tried: Set[str] = frozenset()) -> Replica | None:
        """The replica for an attempt: the canary split (first attempts only), then the policy."""
        if not self.canary_ids:
            return self.policy.choose(self.pool, request, tried)
        now = request.now
        stable_exclude = tried | self.canary_ids
        canary_exclude = tried | self.stable_ids
        has_stable = bool(self.pool.available(now, stable_exclude))
        has_canary = bool(self.pool.available(now, canary_exclude))
        if not (has_stable or has_canary):
            return None
        if has_stable and has_canary:
            if self.split is not None and self.split.weight > 0:
                to_canary = self.split.next() if not tried else False
            else:
                to_canary = False
        else:
            to_canary = has_canary
        if to_canary:
            assert self.canary_policy is not None
            return self.canary_policy.choose(self.pool, request, canary_exclude)
        return self.policy.choose(self.pool, request, stable_exclude)


class RouteTable:
    def __init__(
        self,
        *,
        health: HealthConfig | None = None,
        budget: BudgetConfig | None = None,
        rng: random.Random | None = None,
        probe_failures: int = 2,
    ) -> None:
        if probe_failures < 1:
            raise ValueError("probe_failures must be at least 1")
        self.health = health or HealthConfig()
        self.budget = budget or BudgetConfig()
        self.probe_failures = probe_failures
        self._rng = rng or random.Random()
        self._models: dict[str, ModelState] = {}
        self._probe_ok: dict[ProbeTarget, bool] = {}  # the readiness the checks decided
        self._probe_fails: dict[ProbeTarget, int] = {}  # failed checks in a row
        self._ever_ready: set[tuple[str, str]] = set()
        self._counters: dict[int, Counters] = {}

    def get(self, model: str) -> ModelState | None:
        return self._models.get(model)

    def models(self) -> list[ModelState]:
        return list(self._models.values())

    def counters(self, job_id: int) -> Counters:
        counters = self._counters.get(job_id)
        if counters is None:
            counters = self._counters[job_id] = Counters()
        return counters

    # ---------------------------------------------------------------------------------------- updates

    def update(self, routes: Sequence[ModelRoute], now_epoch: float) -> list[ProbeTarget]:
        """Take the control plane's routes; returns the readiness targets not known before (to check now).
        Replicas kept keep their stats and health; replicas gone are dropped."""
        new_targets: list[ProbeTarget] = []
        seen_models: set[str] = set()
        for route in routes:
            seen_models.add(route.model)
            state = self._models.get(route.model)
            if state is None:
                state = self._models[route.model] = ModelState(
                    model=route.model,
                    route=route,
                    pool=Pool(route.model, health=self.health),
                    policy=self._policy(route.policy),
                    budget=RetryBudget(self.budget),
                    created=int(now_epoch),
                )
            elif state.route.policy != route.policy:
                state.policy = self._policy(route.policy)
                state.canary_policy = None
            self._sync(state, route, new_targets)
        for model in [m for m in self._models if m not in seen_models]:
            del self._models[model]
        live_targets = {
            ProbeTarget(u.url, s.route.readiness_path) for s in self._models.values() for u in s.route.upstreams
        }
        for target in [t for t in self._probe_ok if t not in live_targets]:
            del self._probe_ok[target]
        for target in [t for t in self._probe_fails if t not in live_targets]:
            del self._probe_fails[target]
        live_jobs = {u.job_id for s in self._models.values() for u in s.route.upstreams}
        for job_id in [j for j in self._counters if j not in live_jobs]:
            del self._counters[job_id]
        self._ever_ready = {(m, r) for m, r in self._ever_ready if m in self._models and r in self._models[m].pool}
        return new_targets

    def _policy(self, name: str) -> Policy:
        return policy_for(name, PolicyOptions(rng=random.Random(self._rng.random())))

    def _sync(self, state: ModelState, route: ModelRoute, new_targets: list[ProbeTarget]) -> None:
        pool = state.pool
        wanted: dict[str, Upstream] = {str(u.job_id): u for u in route.upstreams}
        for replica_id in [r.id for r in pool.replicas() if r.id not in wanted]:
            pool.remove(replica_id)
            state.urls.pop(replica_id, None)
        for replica_id, upstream in wanted.items():
            target = ProbeTarget(upstream.url, route.readiness_path)
            known = pool.get(replica_id)
            moved = known is not None and (
                known.url != upstream.url or state.route.readiness_path != route.readiness_path
            )
            if known is None or moved:
                pool.add(Replica(replica_id, route.model, upstream.url))
                ok = self._probe_ok.get(target)
                pool.breaker(replica_id).mark_ready(bool(ok))
                if ok is None and target not in new_targets:
                    new_targets.append(target)
            state.urls[replica_id] = upstream.url
        state.canary_ids = frozenset(str(u.job_id) for u in route.upstreams if u.canary)
        state.stable_ids = frozenset(wanted) - state.canary_ids
        if not state.canary_ids:
            state.canary_policy = None
        elif state.canary_policy is None:
            state.canary_policy = self._policy(route.policy)
        if state.split is None or state.split.weight != route.canary_weight:
            state.split = CanarySplit(route.canary_weight) if route.canary_weight > 0 else None
        state.route = route

    # ------------------------------------------------------------------------------------ readiness

    def targets(self) -> list[ProbeTarget]:
        """Every (url, readiness path) to check."""
        found: dict[ProbeTarget, None] = {}
        for state in self._models.values():
            for upstream in state.route.upstreams:
                found[ProbeTarget(upstream.url, state.route.readiness_path)] = None
        return list(found)

    def probed(self, target: ProbeTarget, ok: bool) -> list[Transition]:
        """The result of a readiness check; returns the replicas it ejected or readmitted (a replica's
        first pass admits it and is not counted). One pass admits; a ready replica is taken out after
        `probe_failures` failed checks in a row (one slow answer on a busy machine is not an outage; a
        dead replica's requests fail over at once anyway, and its breaker ejects it)."""
        replicas = list(self._replicas_at(target))
        if not replicas:
            return []  # gone while it was being checked
        if ok:
            self._probe_fails.pop(target, None)
        else:
            fails = self._probe_fails[target] = self._probe_fails.get(target, 0) + 1
            ok = self._probe_ok.get(target, False) and fails < self.probe_failures
        self._probe_ok[target] = ok
        changes: list[Transition] = []
        for state, replica_id in replicas:
            breaker = state.pool.breaker(replica_id)
            was = breaker.ready
            breaker.mark_ready(ok)
            key = (state.model, replica_id)
            if was and not ok:
                changes.append(Transition(state.model, replica_id, "ejected"))
            elif ok and not was and key in self._ever_ready:
                changes.append(Transition(state.model, replica_id, "readmitted"))
            if ok:
                self._ever_ready.add(key)
        return changes

    def _replicas_at(self, target: ProbeTarget) -> Iterator[tuple[ModelState, str]]:
        for state in self._models.values():
            if state.route.readiness_path != target.path:
                continue
            for upstream in state.route.upstreams:
                if upstream.url == target.url:
                    yield state, str(upstream.job_id)

    # ------------------------------------------------------------------------------------- reporting

    def ready(self, state: ModelState, replica_id: str, now: float) -> bool:
        """Would this replica get traffic: its readiness check passes and its circuit is not open."""
        breaker = state.pool.breaker(replica_id)
        return breaker.ready and breaker.state(now) is not BreakerState.OPEN

    def reports(self, gateway: str, now: float, at: datetime) -> list[GatewayReport]:
        """One report per replica (job) and the address it listens on, summed over the models it serves."""
        ready: dict[int, bool] = {}
        in_flight: dict[int, int] = {}
        endpoint: dict[int, str] = {}
        for state in self._models.values():
            for upstream in state.route.upstreams:
                replica_id = str(upstream.job_id)
                if replica_id not in state.pool:
                    continue
                job = upstream.job_id
                endpoint[job] = upstream.url
                ready[job] = ready.get(job, False) or self.ready(state, replica_id, now)
                in_flight[job] = in_flight.get(job, 0) + state.pool.stats(replica_id).in_flight
        reports = []
        for job, is_ready in ready.items():
            counters = self.counters(job)
            reports.append(
                GatewayReport(
                    gateway=gateway,
                    job_id=job,
                    endpoint=endpoint[job],
                    ready=is_ready,
                    in_flight=in_flight[job],
                    requests=counters.requests,
                    errors=counters.errors,
                    latency_sum=counters.latency_sum,
                    at=at,
                )
            )
        return reports
