"""Silences and acknowledgements below the API: a real store, the real evaluator over the in-memory buffer, and
the webhook notifier posting to a real HTTP receiver on 127.0.0.1. A silenced alert never reaches the receiver
(its node action still happens); when the silence is expired while it fires, the receiver hears of it. An
acknowledgement is shown with the alert, is refused for an alert that is not firing, and ends when it resolves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from aidc.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.domain.silences import Matcher, SilenceState
from aidc.security.rbac import Role
from aidc.services.alerts import ACK_SWEEP_AFTER, AlertService
from aidc.services.control_metrics import ControlMetrics
from aidc.services.nodes import NodeService
from aidc.store.sql_store import SqlStore
from aidc.telemetry.alerting import RuleEvaluator
from aidc.telemetry.notify import NotifyConfig
from aidc.telemetry.rules import parse_rules
from aidc.telemetry.series import Family
from aidc.telemetry.tsdb import MemoryTSDB
from aidc.telemetry.webhook import WebhookNotifier
from tests.fixtures.clock import T0, FakeClock
from tests.fixtures.identity import guard_and_audit, principal
from tests.unit.telemetry.test_webhook import Receiver, receiver  # noqa: F401  (the receiver fixture)

OPERATOR = principal("olivia", Role.OPERATOR)
VIEWER = principal("vera", Role.VIEWER)
EVERY = 15.0
RULES = """
groups:
- name: health
  interval: 15s
  rules:
  - alert: GpuTooHot
    expr: DCGM_FI_DEV_GPU_TEMP > 90
    labels: {severity: warning}
  - alert: RackPowerLost
    expr: rack_power_ok == 0
    labels: {severity: critical, action: drain, node: node-a}
"""
HOT = {"gpu": "0", "Hostname": "node-a"}


class Setup:
    def __init__(self, store: SqlStore, url: str) -> None:
        self.store = store
        self.clock = FakeClock()
        guard, audit = guard_and_audit(store, self.clock)
        self.nodes = NodeService(store, "fake", guard, audit, self.clock)
        gpu = Gpu(index=0, uuid="GPU-0", model="NVIDIA H100 80GB HBM3", memory=80 * 2**30)
        self.nodes.register([Node(name="node-a", cpus=32, memory=2**38, gpus=(gpu,), backend="fake", last_seen=T0)])
        self.tsdb = MemoryTSDB()
        groups = parse_rules(RULES, "rules.yaml")
        config = NotifyConfig(group_wait=0, group_interval=30, repeat_interval=3600)
        self.notifier = WebhookNotifier(url, config)
        self.ids = iter(f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 100))
        self.alerts = AlertService(
            store,
            self.clock,
            guard,
            self.nodes,
            groups,
            RuleEvaluator(groups, self.tsdb, default_interval=EVERY),
            ControlMetrics(store, "fake"),
            notifier=self.notifier,
            audit=audit,
            new_id=lambda: next(self.ids),
        )

    def step(self, temp: float, rack_ok: float = 1.0) -> None:
        """EVERY seconds later (the first at T0): one sample of each metric, one round, one flush."""
        if self.tsdb.names():
            self.clock.time += timedelta(seconds=EVERY)
        now = self.clock.now().timestamp()
        families = [
            Family("DCGM_FI_DEV_GPU_TEMP", "", "gauge", [(HOT, temp)]),
            Family("rack_power_ok", "", "gauge", [({"rack": "r7"}, rack_ok)]),
        ]
        self.tsdb.ingest(now, families, "agent")
        self.alerts.evaluate()
        self.notifier.flush(now)

    def audit_actions(self) -> list[str]:
        with self.store.unit_of_work(read_only=True) as uow:
            return [r.action for r in uow.audit.list()]


@pytest.fixture
def setup(store: SqlStore, receiver: Receiver) -> Iterator[Setup]:  # noqa: F811
    s = Setup(store, receiver.url)
    yield s
    s.notifier.close()


def sent_names(rec: Receiver) -> list[tuple[str, str]]:
    with rec.lock:
        return [(a["labels"]["alertname"], a["status"]) for b in rec.bodies for a in b["alerts"]]


def test_a_silenced_alert_is_not_sent_until_the_silence_is_expired(setup: Setup, receiver: Receiver) -> None:  # noqa: F811
    s = setup.alerts.create_silence(OPERATOR, [Matcher("alertname", "GpuTooHot")], "fan swap", duration=7200)
    assert (s.created_by, s.state(setup.clock.now())) == ("olivia", SilenceState.ACTIVE)
    for _ in range(4):
        setup.step(95.0)
    assert sent_names(receiver) == []
    (status,) = [a for a in setup.alerts.statuses(OPERATOR) if a.alert.name == "GpuTooHot"]
    assert status.silenced_by == (s.id,)

    setup.alerts.expire_silence(OPERATOR, s.id)
    setup.step(95.0)
    assert sent_names(receiver) == [("GpuTooHot", "firing")]  # still firing when the silence ended: notified
    assert setup.alerts.statuses(OPERATOR)[0].silenced_by == ()
    assert setup.audit_actions()[-2:] == ["alert.silence", "alert.silence.expire"]


def test_a_silence_does_not_stop_a_node_action(setup: Setup, receiver: Receiver) -> None:  # noqa: F811
    setup.alerts.create_silence(OPERATOR, [Matcher("alertname", "RackPowerLost")], "UPS test", duration=3600)
    setup.step(50.0, rack_ok=0.0)
    with setup.store.unit_of_work(read_only=True) as uow:
        node = uow.nodes.get("node-a")
    assert node is not None
    assert node.state == NodeState.DRAINED
    assert sent_names(receiver) == []


def test_expiring_twice_or_an_unknown_id_is_refused(setup: Setup) -> None:
    s = setup.alerts.create_silence(OPERATOR, [Matcher("alertname", "X")], "why", duration=60)
    setup.alerts.expire_silence(OPERATOR, s.id)
    with pytest.raises(Conflict):
        setup.alerts.expire_silence(OPERATOR, s.id)
    with pytest.raises(NotFound):
        setup.alerts.expire_silence(OPERATOR, "nope")
    assert [x.id for x in setup.alerts.silences(OPERATOR, SilenceState.EXPIRED)] == [s.id]
    assert setup.alerts.silences(OPERATOR, SilenceState.ACTIVE) == []


def test_viewers_may_read_but_not_silence_expire_or_acknowledge(setup: Setup) -> None:
    s = setup.alerts.create_silence(OPERATOR, [Matcher("alertname", "X")], "why", duration=60)
    assert [x.id for x in setup.alerts.silences(VIEWER)] == [s.id]
    setup.step(95.0)
    fp = setup.alerts.statuses(VIEWER)[0].alert.fingerprint
    with pytest.raises(PermissionDenied):
        setup.alerts.create_silence(VIEWER, [Matcher("alertname", "X")], "why", duration=60)
    with pytest.raises(PermissionDenied):
        setup.alerts.expire_silence(VIEWER, s.id)
    with pytest.raises(PermissionDenied):
        setup.alerts.acknowledge(VIEWER, fp)


def test_a_bad_regex_is_refused_naming_the_matcher(setup: Setup) -> None:
    with pytest.raises(InvalidInput) as info:
        setup.alerts.create_silence(OPERATOR, [Matcher("node", "gpu-[", is_regex=True)], "why", duration=60)
    assert [p.field for p in info.value.problems] == ["matchers[0].value"]


def test_an_ack_shows_with_the_alert_stops_reminders_and_ends_when_it_resolves(
    setup: Setup,
    receiver: Receiver,  # noqa: F811
) -> None:
    setup.step(95.0)
    assert sent_names(receiver) == [("GpuTooHot", "firing")]
    fp = setup.alerts.statuses(OPERATOR)[0].alert.fingerprint
    ack = setup.alerts.acknowledge(OPERATOR, fp, "swapping the fan")
    assert (ack.by, ack.at, ack.comment) == ("olivia", setup.clock.now(), "swapping the fan")
    assert setup.alerts.statuses(OPERATOR)[0].acknowledged == ack
    for _ in range(3600 // int(EVERY) + 4):  # past repeat_interval
        setup.step(95.0)
    assert sent_names(receiver) == [("GpuTooHot", "firing")]  # acknowledged: no reminder

    setup.step(70.0)  # resolves: the ack goes with it
    setup.step(70.0)  # the group's next tick
    assert sent_names(receiver)[-1] == ("GpuTooHot", "resolved")
    with setup.store.unit_of_work(read_only=True) as uow:
        assert uow.alert_acks.list() == []
    setup.step(95.0)  # fires again: a new firing needs a new acknowledgement
    assert setup.alerts.statuses(OPERATOR)[0].acknowledged is None
    assert "alert.ack" in setup.audit_actions()


def test_acknowledging_an_alert_that_is_not_firing_is_not_found(setup: Setup) -> None:
    setup.step(50.0)
    with pytest.raises(NotFound):
        setup.alerts.acknowledge(OPERATOR, "0123456789abcdef")


def test_silences_and_acks_survive_a_restart(setup: Setup, store: SqlStore, receiver: Receiver) -> None:  # noqa: F811
    s = setup.alerts.create_silence(OPERATOR, [Matcher("alertname", "GpuTooHot")], "why", duration=3600)
    setup.step(95.0)
    fp = setup.alerts.statuses(OPERATOR)[0].alert.fingerprint
    setup.alerts.acknowledge(OPERATOR, fp)
    setup.notifier.close()
    again = Setup(store, receiver.url)  # a new service on the same store: nothing in memory
    again.clock.time = setup.clock.time
    again.step(95.0)
    (status,) = [a for a in again.alerts.statuses(OPERATOR) if a.alert.name == "GpuTooHot"]
    assert status.silenced_by == (s.id,)
    assert status.acknowledged is not None
    assert status.acknowledged.by == "olivia"
    assert sent_names(receiver) == []
    again.notifier.close()


def test_after_a_restart_an_ack_whose_alert_does_not_fire_again_is_cleared_but_not_at_once(
    setup: Setup,
    store: SqlStore,
    receiver: Receiver,  # noqa: F811
) -> None:
    setup.step(95.0)
    fp = setup.alerts.statuses(OPERATOR)[0].alert.fingerprint
    setup.alerts.acknowledge(OPERATOR, fp)
    setup.notifier.close()
    again = Setup(store, receiver.url)  # it resolved while the server was down
    again.clock.time = setup.clock.time + timedelta(hours=1)
    again.step(50.0)
    with store.unit_of_work(read_only=True) as uow:
        assert [a.fingerprint for a in uow.alert_acks.list()] == [fp]  # the first rounds may lack the metrics
    for _ in range(int(ACK_SWEEP_AFTER // EVERY)):
        again.step(50.0)
    with store.unit_of_work(read_only=True) as uow:
        assert uow.alert_acks.list() == []
    again.notifier.close()
