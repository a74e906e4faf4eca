"""Energy accounting as the server runs it: the site's prices and carbon intensity from the cluster file,
the meter on the telemetry thread (leader only), and the report service."""

from __future__ import annotations

from pathlib import Path

from aidc.domain.cluster import ClusterSpec
from aidc.domain.errors import FieldProblem, InvalidInput
from aidc.energy.prices import CarbonFileError, Pricing, parse_carbon_csv
from aidc.ports import Clock, Store
from aidc.services.authz import Guard
from aidc.services.energy import EnergyService
from aidc.services.energy_meter import EnergyMeter
from aidc.services.telemetry import TelemetryService


def load_pricing(cluster: ClusterSpec, cluster_file: Path | None) -> Pricing:
    """The site's pricing; a carbon file's path is relative to the cluster file. Raises InvalidInput."""
    spec = cluster.energy
    carbon: list[tuple[float, float]] = []
    if spec.carbon_file is not None:
        path = spec.carbon_file
        if not path.is_absolute() and cluster_file is not None:
            path = cluster_file.parent / path
        try:
            carbon = parse_carbon_csv(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidInput([FieldProblem("energy.carbon_file", f"cannot read {path}: {exc.strerror}")]) from None
        except CarbonFileError as exc:
            raise InvalidInput([FieldProblem("energy.carbon_file", f"{path}: {exc}")]) from None
    return Pricing(spec, carbon)


def build_energy(
    cluster: ClusterSpec,
    pricing: Pricing,
    store: Store,
    clock: Clock,
    guard: Guard,
    telemetry: TelemetryService,
    every: float,
) -> EnergyService:
    meter = EnergyMeter(store, clock, telemetry.tsdb, cluster.energy, pricing, cluster.power)
    telemetry.add_periodic("energy accounting", every, meter.tick, meter.families)
    return EnergyService(store, clock, guard, cluster.energy, pricing.has_price, pricing.has_carbon)
