"""Queue quotas and cohorts (Kueue semantics): nominal quota, borrowing and lending limits, the cohort
pool, per-model GPU quotas, fractions of a GPU, and the reasons `aidc show` prints."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidc.domain.queues import Queue, Quota
from aidc.sched.capacity import Request
from aidc.sched.quota import CohortLedger, ResourceStanding

from .factories import GiB, alloc

H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"


def req(gpus: int = 0, *, cpus: float = 0, memory: int = 0, num_nodes: int = 1, gpu_type: str | None = None) -> Request:
    return Request(gpus, gpu_type, round(cpus * 1000), memory, num_nodes)


def fractional(milli: int) -> Any:
    """A request for `milli` thousandths of one GPU (`Request.gpu_milli`, or a stand-in until it exists)."""
    if "gpu_milli" in Request._fields:
        return Request(1, None, 0, 0, 1, gpu_milli=milli)  # type: ignore[call-arg]
    return SimpleNamespace(gpus=1, gpu_type=None, cpus_m=0, memory=0, num_nodes=1, gpu_milli=milli)


def cq(
    name: str,
    gpus: float | None = None,
    *,
    cohort: str | None = None,
    borrow: float | None = None,
    lend: float | None = None,
    **quota: Any,
) -> Queue:
    return Queue(
        name=name,
        quota=Quota(gpus=gpus, **quota),
        cohort=cohort,
        borrowing_limit=Quota(gpus=borrow) if borrow is not None else None,
        lending_limit=Quota(gpus=lend) if lend is not None else None,
    )


def ledger(*queues: Queue, running: Any = ()) -> CohortLedger:
    return CohortLedger({q.name: q for q in queues}, running, lambda a: H100 if a.resources.gpus else None)


# ---------------------------------------------------------------- without a cohort


def test_unknown_queue() -> None:
    assert ledger(cq("a", 4)).check("nope", req(1), None) == "queue nope does not exist"


def test_queue_without_quota_is_never_limited() -> None:
    book = ledger(Queue(name="open"))
    book.charge("open", req(10_000, cpus=1e6, memory=2**50), H100)
    assert book.check("open", req(8), H100) is None
    assert book.within_nominal("open", req(8), H100)


def test_gpu_quota_counts_running_work_times_its_nodes() -> None:
    running = [alloc(100, {"n1": [0, 1], "n2": [0, 1]}, queue="gpu-team")]
    book = ledger(cq("gpu-team", 4), running=running)
    assert book.check("gpu-team", req(2), H100) == "queue gpu-team quota: 4 of 4 GPUs in use, job needs 2"
    assert book.used("gpu-team") == 4000


def test_charges_count_and_release_gives_back() -> None:
    book = ledger(cq("q", 4))
    assert book.check("q", req(2, num_nodes=2), H100) is None
    book.charge("q", req(2, num_nodes=2), H100)
    assert book.check("q", req(1), H100) == "queue q quota: 4 of 4 GPUs in use, job needs 1"
    book.release(alloc(1, {"n1": [0, 1], "n2": [0, 1]}, queue="q", cpus=0.001, memory=0), H100)
    assert book.check("q", req(4), H100) is None


def test_cpu_and_memory_reasons() -> None:
    book = ledger(cq("cpu", cpus=8), cq("mem", memory=32 * GiB))
    book.charge("cpu", req(cpus=6), None)
    book.charge("mem", req(memory=24 * GiB), None)
    assert book.check("cpu", req(cpus=3), None) == "queue cpu quota: 6 of 8 CPUs in use, job needs 3"
    assert book.check("cpu", req(cpus=2), None) is None
    assert book.check("mem", req(memory=16 * GiB), None) == (
        "queue mem quota: 24GiB of 32GiB memory in use, job needs 16GiB"
    )


def test_zero_need_is_never_refused_even_over_quota() -> None:
    running = [alloc(1, {"n1": [0, 1, 2]}, queue="q")]  # quota lowered below what runs
    book = ledger(cq("q", 2), running=running)
    assert book.check("q", req(0, cpus=1), None) is None
    assert book.check("q", req(1), H100) == "queue q quota: 3 of 2 GPUs in use, job needs 1"
    assert not book.borrowing("q")  # no cohort: over quota, but borrowing nothing


def test_fractional_gpus_count_as_fractions() -> None:
    book = ledger(cq("q", 1))
    for _ in range(3):
        assert book.check("q", fractional(250), H100) is None
        book.charge("q", fractional(250), H100)
    assert book.check("q", fractional(500), H100) == "queue q quota: 0.75 of 1 GPUs in use, job needs 0.5"
    assert book.check("q", fractional(250), H100) is None


def test_gpu_model_quota_matches_model_names() -> None:
    book = ledger(Queue(name="q", quota=Quota(gpus=16, gpu_models={"H100": 2})))
    book.charge("q", req(2), H100)
    assert book.check("q", req(1), H100) == "queue q quota: 2 of 2 H100 GPUs in use, job needs 1"
    assert book.check("q", req(4), A100) is None  # another model: only the total counts
    assert book.check("q", req(1), None) is None  # model not known yet: the model quota cannot be judged
    assert book.check("q", req(1, gpu_type="H100"), None) is not None  # the requested type stands in
    standing = book.standing()["q"]
    assert standing.get("gpus:H100") == ResourceStanding("gpus:H100", 2, 2, 0, 0)


def test_reason_names_the_first_resource_over_quota() -> None:
    book = ledger(cq("q", 1, cpus=1))
    assert book.check("q", req(2, cpus=2), H100) == "queue q quota: 0 of 1 GPUs in use, job needs 2"


# ---------------------------------------------------------------- cohorts


def test_borrowing_unused_quota_of_the_cohort() -> None:
    book = ledger(cq("a", 4, cohort="lab"), cq("b", 4, cohort="lab"))
    assert book.check("a", req(8), H100) is None
    book.charge("a", req(8), H100)
    assert book.borrowing("a")
    assert not book.borrowing("b")
    assert not book.within_nominal("a", req(1), H100)
    assert book.within_nominal("b", req(4), H100)
    assert book.check("a", req(1), H100) == (
        "queue a quota: 8 of 4 GPUs in use, job needs 1; cohort lab has 0 GPUs to lend"
    )
    # b's own quota is lent out: it is within nominal, but must wait (or reclaim)
    assert book.check("b", req(1), H100) == (
        "queue b quota: 0 of 4 GPUs in use, job needs 1; cohort lab has lent 4 of its 4 unused GPUs to other queues"
    )


def test_borrowing_limit() -> None:
    book = ledger(cq("a", 4, cohort="lab", borrow=2), cq("b", 8, cohort="lab"))
    assert book.check("a", req(7), H100) == (
        "queue a quota: 0 of 4 GPUs in use, job needs 7; it may borrow at most 2 GPUs above its quota"
    )
    book.charge("a", req(6), H100)
    assert book.check("a", req(1), H100) == (
        "queue a: borrowing limit reached (2 GPUs above its quota of 4, at most 2 allowed), job needs 1"
    )


def test_lending_limit_keeps_a_guaranteed_part() -> None:
    book = ledger(cq("a", 4, cohort="lab"), cq("b", 8, cohort="lab", lend=2))
    assert book.check("a", req(6), H100) is None  # 4 own + 2 lent by b
    assert book.check("a", req(7), H100) == (
        "queue a quota: 0 of 4 GPUs in use, job needs 7; cohort lab has 2 GPUs to lend"
    )
    book.charge("a", req(6), H100)
    assert book.check("a", req(1), H100) == (
        "queue a quota: 6 of 4 GPUs in use, job needs 1; cohort lab has 0 GPUs to lend"
    )
    assert book.check("b", req(6), H100) is None  # b's guaranteed 6 are never lent
    book.charge("b", req(6), H100)
    assert book.check("b", req(1), H100) is not None  # its lendable 2 are in use by a


def test_queue_in_cohort_with_unlimited_resource_takes_no_part_in_its_pool() -> None:
    book = ledger(cq("a", 4, cohort="lab"), Queue(name="free", cohort="lab"))
    book.charge("free", req(100), H100)
    assert book.check("a", req(4), H100) is None  # free neither lends nor borrows GPUs
    assert book.check("free", req(100), H100) is None


def test_cohorts_do_not_mix() -> None:
    book = ledger(cq("a", 4, cohort="x"), cq("b", 4, cohort="y"))
    assert (
        book.check("a", req(5), H100) == "queue a quota: 0 of 4 GPUs in use, job needs 5; cohort x has 0 GPUs to lend"
    )


def test_to_lend_counts_what_others_do_not_use() -> None:
    book = ledger(cq("a", 4, cohort="lab"), cq("b", 4, cohort="lab"), cq("c", 4, cohort="lab"))
    book.charge("b", req(3), H100)
    assert book.check("a", req(10), H100) == (
        "queue a quota: 0 of 4 GPUs in use, job needs 10; cohort lab has 5 GPUs to lend"
    )
    assert book.check("a", req(9), H100) is None


def test_standing_reports_borrowed_and_lent() -> None:
    book = ledger(cq("a", 4, cohort="lab"), cq("b", 4, cohort="lab"), cq("c", 8, cohort="lab"), Queue(name="solo"))
    book.charge("a", req(10), H100)  # borrows 6 of the 12 unused by b (4) and c (8)
    standing = book.standing()
    assert list(standing) == ["a", "b", "c", "solo"]
    assert standing["a"].get("gpus") == ResourceStanding("gpus", 4, 10, 6, 0)
    assert standing["b"].get("gpus") == ResourceStanding("gpus", 4, 0, 0, 2)
    assert standing["c"].get("gpus") == ResourceStanding("gpus", 8, 0, 0, 4)
    assert standing["a"].borrowing
    assert not standing["b"].borrowing
    assert standing["solo"].cohort is None
    assert standing["solo"].get("gpus") == ResourceStanding("gpus", None, 0, 0, 0)
    assert standing["a"].get("cpus") == ResourceStanding("cpus", None, 0, 0, 0)


def test_running_work_of_an_unconfigured_queue_is_shown_but_not_limited() -> None:
    book = ledger(cq("a", 1), running=[alloc(1, {"n1": [0]}, queue="gone")])
    assert book.standing()["gone"].get("gpus") == ResourceStanding("gpus", None, 1, 0, 0)
    assert book.check("gone", req(1), H100) == "queue gone does not exist"


def test_copy_is_independent() -> None:
    book = ledger(cq("a", 4, cohort="lab"), cq("b", 4, cohort="lab"))
    twin = copy.deepcopy(book)
    twin.charge("a", req(8), H100)
    assert twin.check("b", req(1), H100) is not None
    assert book.check("b", req(1), H100) is None
    assert book.check("a", req(8), H100) is None


def test_uncharge_undoes_a_charge() -> None:
    book = ledger(cq("a", 4, cohort="lab"), cq("b", 4, cohort="lab"))
    book.charge("a", req(8), H100)
    book.uncharge("a", req(8), H100)
    assert book.check("b", req(4), H100) is None
    assert not book.borrowing("a")


@pytest.mark.parametrize(("gpus", "expected"), [(0.5, "0.5"), (16, "16"), (0.125, "0.125")])
def test_gpu_amounts_read_naturally(gpus: float, expected: str) -> None:
    book = ledger(cq("q", gpus))
    assert book.check("q", req(20), H100) == f"queue q quota: 0 of {expected} GPUs in use, job needs 20"


# ---------------------------------------------------------------- properties

MODELS = {"H100": H100, "A100": A100}


def _amount(q: Quota | None, key: str) -> int | None:
    """A quota's amount in exact units, written independently of the ledger."""
    if q is None:
        return None
    value = {"gpus": q.gpus, "cpus": q.cpus}.get(key, q.gpu_models.get(key.removeprefix("gpus:")))
    return None if value is None else round(value * 1000)


def _keys(q: Queue) -> list[str]:
    return ["gpus", "cpus", *(f"gpus:{m}" for m in q.quota.gpu_models)]


def _used(q: Queue, live: list[tuple[str, Any, str | None]]) -> dict[str, int]:
    used = dict.fromkeys(_keys(q), 0)
    for name, r, model in live:
        if name != q.name:
            continue
        gpus_m = r.gpus * r.gpu_milli * r.num_nodes
        used["gpus"] += gpus_m
        used["cpus"] += r.cpus_m * r.num_nodes
        for m in q.quota.gpu_models:
            if model is not None and r.gpus and MODELS[m] == model:
                used[f"gpus:{m}"] += gpus_m
    return used


def _violations(queues: list[Queue], live: list[tuple[str, Any, str | None]]) -> list[str]:
    """Every broken rule: a queue over nominal (no cohort) or over nominal + borrowing limit, or a cohort
    whose queues use more beyond their guaranteed parts than they lend."""
    broken: list[str] = []
    over: dict[tuple[str, str], int] = {}
    lendable: dict[tuple[str, str], int] = {}
    for q in queues:
        used = _used(q, live)
        for key in _keys(q):
            nominal = _amount(q.quota, key)
            if nominal is None:
                continue
            if q.cohort is None:
                if used[key] > nominal:
                    broken.append(f"{q.name} {key} over nominal")
                continue
            borrow = _amount(q.borrowing_limit, key)
            if borrow is not None and used[key] > nominal + borrow:
                broken.append(f"{q.name} {key} over borrowing limit")
            lending = _amount(q.lending_limit, key)
            lend = nominal if lending is None else min(nominal, lending)
            pool = (q.cohort, key)
            over[pool] = over.get(pool, 0) + max(0, used[key] - (nominal - lend))
            lendable[pool] = lendable.get(pool, 0) + lend
    broken.extend(f"cohort {c} {key} lends more than it has" for (c, key), v in over.items() if v > lendable[c, key])
    return broken


def _limit(draw: Any, cohort: str | None) -> Quota | None:
    if cohort is None or not draw(st.booleans()):
        return None
    return Quota(
        gpus=draw(st.none() | st.integers(0, 6)),
        cpus=draw(st.none() | st.integers(0, 6)),
        gpu_models=draw(st.dictionaries(st.sampled_from(sorted(MODELS)), st.integers(0, 3), max_size=2)),
    )


@st.composite
def _queues(draw: Any) -> list[Queue]:
    out = []
    for i in range(draw(st.integers(1, 5))):
        cohort = draw(st.sampled_from([None, "x", "x", "y"]))
        quota = Quota(
            gpus=draw(st.none() | st.integers(0, 8) | st.sampled_from([0.5, 1.25])),
            cpus=draw(st.none() | st.integers(0, 8)),
            gpu_models=draw(st.dictionaries(st.sampled_from(sorted(MODELS)), st.integers(0, 4), max_size=2)),
        )
        out.append(
            Queue(
                name=f"q{i}",
                quota=quota,
                cohort=cohort,
                borrowing_limit=_limit(draw, cohort),
                lending_limit=_limit(draw, cohort),
            )
        )
    return out


_job = st.tuples(
    st.integers(0, 4),  # queue index (modulo the number of queues)
    st.sampled_from([(0, 1000), (1, 250), (1, 500), (1, 1000), (2, 1000), (4, 1000)]),  # (gpus, milli)
    st.integers(0, 3),  # nodes - 1
    st.integers(0, 4000),  # CPU milli-cores
    st.sampled_from([H100, A100, None]),
)
_starts = st.tuples(st.just("start"), _job)
_ops = st.lists(st.one_of(_starts, _starts, st.tuples(st.just("end"), st.integers(0, 50))), max_size=60)


@given(queues=_queues(), ops=_ops)
@settings(max_examples=200, deadline=None)
def test_quotas_hold_except_within_declared_borrowing(queues: list[Queue], ops: list[tuple[str, Any]]) -> None:
    """After any sequence of check-then-charge and of ends, every queue stays within its quota (plus its
    borrowing limit in a cohort) and every cohort lends no more than its queues allow; and `check`
    refuses exactly the starts that would break a rule."""
    book = CohortLedger({q.name: q for q in queues})
    live: list[tuple[str, Any, str | None]] = []
    for kind, arg in ops:
        if kind == "end":
            if live:
                name, r, model = live.pop(arg % len(live))
                book.uncharge(name, r, model)
            continue
        qi, (gpus, milli), extra_nodes, cpus_m, model = arg
        name = queues[qi % len(queues)].name
        r = SimpleNamespace(
            gpus=gpus, gpu_type=None, cpus_m=cpus_m, memory=0, num_nodes=extra_nodes + 1, gpu_milli=milli
        )
        why = book.check(name, r, model)
        allowed = not _violations(queues, [*live, (name, r, model)])
        assert (why is None) == allowed, why
        if why is None:
            book.charge(name, r, model)
            live.append((name, r, model))
        assert not _violations(queues, live)
    standing = book.standing()
    for q in queues:
        used = _used(q, live)
        assert standing[q.name].get("gpus") is not None
        assert round(standing[q.name].resources[0].used * 1000) == used["gpus"]


@given(queues=_queues(), ops=_ops)
@settings(max_examples=100, deadline=None)
def test_lent_never_exceeds_what_is_borrowed(queues: list[Queue], ops: list[tuple[str, Any]]) -> None:
    book = CohortLedger({q.name: q for q in queues})
    for kind, arg in ops:
        if kind != "start":
            continue
        qi, (gpus, milli), extra_nodes, cpus_m, model = arg
        name = queues[qi % len(queues)].name
        r = SimpleNamespace(
            gpus=gpus, gpu_type=None, cpus_m=cpus_m, memory=0, num_nodes=extra_nodes + 1, gpu_milli=milli
        )
        if book.check(name, r, model) is None:
            book.charge(name, r, model)
    standing = book.standing()
    for cohort in ("x", "y"):
        members = [s for s in standing.values() if s.cohort == cohort]
        for resource in ("gpus", "cpus"):
            rows = [row for s in members if (row := s.get(resource)) is not None]
            assert sum(r.lent for r in rows) <= sum(r.borrowed for r in rows) + 1e-9
            for row in rows:
                assert row.lent == 0 or row.nominal is not None
                assert row.used >= 0
