"""This host's NVIDIA GPUs through NVML (package nvidia-ml-py, module pynvml, imported lazily): the
DCGM_FI_DEV_* series under dcgm-exporter's names, units and labels, and XID errors from NVML events.

`GpuCollector.open` returns None on a host without an NVIDIA driver. The NVML calls (`read_device`) build plain
`GpuReading`s; turning those into series is pure (`gpu_reading.families_from_readings`)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from aidc.telemetry.collectors.gpu_reading import GpuReading, XidState, families_from_readings
from aidc.telemetry.series import Family

log = logging.getLogger(__name__)

# NVML's codes (nvml.h) for "this will never work on this GPU": the call is not tried again.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_FUNCTION_NOT_FOUND = 13
_PERMANENT = frozenset({NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND})
# nvmlDeviceGetFieldValues ids (nvml.h): memory temperature and NVLink error counters summed over all links.
FI_MEMORY_TEMP = 82
FI_NVLINK_CRC_FLIT_TOTAL = 38
FI_NVLINK_CRC_DATA_TOTAL = 45
FI_NVLINK_REPLAY_TOTAL = 52
FI_NVLINK_RECOVERY_TOTAL = 59
FIELD_IDS = (
    FI_MEMORY_TEMP,
    FI_NVLINK_CRC_FLIT_TOTAL,
    FI_NVLINK_CRC_DATA_TOTAL,
    FI_NVLINK_REPLAY_TOTAL,
    FI_NVLINK_RECOVERY_TOTAL,
)
# c_nvmlValue_t's member for each nvmlValueType_t.
VALUE_MEMBERS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")
TEMPERATURE_GPU, CLOCK_SM, CLOCK_MEM = 0, 1, 2
VOLATILE_ECC, AGGREGATE_ECC, CORRECTED, UNCORRECTED = 0, 1, 0, 1
XID_CRITICAL_ERROR = 0x8  # nvmlEventTypeXidCriticalError
MAX_EVENTS_PER_COLLECT = 1000  # an event storm must not hold the sampler


@dataclass
class Device:
    """A GPU as opened: its handle, what does not change, and which calls it does not support."""

    index: int
    handle: Any
    uuid: str
    name: str
    event_set: Any = None  # NVML event set registered for XIDs, None where that failed
    unsupported: set[str] = field(default_factory=set)
    silent: bool = False  # its "no value at all" warning is logged


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


class _Reader:
    """NVML calls on one device: a call that raises NVMLError gives None (and is not tried again where the
    error says it never will work)."""

    def __init__(self, nvml: Any, device: Device) -> None:
        self.nvml = nvml
        self.device = device

    def __call__(self, function: str, *args: Any) -> Any:
        key = function if not args else f"{function}{args}"
        if key in self.device.unsupported:
            return None
        try:
            return getattr(self.nvml, function)(self.device.handle, *args)
        except AttributeError:  # an older pynvml without this function
            self.device.unsupported.add(key)
        except self.nvml.NVMLError as exc:
            if getattr(exc, "value", None) in _PERMANENT:
                self.device.unsupported.add(key)
        return None


def read_device(nvml: Any, device: Device) -> GpuReading:
    """One reading of `device` through the `pynvml` module `nvml`. Any value NVML cannot give is None."""
    call = _Reader(nvml, device)
    util = call("nvmlDeviceGetUtilizationRates")
    memory = call("nvmlDeviceGetMemoryInfo")
    remapped = call("nvmlDeviceGetRemappedRows")  # (correctable, uncorrectable, pending, failure)
    throttle = call("nvmlDeviceGetCurrentClocksEventReasons")
    if throttle is None:  # its name before CUDA 12.2 drivers
        throttle = call("nvmlDeviceGetCurrentClocksThrottleReasons")
    fields = _field_values(call("nvmlDeviceGetFieldValues", list(FIELD_IDS)))
    processes = call("nvmlDeviceGetComputeRunningProcesses")
    return GpuReading(
        index=device.index,
        uuid=device.uuid,
        name=device.name,
        util_gpu=None if util is None else float(util.gpu),
        util_memory=None if util is None else float(util.memory),
        memory_used=None if memory is None else int(memory.used),
        memory_free=None if memory is None else int(memory.free),
        memory_total=None if memory is None else int(memory.total),
        temperature_gpu=_float(call("nvmlDeviceGetTemperature", TEMPERATURE_GPU)),
        temperature_memory=_float(fields.get(FI_MEMORY_TEMP)),
        power_mw=_float(call("nvmlDeviceGetPowerUsage")),
        power_limit_mw=_float(call("nvmlDeviceGetPowerManagementLimit")),
        energy_mj=_float(call("nvmlDeviceGetTotalEnergyConsumption")),
        sm_clock_mhz=_float(call("nvmlDeviceGetClockInfo", CLOCK_SM)),
        mem_clock_mhz=_float(call("nvmlDeviceGetClockInfo", CLOCK_MEM)),
        ecc_sbe_volatile=_int(call("nvmlDeviceGetTotalEccErrors", CORRECTED, VOLATILE_ECC)),
        ecc_dbe_volatile=_int(call("nvmlDeviceGetTotalEccErrors", UNCORRECTED, VOLATILE_ECC)),
        ecc_sbe_aggregate=_int(call("nvmlDeviceGetTotalEccErrors", CORRECTED, AGGREGATE_ECC)),
        ecc_dbe_aggregate=_int(call("nvmlDeviceGetTotalEccErrors", UNCORRECTED, AGGREGATE_ECC)),
        remapped_correctable=None if remapped is None else int(remapped[0]),
        remapped_uncorrectable=None if remapped is None else int(remapped[1]),
        remap_pending=None if remapped is None else bool(remapped[2]),
        remap_failure=None if remapped is None else bool(remapped[3]),
        throttle_reasons=_int(throttle),
        nvlink_crc_flit_errors=_int(fields.get(FI_NVLINK_CRC_FLIT_TOTAL)),
        nvlink_crc_data_errors=_int(fields.get(FI_NVLINK_CRC_DATA_TOTAL)),
        nvlink_replay_errors=_int(fields.get(FI_NVLINK_REPLAY_TOTAL)),
        nvlink_recovery_errors=_int(fields.get(FI_NVLINK_RECOVERY_TOTAL)),
        pcie_replay=_int(call("nvmlDeviceGetPcieReplayCounter")),
        processes=None if processes is None else tuple((int(p.pid), _int(p.usedGpuMemory)) for p in processes),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _field_values(values: Any) -> dict[int, float | int]:
    """{field id: value} of nvmlDeviceGetFieldValues' answer, without the fields that report an error."""
    out: dict[int, float | int] = {}
    for value in values or ():
        if value.nvmlReturn == 0 and 0 <= value.valueType < len(VALUE_MEMBERS):
            out[int(value.fieldId)] = getattr(value.value, VALUE_MEMBERS[value.valueType])
    return out


class GpuCollector:
    """The GPUs NVML sees, every `interval` seconds. Make one with `open`; `close` when done."""

    def __init__(self, nvml: Any, hostname: str, devices: list[Device], interval: float = 5.0) -> None:
        self.name = "gpu"
        self.interval = interval
        self.hostname = hostname
        self.devices = devices
        self.xids = XidState()
        self._nvml = nvml
        self._readings: list[GpuReading] = []
        self._closed = False
        for device in devices:
            if device.event_set is not None:
                self.xids.watch(device.uuid)

    @classmethod
    def open(cls, hostname: str, interval: float = 5.0, *, nvml: Any = None) -> GpuCollector | None:
        """A collector of this host's GPUs, or None (logged once, at INFO) where NVML or GPUs are missing.
        `nvml` stands in for the pynvml module (tests)."""
        if nvml is None:
            try:
                import pynvml
            except ImportError as exc:
                log.info("NVML not available (pynvml cannot be imported: %s): GPU telemetry is off", exc)
                return None
            nvml = pynvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            log.info("NVML not available (%s): GPU telemetry is off", exc)
            return None
        try:
            devices = [_open_device(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
        except nvml.NVMLError as exc:
            log.warning("NVML not available (listing GPUs failed: %s): GPU telemetry is off", exc)
            with contextlib.suppress(nvml.NVMLError):
                nvml.nvmlShutdown()
            return None
        if not devices:
            log.info("NVML not available (the driver sees no GPU): GPU telemetry is off")
            with contextlib.suppress(nvml.NVMLError):
                nvml.nvmlShutdown()
            return None
        log.info("GPU telemetry on %d GPU(s) through NVML: %s", len(devices), ", ".join(d.name for d in devices))
        return cls(nvml, hostname, devices, interval)

    def collect(self, now: float) -> list[Family]:
        if self._closed:
            return []
        readings = []
        for device in self.devices:
            reading = read_device(self._nvml, device)
            readings.append(reading)
            blank = reading.util_gpu is None and reading.memory_total is None
            if blank and not device.silent:  # fallen off the bus, or being reset: say it once
                log.warning("GPU %d (%s) gives no readings through NVML", device.index, device.uuid)
            device.silent = blank
            self._drain_xids(device, now)
        self._readings = readings  # one assignment: readers on other threads see one whole collection
        return families_from_readings(readings, self.hostname, self.xids, now)

    def _drain_xids(self, device: Device, now: float) -> None:
        if device.event_set is None:
            return
        for _ in range(MAX_EVENTS_PER_COLLECT):
            try:
                event = self._nvml.nvmlEventSetWait_v2(device.event_set, 0)
            except self._nvml.NVMLError as exc:
                if getattr(exc, "value", None) != NVML_ERROR_TIMEOUT:  # TIMEOUT: no event waiting
                    log.debug("NVML events of GPU %d: %s", device.index, exc)
                return
            if int(event.eventType) & XID_CRITICAL_ERROR:
                xid = int(event.eventData)
                log.warning("XID %d on GPU %d (%s)", xid, device.index, device.uuid)
                self.xids.record(device.uuid, xid, now)

    def readings(self) -> list[GpuReading]:
        """The latest collection's readings."""
        return self._readings

    def latest_utilization(self) -> dict[str, float]:
        """{GPU UUID: utilization in %} from the latest collection."""
        return {r.uuid: r.util_gpu for r in self._readings if r.util_gpu is not None}

    def process_gpu_memory(self) -> dict[int, int]:
        """{pid: bytes of GPU memory it uses, over all GPUs} from the latest collection."""
        used: dict[int, int] = {}
        for reading in self._readings:
            for pid, memory in reading.processes or ():
                if memory is not None:
                    used[pid] = used.get(pid, 0) + memory
        return used

    def close(self) -> None:
        """Frees the event sets and shuts NVML down (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for device in self.devices:
            if device.event_set is not None:
                with contextlib.suppress(self._nvml.NVMLError):
                    self._nvml.nvmlEventSetFree(device.event_set)
                device.event_set = None
        with contextlib.suppress(self._nvml.NVMLError):
            self._nvml.nvmlShutdown()


def _open_device(nvml: Any, index: int) -> Device:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    device = Device(index, handle, _text(nvml.nvmlDeviceGetUUID(handle)), _text(nvml.nvmlDeviceGetName(handle)).strip())
    event_set = None
    try:
        event_set = nvml.nvmlEventSetCreate()
        nvml.nvmlDeviceRegisterEvents(handle, XID_CRITICAL_ERROR, event_set)
    except nvml.NVMLError as exc:
        log.info("XID events of GPU %d are not available (%s): DCGM_FI_DEV_XID_ERRORS is off for it", index, exc)
        if event_set is not None:
            with contextlib.suppress(nvml.NVMLError):
                nvml.nvmlEventSetFree(event_set)
        event_set = None
    device.event_set = event_set
    return device
