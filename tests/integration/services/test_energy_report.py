"""Energy reports as each role sees them (a real SQLite store): cluster readers see every team and the nodes'
unallocated energy; a team member sees their team's jobs only; hour-by-hour figures keep the largest groups
and sum the rest as "(other)"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aidc.domain.energy import J_PER_KWH, EnergyRecord
from aidc.domain.site_energy import EnergySpec
from aidc.security.rbac import Role
from aidc.services.energy import HOURLY_KEYS, OTHER, EnergyService
from aidc.store.sql_store import SqlStore
from tests.fixtures.clock import FakeClock
from tests.fixtures.identity import guard_and_audit, principal


@pytest.fixture
def service(store: SqlStore) -> EnergyService:
    clock = FakeClock()
    hour = clock.now().replace(minute=0) - timedelta(hours=1)
    records = [
        EnergyRecord(hour=hour, node="n1", job_id=j, attempt=1, user=f"u{j}", queue="q", team="ml" if j < 3 else "cv",
                     gpu_j_measured=j * J_PER_KWH, facility_j=j * J_PER_KWH)
        for j in range(1, 13)
    ]  # fmt: skip
    records.append(
        EnergyRecord(hour=hour, node="n1", job_id=0, attempt=0, gpu_j_estimated=J_PER_KWH, facility_j=J_PER_KWH)
    )
    with store.unit_of_work() as uow:
        uow.energy.add(records)
        uow.commit()
    guard, _ = guard_and_audit(store, clock)
    return EnergyService(store, clock, guard, EnergySpec(), priced=False, carbon=False)


def test_a_cluster_reader_sees_every_team_and_the_unallocated_energy(service: EnergyService) -> None:
    since = service.now() - timedelta(days=1)
    report = service.report(principal("op", Role.VIEWER), "team", since)
    assert [(r.key, round(r.facility_kwh)) for r in report.rows] == [("cv", 75), ("ml", 3), (None, 1)]
    assert report.total.facility_kwh == pytest.approx(79)
    assert report.total.estimated_kwh == pytest.approx(1)


def test_a_member_sees_their_teams_jobs_only(service: EnergyService) -> None:
    since = service.now() - timedelta(days=1)
    report = service.report(principal("u1", Role.MEMBER, team="ml"), "job", since)
    assert [r.key for r in report.rows] == ["2", "1"]
    assert report.total.facility_kwh == pytest.approx(3)


def test_hour_by_hour_keeps_the_largest_groups_and_sums_the_rest(service: EnergyService) -> None:
    report = service.report(principal("op", Role.VIEWER), "job", service.now() - timedelta(days=1))
    keys = {key for _, key, _ in report.hourly}
    assert keys == {r.key for r in report.rows[:HOURLY_KEYS]} | {OTHER}
    assert sum(kwh for _, _, kwh in report.hourly) == pytest.approx(report.total.facility_kwh)
