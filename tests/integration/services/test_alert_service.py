"""Alerting end to end below the API: rules parsed from a rule file, evaluated by the real evaluator over the
in-memory time-series buffer (fed with explicit times), alert events recorded in a real store when alerts start
firing and resolve, and node actions taken for rules that carry an `action` label. Also the control plane's own
gauges and counters (ControlMetrics) read from that store."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta

import pytest

from aidc.domain.health import AlertEvent
from aidc.domain.jobs import Attempt, JobSpec, JobState
from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.domain.queues import Queue
from aidc.security.rbac import Role
from aidc.services.alerts import AlertService
from aidc.services.control_metrics import ControlMetrics
from aidc.services.nodes import NodeAction, NodeService
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore
from aidc.telemetry.alert import AlertState
from aidc.telemetry.alerting import RuleEvaluator
from aidc.telemetry.rules import RuleGroup, default_rules, parse_rules
from aidc.telemetry.series import Family
from aidc.telemetry.tsdb import MemoryTSDB
from tests.fixtures.clock import T0, FakeClock
from tests.fixtures.identity import AUDIT_KEY, guard_and_audit, principal

OPERATOR = principal("olivia", Role.OPERATOR)
EVERY = 15.0

RULES = """
groups:
- name: health
  interval: 15s
  rules:
  - alert: GpuTooHot
    expr: DCGM_FI_DEV_GPU_TEMP > 90
    labels: {severity: warning}
    annotations: {summary: "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} is hot"}
  - alert: GpuFanStuck
    expr: gpu_fan_rpm == 0
    for: 30s
    labels: {severity: warning}
  - alert: RackPowerLost
    expr: rack_power_ok == 0
    labels: {severity: critical, action: drain, node: node-a}
    annotations: {summary: "rack r7 runs on its UPS"}
  - alert: GpuXid
    expr: DCGM_FI_DEV_XID_ERRORS > 0
    labels: {severity: critical, action: unhealthy}
  - alert: GhostNode
    expr: ghost_signal > 0
    labels: {severity: info, action: cordon, node: ghost}
  - alert: NoNodeNamed
    expr: anonymous_signal > 0
    labels: {action: cordon}
"""


class Setup:
    def __init__(self, store: SqlStore, groups: Sequence[RuleGroup] | None = None) -> None:
        self.store = store
        self.clock = FakeClock()
        guard, audit = guard_and_audit(store, self.clock)
        self.nodes = NodeService(store, "fake", guard, audit, self.clock)
        gpu = Gpu(index=0, uuid="GPU-0", model="NVIDIA H100 80GB HBM3", memory=80 * 2**30)
        self.nodes.register(
            [
                Node(name=n, cpus=32, memory=2**38, gpus=(gpu,), backend="fake", last_seen=T0)
                for n in ("node-a", "node-b")
            ]
        )
        self.tsdb = MemoryTSDB()
        self.control = ControlMetrics(store, "fake")
        groups = parse_rules(RULES, "test-rules.yaml") if groups is None else groups
        evaluator = RuleEvaluator(groups, self.tsdb, default_interval=EVERY)
        self.alerts = AlertService(store, self.clock, guard, self.nodes, groups, evaluator, self.control)

    def step(self, **values: tuple[Mapping[str, str], float]) -> None:
        """EVERY seconds later (the first step at T0), the buffer gets each metric's one sample, then one round."""
        if self.tsdb.names():
            self.clock.time += timedelta(seconds=EVERY)
        now = self.clock.now().timestamp()
        families = [Family(name, "", "gauge", [sample]) for name, sample in values.items()]
        self.tsdb.ingest(now, families, "agent")
        self.alerts.evaluate()

    def events(self) -> list[AlertEvent]:
        with self.store.unit_of_work(read_only=True) as uow:
            return uow.alerts.list()

    def node(self, name: str) -> Node:
        with self.store.unit_of_work(read_only=True) as uow:
            node = uow.nodes.get(name)
        assert node is not None
        return node

    def firing_gauge(self) -> list[tuple[dict[str, str], float]]:
        (family,) = [f for f in self.control.families(self.clock.now()) if f.name == "aidc_alerts_firing"]
        return [(dict(labels), value) for labels, value in family.samples]


@pytest.fixture
def setup(store: SqlStore) -> Setup:
    return Setup(store)


HOT = {"gpu": "0", "Hostname": "node-a", "UUID": "GPU-0"}
QUIET = {"rack_power_ok": ({"rack": "r7"}, 1.0)}  # the rack has power: RackPowerLost evaluates a series, stays quiet


# ------------------------------------------------------------------------- events


def test_an_alert_is_recorded_once_when_it_fires_and_once_when_it_resolves(setup: Setup) -> None:
    setup.step(DCGM_FI_DEV_GPU_TEMP=(HOT, 95.0), **QUIET)
    (fired,) = setup.events()
    assert (fired.alertname, fired.state, fired.severity, fired.value) == ("GpuTooHot", "firing", "warning", 95.0)
    assert (fired.at, fired.active_at) == (T0, T0)
    assert dict(fired.labels) == {"alertname": "GpuTooHot", "severity": "warning", **HOT}
    assert dict(fired.annotations) == {"summary": "GPU 0 on node-a is hot"}
    assert setup.firing_gauge() == [({"severity": "critical"}, 0.0), ({"severity": "info"}, 0.0),
                                    ({"severity": "warning"}, 1.0)]  # fmt: skip

    setup.step(DCGM_FI_DEV_GPU_TEMP=(HOT, 97.0), **QUIET)
    assert setup.events() == [fired]  # still firing: nothing new

    setup.step(DCGM_FI_DEV_GPU_TEMP=(HOT, 70.0), **QUIET)
    resolved, first = setup.events()
    assert first == fired
    assert (resolved.state, resolved.at, resolved.fingerprint) == (
        "resolved",
        T0 + timedelta(seconds=30),
        fired.fingerprint,
    )
    assert setup.firing_gauge() == [({"severity": s}, 0.0) for s in ("critical", "info", "warning")]
    current = setup.alerts.current(OPERATOR)
    assert [(a.name, a.state) for a in current] == [("GpuTooHot", AlertState.RESOLVED)]

    setup.step(DCGM_FI_DEV_GPU_TEMP=(HOT, 70.0), **QUIET)
    assert len(setup.events()) == 2  # resolved once
    setup.step(DCGM_FI_DEV_GPU_TEMP=(HOT, 99.0), **QUIET)  # fires again: a new event
    assert [e.state for e in setup.events()] == ["firing", "resolved", "firing"]
    assert setup.alerts.history(OPERATOR, since=T0 + timedelta(seconds=60)) == setup.events()[:1]


def test_an_alert_with_a_hold_is_recorded_when_it_starts_firing_not_while_pending(setup: Setup) -> None:
    stuck = {"gpu_fan_rpm": ({"Hostname": "node-b", "fan": "2"}, 0.0)}
    setup.step(**stuck, **QUIET)
    setup.step(**stuck, **QUIET)
    assert setup.events() == []
    assert [a.state for a in setup.alerts.current(OPERATOR)] == [AlertState.PENDING]
    setup.step(**stuck, **QUIET)
    (fired,) = setup.events()
    assert (fired.alertname, fired.at, fired.active_at) == ("GpuFanStuck", T0 + timedelta(seconds=30), T0)
    assert setup.node("node-b").state == NodeState.UP  # a rule without an action only tells


def test_firing_counts_by_severity_are_handed_to_the_control_metrics(setup: Setup) -> None:
    setup.step(
        DCGM_FI_DEV_GPU_TEMP=(HOT, 95.0),
        rack_power_ok=({"rack": "r7"}, 0.0),
        DCGM_FI_DEV_XID_ERRORS=({"gpu": "1", "Hostname": "node-b"}, 79.0),
        ghost_signal=({}, 1.0),
    )
    assert setup.firing_gauge() == [({"severity": "critical"}, 2.0), ({"severity": "info"}, 1.0),
                                    ({"severity": "warning"}, 1.0)]  # fmt: skip


# ------------------------------------------------------------------------- actions


def test_a_rule_with_a_drain_action_drains_the_node_it_names(setup: Setup) -> None:
    setup.step(rack_power_ok=({"rack": "r7"}, 0.0))
    drained = setup.node("node-a")
    assert (drained.state, drained.state_reason) == (NodeState.DRAINED, "alert RackPowerLost: rack r7 runs on its UPS")
    assert setup.node("node-b").state == NodeState.UP
    with setup.store.unit_of_work(read_only=True) as uow:
        (record,) = uow.audit.list(action="node.")
        incidents = uow.incidents.list("node-a")
    assert (record.actor, record.action, record.target) == ("alert:RackPowerLost", "node.drain", "node/node-a")
    assert dict(record.detail) == {"from": "UP", "to": "DRAINED", "reason": drained.state_reason}
    assert [i.detail for i in incidents] == [drained.state_reason]  # an alert acting on a node is an incident

    setup.nodes.act(OPERATOR, "node-a", NodeAction.RESUME)
    setup.step(rack_power_ok=({"rack": "r7"}, 0.0))  # still firing: it acted when it started, not again
    assert setup.node("node-a").state == NodeState.UP


def test_an_alert_incident_is_of_kind_alert_and_its_name(setup: Setup) -> None:
    setup.step(rack_power_ok=({"rack": "r7"}, 0.0))
    with setup.store.unit_of_work(read_only=True) as uow:
        assert [i.kind for i in uow.incidents.list("node-a")] == ["alert:RackPowerLost"]


LONG_NAME = "RackPowerLostOnTheUninterruptiblePowerSupplyOfRackR7InHallB"  # 59 characters; alertname holds 253


@pytest.mark.postgres
def test_an_alert_with_a_long_name_still_acts_on_its_node(postgres_url: str) -> None:
    upgrade(postgres_url)
    pg_store = SqlStore(postgres_url, audit_key=AUDIT_KEY)
    try:
        setup = Setup(pg_store, parse_rules(RULES.replace("RackPowerLost", LONG_NAME), "long.yaml"))
        setup.step(rack_power_ok=({"rack": "r7"}, 0.0))
        assert setup.node("node-a").state == NodeState.DRAINED
    finally:
        pg_store.close()


def test_a_rule_with_an_unhealthy_action_marks_the_node_of_its_hostname_label(setup: Setup) -> None:
    setup.step(DCGM_FI_DEV_XID_ERRORS=({"gpu": "1", "Hostname": "node-b", "UUID": "GPU-1"}, 79.0), **QUIET)
    bad = setup.node("node-b")
    assert (bad.state, bad.state_reason) == (NodeState.UNHEALTHY, "alert GpuXid")
    assert setup.node("node-a").state == NodeState.UP
    with setup.store.unit_of_work(read_only=True) as uow:
        (record,) = uow.audit.list(action="node.unhealthy")
    assert (record.actor, record.target) == ("alert:GpuXid", "node/node-b")


def test_an_action_on_an_unknown_or_unnamed_or_down_node_is_logged_and_ignored(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.nodes.mark_down("node-a", "no heartbeat")
    caplog.set_level(logging.WARNING, logger="aidc.services.alerts")
    setup.step(ghost_signal=({}, 1.0), anonymous_signal=({}, 1.0), rack_power_ok=({"rack": "r7"}, 0.0))
    assert sorted(e.alertname for e in setup.events()) == ["GhostNode", "NoNodeNamed", "RackPowerLost"]
    messages = [r.getMessage() for r in caplog.records if r.name == "aidc.services.alerts"]
    assert "alert GhostNode could not cordon node ghost: node ghost not found" in messages
    assert "alert NoNodeNamed has action cordon but names no node" in messages
    assert any(m.startswith("alert RackPowerLost could not drain node node-a: node node-a is DOWN") for m in messages)
    assert setup.node("node-a").state == NodeState.DOWN
    assert setup.node("node-b").state == NodeState.UP


def test_the_default_rules_cordon_a_node_for_a_hardware_xid_and_only_warn_for_an_application_one(
    store: SqlStore,
) -> None:
    setup = Setup(store, default_rules())
    gpu = {"gpu": "0", "UUID": "GPU-0", "modelName": "NVIDIA H100 80GB HBM3"}
    xids = [({**gpu, "Hostname": "node-a"}, 13.0), ({**gpu, "Hostname": "node-b"}, 79.0)]  # bad code; off the bus
    setup.tsdb.ingest(T0.timestamp(), [Family("DCGM_FI_DEV_XID_ERRORS", "", "gauge", xids)], "agent")
    setup.alerts.evaluate()
    fired = sorted((e.alertname, e.labels["Hostname"]) for e in setup.events())
    assert fired == [("GpuXidError", "node-a"), ("GpuXidError", "node-b"), ("GpuXidHardwareError", "node-b")]
    assert setup.node("node-a").state == NodeState.UP
    cordoned = setup.node("node-b")
    assert cordoned.state == NodeState.CORDONED
    assert (cordoned.state_reason or "").startswith(
        "alert GpuXidHardwareError: GPU 0 on node-b reported hardware XID 79"
    )


# ------------------------------------------------------------------------- the control plane's own series


def _samples(families: Sequence[Family], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    (family,) = [f for f in families if f.name == name]
    return {tuple(sorted(labels.items())): value for labels, value in family.samples}


def test_control_metrics_read_queues_jobs_and_nodes_from_the_store(store: SqlStore) -> None:
    clock = FakeClock()
    gpu = Gpu(index=0, uuid="GPU-0", model="H100", memory=2**36)
    with store.unit_of_work() as uow:
        uow.queues.add(Queue(name="research", wait_slo=3600))
        for name, state, backend, seen in [
            ("up", NodeState.UP, "fake", None),
            ("cordoned", NodeState.CORDONED, "fake", None),
            ("down", NodeState.DOWN, "fake", T0),
            ("agent", NodeState.UP, "slurm", T0 - timedelta(seconds=20)),  # another engine's node with an agent
            ("foreign", NodeState.UP, "slurm", None),  # another engine's node, from a cluster file: not ours
        ]:
            uow.nodes.upsert(Node(name=name, cpus=8, memory=2**34, gpus=(gpu,), state=state, backend=backend,
                                  last_seen=seen))  # fmt: skip
        for name, queue, gpus, nodes, job_state in [
            ("p1", "default", 1, 1, JobState.PENDING),
            ("p2", "default", 2, 2, JobState.PENDING),
            ("r1", "research", 1, 1, JobState.RUNNING),
            ("ok", "default", 1, 1, JobState.SUCCEEDED),
            ("bad", "research", 1, 1, JobState.FAILED),
        ]:
            spec = JobSpec.model_validate({"name": name, "queue": queue, "run": "true", "num_nodes": nodes,
                                           "resources": {"gpus": gpus}})  # fmt: skip
            job = uow.jobs.add(spec, "alice", T0)
            if job_state != JobState.PENDING:
                uow.jobs.save(job.model_copy(update={"state": job_state, "attempts_made": 1}))
            if job_state == JobState.RUNNING:
                uow.jobs.add_attempt(Attempt(job_id=job.id, number=1, nodes=("up",), gpus=((0,),), started_at=T0))
        uow.commit()
    clock.time = T0 + timedelta(minutes=5)
    families = ControlMetrics(store, "fake").families(clock.now())

    assert _samples(families, "aidc_queue_pending_jobs") == {(("queue", "default"),): 2, (("queue", "research"),): 0}
    assert _samples(families, "aidc_queue_pending_gpus") == {(("queue", "default"),): 5, (("queue", "research"),): 0}
    assert _samples(families, "aidc_queue_running_jobs") == {(("queue", "default"),): 0, (("queue", "research"),): 1}
    assert _samples(families, "aidc_queue_wait_slo_seconds") == {(("queue", "research"),): 3600}
    assert _samples(families, "aidc_jobs") == {
        (("state", s.value),): {"PENDING": 2, "RUNNING": 1, "SUCCEEDED": 1, "FAILED": 1}.get(s.value, 0)
        for s in JobState
    }
    states = _samples(families, "aidc_node_state")
    assert {dict(k)["node"] for k in states} == {"up", "cordoned", "down", "agent"}
    for node, current in [("up", "UP"), ("cordoned", "CORDONED"), ("down", "DOWN"), ("agent", "UP")]:
        one_hot = {dict(k)["state"]: v for k, v in states.items() if dict(k)["node"] == node}
        assert one_hot == {s.value: 1.0 if s.value == current else 0.0 for s in NodeState}
    assert _samples(families, "aidc_node_up") == {
        (("node", "up"),): 1, (("node", "cordoned"),): 1, (("node", "down"),): 0, (("node", "agent"),): 1
    }  # fmt: skip
    assert _samples(families, "aidc_node_heartbeat_age_seconds") == {
        (("node", "down"),): 300,
        (("node", "agent"),): 320,
    }
    assert _samples(families, "aidc_gpus_allocated") == {(): 1}
    assert _samples(families, "aidc_gpus") == {(): 3}  # the DOWN node's GPU does not count
    waited = _samples(families, "aidc_job_pending_seconds")
    assert sorted(waited.values()) == [300.0, 300.0]
    assert {dict(k)["queue"] for k in waited} == {"default"}
    assert all(set(dict(k)) == {"job_id", "queue", "user"} for k in waited)  # `job` is Prometheus' own label


def test_registry_families_hold_the_histograms_as_samples(store: SqlStore) -> None:
    control = ControlMetrics(store, "fake")
    with store.unit_of_work() as uow:
        job = uow.jobs.add(JobSpec(name="j", queue="default", run="true"), "alice", T0)
        uow.commit()
    control.started(job, 42.0)
    control.started(job, -3.0)  # a clock step back is no negative wait
    control.cycle(0.003)
    control.retried(job)
    families = control.registry_families()
    names = {f.name for f in families}
    assert not any(n.endswith("_created") for n in names)
    buckets = _samples(families, "aidc_queue_wait_seconds_bucket")
    assert buckets[(("le", "1.0"), ("queue", "default"))] == 1  # the negative one, counted as 0
    assert buckets[(("le", "30.0"), ("queue", "default"))] == 1
    assert buckets[(("le", "60.0"), ("queue", "default"))] == 2
    assert buckets[(("le", "+Inf"), ("queue", "default"))] == 2
    assert _samples(families, "aidc_queue_wait_seconds_count") == {(("queue", "default"),): 2}
    assert _samples(families, "aidc_queue_wait_seconds_sum") == {(("queue", "default"),): 42.0}
    assert _samples(families, "aidc_scheduler_cycle_seconds_count") == {(): 1}
    assert _samples(families, "aidc_scheduler_cycle_seconds_bucket")[(("le", "0.005"),)] == 1
    assert _samples(families, "aidc_job_retries_total") == {(): 1}
    assert _samples(families, "aidc_job_preemptions_total") == {(): 0}
    text = control.exposition().decode()
    assert 'aidc_queue_wait_seconds_bucket{le="60.0",queue="default"} 2.0' in text
