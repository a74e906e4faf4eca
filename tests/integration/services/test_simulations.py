"""The simulations service with its real worker process (a real SQLite store for the audit log): a small
synthetic comparison runs to the end and leaves its files; a run that cannot load its trace records why; a
full queue is refused; runs that a stop or a restart cut off are interrupted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from aidc.control.clock import SystemClock
from aidc.domain.errors import InvalidInput, NotFound, PermissionDenied, TooManyRequests
from aidc.security.rbac import Role
from aidc.services.simulation_request import SimulationRequest, TraceInfo
from aidc.services.simulations import FAILED, INTERRUPTED, SUCCEEDED, Simulation, SimulationService
from aidc.store.sql_store import SqlStore
from tests.fixtures.identity import guard_and_audit, principal

SMALL = SimulationRequest(trace="synthetic:jobs=200,gpus=32,seed=3", policies=("fifo", "sjf"))
MEMBER = principal("mia", Role.MEMBER, team="ml")
VIEWER = principal("vic", Role.VIEWER, team="ml")
# A trace this site lists but cannot load: the worker fails on it after the request was accepted.
GHOST = {"ghost": TraceInfo("ghost", 10, "nowhere", own_nodes=True, default_cluster=None)}


def service(store: SqlStore, data_dir: Path, **kwargs: object) -> SimulationService:
    guard, audit = guard_and_audit(store, SystemClock())
    return SimulationService(data_dir, SystemClock(), guard, audit, **kwargs)  # type: ignore[arg-type]


def wait_for(svc: SimulationService, run_id: str, timeout: float = 120.0) -> Simulation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = svc.get(MEMBER, run_id)
        if run.state in (SUCCEEDED, FAILED, INTERRUPTED):
            return run
        time.sleep(0.1)
    raise AssertionError(f"simulation {run_id} still {svc.get(MEMBER, run_id).state} after {timeout} s")


def test_a_small_comparison_runs_in_the_worker_and_writes_its_files(store: SqlStore, tmp_path: Path) -> None:
    svc = service(store, tmp_path)
    try:
        run = svc.start(MEMBER, SMALL)
        assert run.request.cluster == "synthetic:gpus=32"  # the synthetic trace's own size, filled in
        done = wait_for(svc, run.id)
        assert done.state == SUCCEEDED, done.error
        assert done.progress == 1.0
        assert [row["policy"] for row in done.rows or []] == ["fifo", "sjf"]
        assert all(row["jobs"] == 200 for row in done.rows or [])
        folder = tmp_path / "simulations" / run.id
        for name in ("request.json", "status.json", "report.md", "metrics.json", *done.plots):
            assert (folder / name).is_file(), name
        assert json.loads((folder / "status.json").read_text())["state"] == SUCCEEDED
        assert json.loads((folder / "metrics.json").read_text()) == done.rows
        assert "| sjf |" in svc.report(VIEWER, run.id)  # every reader may read it
        assert set(done.plots) == {"allocation.png", "jct_cdf.png"}
        assert svc.plot(VIEWER, run.id, "jct_cdf.png").read_bytes().startswith(b"\x89PNG")
        with pytest.raises(NotFound):
            svc.plot(VIEWER, run.id, "../status.json")
        assert [r.id for r in svc.runs(VIEWER)] == [run.id]
    finally:
        svc.stop()


def test_a_run_that_fails_in_the_worker_records_its_error(store: SqlStore, tmp_path: Path) -> None:
    svc = service(store, tmp_path, catalog=lambda: GHOST)
    try:
        run = svc.start(MEMBER, SimulationRequest(trace="ghost", policies=("fifo",)))
        done = wait_for(svc, run.id)
        assert done.state == FAILED
        assert done.error is not None
        assert "ghost" in done.error
        with pytest.raises(NotFound):
            svc.report(MEMBER, run.id)
    finally:
        svc.stop()


def test_a_full_queue_is_refused(store: SqlStore, tmp_path: Path) -> None:
    svc = service(store, tmp_path, max_waiting=1)
    big = SimulationRequest(trace="synthetic:jobs=20000,gpus=512")  # seconds of work: still going below
    try:
        svc.start(MEMBER, big)
        svc.start(MEMBER, big)
        with pytest.raises(TooManyRequests, match="queue is full"):
            svc.start(MEMBER, SMALL)
    finally:
        svc.stop()
    assert {r.state for r in svc.runs(MEMBER)} == {INTERRUPTED}  # stopping cut both off


def test_runs_a_restart_cut_off_become_interrupted(store: SqlStore, tmp_path: Path) -> None:
    first = service(store, tmp_path)
    try:
        run = first.start(MEMBER, SimulationRequest(trace="synthetic:jobs=20000,gpus=512"))
        # A second control plane on the same data dir, as after a crash: the run it finds was cut off.
        second = service(store, tmp_path)
        found = second.get(MEMBER, run.id)
        assert found.state == INTERRUPTED
        assert found.error is not None
        assert "stopped before" in found.error
        assert found.request == run.request
    finally:
        first.stop()


def test_starting_needs_job_submit_and_the_request_is_checked(store: SqlStore, tmp_path: Path) -> None:
    svc = service(store, tmp_path)
    with pytest.raises(PermissionDenied):
        svc.start(VIEWER, SMALL)
    with pytest.raises(InvalidInput) as bad:
        svc.start(MEMBER, SimulationRequest(trace="synthetic:jobs=200,gpus=32", policies=("lottery",)))
    assert bad.value.problems[0].field == "policies"
    assert svc.runs(MEMBER) == []
