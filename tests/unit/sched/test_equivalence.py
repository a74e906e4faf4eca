"""The indexed scheduler against the brute-force reference on random snapshots, and determinism.

A seeded random loop draws the snapshots: small clusters (CPU-only, single-model and mixed-model
nodes, some DRAINED or DOWN), running work that may over-commit a node, hold a share of a GPU or sit on
a node that left, quotas, backoff, unknown queues, and requests (whole GPUs or a share of one) drawn
from a small pool so the same shape comes back after resources shrank (what the shape cache skips).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from aidc.domain.decisions import Decision, NodeAssignment, Placement, Start, Wait
from aidc.domain.nodes import Node, NodeState
from aidc.domain.resources import Resources
from aidc.sched.capacity import Request
from aidc.sched.cycle import PolicyScheduler
from aidc.sched.reference import ReferenceScheduler
from aidc.sched.snapshot import Allocation, PendingJob, Snapshot

from .factories import NOW, GiB, alloc, job, node, queue, snapshot

MODELS = ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L40S", "NVIDIA A10")
ASKED = (None, "H100", "A100", "L40S", "A10", "a100-80gb")
SHARES = (0.25, 0.5, 0.75, 0.3)
SEEDS = range(400)


def random_nodes(rng: random.Random) -> list[Node]:
    nodes = []
    for i in range(rng.randint(0, 24)):
        roll = rng.random()
        if roll < 0.2:
            models: list[str] = []
        elif roll < 0.3:
            models = [rng.choice(MODELS) for _ in range(rng.randint(1, 4))]
        else:
            models = [rng.choice(MODELS)] * rng.choice((1, 2, 4, 8))
        state = rng.choices(list(NodeState), weights=(8, 1, 1, 1, 1, 1))[0]
        cpus = rng.choice((4, 8, 16, 32.5))
        memory = rng.choice((16, 64, 256)) * GiB
        nodes.append(node(f"n{i:02d}", models=models, cpus=cpus, memory=memory, state=state))
    return nodes


def random_running(rng: random.Random, nodes: list[Node]) -> list[Allocation]:
    running = []
    for i, n in enumerate(nodes):
        if rng.random() < 0.5:
            held = sorted(rng.sample([g.index for g in n.gpus], rng.randint(0, len(n.gpus))))
            on = {n.name: held}
            if rng.random() < 0.2:
                on["gone"] = [0]
            running.append(
                alloc(
                    1000 + i,
                    on,
                    cpus=rng.choice((0.5, 2, 8, 40)),
                    memory=rng.choice((1, 8, 64)) * GiB,
                    queue=rng.choice(("default", "q1", "q2")),
                )
            )
        for k in range(rng.choice((0, 0, 1, 3))):  # shares of single GPUs, which may pile up on one GPU
            if n.gpus:
                share = Resources(gpus=rng.choice(SHARES), cpus=0.5, memory=GiB)
                gpu = rng.choice(n.gpus).index
                placement = Placement(assignments=(NodeAssignment(node=n.name, gpus=(gpu,)),))
                running.append(
                    Allocation(job_id=5000 + 10 * i + k, queue="default", resources=share, placement=placement)
                )
    return running


def random_jobs(rng: random.Random) -> list[PendingJob]:
    shapes: list[tuple[Resources, int]] = []
    for _ in range(rng.randint(1, 8)):
        gpus: float = rng.choice((0, 0, 1, 2, 4, 8, *SHARES))
        res = Resources(
            gpus=gpus,
            gpu_type=rng.choice(ASKED) if gpus else None,
            cpus=rng.choice((0.5, 1, 4, 10)),
            memory=rng.choice((1, 16, 100)) * GiB,
        )
        shapes.append((res, rng.choice((1, 1, 1, 2, 3))))
    jobs = []
    for job_id in rng.sample(range(1, 1000), rng.randint(0, 60)):
        res, num_nodes = rng.choice(shapes)
        backoff = NOW + timedelta(seconds=rng.randint(-30, 30)) if rng.random() < 0.1 else None
        pending = job(
            job_id,
            priority=rng.choice((0, 0, 1, 5)),
            submitted=rng.randint(0, 5),
            queue=rng.choices(("default", "q1", "q2", "missing"), weights=(6, 2, 2, 1))[0],
            not_before=backoff,
        )
        jobs.append(replace(pending, resources=res, num_nodes=num_nodes))
    return jobs


def random_snapshot(seed: int) -> Snapshot:
    rng = random.Random(seed)
    nodes = random_nodes(rng)
    queues = [
        queue("default"),
        queue("q1", gpus=rng.choice((None, 0, 4, 16))),
        queue("q2", cpus=rng.choice((None, 8, 40)), memory=rng.choice((None, 100 * GiB))),
    ]
    return snapshot(nodes, random_jobs(rng), random_running(rng, nodes), queues)


def test_indexed_scheduler_matches_the_reference_on_random_snapshots() -> None:
    repeated_failures = shares_started = 0
    for seed in SEEDS:
        snap = random_snapshot(seed)
        fast = PolicyScheduler().schedule(snap, NOW)
        slow = ReferenceScheduler().schedule(snap, NOW)
        assert fast == slow, f"seed {seed}"
        repeated_failures += _repeated_unfit_shapes(snap, fast)
        shares = {j.id for j in snap.pending if j.resources.gpu_milli < 1000}
        shares_started += sum(1 for d in fast if isinstance(d, Start) and d.job_id in shares)
    # The loop must exercise the shape cache (shapes that failed and came back in the same cycle) and
    # place shares of GPUs.
    assert repeated_failures > 100
    assert shares_started > 200


def _repeated_unfit_shapes(snap: Snapshot, decisions: list[Decision]) -> int:
    jobs = {j.id: j for j in snap.pending}
    seen: set[Request] = set()
    repeated = 0
    for d in decisions:
        if isinstance(d, Wait) and d.reason.startswith("needs"):
            shape = Request.of(jobs[d.job_id].resources, jobs[d.job_id].num_nodes)
            repeated += shape in seen
            seen.add(shape)
    return repeated


def test_same_snapshot_same_decisions_whatever_the_input_order() -> None:
    for seed in range(50):
        snap = random_snapshot(seed)
        first = PolicyScheduler().schedule(snap, NOW)
        assert PolicyScheduler().schedule(snap, NOW) == first
        rng = random.Random(seed)
        shuffled = Snapshot(
            nodes=tuple(rng.sample(snap.nodes, len(snap.nodes))),
            pending=tuple(rng.sample(snap.pending, len(snap.pending))),
            running=tuple(rng.sample(snap.running, len(snap.running))),
            queues=snap.queues,
        )
        assert PolicyScheduler().schedule(shuffled, NOW) == first, f"seed {seed}"


def test_a_scheduler_instance_keeps_nothing_between_cycles() -> None:
    sched = PolicyScheduler()
    a, b = random_snapshot(1), random_snapshot(2)
    expected_b = PolicyScheduler().schedule(b, NOW)
    sched.schedule(a, NOW)
    assert sched.schedule(b, NOW) == expected_b
