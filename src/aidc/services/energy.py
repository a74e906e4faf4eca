"""Energy reports: energy, cost and carbon per job, attempt, user, team, queue or node over a period, from
what the energy meter stored (`services.energy_meter`).

Who sees what follows the jobs: a cluster reader sees every team and the nodes' unallocated energy; a
team member sees their teams' jobs only (no unallocated energy, no other team's rows)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime

from aidc.domain.energy import ByEnergy, EnergyTotal
from aidc.domain.site_energy import EnergySpec
from aidc.ports import Clock, Store
from aidc.security.rbac import Action, Principal
from aidc.services.authz import Guard


@dataclass(frozen=True)
class EnergyReport:
    by: ByEnergy
    since: datetime
    until: datetime
    pue: float
    currency: str
    priced: bool  # a price or tariff is configured (else costs are null)
    carbon: bool  # a carbon intensity is configured (else carbon is null)
    rows: list[EnergyTotal]
    total: EnergyTotal
    hourly: list[tuple[datetime, str | None, float]]  # (hour, key, facility kWh)


HOURLY_KEYS = 8  # groups given hour by hour; the rest are summed as OTHER (a plot shows no more)
OTHER = "(other)"  # no user, team, queue or node name has parentheses


def _top_hourly(
    hourly: builtins.list[tuple[datetime, str | None, float]], top: builtins.list[str | None]
) -> builtins.list[tuple[datetime, str | None, float]]:
    """Each hour's figure for the `top` groups, and one more for all the others together: a report by job
    over a month must not send every job's every hour."""
    kept = set(top)
    out: dict[tuple[datetime, str | None], float] = {}
    for hour, key, kwh in hourly:
        slot = (hour, key if key in kept else OTHER)
        out[slot] = out.get(slot, 0.0) + kwh
    return [(hour, key, kwh) for (hour, key), kwh in out.items()]


def _sum(rows: builtins.list[EnergyTotal]) -> EnergyTotal:
    def add(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    firsts = [r.first for r in rows if r.first is not None]
    lasts = [r.last for r in rows if r.last is not None]
    return EnergyTotal(
        key="total",
        gpu_kwh=sum(r.gpu_kwh for r in rows),
        cpu_kwh=sum(r.cpu_kwh for r in rows),
        it_kwh=sum(r.it_kwh for r in rows),
        facility_kwh=sum(r.facility_kwh for r in rows),
        estimated_kwh=sum(r.estimated_kwh for r in rows),
        gpu_hours=sum(r.gpu_hours for r in rows),
        cost=add([r.cost for r in rows]),
        carbon_kg=add([r.carbon_kg for r in rows]),
        first=min(firsts) if firsts else None,
        last=max(lasts) if lasts else None,
    )


class EnergyService:
    def __init__(self, store: Store, clock: Clock, guard: Guard, spec: EnergySpec, priced: bool, carbon: bool) -> None:
        self._store = store
        self._clock = clock
        self._guard = guard
        self._spec = spec
        self._priced = priced
        self._carbon = carbon

    def now(self) -> datetime:
        return self._clock.now()

    @property
    def currency(self) -> str:
        return self._spec.currency

    @property
    def pue(self) -> float:
        return self._spec.pue

    def report(
        self, principal: Principal, by: ByEnergy, since: datetime, until: datetime | None = None
    ) -> EnergyReport:
        teams = self._guard.check_anywhere(principal, Action.JOB_READ, target="energy")
        visible = None if teams is None else sorted(teams)
        with self._store.unit_of_work(read_only=True) as uow:
            rows = uow.energy.totals(by, since, until, teams=visible)
            hourly = uow.energy.hourly(by, since, teams=visible)
        if until is not None:
            hourly = [h for h in hourly if h[0] < until]
        hourly = _top_hourly(hourly, [r.key for r in rows[:HOURLY_KEYS]])
        return EnergyReport(
            by=by,
            since=since,
            until=until or self._clock.now(),
            pue=self._spec.pue,
            currency=self._spec.currency,
            priced=self._priced,
            carbon=self._carbon,
            rows=rows,
            total=_sum(rows),
            hourly=hourly,
        )

    def of_job(self, job_id: int, since: datetime) -> builtins.list[EnergyTotal]:
        """A job's energy per attempt. The caller has checked that the principal may read the job."""
        with self._store.unit_of_work(read_only=True) as uow:
            return uow.energy.totals("attempt", since, job_id=job_id)
