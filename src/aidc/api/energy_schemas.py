"""Wire schemas of energy reports (the client shares them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class EnergyRowOut(BaseModel):
    key: str | None = Field(description="The job, attempt, user, team, queue or node; null: unallocated (no job)")
    gpu_kwh: float
    cpu_kwh: float
    it_kwh: float = Field(description="GPUs + CPUs")
    facility_kwh: float = Field(description="IT energy x PUE")
    estimated_kwh: float = Field(description="The part of it_kwh that is a model's estimate, not a measurement")
    estimate: bool = Field(description="true when any of it is an estimate")
    gpu_hours: float
    cost: float | None = Field(description="Facility energy x the price in force then; null: no price configured")
    carbon_kg: float | None = Field(description="kg CO2e: facility energy x grid intensity; null: none configured")
    first: datetime | None = Field(default=None, description="Start of the first hour with energy")
    last: datetime | None = Field(default=None, description="Start of the last hour with energy")


class EnergyHourOut(BaseModel):
    hour: datetime
    key: str | None = Field(description='One of the 8 largest groups, "(other)" for the rest, null: unallocated')
    facility_kwh: float


class EnergyReportOut(BaseModel):
    by: str
    since: datetime
    until: datetime
    pue: float
    currency: str
    priced: bool = Field(description="false: no price or tariff is configured, costs are null")
    carbon: bool = Field(description="false: no grid intensity is configured, carbon is null")
    rows: list[EnergyRowOut]
    total: EnergyRowOut
    hourly: list[EnergyHourOut]


class JobEnergyOut(BaseModel):
    currency: str
    pue: float
    attempts: list[EnergyRowOut] = Field(description="One row per attempt that has used energy (key: its number)")
