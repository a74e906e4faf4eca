"""Every loader on the real trace files: counts, totals and how fields map, checked against the files'
own figures (../shared/traces/README.md) and against rows read by hand."""

from __future__ import annotations

import collections

import pytest

from aidc.domain.resources import Resources
from aidc.sim.traces import TraceError, load_trace, pollux, trace_names
from aidc.sim.workload import Trace

from .trace_files import needs_traces

GiB, MiB = 2**30, 2**20

pytestmark = needs_traces


@pytest.fixture(scope="module")
def openb() -> Trace:
    return load_trace("openb")


@pytest.fixture(scope="module")
def dlrm() -> Trace:
    return load_trace("dlrm")


def test_names() -> None:
    assert trace_names() == [
        "openb",
        "openb-gpushare100",
        "openb-multigpu50",
        "dlrm",
        *(f"pollux-{i}" for i in range(1, 9)),
        "tiresias",
    ]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(TraceError, match=r"unknown trace 'x'; known: openb, openb-gpushare100, .*tiresias"):
        load_trace("x")


@pytest.mark.parametrize("name", trace_names())
def test_every_job_is_a_valid_scheduler_request(name: str) -> None:
    trace = load_trace(name)
    assert trace.jobs
    assert trace.source
    for job in trace.jobs:
        assert isinstance(job.resources(), Resources)
    # In order of submission, ids unique.
    assert [(j.submit_time, j.id) for j in trace.jobs] == sorted((j.submit_time, j.id) for j in trace.jobs)
    assert len({j.id for j in trace.jobs}) == len(trace.jobs)


def test_openb_pods(openb: Trace) -> None:
    assert len(openb.jobs) == 8152
    by_id = {j.id: j for j in openb.jobs}
    # openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0
    first = by_id[0]
    assert (first.name, first.cpus, first.memory, first.num_gpus, first.gpu_milli) == (
        "openb-pod-0000",
        12.0,
        16 * GiB,
        1,
        1000,
    )
    assert (first.submit_time, first.duration, first.job_class, first.gpu_type) == (0, 12537496, "LS", None)
    # openb-pod-0001,6000,12288,1,460,,LS,Running,427061,12902960,427061: a share of one GPU.
    assert (by_id[1].gpu_milli, by_id[1].submit_time, by_id[1].duration) == (460, 427061, 12902960 - 427061)
    classes = collections.Counter(j.job_class for j in openb.jobs)
    assert classes == {"LS": 4647, "BE": 3398, "Burstable": 100, "Guaranteed": 7}
    cpu_only = [j for j in openb.jobs if j.num_gpus == 0]
    assert len(cpu_only) == 1088
    assert all(j.gpu_milli == 1000 and j.gpu_type is None for j in cpu_only)
    assert collections.Counter(j.num_gpus for j in openb.jobs if j.num_gpus > 1) == {8: 44, 2: 16, 4: 15}
    assert openb.gpu_demand == pytest.approx(6086.8)
    assert all(j.duration is not None and j.duration >= 0 for j in openb.jobs)


def test_openb_pending_pods_count_from_creation(openb: Trace) -> None:
    # Pods never scheduled (Pending when the trace was taken) have no scheduled_time: deletion - creation.
    # openb-pod-0061,11908,47104,1,1000,,BE,Pending,10001278,10001403,
    pod = next(j for j in openb.jobs if j.name == "openb-pod-0061")
    assert (pod.id, pod.cpus, pod.submit_time, pod.duration) == (61, 11.908, 10001278, 10001403 - 10001278)


def test_openb_nodes(openb: Trace) -> None:
    assert openb.nodes is not None
    assert len(openb.nodes) == 1523
    assert sum(len(n.gpus) for n in openb.nodes) == 6212
    assert sum(1 for n in openb.nodes if n.gpus) == 1213
    models = collections.Counter(g.model for n in openb.nodes for g in n.gpus)
    assert set(models) == {"G2", "T4", "P100", "V100M16", "V100M32", "G3", "A10"}
    node = openb.nodes[0]  # openb-node-0000,32000,262144,0,
    assert (node.name, node.cpus, node.memory, node.gpus) == ("openb-node-0000", 32.0, 256 * GiB, ())


def test_openb_variants() -> None:
    share = load_trace("openb-gpushare100")
    assert len(share.jobs) == 8152
    assert all(j.num_gpus <= 1 for j in share.jobs)
    assert sum(1 for j in share.jobs if j.num_gpus == 1 and j.gpu_milli < 1000) == 7064
    multi = load_trace("openb-multigpu50")
    assert len(multi.jobs) == 9061
    # No times in that file: every pod arrives at 0 and never ends.
    assert all(j.submit_time == 0 and j.duration is None for j in multi.jobs)
    assert collections.Counter(j.num_gpus for j in multi.jobs if j.num_gpus > 1) == {8: 556, 2: 222, 4: 206}


def test_dlrm(dlrm: Trace) -> None:
    assert len(dlrm.jobs) == 23871
    assert dlrm.nodes is None
    roles = collections.Counter((j.job_class, j.num_gpus) for j in dlrm.jobs)
    assert roles == {("CN", 0): 16485, ("HN", 1): 7386}
    # Outside the window: created before it (submit 0), or still running at its end (no duration).
    assert sum(1 for j in dlrm.jobs if j.duration is None) == 8878
    assert sum(1 for j in dlrm.jobs if j.submit_time == 0) == 7280
    # instance_0,HN,app_0,12,12,1,1,25,25,120.0,...,8,,,
    first = next(j for j in dlrm.jobs if j.id == 0)
    assert (first.user, first.job_class, first.cpus, first.num_gpus, first.memory) == ("app_0", "HN", 12, 1, 120 * GiB)
    assert (first.max_per_node, first.submit_time, first.duration) == (8, 0, None)
    assert len({j.user for j in dlrm.jobs}) == 156
    assert sum(1 for j in dlrm.jobs if j.max_per_node is None) == 12248


def test_dlrm_density_cap_is_per_deployment(dlrm: Trace) -> None:
    caps: dict[str, set[int | None]] = collections.defaultdict(set)
    for job in dlrm.jobs:
        caps[job.name].add(job.max_per_node)
    assert all(len(c) == 1 for c in caps.values())
    # app_0's CPU instances come with a cap of 2 and without one: two deployments.
    assert {"app_0-CN-max2", "app_0-CN-nomax", "app_0-HN"} <= set(caps)


def test_dlrm_times(dlrm: Trace) -> None:
    timed = [(j.submit_time, j.duration) for j in dlrm.jobs if j.submit_time > 0 and j.duration is not None]
    assert len(timed) == 12390
    assert all(submit + duration <= 31 * 86400 for submit, duration in timed)


@pytest.mark.parametrize("number", range(1, 9))
def test_pollux_workloads(number: int) -> None:
    trace = load_trace(f"pollux-{number}")
    assert len(trace.jobs) == 160
    assert all(0 <= j.submit_time < 8 * 3600 for j in trace.jobs)
    for job in trace.jobs:
        assert job.num_gpus <= pollux.GPUS_PER_NODE
        assert job.duration is not None
        assert job.duration > 0


def test_pollux_every_configuration_has_the_artifacts_run_time() -> None:
    seen = set()
    for number in range(1, 9):
        for job in load_trace(f"pollux-{number}").jobs:
            gpus = job.num_gpus * job.num_nodes
            matches = [k for k in pollux.RUN_TIME if k[0] == job.job_class and k[1] == gpus]
            assert matches, (job.name, gpus)
            assert job.duration in {pollux.RUN_TIME[k] for k in matches}
            seen.update(matches)
    assert seen == set(pollux.RUN_TIME)


def test_pollux_first_job() -> None:
    # cifar10-0,107,cifar10,6,2048: 6 replicas on 4-GPU nodes are 2 nodes x 3.
    job = load_trace("pollux-1").jobs[0]
    assert (job.name, job.submit_time, job.job_class) == ("cifar10-0", 107, "cifar10")
    assert (job.num_nodes, job.num_gpus, job.duration) == (2, 3, pollux.RUN_TIME[("cifar10", 6, 2048)])


def test_tiresias() -> None:
    trace = load_trace("tiresias")
    assert len(trace.jobs) == 60
    by_id = {j.id: j for j in trace.jobs}
    # 1,8,30,133,vgg11,147,23: 8 GPUs on 4-GPU nodes.
    assert (by_id[1].num_nodes, by_id[1].num_gpus, by_id[1].submit_time, by_id[1].duration) == (2, 4, 30, 147)
    assert by_id[0].job_class == "vgg19"
    assert sum(j.total_gpus for j in trace.jobs) == 170
