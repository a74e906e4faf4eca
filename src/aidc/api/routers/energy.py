from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from aidc.api.deps import JobId, PrincipalDep, ServicesDep
from aidc.api.energy_schemas import EnergyHourOut, EnergyReportOut, EnergyRowOut, JobEnergyOut
from aidc.api.responses import errors
from aidc.domain.energy import EnergyTotal
from aidc.domain.errors import FieldProblem, InvalidInput
from aidc.domain.units import parse_duration

router = APIRouter(tags=["energy"])
MAX_SINCE = "3660d"  # ten years: further back is a typo


def row_out(t: EnergyTotal) -> EnergyRowOut:
    return EnergyRowOut(
        key=t.key,
        gpu_kwh=t.gpu_kwh,
        cpu_kwh=t.cpu_kwh,
        it_kwh=t.it_kwh,
        facility_kwh=t.facility_kwh,
        estimated_kwh=t.estimated_kwh,
        estimate=t.estimated_kwh > 0,
        gpu_hours=t.gpu_hours,
        cost=t.cost,
        carbon_kg=t.carbon_kg,
        first=t.first,
        last=t.last,
    )


def _seconds(field: str, text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise InvalidInput([FieldProblem(field, str(exc))]) from None
    if seconds > parse_duration(MAX_SINCE):
        raise InvalidInput([FieldProblem(field, f"{text!r} is more than ten years")])
    return seconds


@router.get(
    "/v1/energy",
    response_model=EnergyReportOut,
    responses=errors(),
    summary="Energy, cost and carbon per job, user, team, queue or node",
)
def report(
    services: ServicesDep,
    principal: PrincipalDep,
    by: Literal["job", "user", "team", "queue", "node"] = "team",
    since: Annotated[str, Query(description='How far back: a duration such as "24h" or "30d"')] = "30d",
) -> EnergyReportOut:
    """Energy accounted per hour, summed over the period, most facility energy first, with each hour's figure
    for plots. Rows whose energy is partly a model's estimate say so (`estimate`)."""
    start = services.energy.now() - timedelta(seconds=_seconds("since", since))
    r = services.energy.report(principal, by, start)
    return EnergyReportOut(
        by=r.by,
        since=r.since,
        until=r.until,
        pue=r.pue,
        currency=r.currency,
        priced=r.priced,
        carbon=r.carbon,
        rows=[row_out(t) for t in r.rows],
        total=row_out(r.total),
        hourly=[EnergyHourOut(hour=h, key=k, facility_kwh=kwh) for h, k, kwh in r.hourly],
    )


@router.get(
    "/v1/jobs/{job_id}/energy",
    response_model=JobEnergyOut,
    responses=errors(404),
    summary="A job's energy, cost and carbon per attempt",
)
def of_job(job_id: JobId, services: ServicesDep, principal: PrincipalDep) -> JobEnergyOut:
    """One row per attempt that has used energy (key: the attempt number)."""
    detail = services.jobs.get(principal, job_id)  # 404 for a job the caller may not see
    rows = services.energy.of_job(job_id, detail.job.submitted_at - timedelta(hours=1))
    return JobEnergyOut(currency=services.energy.currency, pue=services.energy.pue, attempts=[row_out(t) for t in rows])
