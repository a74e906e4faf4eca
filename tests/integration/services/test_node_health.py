"""Node health with a real store (SQLite, and PostgreSQL): operators' actions and the states each refuses or leaves
alone, their audit records and permissions; heartbeats and registration bringing DOWN nodes back; incidents and
lemon quarantine; and the heartbeat watch that marks silent nodes DOWN. The clock is the test's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from aidc.control.health import HeartbeatWatch
from aidc.domain.errors import Conflict, NotFound, PermissionDenied
from aidc.domain.identity import AuditRecord
from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.security.rbac import Role
from aidc.services.nodes import LemonPolicy, NodeAction, NodeService
from aidc.store.migrate import upgrade
from aidc.store.sql_store import SqlStore
from tests.fixtures.clock import T0, FakeClock
from tests.fixtures.identity import AUDIT_KEY, guard_and_audit, principal

OPERATOR = principal("olivia", Role.OPERATOR)
MEMBER = principal("mallory", Role.MEMBER, team="ml")
S, C, D, U, Q, DOWN = (NodeState.UP, NodeState.CORDONED, NodeState.DRAINED, NodeState.UNHEALTHY,
                       NodeState.QUARANTINED, NodeState.DOWN)  # fmt: skip


def _store(url: str) -> Iterator[SqlStore]:
    upgrade(url)
    sql_store = SqlStore(url, audit_key=AUDIT_KEY)
    try:
        yield sql_store
    finally:
        sql_store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    url = f"sqlite:///{tmp_path / 'aidc.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    yield from _store(url)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    """For the tests run once per state and action: the logic is the service's, the same on either database."""
    yield from _store(f"sqlite:///{tmp_path / 'aidc.db'}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def service(store: SqlStore, clock: FakeClock, lemon: LemonPolicy | None = None) -> NodeService:
    return NodeService(store, "fake", *guard_and_audit(store, clock), clock, lemon)


def node(name: str, state: NodeState = S, last_seen: datetime | None = T0, **fields: object) -> Node:
    gpu = Gpu(index=0, uuid=f"GPU-{name}-0", model="NVIDIA H100 80GB HBM3", memory=80 * 2**30)
    return Node.model_validate({"name": name, "cpus": 64, "memory": 512 * 2**30, "gpus": (gpu,), "backend": "fake",
                                "state": state, "last_seen": last_seen, **fields})  # fmt: skip


def put(store: SqlStore, *nodes: Node) -> None:
    with store.unit_of_work() as uow:
        for n in nodes:
            uow.nodes.upsert(n)
        uow.commit()


def get(store: SqlStore, name: str) -> Node:
    with store.unit_of_work(read_only=True) as uow:
        found = uow.nodes.get(name)
    assert found is not None
    return found


def audit(store: SqlStore, prefix: str = "node.") -> list[AuditRecord]:
    with store.unit_of_work(read_only=True) as uow:
        return uow.audit.list(action=prefix)


def incident_kinds(store: SqlStore, name: str) -> list[str]:
    with store.unit_of_work(read_only=True) as uow:
        return [i.kind for i in uow.incidents.list(name)]


# ------------------------------------------------------------------------- operators' actions

# Where each action takes a node from each state; None: left as it is. Written out, not read from the code.
EXPECTED: dict[NodeAction, dict[NodeState, NodeState | None]] = {
    NodeAction.CORDON: {S: C, C: None, D: None, U: None, Q: None},
    NodeAction.UNCORDON: {S: None, C: S, D: None, U: S, Q: None},
    NodeAction.DRAIN: {S: D, C: D, D: None, U: D, Q: None},
    NodeAction.RESUME: {S: None, C: S, D: S, U: S, Q: S},
    NodeAction.UNHEALTHY: {S: U, C: U, D: None, U: None, Q: None},
}
CASES = [(action, state, to) for action, table in EXPECTED.items() for state, to in table.items()]


@pytest.mark.parametrize(("action", "start", "to"), CASES, ids=[f"{a}-{s}" for a, s, _ in CASES])
def test_each_action_moves_only_the_states_it_names(
    sqlite_store: SqlStore, clock: FakeClock, action: NodeAction, start: NodeState, to: NodeState | None
) -> None:
    store = sqlite_store
    before = node("n1", start, state_reason=None if start == S else "set before", state_since=T0)
    put(store, before)
    clock.advance(60)
    returned = service(store, clock).act(OPERATOR, "n1", action, "because")
    stored = get(store, "n1")
    assert returned == stored
    if to is None:
        assert stored == before  # reason and time of the state kept, nothing audited
        assert audit(store) == []
    else:
        assert (stored.state, stored.state_since) == (to, clock.time)
        assert stored.state_reason == (None if to == S else "because")
        (record,) = audit(store)
        assert (record.actor, record.action, record.target) == ("olivia", f"node.{action.value}", "node/n1")
        assert dict(record.detail) == {"from": start.value, "to": to.value, "reason": "because"}
    assert incident_kinds(store, "n1") == []  # an operator's action is no incident


@pytest.mark.parametrize("action", list(NodeAction))
def test_a_down_node_refuses_every_action(sqlite_store: SqlStore, clock: FakeClock, action: NodeAction) -> None:
    store = sqlite_store
    put(store, node("n1", DOWN, state_reason="no heartbeat"))
    with pytest.raises(Conflict, match="DOWN"):
        service(store, clock).act(OPERATOR, "n1", action)
    assert get(store, "n1").state == DOWN
    assert audit(store) == []


def test_an_unknown_node_is_not_found(store: SqlStore, clock: FakeClock) -> None:
    with pytest.raises(NotFound):
        service(store, clock).act(OPERATOR, "nowhere", NodeAction.DRAIN)


def test_cordon_drain_resume_are_audited_with_who_and_why(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("n1"))
    nodes = service(store, clock)
    nodes.act(OPERATOR, "n1", NodeAction.CORDON)  # no reason given: one is made up naming who
    assert get(store, "n1").state_reason == "cordon by olivia"
    clock.advance(10)
    nodes.act(OPERATOR, "n1", NodeAction.DRAIN, "replace the PSU")
    clock.advance(3600)
    resumed = nodes.act(OPERATOR, "n1", NodeAction.RESUME)
    assert (resumed.state, resumed.state_reason, resumed.state_since) == (S, None, clock.time)
    records = audit(store)
    assert [(r.action, r.actor, r.at) for r in records] == [
        ("node.cordon", "olivia", T0),
        ("node.drain", "olivia", T0 + timedelta(seconds=10)),
        ("node.resume", "olivia", T0 + timedelta(seconds=3610)),
    ]
    assert [dict(r.detail) for r in records] == [
        {"from": "UP", "to": "CORDONED", "reason": "cordon by olivia"},
        {"from": "CORDONED", "to": "DRAINED", "reason": "replace the PSU"},
        {"from": "DRAINED", "to": "UP", "reason": "resume by olivia"},
    ]


def test_a_member_may_not_act_on_nodes_nor_heartbeat_and_is_audited(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("n1"))
    nodes = service(store, clock)
    with pytest.raises(PermissionDenied):
        nodes.act(MEMBER, "n1", NodeAction.DRAIN, "let me in")
    with pytest.raises(PermissionDenied):
        nodes.heartbeat(MEMBER, "n1")
    assert get(store, "n1") == node("n1")
    denials = audit(store, "node.write")
    assert [(r.actor, r.target, r.outcome) for r in denials] == [("mallory", "node/n1", "denied")] * 2
    assert nodes.incidents(MEMBER, "n1") == []  # reading is allowed


# ------------------------------------------------------------------------- heartbeats and registration


def test_a_heartbeat_brings_a_down_node_back_up(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("n1", DOWN, last_seen=T0, state_reason="no heartbeat for 90s", state_since=T0))
    clock.advance(300)
    back = service(store, clock).heartbeat(OPERATOR, "n1")
    assert get(store, "n1") == back
    assert (back.state, back.state_reason, back.state_since, back.last_seen) == (S, None, clock.time, clock.time)
    (record,) = audit(store)
    assert (record.action, record.actor, record.target, dict(record.detail)) == (
        "node.up",
        "aidc",
        "node/n1",
        {"was": "DOWN", "now": "UP"},
    )


def test_a_heartbeat_keeps_a_node_out_of_service_where_it_is(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("n1", C, state_reason="firmware update", state_since=T0))
    clock.advance(5)
    beat = service(store, clock).heartbeat(None, "n1")  # this host's own agent: no principal
    assert (beat.state, beat.state_reason, beat.state_since, beat.last_seen) == (C, "firmware update", T0, clock.time)
    assert audit(store) == []
    with pytest.raises(NotFound):
        service(store, clock).heartbeat(None, "nowhere")


def test_register_refreshes_nodes_and_keeps_an_operators_state(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("kept", D, state_reason="replace the PSU", state_since=T0), node("up"))
    clock.advance(60)
    reported = [
        node("kept", last_seen=clock.time, cpus=128),  # the engine thinks it is fine
        node("up", last_seen=clock.time),
        node("new", last_seen=None, labels={"rack": "r7"}),
    ]
    service(store, clock).register(reported)
    kept = get(store, "kept")
    assert (kept.state, kept.state_reason, kept.state_since) == (D, "replace the PSU", T0)
    assert (kept.cpus, kept.last_seen) == (128, clock.time)  # the rest is refreshed
    assert get(store, "up").last_seen == clock.time
    assert get(store, "new") == reported[2]
    assert audit(store) == []


def test_register_brings_back_a_down_node_reported_with_a_fresh_last_seen(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("agent", DOWN, state_reason="no heartbeat", state_since=T0))
    put(store, node("cluster", DOWN, last_seen=None, state_reason="no heartbeat", state_since=T0))
    clock.advance(600)
    service(store, clock).register([node("agent", last_seen=clock.time), node("cluster", last_seen=None)])
    back = get(store, "agent")
    assert (back.state, back.state_reason, back.state_since) == (S, None, clock.time)
    assert get(store, "cluster").state == DOWN  # no sign of life: still down
    assert [(r.action, r.target) for r in audit(store)] == [("node.up", "node/agent")]


# ------------------------------------------------------------------------- incidents and lemons


def test_mark_down_records_an_incident_once(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("n1"))
    nodes = service(store, clock)
    clock.advance(90)
    down = nodes.mark_down("n1", "no heartbeat from its agent for 90s")
    assert down is not None
    assert get(store, "n1") == down
    assert (down.state, down.state_reason, down.state_since) == (
        DOWN,
        "no heartbeat from its agent for 90s",
        clock.time,
    )
    (incident,) = nodes.incidents(OPERATOR, "n1")
    assert (incident.kind, incident.detail, incident.at) == ("heartbeat-lost", down.state_reason, clock.time)
    assert [(r.action, dict(r.detail)) for r in audit(store)] == [("node.down", {"reason": down.state_reason})]
    assert nodes.mark_down("n1", "still silent") is None  # already DOWN: nothing more
    assert nodes.mark_down("nowhere", "?") is None
    assert len(nodes.incidents(OPERATOR)) == 1


def test_incidents_within_the_window_quarantine_a_lemon(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("n1"), node("n2"))
    nodes = service(store, clock, LemonPolicy(incidents=3, window=3600))
    assert nodes.record_incident("n1", "job:nccl-timeout", "job 4: nccl-timeout: exit code 1") is None
    clock.advance(1200)
    assert nodes.record_incident("n1", "job:gpu-xid", "job 5: gpu-xid: exit code 1") is None
    assert nodes.record_incident("n2", "job:gpu-xid", "another node's incidents do not count") is None
    assert get(store, "n1").state == S
    clock.advance(1200)
    lemon = nodes.record_incident("n1", "job:nccl-timeout", "job 6: nccl-timeout: exit code 1")
    assert lemon is not None
    assert get(store, "n1") == lemon
    assert lemon.state == Q
    assert lemon.state_since == clock.time
    assert lemon.state_reason == (
        "quarantined: 3 incidents in 1h (job:gpu-xid, job:nccl-timeout); resume it after repair"
    )
    (record,) = audit(store, "node.quarantine")
    assert (record.actor, record.target, dict(record.detail)) == ("aidc", "node/n1", {"reason": lemon.state_reason})
    assert get(store, "n2").state == S
    # Quarantined already: more incidents are kept, the node is not quarantined again.
    assert nodes.record_incident("n1", "job:gpu-xid", "job 7") is None
    assert len(audit(store, "node.quarantine")) == 1
    assert len(incident_kinds(store, "n1")) == 4
    assert nodes.record_incident("nowhere", "job:gpu-xid", "?") is None
    assert nodes.act(OPERATOR, "n1", NodeAction.RESUME).state == S


def test_incidents_older_than_the_window_do_not_count(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("n1"))
    nodes = service(store, clock, LemonPolicy(incidents=3, window=3600))
    nodes.record_incident("n1", "job:nccl-timeout", "first")
    clock.advance(2400)
    nodes.record_incident("n1", "job:nccl-timeout", "second")
    clock.advance(1201)  # the first is now 3601 s old
    assert nodes.record_incident("n1", "job:nccl-timeout", "third") is None
    assert get(store, "n1").state == S
    assert len(incident_kinds(store, "n1")) == 3


def test_a_heartbeat_lost_on_a_node_with_past_incidents_counts_towards_quarantine(
    store: SqlStore, clock: FakeClock
) -> None:
    put(store, node("n1"))
    nodes = service(store, clock, LemonPolicy(incidents=2, window=3600))
    nodes.record_incident("n1", "job:gpu-xid", "job 4")
    clock.advance(60)
    nodes.mark_down("n1", "no heartbeat")
    assert incident_kinds(store, "n1") == ["job:gpu-xid", "heartbeat-lost"]
    lost = get(store, "n1")  # still DOWN (its jobs are lost, not stopping): QUARANTINED when it comes back
    assert (lost.state, lost.held_state) == (NodeState.DOWN, NodeState.QUARANTINED)
    assert "2 incidents in 1h (heartbeat-lost, job:gpu-xid)" in (lost.held_reason or "")
    nodes.heartbeat(None, "n1")
    assert get(store, "n1").state == NodeState.QUARANTINED


# ------------------------------------------------------------------------- the heartbeat watch


def test_the_watch_marks_down_only_agents_silent_longer_than_the_timeout(store: SqlStore, clock: FakeClock) -> None:
    clock.advance(3600)
    now = clock.time
    put(
        store,
        node("fresh", last_seen=now - timedelta(seconds=10)),
        node("at-limit", last_seen=now - timedelta(seconds=60)),
        node("silent", last_seen=now - timedelta(seconds=120)),
        node("cordoned-silent", C, last_seen=now - timedelta(seconds=3000), state_reason="by olivia"),
        node("cluster-file", last_seen=None),  # its engine reports it; no agent ever sent a heartbeat
        node("down", DOWN, last_seen=now - timedelta(seconds=3600), state_reason="earlier"),
    )
    nodes = service(store, clock)
    watch = HeartbeatWatch(store, nodes, clock, timeout=60, every=0)
    assert watch.timeout == 60
    assert sorted(watch.check()) == ["cordoned-silent", "silent"]
    silent = get(store, "silent")
    assert (silent.state, silent.state_reason) == (DOWN, "no heartbeat from its agent for 120s (timeout 60s)")
    assert get(store, "cordoned-silent").state == DOWN
    for name in ("fresh", "at-limit", "cluster-file"):
        assert get(store, name).state == S
    assert get(store, "down").state_reason == "earlier"
    assert incident_kinds(store, "silent") == ["heartbeat-lost"]
    assert incident_kinds(store, "down") == []

    assert watch.check() == []  # nothing new went silent
    clock.advance(1)
    assert watch.check() == ["at-limit"]
    nodes.heartbeat(None, "silent")
    assert get(store, "silent").state == S


def test_a_silent_quarantined_node_is_not_marked_down_again_on_every_check(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("lemon"))
    nodes = service(store, clock, LemonPolicy(incidents=2, window=86400))
    nodes.record_incident("lemon", "job:gpu-xid", "job 4")
    nodes.record_incident("lemon", "job:gpu-xid", "job 5")
    assert get(store, "lemon").state == Q
    watch = HeartbeatWatch(store, nodes, clock, timeout=60, every=0)
    clock.advance(120)  # its agent is silent too now
    watch.check()
    after_first = (len(incident_kinds(store, "lemon")), len(audit(store)))
    for _ in range(3):
        clock.advance(1)
        watch.check()
    assert (len(incident_kinds(store, "lemon")), len(audit(store))) == after_first


def test_a_drained_node_that_reboots_stays_drained(store: SqlStore, clock: FakeClock) -> None:
    put(store, node("n1"))
    nodes = service(store, clock)
    nodes.act(OPERATOR, "n1", NodeAction.DRAIN, "replace the PSU")
    watch = HeartbeatWatch(store, nodes, clock, timeout=60, every=0)
    clock.advance(120)  # powered off for the repair
    watch.check()
    clock.advance(600)
    nodes.heartbeat(None, "n1")  # back after the repair, before the operator resumed it
    assert get(store, "n1").state == D
