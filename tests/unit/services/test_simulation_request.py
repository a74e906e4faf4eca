"""Checking a simulation request before it is queued: defaults filled in (cluster, policies, jobs), and each
bad field refused with its name: unknown traces, clusters and policies, paths, and sizes past the limits."""

from __future__ import annotations

import pytest

from aidc.domain.errors import InvalidInput
from aidc.services.simulation_request import MAX_GPUS, MAX_JOBS, SimulationRequest, TraceInfo, validate
from aidc.sim.compare import all_policies

TRACES = {
    "own": TraceInfo("own", 500, "credit", own_nodes=True, default_cluster=None),
    "pollux-1": TraceInfo("pollux-1", 160, "credit", own_nodes=False, default_cluster="pollux"),
    "huge": TraceInfo("huge", MAX_JOBS * 3, "credit", own_nodes=True, default_cluster=None),
    "bare": TraceInfo("bare", 10, "credit", own_nodes=False, default_cluster=None),
}
CLUSTERS = ["pollux", "philly"]


def check(**fields: object) -> SimulationRequest:
    return validate(SimulationRequest(**fields), TRACES, CLUSTERS)  # type: ignore[arg-type]


def field_of(**fields: object) -> str:
    with pytest.raises(InvalidInput) as refused:
        check(**fields)
    return refused.value.problems[0].field


def test_defaults_are_filled_in() -> None:
    checked = check(trace="own")
    assert checked.cluster is None  # the trace's own nodes
    assert list(checked.policies) == all_policies()
    assert checked.jobs == 500


def test_a_trace_without_nodes_gets_its_default_cluster_or_must_name_one() -> None:
    assert check(trace="pollux-1").cluster == "pollux"
    assert check(trace="pollux-1", cluster="philly").cluster == "philly"
    assert field_of(trace="bare") == "cluster"


def test_a_synthetic_trace_runs_on_a_synthetic_cluster_of_its_size() -> None:
    checked = check(trace="synthetic:jobs=300,gpus=64,load=0.5", policies=("sjf", "fifo", "sjf"))
    assert checked.cluster == "synthetic:gpus=64"
    assert checked.policies == ("sjf", "fifo")  # repeats dropped, order kept
    assert checked.jobs == 300


def test_the_job_count_is_capped_for_a_shared_control_plane() -> None:
    assert check(trace="huge").jobs == MAX_JOBS
    assert check(trace="own", jobs=20).jobs == 20
    assert check(trace="own", jobs=MAX_JOBS).jobs == 500  # no more than the trace has
    assert field_of(trace="own", jobs=MAX_JOBS + 1) == "jobs"
    assert field_of(trace="own", jobs=0) == "jobs"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trace": "lottery"}, "trace"),
        ({"trace": "/etc/passwd"}, "trace"),
        ({"trace": "synthetic:jobs=10"}, "trace"),  # no gpus
        ({"trace": f"synthetic:jobs={MAX_JOBS + 1},gpus=8"}, "trace"),
        ({"trace": f"synthetic:jobs=10,gpus={MAX_GPUS + 1}"}, "trace"),
        ({"trace": "synthetic:jobs=10,gpus=8,colour=red"}, "trace"),
        ({"trace": "synthetic:jobs=10,gpus=8,load=0"}, "trace"),
        ({"trace": "own", "cluster": "../cluster.yaml"}, "cluster"),
        ({"trace": "own", "cluster": f"synthetic:gpus={MAX_GPUS + 1}"}, "cluster"),
        ({"trace": "own", "policies": ("fifo", "lottery")}, "policies"),
        ({"trace": "own", "placement": "magic"}, "placement"),
        ({"trace": "own", "seed": -1}, "seed"),
        ({"trace": "x" * 300}, "trace"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, object], field: str) -> None:
    assert field_of(**fields) == field


def test_the_request_survives_its_json_form() -> None:
    checked = check(trace="synthetic:jobs=300,gpus=64", policies=("fifo",), backfill=True, seed=7)
    assert SimulationRequest.from_dict(checked.to_dict()) == checked
