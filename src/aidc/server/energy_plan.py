"""Energy accounting as the server runs it: the site's prices and carbon intensity from the cluster file,
the meter on the telemetry thread (leader only), and the report service."""

from __future__ import annotations

from pathlib import Path

from aidc.control.power_cap_sync import PowerCapSync
from aidc.control.power_caps import PowerCaps
from aidc.domain.cluster import ClusterSpec
from aidc.domain.errors import FieldProblem, InvalidInput
from aidc.domain.power import PowerSpec
from aidc.energy.prices import CarbonFileError, Pricing, parse_carbon_csv
from aidc.ports import Clock, Store
from aidc.services.authz import Guard
from aidc.services.energy import EnergyService
from aidc.services.energy_meter import EnergyMeter
from aidc.services.power_caps import StoreCapRecorder
from aidc.services.telemetry import TelemetryService
from aidc.settings import Settings
from aidc.telemetry.collectors.power_limits import DryRunPowerLimits, PowerLimits, open_power_limits


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


def build_power_caps(
    power: PowerSpec,
    store: Store,
    clock: Clock,
    telemetry: TelemetryService,
    local_node: str | None,
    settings: Settings,
) -> PowerCaps:
    """Caps kept in step with the open attempts on the telemetry thread (leader only). Only this host's GPUs
    (the local backend's node) are capped for real, through NVML; elsewhere, or without NVML, a dry run."""
    limits: PowerLimits = (
        open_power_limits()
        if local_node is not None
        else DryRunPowerLimits("this control plane runs no jobs itself (an engine's nodes)")
    )

    def gpu_models(node: str) -> dict[int, str] | None:
        with store.unit_of_work(read_only=True) as uow:
            found = uow.nodes.get(node)
        return None if found is None else {g.index: g.model for g in found.gpus}

    caps = PowerCaps(
        power, local_node=local_node or "", limits=limits, recorder=StoreCapRecorder(store), gpu_models=gpu_models,
        clock=clock,
    )  # fmt: skip
    sync = PowerCapSync(caps, store)
    telemetry.add_periodic("power caps", settings.metrics_interval, sync.tick, list)
    return caps
