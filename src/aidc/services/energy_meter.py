"""The energy meter: every minute (on the leader), how much energy each node's GPUs and CPUs used and which
attempts used it (`aidc.energy.accounting`), from what telemetry holds in memory; the results go to the
store (per attempt, node and hour) and out as Prometheus series.

The interval accounted runs from the previous tick to now, cut at whole hours so each piece falls in one
hour's row. The first tick only starts the clock: energy used while no leader ran is not accounted (the
in-memory telemetry of that time is gone with the process that held it).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aidc.domain.catalog import gpu_spec
from aidc.domain.energy import EnergyRecord
from aidc.domain.jobs import Attempt, JobSpec
from aidc.domain.nodes import Node, NodeState
from aidc.domain.power import PowerSpec
from aidc.domain.site_energy import EnergySpec
from aidc.domain.units import GPU_MILLI
from aidc.energy.accounting import UNALLOCATED, GpuModel, Holder, NodeInterval, UsageRow, account_node
from aidc.energy.prices import Pricing
from aidc.ports import Clock, Store
from aidc.telemetry import names
from aidc.telemetry.series import NAME_LABEL, Family, Matcher, Series, label_value
from aidc.telemetry.tsdb import MemoryTSDB

HOUR = 3600.0


@dataclass(frozen=True)
class _JobFacts:
    user: str
    queue: str
    team: str | None
    gpu_share: float
    cpus: float


def _share(spec: JobSpec) -> float:
    r = spec.resources
    return r.gpu_milli / GPU_MILLI if r.gpus == 1 and r.gpu_milli < GPU_MILLI else 1.0


def _by(series: Sequence[Series], *keys: str) -> dict[tuple[str, ...], list[tuple[float, float]]]:
    out: dict[tuple[str, ...], list[tuple[float, float]]] = defaultdict(list)
    for s in series:
        out[tuple(label_value(s.labels, k) for k in keys)].extend(s.points)
    for points in out.values():
        points.sort()
    return out


def _mean(points: Sequence[tuple[float, float]]) -> float | None:
    values = [v for _, v in points if not math.isnan(v)]  # NaN: staleness markers
    return sum(values) / len(values) if values else None


class EnergyMeter:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        tsdb: MemoryTSDB,
        spec: EnergySpec,
        pricing: Pricing,
        power: PowerSpec | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._tsdb = tsdb
        self._spec = spec
        self._pricing = pricing
        self._power = power or PowerSpec()
        self._last: float | None = None
        self._facts: dict[int, _JobFacts] = {}
        self._lock = threading.Lock()
        self._families: list[Family] = []
        self._node_j: dict[str, float] = defaultdict(float)  # cumulative IT joules seen by this process
        self._job_j: dict[tuple[int, int], float] = defaultdict(float)
        self._team_j: dict[str, float] = defaultdict(float)
        self._team_cost: dict[str, float] = defaultdict(float)
        self._team_carbon: dict[str, float] = defaultdict(float)

    # ------------------------------------------------------------------ the tick

    def tick(self) -> int:
        """Account the time since the last tick; how many records were written."""
        now = self._clock.now().timestamp()
        if self._last is None or now <= self._last:
            self._last = now if self._last is None else self._last
            return 0
        t0, self._last = self._last, now
        with self._store.unit_of_work(read_only=True) as uow:
            nodes = uow.nodes.list()
            attempts = list(uow.jobs.open_attempts())
            ended = uow.jobs.ended_attempts(since=datetime.fromtimestamp(t0, UTC))
            attempts.extend(e.attempt for e in ended)
            queues = {q.name: q.team for q in uow.queues.list()}
            for e in ended:
                self._facts.setdefault(e.attempt.job_id, self._facts_of(e.spec, e.user, queues))
            for a in attempts:
                if a.job_id not in self._facts:
                    job = uow.jobs.get(a.job_id)
                    if job is not None:
                        self._facts[a.job_id] = self._facts_of(job.spec, job.user, queues)
        rows: list[UsageRow] = []
        for start, end in _hours(t0, now):
            rows.extend(self._account(start, end, nodes, attempts))
        records = [_record(r) for r in rows if r.it_j > 0 or r.gpu_seconds > 0]
        if records:
            with self._store.unit_of_work() as uow:
                uow.energy.add(records)
                uow.commit()
        self._publish(rows, t0, now, attempts, [n.name for n in nodes])
        open_jobs = {a.job_id for a in attempts if a.ended_at is None}
        for job_id in [j for j in self._facts if j not in open_jobs]:
            del self._facts[job_id]
        return len(records)

    def _facts_of(self, spec: JobSpec, user: str, teams: Mapping[str, str | None]) -> _JobFacts:
        return _JobFacts(user, spec.queue, teams.get(spec.queue), _share(spec), spec.resources.cpus)

    def _account(self, t0: float, t1: float, nodes: Sequence[Node], attempts: Sequence[Attempt]) -> list[UsageRow]:
        gpu_ids = [Matcher("gpu", "=~", ".+")]
        counters = _by(self._select(names.TOTAL_ENERGY_CONSUMPTION.name, t0, t1, gpu_ids), "Hostname", "gpu")
        power = _by(self._select(names.POWER_USAGE.name, t0, t1, gpu_ids), "Hostname", "gpu")
        rapl = _by(self._select(names.NODE_CPU_ENERGY.name, t0, t1), "node", "zone")
        node_cpu = _by(self._select(names.NODE_CPU.name, t0, t1), "node")
        job_gpu = _by(self._select(names.JOB_GPU_UTIL.name, t0, t1), "job_id", "attempt", "node")
        job_cpu = _by(self._select(names.JOB_CPU.name, t0, t1), "job_id", "attempt", "node")
        on_node: dict[str, list[Holder]] = defaultdict(list)
        for a in attempts:
            facts = self._facts.get(a.job_id)
            if facts is None:
                continue
            start = a.started_at.timestamp()
            end = a.ended_at.timestamp() if a.ended_at is not None else float("inf")
            for i, name in enumerate(a.nodes):
                key = (str(a.job_id), str(a.number), name)
                util = _mean(job_gpu.get(key, ()))
                on_node[name].append(
                    Holder(
                        a.job_id,
                        a.number,
                        facts.user,
                        facts.queue,
                        facts.team,
                        gpus=a.gpus[i] if i < len(a.gpus) else (),
                        gpu_share=facts.gpu_share,
                        cpus=facts.cpus,
                        start=start,
                        end=end,
                        gpu_utilization=None if util is None else util / 100.0,
                        busy_cores=_mean(job_cpu.get(key, ())),
                    )
                )
        rows: list[UsageRow] = []
        for node in nodes:
            if node.state == NodeState.DOWN and not on_node.get(node.name):
                continue  # a node that is down draws nothing we can know of
            models = {g.index: _gpu_model(g.model) for g in node.gpus}
            busy = _mean(node_cpu.get((node.name,), ()))
            interval = NodeInterval(
                node.name,
                t0,
                t1,
                gpu_models=models,
                gpu_counter={g.index: counters.get((node.name, str(g.index)), []) for g in node.gpus},
                gpu_power={g.index: power.get((node.name, str(g.index)), []) for g in node.gpus},
                cpu_counters=[points for (n, _), points in sorted(rapl.items()) if n == node.name],
                node_busy_cores=None if busy is None else busy * node.cpus,
            )
            rows.extend(
                account_node(
                    interval,
                    on_node.get(node.name, []),
                    pue=self._spec.pue,
                    pricing=self._pricing,
                    cpu_watts_per_core=self._spec.cpu_watts_per_core,
                )
            )
        return rows

    def _select(self, name: str, t0: float, t1: float, matchers: Sequence[Matcher] = ()) -> list[Series]:
        return self._tsdb.select([Matcher(NAME_LABEL, "=", name), *matchers], t0, t1)

    # ------------------------------------------------------------------ Prometheus

    def _publish(
        self, rows: Sequence[UsageRow], t0: float, t1: float, attempts: Sequence[Attempt], nodes: Sequence[str]
    ) -> None:
        span = max(t1 - t0, 1e-9)
        node_w: dict[str, float] = dict.fromkeys(nodes, 0.0)
        node_est: dict[str, bool] = defaultdict(bool)
        job_w: dict[tuple[int, int], float] = defaultdict(float)
        job_est: dict[tuple[int, int], bool] = defaultdict(bool)
        for r in rows:
            node_w[r.node] = node_w.get(r.node, 0.0) + r.it_j / span
            node_est[r.node] |= r.estimated_j > 0
            self._node_j[r.node] += r.it_j
            if r.job_id == UNALLOCATED:
                continue
            job_w[r.job_id, r.attempt] += r.it_j / span
            job_est[r.job_id, r.attempt] |= r.estimated_j > 0
            self._job_j[r.job_id, r.attempt] += r.it_j
            if r.team is not None:
                self._team_j[r.team] += r.it_j
                self._team_cost[r.team] += r.cost or 0.0
                self._team_carbon[r.team] += r.carbon_kg or 0.0
        running = {(a.job_id, a.number) for a in attempts if a.ended_at is None}
        for key in [k for k in self._job_j if k not in running]:
            del self._job_j[key]

        def source(estimated: bool) -> str:
            return "estimate" if estimated else "measured"

        def job_labels(key: tuple[int, int]) -> dict[str, str]:
            facts = self._facts.get(key[0])
            return {
                "job_id": str(key[0]),
                "attempt": str(key[1]),
                "queue": facts.queue if facts else "",
                "user": facts.user if facts else "",
                "team": (facts.team or "") if facts else "",
            }

        families = [
            _family(
                names.NODE_POWER, [({"node": n, "source": source(node_est[n])}, w) for n, w in sorted(node_w.items())]
            ),
            _family(names.NODE_ENERGY, [({"node": n}, j) for n, j in sorted(self._node_j.items())]),
            _family(
                names.JOB_POWER,
                [
                    ({**job_labels(k), "source": source(job_est[k])}, w)
                    for k, w in sorted(job_w.items())
                    if k in running
                ],
            ),
            _family(names.JOB_ENERGY, [(job_labels(k), j) for k, j in sorted(self._job_j.items())]),
            _family(names.TEAM_ENERGY, [({"team": t}, j) for t, j in sorted(self._team_j.items())]),
            _family(names.SITE_POWER, [({}, sum(node_w.values()))]),
            _family(names.SITE_PUE, [({}, self._spec.pue)]),
        ]
        if self._pricing.has_price:
            currency = self._spec.currency
            costs = [({"team": t, "currency": currency}, c) for t, c in sorted(self._team_cost.items())]
            families.append(_family(names.TEAM_ENERGY_COST, costs))
        if self._pricing.has_carbon:
            families.append(
                _family(names.TEAM_CARBON, [({"team": t}, c) for t, c in sorted(self._team_carbon.items())])
            )
        if self._power.budget_kw is not None:
            families.append(_family(names.SITE_POWER_BUDGET, [({}, self._power.budget_kw * 1000.0)]))
        with self._lock:
            self._families = families

    def families(self) -> list[Family]:
        """The series of the last tick (none before the second)."""
        with self._lock:
            return list(self._families)


def _family(series: names.SeriesName, samples: list[tuple[dict[str, str], float]]) -> Family:
    return Family(series.name, series.help, series.type, samples)


def _gpu_model(model: str) -> GpuModel | None:
    spec = gpu_spec(model) if model else None
    return None if spec is None else GpuModel(spec.tdp_watts, spec.idle_watts)


def _hours(t0: float, t1: float) -> list[tuple[float, float]]:
    """[t0, t1] cut at whole hours."""
    out = []
    a = t0
    while a < t1:
        b = min(t1, (a // HOUR + 1) * HOUR)
        out.append((a, b))
        a = b
    return out


def _record(row: UsageRow) -> EnergyRecord:
    return EnergyRecord(
        hour=datetime.fromtimestamp(row.t0 // HOUR * HOUR, UTC),
        node=row.node,
        job_id=row.job_id,
        attempt=row.attempt,
        user=row.user,
        queue=row.queue,
        team=row.team,
        gpu_j_measured=row.gpu_j_measured,
        gpu_j_estimated=row.gpu_j_estimated,
        cpu_j_measured=row.cpu_j_measured,
        cpu_j_estimated=row.cpu_j_estimated,
        gpu_seconds=row.gpu_seconds,
        facility_j=row.facility_j,
        cost=row.cost,
        carbon_kg=row.carbon_kg,
    )
