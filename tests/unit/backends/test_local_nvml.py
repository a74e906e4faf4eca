"""Reading this host's GPUs through NVML. No GPU is needed: a fake `pynvml` module stands in for the
driver and the GPUs, returning values recorded from real NVML calls (an H100 and an A100)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aidc.backends.local import nvml
from aidc.backends.local.backend import LocalBackend
from aidc.domain.nodes import Gpu

# As nvidia-ml-py reports them: names and UUIDs as str in current releases, bytes in old ones;
# memory is nvmlDeviceGetMemoryInfo(handle).total in bytes.
Device = tuple[str | bytes, str | bytes, int]
RECORDED: list[Device] = [
    ("NVIDIA H100 80GB HBM3", "GPU-6f2bd5a0-5d5f-4b8e-9f6f-2f8b0c7e1a11", 85520809984),
    (b"NVIDIA A100-SXM4-40GB", b"GPU-0b3c2d9e-1111-2222-3333-444455556666", 42949672960),
]


class FakeNVMLError(Exception):
    pass


@dataclass
class _MemoryInfo:
    total: int
    free: int
    used: int


class FakePynvml:
    """Stands in for the pynvml module (put in sys.modules): the calls nvml.read_gpus makes."""

    NVMLError = FakeNVMLError

    def __init__(self, devices: list[Device], *, init_fails: bool = False) -> None:
        self.devices = devices
        self.init_fails = init_fails
        self.calls: list[str] = []

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_fails:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:
        return self.devices[handle][0]

    def nvmlDeviceGetUUID(self, handle: int) -> str | bytes:
        return self.devices[handle][1]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> _MemoryInfo:
        return _MemoryInfo(total=self.devices[handle][2], free=self.devices[handle][2], used=0)


def test_gpu_from_nvml_values_as_str() -> None:
    name, uuid, memory = RECORDED[0]
    assert nvml.gpu_from_nvml(0, name, uuid, memory) == Gpu(
        index=0,
        uuid="GPU-6f2bd5a0-5d5f-4b8e-9f6f-2f8b0c7e1a11",
        model="NVIDIA H100 80GB HBM3",
        memory=85520809984,
    )


def test_gpu_from_nvml_values_as_bytes() -> None:
    name, uuid, memory = RECORDED[1]
    gpu = nvml.gpu_from_nvml(3, name, uuid, memory)
    assert (gpu.index, gpu.model, gpu.uuid, gpu.memory) == (
        3,
        "NVIDIA A100-SXM4-40GB",
        "GPU-0b3c2d9e-1111-2222-3333-444455556666",
        42949672960,
    )


def test_read_gpus_lists_every_device_and_shuts_nvml_down(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePynvml(RECORDED)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus = nvml.read_gpus()
    assert [(g.index, g.model) for g in gpus] == [
        (0, "NVIDIA H100 80GB HBM3"),
        (1, "NVIDIA A100-SXM4-40GB"),
    ]
    assert fake.calls == ["init", "shutdown"]


def test_no_driver_means_no_gpus_and_one_info_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakePynvml([], init_fails=True))
    with caplog.at_level(logging.DEBUG, logger=nvml.__name__):
        assert nvml.read_gpus() == []
        assert nvml.read_gpus(report_missing=False) == []
    assert [(r.levelno, "no NVIDIA driver found" in r.getMessage()) for r in caplog.records] == [
        (logging.INFO, True),
        (logging.DEBUG, True),
    ]


def test_without_pynvml_there_are_no_gpus(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with caplog.at_level(logging.INFO, logger=nvml.__name__):
        assert nvml.read_gpus() == []
    assert "no NVIDIA driver found" in caplog.text


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


def test_discover_nodes_reports_this_host_with_its_gpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakePynvml(RECORDED))
    (node,) = LocalBackend(tmp_path, _Clock(), node_name="gpu-01").discover_nodes()
    assert node.name == "gpu-01"
    assert node.backend == "local"
    assert [g.uuid for g in node.gpus] == [
        "GPU-6f2bd5a0-5d5f-4b8e-9f6f-2f8b0c7e1a11",
        "GPU-0b3c2d9e-1111-2222-3333-444455556666",
    ]
    assert node.cpus >= 1
    assert node.memory > 0
    assert set(node.labels) == {"os", "arch"}
    assert node.last_seen == _Clock().now()


def test_discover_nodes_says_once_that_there_is_no_driver(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakePynvml([], init_fails=True))
    backend = LocalBackend(tmp_path, _Clock())
    with caplog.at_level(logging.INFO, logger=nvml.__name__):
        for _ in range(3):
            (node,) = backend.discover_nodes()
            assert node.gpus == ()
    assert len(caplog.records) == 1
    assert node.name == node.name.split(".")[0]  # the short host name
