"""The node collector: on this host as it is, and on psutil answers set up for the cases this host lacks
(overlay root, pseudo and network file systems, bind mounts, veth pairs, temperature sensors)."""

from __future__ import annotations

import time
from collections import namedtuple
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from aidc.telemetry import names
from aidc.telemetry.collectors.node import NodeCollector
from aidc.telemetry.series import Family

# The psutil series (the other aidc_node_* ones come from the control plane).
NODE_NAMES = {
    s.name: s
    for s in (
        names.NODE_CPU, names.NODE_LOAD1, names.NODE_LOAD5, names.NODE_LOAD15, names.NODE_MEMORY_TOTAL,
        names.NODE_MEMORY_AVAILABLE, names.NODE_MEMORY_USED_RATIO, names.NODE_DISK_TOTAL, names.NODE_DISK_USED,
        names.NODE_DISK_USED_RATIO, names.NODE_NET_RECEIVE, names.NODE_NET_TRANSMIT, names.NODE_TEMPERATURE,
    )
}  # fmt: skip


# psutil's scputimes on Linux.
CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")


def by_name(families: Iterable[Family]) -> dict[str, Family]:
    out = {}
    for family in families:
        assert family.name not in out
        out[family.name] = family
    return out


def part(device: str, mountpoint: str, fstype: str) -> Any:
    return SimpleNamespace(device=device, mountpoint=mountpoint, fstype=fstype, opts="rw")


def test_this_host(tmp_path: Any) -> None:
    collector = NodeCollector("node-1", interval=1.0, mountpoints=[str(tmp_path)])
    families = by_name(collector.collect(time.time()))
    expected = set(NODE_NAMES) - {names.NODE_CPU.name, names.NODE_TEMPERATURE.name}  # may lack either
    assert expected <= set(families)
    for family in families.values():
        spec = NODE_NAMES[family.name]
        assert (family.type, family.help) == (spec.type, spec.help)
        for labels, value in family.samples:
            assert tuple(labels) == spec.labels
            assert labels["node"] == "node-1"
            assert value >= 0
    mountpoints = [labels["mountpoint"] for labels, _ in families[names.NODE_DISK_TOTAL.name].samples]
    assert mountpoints[0] == "/"
    assert len(mountpoints) == len(set(mountpoints))
    assert 0 < families[names.NODE_MEMORY_USED_RATIO.name].samples[0][1] < 1
    assert families[names.NODE_MEMORY_TOTAL.name].samples[0][1] == psutil.virtual_memory().total
    devices = [labels["device"] for labels, _ in families[names.NODE_NET_RECEIVE.name].samples]
    assert "lo" not in devices


def test_cpu_ratio_from_consecutive_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    def times(busy: float, idle: float) -> Any:
        # Guest time is inside user time already: not counted twice.
        return CpuTimes(busy, 0.0, 0.0, idle, 10.0, 0.0, 0.0, 0.0, 5.0, 0.0)

    readings = iter([times(100.0, 1000.0), times(100.0, 1000.0), times(130.0, 1090.0)])
    monkeypatch.setattr(psutil, "cpu_times", lambda: next(readings))
    collector = NodeCollector("n")
    assert names.NODE_CPU.name not in by_name(collector.collect(0.0))  # no time passed: no ratio
    ratio = by_name(collector.collect(1.0))[names.NODE_CPU.name].samples[0][1]
    assert ratio == pytest.approx(30 / 120)


def test_which_file_systems(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    partitions = [
        part("overlay", "/", "overlay"),  # a container's root
        part("proc", "/proc", "proc"),
        part("tmpfs", "/dev/shm", "tmpfs"),
        part("/dev/nvme0n1p1", "/data", "xfs"),
        part("/dev/nvme0n1p1", "/var/lib/kubelet/pods/x/volume", "xfs"),  # a bind mount of /data
        part("/dev/nvme1n1", "/scratch", "ext4"),
        part("nfs.example:/home", "/home", "nfs4"),
        part("tank/ckpt", "/ckpt", "zfs"),
        part("tmpfs", "/run/aidc", "tmpfs"),
    ]
    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: partitions)
    monkeypatch.setattr(psutil, "disk_usage", lambda path: SimpleNamespace(total=100, used=25, free=50))
    collector = NodeCollector("n", mountpoints=["/run/aidc/data", "/data/ckpt"])
    assert collector.mounts() == ["/", "/run/aidc", "/data", "/scratch", "/ckpt"]
    families = by_name(collector.collect(0.0))
    ratio = families[names.NODE_DISK_USED_RATIO.name].samples[0][1]
    assert ratio == pytest.approx(25 / 75)  # as df: reserved blocks are not usable


def test_unreadable_mount_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: [part("/dev/sda", "/", "ext4")])

    def usage(path: str) -> Any:
        raise PermissionError(path)

    monkeypatch.setattr(psutil, "disk_usage", usage)
    families = by_name(NodeCollector("n").collect(0.0))
    assert families[names.NODE_DISK_TOTAL.name].samples == []


def test_network_skips_loopback_and_veth(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = {
        "lo": SimpleNamespace(bytes_recv=1, bytes_sent=1),
        "eth0": SimpleNamespace(bytes_recv=1000, bytes_sent=2000),
        "ib0": SimpleNamespace(bytes_recv=3000, bytes_sent=4000),
        "veth12ab": SimpleNamespace(bytes_recv=5, bytes_sent=5),
    }
    monkeypatch.setattr(psutil, "net_io_counters", lambda pernic=False: counters)
    families = by_name(NodeCollector("n").collect(0.0))
    received = {labels["device"]: value for labels, value in families[names.NODE_NET_RECEIVE.name].samples}
    sent = {labels["device"]: value for labels, value in families[names.NODE_NET_TRANSMIT.name].samples}
    assert received == {"eth0": 1000.0, "ib0": 3000.0}
    assert sent == {"eth0": 2000.0, "ib0": 4000.0}


def test_temperatures_where_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry(label: str, current: float) -> Any:
        return SimpleNamespace(label=label, current=current, high=90.0, critical=100.0)

    sensors = {"coretemp": [entry("Package id 0", 61.0), entry("Core 0", 58.0)], "nvme": [entry("", 41.0)]}
    monkeypatch.setattr(psutil, "sensors_temperatures", lambda: sensors, raising=False)
    families = by_name(NodeCollector("n").collect(0.0))
    temps = {labels["sensor"]: value for labels, value in families[names.NODE_TEMPERATURE.name].samples}
    assert temps == {"coretemp/Package id 0": 61.0, "coretemp/Core 0": 58.0, "nvme/0": 41.0}


def test_no_temperatures_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict[str, list[Any]]:
        raise OSError("no /sys/class/hwmon")

    monkeypatch.setattr(psutil, "sensors_temperatures", broken, raising=False)
    collector = NodeCollector("n")
    assert names.NODE_TEMPERATURE.name not in by_name(collector.collect(0.0))
    monkeypatch.setattr(psutil, "sensors_temperatures", dict, raising=False)
    assert names.NODE_TEMPERATURE.name not in by_name(NodeCollector("n").collect(0.0))
    monkeypatch.delattr(psutil, "sensors_temperatures", raising=False)
    assert names.NODE_TEMPERATURE.name not in by_name(NodeCollector("n").collect(0.0))
