"""The SLO of a capacity search: its syntax, the errors that name what is wrong, which way the search goes,
and the metrics read from a run."""

from __future__ import annotations

import re

import pytest

from aidc.plan.capacity_slo import METRICS, Slo, metric_names, metric_value, parse_slo
from aidc.sim.engine import Simulator
from aidc.sim.synthetic import synthetic_cluster
from aidc.sim.workload import TraceJob


@pytest.mark.parametrize(
    ("text", "metric", "op", "value"),
    [
        ("p95_queue_wait<1h", "p95_queue_wait", "<", 3600.0),
        ("  mean_jct <= 90m ", "mean_jct", "<=", 5400.0),
        ("p99_queue_wait<90s", "p99_queue_wait", "<", 90.0),
        ("makespan<=2h30m", "makespan", "<=", 9000.0),
        ("P50_QUEUE_WAIT<600", "p50_queue_wait", "<", 600.0),
        ("utilization>=0.6", "utilization", ">=", 0.6),
        ("utilization > 60%", "utilization", ">", 0.6),
        ("utilization<0.9", "utilization", "<", 0.9),
    ],
)
def test_parse(text: str, metric: str, op: str, value: float) -> None:
    slo = parse_slo(text)
    assert (slo.metric, slo.op) == (metric, op)
    assert slo.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("p95_queue_wait", "expected METRIC OP VALUE"),
        ("p95_queue_wait=1h", "expected METRIC OP VALUE"),
        ("p95_wait<1h", "unknown metric 'p95_wait'; metrics: mean_queue_wait"),
        ("p95_queue_wait<soon", "p95_queue_wait: cannot read 'soon' as a duration"),
        ("p95_queue_wait>1h", "use < or <="),
        ("p95_queue_wait<0", "can never be met"),
        ("utilization>=1.5", "must be within 0..1"),
        ("utilization>=lots", "is not a share"),
        ("", "expected METRIC OP VALUE"),
    ],
)
def test_bad_slo_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_slo(text)


def test_an_unknown_metric_lists_every_metric() -> None:
    with pytest.raises(ValueError, match="metrics:") as err:
        parse_slo("latency<1s")
    for name in metric_names():
        assert name in str(err.value)


def test_an_upper_bound_grows_the_cluster_and_a_floor_shrinks_it() -> None:
    assert parse_slo("p95_queue_wait<1h").grows
    assert parse_slo("utilization<=0.9").grows
    assert not parse_slo("utilization>=0.6").grows
    assert not parse_slo("utilization>0.6").grows


@pytest.mark.parametrize(
    ("op", "at", "met"),
    [("<", 10.0, False), ("<", 9.9, True), ("<=", 10.0, True), (">=", 10.0, True), (">", 10.0, False)],
)
def test_met_compares_with_the_operator(op: str, at: float, met: bool) -> None:
    assert Slo("utilization", op, 10.0).met(at) is met


def test_str_reads_back_as_the_same_slo() -> None:
    for text in ("p95_queue_wait<1h30m", "mean_jct<=45s", "utilization>=0.65"):
        slo = parse_slo(text)
        assert parse_slo(str(slo)) == slo


def _job(i: int, submit: float, duration: float) -> TraceJob:
    return TraceJob(i, submit, duration, 8, 1000, None, 8.0, 2**30)


def test_metrics_of_a_run_one_node_three_jobs_back_to_back() -> None:
    # One 8-GPU node; three whole-node jobs arrive at 0, 0 and 100 s and run 1,000 s each, one at a time.
    jobs = [_job(0, 0, 1000), _job(1, 0, 1000), _job(2, 100, 1000)]
    result = Simulator(jobs, synthetic_cluster(8)).run()
    waits = [0.0, 1000.0, 1900.0]  # starts at 0, 1000, 2000
    jcts = [1000.0, 2000.0, 2900.0]
    assert metric_value("mean_queue_wait", result) == pytest.approx(sum(waits) / 3)
    assert metric_value("p50_queue_wait", result) == 1000.0
    assert metric_value("p95_queue_wait", result) == 1900.0
    assert metric_value("max_queue_wait", result) == 1900.0
    assert metric_value("mean_jct", result) == pytest.approx(sum(jcts) / 3)
    assert metric_value("p99_jct", result) == 2900.0
    assert metric_value("makespan", result) == 3000.0
    assert metric_value("utilization", result) == pytest.approx(1.0)  # the node is never idle
    assert set(METRICS) == set(metric_names())
