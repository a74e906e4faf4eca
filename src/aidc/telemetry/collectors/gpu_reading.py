"""One GPU's NVML values as plain data, and the pure step from those values to dcgm-exporter's series.

Units follow dcgm-exporter, so its dashboards and alert rules work unchanged: framebuffer in MiB, power in W,
energy in mJ, clocks in MHz, temperatures in C, utilizations in %. A value NVML could not give is None and
its series is left out for that GPU (not reported as 0)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from aidc.telemetry import names
from aidc.telemetry.names import SeriesName
from aidc.telemetry.series import Family

MiB = 2**20
XID_WINDOW_S = 300.0  # DCGM_FI_DEV_XID_ERRORS shows the last XID for this long, then 0 again


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU at one moment, in NVML's own units (bytes, mW, mJ, MHz)."""

    index: int
    uuid: str
    name: str
    util_gpu: float | None = None  # %
    util_memory: float | None = None  # %
    memory_used: int | None = None  # bytes
    memory_free: int | None = None
    memory_total: int | None = None
    temperature_gpu: float | None = None  # C
    temperature_memory: float | None = None
    power_mw: float | None = None
    power_limit_mw: float | None = None
    energy_mj: float | None = None  # since the driver was loaded
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    ecc_sbe_volatile: int | None = None
    ecc_dbe_volatile: int | None = None
    ecc_sbe_aggregate: int | None = None
    ecc_dbe_aggregate: int | None = None
    remapped_correctable: int | None = None
    remapped_uncorrectable: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    throttle_reasons: int | None = None  # NVML bitmask (nvmlClocksEventReason*)
    nvlink_crc_flit_errors: int | None = None  # summed over links
    nvlink_crc_data_errors: int | None = None
    nvlink_replay_errors: int | None = None
    nvlink_recovery_errors: int | None = None
    pcie_replay: int | None = None
    processes: tuple[tuple[int, int | None], ...] | None = None  # (pid, GPU memory in bytes or None)


class XidState:
    """XID errors seen per GPU (by UUID): the last one and when, and how many of each XID.

    Only GPUs that are `watch`ed (an NVML event set is registered for them) get DCGM_FI_DEV_XID_ERRORS: on the
    others 0 would claim a health that nobody checked."""

    def __init__(self, window: float = XID_WINDOW_S) -> None:
        self.window = window
        self._watched: set[str] = set()
        self._last: dict[str, tuple[int, float]] = {}
        self._counts: dict[str, dict[int, int]] = {}

    def watch(self, uuid: str) -> None:
        self._watched.add(uuid)

    def record(self, uuid: str, xid: int, when: float) -> None:
        self._last[uuid] = (xid, when)
        counts = self._counts.setdefault(uuid, {})
        counts[xid] = counts.get(xid, 0) + 1

    def last(self, uuid: str, now: float) -> int | None:
        """The last XID seen within the window, 0 when none, None when the GPU is not watched."""
        if uuid not in self._watched:
            return None
        xid, when = self._last.get(uuid, (0, 0.0))
        return xid if xid and now - when <= self.window else 0

    def counts(self, uuid: str) -> Mapping[int, int]:
        return self._counts.get(uuid, {})


def _mib(value: float | None) -> float | None:
    # Whole MiB, as dcgm-exporter reports them.
    return None if value is None else float(int(value) // MiB)


def _watts(value: float | None) -> float | None:
    return None if value is None else value / 1000.0


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(value)


Convert = Callable[[GpuReading], float | int | None]

# Every plain per-GPU series: its name and how to get its value (in dcgm-exporter's unit) from a reading.
GPU_SERIES: tuple[tuple[SeriesName, Convert], ...] = (
    (names.GPU_UTIL, lambda r: r.util_gpu),
    (names.MEM_COPY_UTIL, lambda r: r.util_memory),
    (names.FB_USED, lambda r: _mib(r.memory_used)),
    (names.FB_FREE, lambda r: _mib(r.memory_free)),
    (names.FB_TOTAL, lambda r: _mib(r.memory_total)),
    (names.GPU_TEMP, lambda r: r.temperature_gpu),
    (names.MEMORY_TEMP, lambda r: r.temperature_memory),
    (names.POWER_USAGE, lambda r: _watts(r.power_mw)),
    (names.POWER_MGMT_LIMIT, lambda r: _watts(r.power_limit_mw)),
    (names.TOTAL_ENERGY_CONSUMPTION, lambda r: r.energy_mj),
    (names.SM_CLOCK, lambda r: r.sm_clock_mhz),
    (names.MEM_CLOCK, lambda r: r.mem_clock_mhz),
    (names.ECC_SBE_VOL_TOTAL, lambda r: r.ecc_sbe_volatile),
    (names.ECC_DBE_VOL_TOTAL, lambda r: r.ecc_dbe_volatile),
    (names.ECC_SBE_AGG_TOTAL, lambda r: r.ecc_sbe_aggregate),
    (names.ECC_DBE_AGG_TOTAL, lambda r: r.ecc_dbe_aggregate),
    (names.CORRECTABLE_REMAPPED_ROWS, lambda r: r.remapped_correctable),
    (names.UNCORRECTABLE_REMAPPED_ROWS, lambda r: r.remapped_uncorrectable),
    (names.ROW_REMAP_FAILURE, lambda r: _flag(r.remap_failure)),
    (names.CLOCK_THROTTLE_REASONS, lambda r: r.throttle_reasons),
    (names.NVLINK_CRC_FLIT_ERRORS, lambda r: r.nvlink_crc_flit_errors),
    (names.NVLINK_CRC_DATA_ERRORS, lambda r: r.nvlink_crc_data_errors),
    (names.NVLINK_REPLAY_ERRORS, lambda r: r.nvlink_replay_errors),
    (names.NVLINK_RECOVERY_ERRORS, lambda r: r.nvlink_recovery_errors),
    (names.PCIE_REPLAY_COUNTER, lambda r: r.pcie_replay),
)


def gpu_labels(reading: GpuReading, hostname: str) -> dict[str, str]:
    """dcgm-exporter's labels of a GPU."""
    return {
        "gpu": str(reading.index),
        "UUID": reading.uuid,
        "device": f"nvidia{reading.index}",
        "modelName": reading.name,
        "Hostname": hostname,
    }


def families_from_readings(
    readings: Iterable[GpuReading], hostname: str, xid_state: XidState, now: float
) -> list[Family]:
    """The DCGM_FI_DEV_* families (and aidc_gpu_xid_events_total) of `readings`. Pure: same input, same output.

    Families with no sample (a value no GPU supports) are left out; the XID counter has one sample per GPU and
    XID seen (it appears at the first event, as a labelled counter does)."""
    readings = list(readings)
    labels = [gpu_labels(reading, hostname) for reading in readings]  # shared by all families of a GPU
    families = []
    for series, convert in GPU_SERIES:
        samples = []
        for reading, gpu in zip(readings, labels, strict=True):
            value = convert(reading)
            if value is not None:
                samples.append((gpu, float(value)))
        if samples:
            families.append(Family(series.name, series.help, series.type, samples))
    last_xid, events = [], []
    for reading, gpu in zip(readings, labels, strict=True):
        xid = xid_state.last(reading.uuid, now)
        if xid is not None:
            last_xid.append((gpu, float(xid)))
        for code, count in sorted(xid_state.counts(reading.uuid).items()):
            # Our own series: snake_case labels only (promtool lints dcgm-exporter's camelCase modelName).
            own = {k: v for k, v in gpu.items() if k in names.GPU_XID_EVENTS.labels}
            events.append(({**own, "xid": str(code)}, float(count)))
    if last_xid:
        families.append(Family(names.XID_ERRORS.name, names.XID_ERRORS.help, names.XID_ERRORS.type, last_xid))
    if events:
        series = names.GPU_XID_EVENTS
        families.append(Family(series.name, series.help, series.type, events))
    return families
