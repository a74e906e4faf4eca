"""Reading squeue/sinfo/sacct JSON: the shapes of Slurm 22.05 (seen on this machine's slurm-wlm 22.05.8) and of
23.02 and later (states as lists, numbers as set/number objects, structured exit codes)."""

from __future__ import annotations

from typing import Any

import pytest

from aidc.backends.slurm.parsing import (
    ExitStatus,
    SlurmJsonError,
    errors,
    exit_status,
    gpus_of,
    number,
    parse_jobs,
    parse_nodes,
    states,
)

META_2205 = {"plugin": {"type": "openapi/v0.0.38"}, "Slurm": {"release": "22.05.8"}}


def _job_2205(**fields: Any) -> dict[str, Any]:
    job = {
        "job_id": 7,
        "name": "aidc-12-1",
        "job_state": "RUNNING",
        "exit_code": 0,
        "start_time": 1795533593,
        "end_time": 1795537193,
        "state_reason": "None",
        "nodes": "vm",
        "batch_host": "vm",
        "partition": "debug",
    }
    return job | fields


def _set(value: int) -> dict[str, Any]:
    return {"set": True, "infinite": False, "number": value}


def test_a_2205_squeue_answer() -> None:
    doc = {
        "meta": META_2205,
        "errors": [],
        "jobs": [
            _job_2205(),
            _job_2205(job_id=8, name="aidc-13-2", job_state="FAILED", exit_code=768, state_reason="NonZeroExitCode"),
            _job_2205(job_id=9, job_state="PENDING", nodes="", state_reason="Resources", start_time=0, end_time=0),
        ],
    }
    running, failed, pending = parse_jobs(doc)
    assert (running.job_id, running.name, running.state, running.finished, running.started) == (
        7,
        "aidc-12-1",
        "RUNNING",
        False,
        True,
    )
    assert failed.finished
    assert failed.exit == ExitStatus(3, None)
    assert failed.reason == "NonZeroExitCode"
    assert (pending.state, pending.started, pending.start_time) == ("PENDING", False, None)


def test_a_newer_squeue_answer_with_lists_and_number_objects() -> None:
    doc = {
        "meta": {"plugin": {"type": "openapi/slurmctld"}, "slurm": {"release": "23.11.4"}},
        "errors": [],
        "warnings": [],
        "jobs": [
            {
                "job_id": 41,
                "name": "aidc-5-3",
                "job_state": ["CANCELLED"],
                "exit_code": {
                    "status": ["SIGNALED"],
                    "return_code": _set(0),
                    "signal": {"id": _set(9), "name": "KILL"},
                },
                "start_time": _set(1700000000),
                "end_time": _set(1700000100),
                "state_reason": "None",
                "nodes": "gpu[1-2]",
            },
            {
                "job_id": 42,
                "name": "aidc-5-4",
                "job_state": ["COMPLETED", "COMPLETING"],
                "exit_code": {"status": ["SUCCESS"], "return_code": _set(0), "signal": {"id": {"set": False}}},
                "start_time": _set(1700000000),
                "end_time": {"set": False, "infinite": False, "number": 0},
                "nodes": "gpu1",
            },
        ],
    }
    killed, completing = parse_jobs(doc)
    assert killed.exit == ExitStatus(137, 9)
    assert killed.finished
    assert (killed.start_time, killed.end_time) == (1700000000, 1700000100)
    assert completing.states == ("COMPLETED", "COMPLETING")
    assert not completing.finished  # Slurm still cleaning up: resources held
    assert completing.exit == ExitStatus(0, None)
    assert completing.end_time is None


def test_a_sacct_answer_with_nested_state_and_times() -> None:
    doc = {
        "meta": META_2205,
        "errors": [],
        "jobs": [
            {
                "job_id": 77,
                "name": "aidc-3-1",
                "state": {"current": "TIMEOUT", "reason": "None"},
                "exit_code": {"status": "SIGNALED", "signal": {"signal_id": 15, "name": "TERM"}},
                "time": {"start": 1700000000, "end": 1700003600},
                "nodes": "vm",
            },
            {
                "job_id": 78,
                "name": "aidc-3-2",
                "state": {"current": "CANCELLED", "reason": "None"},
                "exit_code": {"status": "SUCCESS", "return_code": 0},
                "time": {"start": 1700000000, "end": 1700000000},
                "nodes": "None assigned",
            },
        ],
    }
    timed_out, never_ran = parse_jobs(doc)
    assert (timed_out.state, timed_out.exit, timed_out.end_time) == ("TIMEOUT", ExitStatus(143, 15), 1700003600)
    assert not never_ran.started


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0, ExitStatus(0, None)),
        (768, ExitStatus(3, None)),
        (9, ExitStatus(137, 9)),
        (15, ExitStatus(143, 15)),
        (None, None),
        ({"status": "FAILED", "return_code": 2}, ExitStatus(2, None)),
        ({"status": ["SIGNALED"], "signal": {"name": "KILL"}}, ExitStatus(137, 9)),
        ({"return_code": {"set": False}}, None),
    ],
)
def test_exit_status(status: Any, expected: ExitStatus | None) -> None:
    assert exit_status(status) == expected


def test_numbers_and_states() -> None:
    assert number(3) == 3
    assert number(_set(5)) == 5
    assert number({"set": True, "infinite": True, "number": 0}) is None
    assert number({"set": False, "number": 4}) is None
    assert number(True) is None
    assert states("RUNNING") == ("RUNNING",)
    assert states(["IDLE", "DRAIN"]) == ("IDLE", "DRAIN")
    assert states("idle+drain") == ("IDLE", "DRAIN")
    assert states(None) == ()


def test_nodes_from_sinfo_of_2205_and_newer() -> None:
    old = {
        "meta": META_2205,
        "errors": [],
        "nodes": [
            {
                "name": "vm",
                "hostname": "vm",
                "cpus": 2,
                "real_memory": 8000,
                "gres": "gpu:fake:2",
                "state": "mixed",
                "state_flags": ["DRAIN"],
                "partitions": ["debug"],
                "reason": "testing",
            }
        ],
    }
    new = {
        "nodes": [
            {
                "name": "gpu1",
                "cpus": 64,
                "real_memory": 512000,
                "gres": "gpu:h100:8(S:0-1)",
                "state": ["IDLE", "DRAIN"],
                "partitions": ["gpu", "all"],
                "reason": {"description": "bad dimm"},
            }
        ]
    }
    [vm] = parse_nodes(old)
    assert (vm.name, vm.cpus, vm.memory_mb, vm.gres, vm.states, vm.partitions, vm.reason) == (
        "vm",
        2,
        8000,
        "gpu:fake:2",
        ("MIXED", "DRAIN"),
        ("debug",),
        "testing",
    )
    [gpu1] = parse_nodes(new)
    assert (gpu1.states, gpu1.partitions, gpu1.reason) == (("IDLE", "DRAIN"), ("gpu", "all"), "bad dimm")


@pytest.mark.parametrize(
    ("gres", "gpus"),
    [
        ("gpu:fake:2", [("fake", 2)]),
        ("gpu:2", [(None, 2)]),
        ("gpu:a100:4(S:0-1),gpu:v100:2(S:0,1),nic:1", [("a100", 4), ("v100", 2)]),
        ("gpu:fake:2(IDX:0-1)", [("fake", 2)]),
        ("gpu:t4", [("t4", 1)]),
        ("", []),
        ("(null)", []),
    ],
)
def test_gpus_of_a_gres(gres: str, gpus: list[tuple[str | None, int]]) -> None:
    assert gpus_of(gres) == gpus


def test_errors_are_collected_and_a_missing_list_is_refused() -> None:
    doc = {"errors": [{"error": "Invalid user", "error_number": 2}, "plain"], "jobs": None}
    assert errors(doc) == ["Invalid user", "plain"]
    with pytest.raises(SlurmJsonError, match="no 'jobs' in the output: Invalid user; plain"):
        parse_jobs(doc)
    with pytest.raises(SlurmJsonError, match="job_id"):
        parse_jobs({"jobs": [{"name": "x"}]})
    with pytest.raises(SlurmJsonError, match="JSON object"):
        parse_nodes([])
