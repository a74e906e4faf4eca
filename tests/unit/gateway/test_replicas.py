"""The pool: membership, readiness views and the gateway's own bookkeeping of each request."""

from __future__ import annotations

import pytest

from aidc.gateway.health import BreakerState, HealthConfig
from aidc.gateway.replicas import Pool, Replica, ewma

from .factories import MODEL, NOW, pool, replica


def test_add_keeps_replicas_sorted_and_update_keeps_stats() -> None:
    p = pool("c", "a", "b")
    assert [r.id for r in p.replicas()] == ["a", "b", "c"]
    p.start("b", NOW)
    p.add(replica("b", ready=False))
    assert p.stats("b").in_flight == 1
    assert p.get("b") == replica("b", ready=False)
    assert [r.id for r in p.ready()] == ["a", "c"]


def test_remove_and_unknown() -> None:
    p = pool("a", "b")
    assert p.remove("a")
    assert not p.remove("a")
    assert "a" not in p
    assert len(p) == 1
    assert p.membership() == (("b", 1.0),)


def test_wrong_model_and_bad_weight_refused() -> None:
    with pytest.raises(ValueError, match="serves other"):
        Pool(MODEL).add(replica("a", model="other"))
    with pytest.raises(ValueError, match="weight"):
        Replica("a", MODEL, "http://a", weight=0)


def test_ready_needs_both_control_plane_and_active_check() -> None:
    p = pool("a", "b", "c")
    p.add(replica("a", ready=False))
    p.breaker("b").mark_ready(False)
    assert [r.id for r in p.ready()] == ["c"]
    assert [r.id for r in p.available(NOW)] == ["c"]


def test_available_excludes_tried() -> None:
    p = pool("a", "b", "c")
    assert [r.id for r in p.available(NOW, {"a", "c"})] == ["b"]


def test_bookkeeping_of_a_success() -> None:
    p = pool("a")
    d = p.start("a", NOW)
    assert p.stats("a").in_flight == 1
    p.first_byte(d, NOW + 0.2)
    p.finish(d, NOW + 1.0, ok=True)
    s = p.stats("a")
    assert (s.in_flight, s.requests, s.errors) == (0, 1, 0)
    assert s.ttft == pytest.approx(0.2)
    assert s.latency == pytest.approx(1.0)


def test_failures_count_errors_but_never_feed_latency() -> None:
    p = pool("a")
    d = p.start("a", NOW)
    p.finish(d, NOW + 0.001, ok=False)
    assert p.stats("a").errors == 1
    assert p.stats("a").latency is None
    d = p.start("a", NOW)
    p.finish(d, NOW + 0.5, ok=None)  # the client went away: no verdict, no sample
    assert p.stats("a").latency is None
    assert p.stats("a").errors == 1
    assert p.stats("a").in_flight == 0


def test_ewma_weights_new_samples_by_alpha() -> None:
    assert ewma(None, 4.0, 0.5) == 4.0
    assert ewma(4.0, 2.0, 0.5) == pytest.approx(3.0)
    assert ewma(4.0, 2.0, 0.25) == pytest.approx(3.5)
    p = Pool(MODEL, alpha=0.5)
    p.add(replica("a"))
    for seconds in (4.0, 2.0):
        d = p.start("a", NOW)
        p.finish(d, NOW + seconds, ok=True)
    assert p.stats("a").latency == pytest.approx(3.0)
    with pytest.raises(ValueError, match="alpha"):
        Pool(MODEL, alpha=0)


def test_request_finishing_after_its_replica_was_replaced_leaves_the_new_one_alone() -> None:
    p = pool("a")
    d = p.start("a", NOW)
    p.remove("a")
    p.add(replica("a"))
    p.start("a", NOW)
    p.finish(d, NOW + 1, ok=False)
    assert p.stats("a").in_flight == 1
    assert p.stats("a").errors == 0


def test_failures_through_the_pool_eject_and_a_cancelled_probe_frees_the_slot() -> None:
    p = pool("a", health=HealthConfig(failure_threshold=2, base_ejection=5))
    for _ in range(2):
        p.finish(p.start("a", NOW), NOW, ok=False)
    assert p.available(NOW + 4.9) == []
    probe = p.start("a", NOW + 5)
    assert p.available(NOW + 5) == []
    p.finish(probe, NOW + 6, ok=None)
    assert [r.id for r in p.available(NOW + 6)] == ["a"]
    p.finish(p.start("a", NOW + 6), NOW + 7, ok=True)
    assert p.breaker("a").state(NOW + 7) is BreakerState.CLOSED
