"""Queues, nodes and API tokens."""

from __future__ import annotations

import pytest

from aidc.domain.errors import Conflict
from aidc.domain.nodes import Gpu, Node, NodeState
from aidc.domain.queues import Queue, Quota
from aidc.store.sql_store import SqlStore

from .conftest import T0, at


def test_queues_are_added_got_and_listed_by_name(store: SqlStore) -> None:
    research = Queue(
        name="research",
        quota=Quota(gpus=16, cpus=256.5, memory=2 * 2**40),
        weight=2.5,
        created_at=T0,
    )
    batch = Queue(name="batch", created_at=at(1))
    with store.unit_of_work() as uow:
        uow.queues.add(research)
        uow.queues.add(batch)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.queues.get("research") == research
        assert uow.queues.get("missing") is None
        assert [q.name for q in uow.queues.list()] == ["batch", "default", "research"]
        assert uow.queues.list()[0] == batch


def test_adding_an_existing_queue_raises_conflict_and_keeps_the_transaction(
    store: SqlStore,
) -> None:
    with store.unit_of_work() as uow:
        uow.queues.add(Queue(name="research", weight=2))
        with pytest.raises(Conflict, match="queue 'research' already exists"):
            uow.queues.add(Queue(name="research", weight=9))
        with pytest.raises(Conflict, match="'default'"):
            uow.queues.add(Queue(name="default"))
        uow.queues.add(Queue(name="batch"))  # still usable, on PostgreSQL too
        uow.commit()
    with store.unit_of_work() as uow:
        stored = uow.queues.get("research")
        assert stored is not None
        assert stored.weight == 2
        assert uow.queues.get("batch") is not None


def test_nodes_are_inserted_then_updated_by_upsert(store: SqlStore) -> None:
    gpus = tuple(Gpu(index=i, uuid=f"GPU-{i}", model="NVIDIA H100 80GB HBM3", memory=80 * 2**30) for i in range(8))
    node = Node(
        name="gpu-01",
        cpus=224,
        memory=2 * 2**40,  # past 2**31 and 2**32
        gpus=gpus,
        backend="local",
        labels={"rack": "r1", "zone": "a"},
        last_seen=T0,
    )
    with store.unit_of_work() as uow:
        uow.nodes.upsert(node)
        uow.nodes.upsert(Node(name="cpu-01", cpus=0.5, memory=0))
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.nodes.get("gpu-01") == node
        assert [n.name for n in uow.nodes.list()] == ["cpu-01", "gpu-01"]

    drained = node.model_copy(update={"state": NodeState.DRAINED, "gpus": gpus[:4], "labels": {}, "last_seen": at(60)})
    with store.unit_of_work() as uow:
        uow.nodes.upsert(drained)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.nodes.get("gpu-01") == drained
        assert len(uow.nodes.list()) == 2
        assert uow.nodes.get("nope") is None


def test_tokens_are_added_found_by_prefix_and_counted(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        assert uow.tokens.count() == 0
        admin = uow.tokens.add(name="bootstrap", user="admin", prefix="aidc_ab12", token_hash="h1", now=T0)
        viewer = uow.tokens.add(
            name="ci", user="ci", prefix="aidc_cd34", token_hash="h2", now=at(1), scopes=["job.read"], expires_at=at(60)
        )
        uow.commit()
    assert viewer.id != admin.id
    assert (admin.name, admin.user, admin.created_at, admin.revoked, admin.scopes) == (
        "bootstrap",
        "admin",
        T0,
        False,
        None,
    )
    with store.unit_of_work() as uow:
        assert uow.tokens.find_by_prefix("aidc_cd34") == [viewer]
        assert uow.tokens.find_by_prefix("nope") == []
        assert uow.tokens.count() == 2
        assert uow.tokens.list("ci") == [viewer]
        assert viewer.scopes == ("job.read",)
        assert viewer.expires_at == at(60)
        uow.tokens.revoke(admin.id)
        uow.tokens.touch(viewer.id, at(5), ["10.0.0.1"])
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.tokens.get(admin.id).revoked  # type: ignore[union-attr]
        touched = uow.tokens.get(viewer.id)
        assert touched is not None
        assert (touched.last_used_at, touched.clients) == (at(5), ("10.0.0.1",))


def test_a_token_hash_is_unique(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        uow.tokens.add(name="a", user="a", prefix="p", token_hash="same", now=T0)
        with pytest.raises(Conflict, match="same hash"):
            uow.tokens.add(name="b", user="b", prefix="p", token_hash="same", now=T0)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.tokens.count() == 1
