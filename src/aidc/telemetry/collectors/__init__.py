"""Collectors of this host's telemetry (node, GPUs, jobs) and the sampler that runs them on one thread."""

from aidc.telemetry.collectors.base import Collector, Sampler, Sink
from aidc.telemetry.collectors.gpu import GpuCollector
from aidc.telemetry.collectors.gpu_reading import GpuReading, XidState, families_from_readings
from aidc.telemetry.collectors.jobs import JobCollector, RunningAttempt
from aidc.telemetry.collectors.node import NodeCollector
from aidc.telemetry.collectors.power_limits import DryRunPowerLimits, NvmlPowerLimits, PowerLimits, open_power_limits
from aidc.telemetry.collectors.rapl import RaplCollector

__all__ = [
    "Collector",
    "DryRunPowerLimits",
    "GpuCollector",
    "GpuReading",
    "JobCollector",
    "NodeCollector",
    "NvmlPowerLimits",
    "PowerLimits",
    "RaplCollector",
    "RunningAttempt",
    "Sampler",
    "Sink",
    "XidState",
    "families_from_readings",
    "open_power_limits",
]
