"""GPU telemetry from NVML: the NVML calls (against a fake pynvml module built from recorded answers of two
H100 80GB HBM3) and the pure step from readings to dcgm-exporter's series (units, labels, missing fields,
the XID window)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aidc.telemetry import names
from aidc.telemetry.collectors.gpu import GpuCollector, read_device
from aidc.telemetry.collectors.gpu_reading import GpuReading, XidState, families_from_readings, gpu_labels
from aidc.telemetry.series import Family

RECORDED = json.loads((Path(__file__).parent / "data" / "nvml_h100x2.json").read_text())
UUID0 = "GPU-6f2bd5a0-5d5f-4b8e-9f6f-2f8b0c7e1a11"
UUID1 = "GPU-0b3c2d9e-7a41-4c2e-8d55-9e1f0a6b3c22"
MiB = 2**20
NOW = 1_790_000_000.0
NOT_SUPPORTED, TIMEOUT, LIBRARY_NOT_FOUND = 3, 10, 12
MESSAGES = {NOT_SUPPORTED: "Not Supported", TIMEOUT: "Timeout", LIBRARY_NOT_FOUND: "NVML Shared Library Not Found"}


class FakeNVMLError(Exception):
    """pynvml.NVMLError: carries NVML's return code in `value`."""

    def __init__(self, value: int) -> None:
        super().__init__(MESSAGES.get(value, f"NVML error {value}"))
        self.value = value


def _struct(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _struct(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_struct(v) for v in value]
    return value


def fake_pynvml(
    devices: list[dict[str, Any]], *, init_error: int | None = None, events_supported: bool = True
) -> SimpleNamespace:
    """A stand-in for the pynvml module: the functions GpuCollector calls, answering what `devices` recorded.
    Handles are device indexes; `nvml.calls` lists every call; `nvml.events[set id]` queues XID events."""
    calls: list[str] = []
    events: dict[int, list[tuple[int, int]]] = {}
    freed: list[int] = []

    def answer(function: str, handle: int, *args: Any) -> Any:
        calls.append(function)
        recorded = devices[handle][function]
        if args and function != "nvmlDeviceGetFieldValues":
            recorded = recorded[",".join(str(a) for a in args)]
        if isinstance(recorded, dict) and "nvml_error" in recorded:
            raise FakeNVMLError(recorded["nvml_error"])
        if function == "nvmlDeviceGetRemappedRows":
            return tuple(recorded)
        if function == "nvmlDeviceGetFieldValues":
            return [_field(field_id, recorded.get(str(field_id))) for field_id in args[0]]
        return _struct(recorded)

    def _field(field_id: int, recorded: dict[str, int] | None) -> SimpleNamespace:
        if recorded is None:
            recorded = {"nvmlReturn": NOT_SUPPORTED, "valueType": 0, "value": 0}
        member = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")[recorded["valueType"]]
        value = SimpleNamespace(**{member: recorded["value"]})
        return SimpleNamespace(
            fieldId=field_id, nvmlReturn=recorded["nvmlReturn"], valueType=recorded["valueType"], value=value
        )

    def init() -> None:
        calls.append("nvmlInit")
        if init_error is not None:
            raise FakeNVMLError(init_error)

    def event_set_create() -> int:
        calls.append("nvmlEventSetCreate")
        events[len(events)] = []
        return len(events) - 1

    def register_events(handle: int, types: int, event_set: int) -> None:
        calls.append("nvmlDeviceRegisterEvents")
        if not events_supported:
            raise FakeNVMLError(NOT_SUPPORTED)

    def event_set_wait(event_set: int, timeout_ms: int) -> SimpleNamespace:
        calls.append("nvmlEventSetWait_v2")
        assert timeout_ms == 0  # never blocks the sampler
        if not events[event_set]:
            raise FakeNVMLError(TIMEOUT)
        event_type, data = events[event_set].pop(0)
        return SimpleNamespace(device=event_set, eventType=event_type, eventData=data)

    functions = {name: (lambda *a, _n=name: answer(_n, *a)) for name in devices[0] if name.startswith("nvml")}
    return SimpleNamespace(
        NVMLError=FakeNVMLError,
        calls=calls,
        events=events,
        freed=freed,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("nvmlShutdown"),
        nvmlDeviceGetCount=lambda: len(devices),
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlEventSetCreate=event_set_create,
        nvmlDeviceRegisterEvents=register_events,
        nvmlEventSetWait_v2=event_set_wait,
        nvmlEventSetFree=freed.append,
        **functions,
    )


def samples(families: Iterable[Family]) -> dict[tuple[str, str], float]:
    """{(series name, GPU index, + ":xid" for the XID counter): value}."""
    out = {}
    for family in families:
        for labels, value in family.samples:
            key = labels["gpu"] + (f":{labels['xid']}" if "xid" in labels else "")
            out[family.name, key] = value
    return out


def open_recorded(**kwargs: Any) -> tuple[GpuCollector, SimpleNamespace]:
    nvml = fake_pynvml(RECORDED["devices"], **kwargs)
    collector = GpuCollector.open("gpu-node-01", interval=5.0, nvml=nvml)
    assert collector is not None
    return collector, nvml


# ---------------------------------------------------------------------------------------------- opening
def test_open_without_a_driver_returns_none_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    """The path a host without NVIDIA driver takes (NVML's library missing): no collector, one INFO line."""
    nvml = fake_pynvml(RECORDED["devices"], init_error=LIBRARY_NOT_FOUND)
    with caplog.at_level(logging.INFO):
        assert GpuCollector.open("cpu-node", nvml=nvml) is None
    lines = [r for r in caplog.records if "GPU telemetry is off" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert "NVML not available (NVML Shared Library Not Found)" in lines[0].getMessage()


def test_open_on_this_host_without_gpu(caplog: pytest.LogCaptureFixture) -> None:
    """The real pynvml on this machine: without a driver, open() gives None and one INFO line."""
    with caplog.at_level(logging.INFO):
        collector = GpuCollector.open("this-host")
    if collector is not None:
        collector.close()
        pytest.skip("this host has an NVIDIA driver")
    assert [r.levelno for r in caplog.records if "GPU telemetry is off" in r.getMessage()] == [logging.INFO]


# --------------------------------------------------------------------------------------- the NVML calls
def test_raw_readings_from_a_fake_driver() -> None:
    """A fake pynvml module stands in for the GPU driver this machine lacks: it answers the NVML calls with
    values recorded for two H100 80GB HBM3. The readings keep NVML's units, and a call that raises
    NotSupported gives None and is not made again."""
    collector, nvml = open_recorded()
    collector.collect(NOW)
    busy, idle = collector.readings()
    assert (busy.index, busy.uuid, busy.name) == (0, UUID0, "NVIDIA H100 80GB HBM3")
    assert (busy.util_gpu, busy.util_memory) == (98.0, 71.0)
    assert (busy.memory_used, busy.memory_free, busy.memory_total) == (82203377664, 3317432320, 85520809984)
    assert (busy.temperature_gpu, busy.temperature_memory) == (83.0, 91.0)
    assert (busy.power_mw, busy.power_limit_mw, busy.energy_mj) == (689412.0, 700000.0, 58231776541.0)
    assert (busy.sm_clock_mhz, busy.mem_clock_mhz) == (1755.0, 2619.0)
    assert (busy.ecc_sbe_volatile, busy.ecc_dbe_volatile, busy.ecc_sbe_aggregate, busy.ecc_dbe_aggregate) == (
        3, 0, 12, 0
    )  # fmt: skip
    assert (busy.remapped_correctable, busy.remapped_uncorrectable, busy.remap_pending, busy.remap_failure) == (
        1, 0, False, False
    )  # fmt: skip
    assert busy.throttle_reasons == 36
    assert (busy.nvlink_crc_flit_errors, busy.nvlink_replay_errors, busy.nvlink_recovery_errors) == (2, 5, 0)
    assert busy.processes == ((4242, 81604378624), (4243, 524288000))
    assert idle.pcie_replay is None
    assert idle.temperature_memory is None
    assert idle.processes == ()

    pcie_calls = nvml.calls.count("nvmlDeviceGetPcieReplayCounter")
    collector.collect(NOW + 5)
    assert nvml.calls.count("nvmlDeviceGetPcieReplayCounter") == pcie_calls + 1  # GPU 0 only: GPU 1 said never
    assert read_device(nvml, collector.devices[1]).pcie_replay is None


def test_helpers_for_the_job_collector() -> None:
    collector, _ = open_recorded()
    assert collector.latest_utilization() == {}  # nothing collected yet
    collector.collect(NOW)
    assert collector.latest_utilization() == {UUID0: 98.0, UUID1: 0.0}
    assert collector.process_gpu_memory() == {4242: 81604378624, 4243: 524288000}


def test_close_frees_event_sets_and_shuts_nvml_down() -> None:
    collector, nvml = open_recorded()
    collector.close()
    collector.close()
    assert sorted(nvml.freed) == [0, 1]
    assert nvml.calls.count("nvmlShutdown") == 1
    assert collector.collect(NOW) == []


# -------------------------------------------------------------------------------- readings to series
def test_series_carry_dcgm_exporter_units_and_labels() -> None:
    collector, _ = open_recorded()
    families = collector.collect(NOW)
    values = samples(families)
    assert values[names.FB_USED.name, "0"] == 82203377664 // MiB == 78395  # whole MiB
    assert values[names.FB_FREE.name, "0"] == 3163
    assert values[names.FB_TOTAL.name, "1"] == 81559
    assert values[names.POWER_USAGE.name, "0"] == pytest.approx(689.412)  # W
    assert values[names.POWER_MGMT_LIMIT.name, "0"] == 700.0
    assert values[names.TOTAL_ENERGY_CONSUMPTION.name, "0"] == 58231776541.0  # mJ
    assert values[names.GPU_TEMP.name, "0"] == 83.0
    assert values[names.MEMORY_TEMP.name, "0"] == 91.0
    assert values[names.GPU_UTIL.name, "0"] == 98.0
    assert values[names.GPU_UTIL.name, "1"] == 0.0  # idle is a value, not a missing one
    assert values[names.SM_CLOCK.name, "1"] == 345.0
    assert values[names.CLOCK_THROTTLE_REASONS.name, "0"] == 36.0
    assert values[names.ECC_SBE_AGG_TOTAL.name, "0"] == 12.0
    assert values[names.CORRECTABLE_REMAPPED_ROWS.name, "0"] == 1.0
    assert values[names.ROW_REMAP_FAILURE.name, "0"] == 0.0
    assert values[names.NVLINK_REPLAY_ERRORS.name, "0"] == 5.0
    assert values[names.XID_ERRORS.name, "0"] == 0.0

    catalog = names.all_names()
    for family in families:
        spec = catalog[family.name]
        assert (family.type, family.help) == (spec.type, spec.help)
        for labels, _ in family.samples:
            assert tuple(labels) == spec.labels
    gpu0 = families[0].samples[0][0]
    assert dict(gpu0) == {
        "gpu": "0",
        "UUID": UUID0,
        "device": "nvidia0",
        "modelName": "NVIDIA H100 80GB HBM3",
        "Hostname": "gpu-node-01",
    }


def test_missing_fields_are_left_out_not_zero() -> None:
    collector, _ = open_recorded()
    values = samples(collector.collect(NOW))
    assert (names.PCIE_REPLAY_COUNTER.name, "0") in values
    assert (names.PCIE_REPLAY_COUNTER.name, "1") not in values
    assert (names.MEMORY_TEMP.name, "1") not in values
    # A GPU with nothing to read contributes no family at all (but its XID value, when watched).
    blank = GpuReading(index=3, uuid="GPU-blank", name="NVIDIA H100 80GB HBM3")
    assert families_from_readings([blank], "h", XidState(), NOW) == []
    xids = XidState()
    xids.watch("GPU-blank")
    assert [f.name for f in families_from_readings([blank], "h", xids, NOW)] == [names.XID_ERRORS.name]


def test_xid_is_shown_for_five_minutes_and_counted_by_code() -> None:
    collector, nvml = open_recorded()
    nvml.events[0] += [(0x8, 79), (0x8, 48)]  # the driver reported XID 79 then 48 on GPU 0
    values = samples(collector.collect(NOW))
    assert values[names.XID_ERRORS.name, "0"] == 48.0  # the last one
    assert values[names.XID_ERRORS.name, "1"] == 0.0
    assert values[names.GPU_XID_EVENTS.name, "0:48"] == 1.0
    assert values[names.GPU_XID_EVENTS.name, "0:79"] == 1.0
    assert (names.GPU_XID_EVENTS.name, "1") not in values

    nvml.events[0].append((0x8, 79))
    values = samples(collector.collect(NOW + 100))
    assert values[names.XID_ERRORS.name, "0"] == 79.0
    assert values[names.GPU_XID_EVENTS.name, "0:79"] == 2.0
    assert samples(collector.collect(NOW + 400))[names.XID_ERRORS.name, "0"] == 79.0  # 300 s after the last
    values = samples(collector.collect(NOW + 401))
    assert values[names.XID_ERRORS.name, "0"] == 0.0
    assert values[names.GPU_XID_EVENTS.name, "0:79"] == 2.0  # a counter does not forget


def test_xid_window_is_pure() -> None:
    reading = GpuReading(index=0, uuid=UUID0, name="NVIDIA H100 80GB HBM3", util_gpu=1.0)
    xids = XidState(window=300.0)
    xids.watch(UUID0)
    xids.record(UUID0, 94, NOW)

    def last(now: float) -> float:
        return samples(families_from_readings([reading], "h", xids, now))[names.XID_ERRORS.name, "0"]

    assert (last(NOW), last(NOW + 300), last(NOW + 300.5)) == (94.0, 94.0, 0.0)
    assert families_from_readings([reading], "h", xids, NOW) == families_from_readings([reading], "h", xids, NOW)


def test_no_xid_series_where_events_cannot_be_registered(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        collector, nvml = open_recorded(events_supported=False)
    values = samples(collector.collect(NOW))
    assert not any(name == names.XID_ERRORS.name for name, _ in values)
    assert sorted(nvml.freed) == [0, 1]  # the event sets that could not be registered
    assert "nvmlEventSetWait_v2" not in nvml.calls
    assert sum("XID events of GPU" in r.getMessage() for r in caplog.records) == 2


def test_labels_are_shared_between_the_families_of_a_gpu() -> None:
    """The exposition caches label text by mapping: one mapping per GPU, not one per sample."""
    collector, _ = open_recorded()
    families = collector.collect(NOW)
    first = {id(f.samples[0][0]) for f in families if f.name != names.GPU_XID_EVENTS.name}
    assert len(first) == 1
    assert gpu_labels(collector.readings()[1], "x")["device"] == "nvidia1"
