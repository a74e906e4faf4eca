"""This host's CPU, memory, disks, network and temperatures through psutil (the aidc_node_* series)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import psutil

from aidc.telemetry import names
from aidc.telemetry.names import SeriesName
from aidc.telemetry.series import Family

log = logging.getLogger(__name__)

# File systems that hold no user data (or are counted elsewhere): never reported unless named explicitly
# or mounted at "/" (a container's root is an overlay).
PSEUDO_FS = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
        "efivarfs", "fuse.gvfsd-fuse", "fuse.lxcfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay",
        "proc", "pstore", "ramfs", "rpc_pipefs", "securityfs", "squashfs", "sysfs", "tmpfs", "tracefs",
    }
)  # fmt: skip
# Per-container virtual interfaces come and go with containers: one series each would only add churn.
SKIPPED_NICS = ("lo",)
SKIPPED_NIC_PREFIXES = ("veth",)


def family(series: SeriesName, samples: Sequence[tuple[Mapping[str, str], float]]) -> Family:
    """A family of `series` (name, type and help from the catalog in names.py)."""
    return Family(series.name, series.help, series.type, samples)


class NodeCollector:
    """The aidc_node_* series of this host, labelled `node` (+ `mountpoint`, `device` or `sensor`).

    Disks: local file systems (no pseudo ones), "/" and the file systems of `mountpoints` (e.g. the data
    dir) always, one mount per device. Network: every interface but loopback and veth pairs. Temperatures:
    what psutil can read (nothing, and no error, where it cannot)."""

    def __init__(self, node: str, interval: float = 5.0, mountpoints: Sequence[str] | None = None) -> None:
        self.name = "node"
        self.interval = interval
        self.node = node
        self._labels = {"node": node}  # one mapping shared by all samples: the exposition caches its text
        self._extra_paths = list(mountpoints or ())
        self._label_cache: dict[tuple[str, str], dict[str, str]] = {}
        # CPU busy share from our own previous reading: psutil.cpu_percent(interval=None) keeps its previous
        # reading in the module, so any other caller in the process would shorten our interval.
        self._cpu_prev = _cpu_busy_total(psutil.cpu_times())
        self._sensors = hasattr(psutil, "sensors_temperatures")

    def collect(self, now: float) -> list[Family]:
        node = self._labels
        families = []
        busy, total = _cpu_busy_total(psutil.cpu_times())
        prev_busy, prev_total = self._cpu_prev
        self._cpu_prev = (busy, total)
        if total > prev_total:
            # Rounded: the difference of two large sums carries float noise (1e-11 on an idle host).
            ratio = round(min(max((busy - prev_busy) / (total - prev_total), 0.0), 1.0), 6)
            families.append(family(names.NODE_CPU, [(node, ratio)]))
        load1, load5, load15 = psutil.getloadavg()
        families += [
            family(names.NODE_LOAD1, [(node, load1)]),
            family(names.NODE_LOAD5, [(node, load5)]),
            family(names.NODE_LOAD15, [(node, load15)]),
        ]
        memory = psutil.virtual_memory()
        families += [
            family(names.NODE_MEMORY_TOTAL, [(node, float(memory.total))]),
            family(names.NODE_MEMORY_AVAILABLE, [(node, float(memory.available))]),
            family(names.NODE_MEMORY_USED_RATIO, [(node, 1.0 - memory.available / memory.total)]),
        ]
        families += self._disks()
        families += self._network()
        families += self._temperatures()
        return families

    def _labelled(self, key: str, value: str) -> dict[str, str]:
        labels = self._label_cache.get((key, value))
        if labels is None:
            if len(self._label_cache) > 4096:  # mounts, interfaces and sensors come and go: stay bounded
                self._label_cache.clear()
            labels = self._label_cache[key, value] = {"node": self.node, key: value}
        return labels

    def mounts(self) -> list[str]:
        """The mount points reported: "/", those of the named paths, then the other local file systems."""
        partitions = psutil.disk_partitions(all=True)
        chosen: list[str] = []
        devices: set[str] = set()

        def add(mountpoint: str, device: str) -> None:
            if mountpoint not in chosen and device not in devices:
                chosen.append(mountpoint)
                devices.add(device)

        by_mountpoint = {p.mountpoint: p.device for p in partitions}
        add("/", by_mountpoint.get("/", "/"))
        for path in self._extra_paths:
            mountpoint = _mountpoint_of(path, by_mountpoint)
            add(mountpoint, by_mountpoint.get(mountpoint, mountpoint))
        for partition in partitions:
            # Block devices (and ZFS datasets, named by pool): network and virtual file systems are not local.
            local = partition.device.startswith("/") or partition.fstype == "zfs"
            if local and partition.fstype not in PSEUDO_FS:
                add(partition.mountpoint, partition.device)
        return chosen

    def _disks(self) -> list[Family]:
        total, used, ratio = [], [], []
        for mountpoint in self.mounts():
            try:
                usage = psutil.disk_usage(mountpoint)
            except OSError:  # unmounted since, or not ours to read
                continue
            labels = self._labelled("mountpoint", mountpoint)
            total.append((labels, float(usage.total)))
            used.append((labels, float(usage.used)))
            # As df: used over what non-root users can have (reserved blocks excluded).
            usable = usage.used + usage.free
            ratio.append((labels, usage.used / usable if usable else 0.0))
        return [
            family(names.NODE_DISK_TOTAL, total),
            family(names.NODE_DISK_USED, used),
            family(names.NODE_DISK_USED_RATIO, ratio),
        ]

    def _network(self) -> list[Family]:
        received, sent = [], []
        for nic, counters in psutil.net_io_counters(pernic=True).items():
            if nic in SKIPPED_NICS or nic.startswith(SKIPPED_NIC_PREFIXES):
                continue
            labels = self._labelled("device", nic)
            received.append((labels, float(counters.bytes_recv)))
            sent.append((labels, float(counters.bytes_sent)))
        return [family(names.NODE_NET_RECEIVE, received), family(names.NODE_NET_TRANSMIT, sent)]

    def _temperatures(self) -> list[Family]:
        if not self._sensors:
            return []
        try:
            readings: dict[str, list[Any]] = psutil.sensors_temperatures()
        except Exception as exc:  # missing /sys entries, odd drivers: temperatures are a bonus, never an error
            log.debug("no temperatures from psutil: %s", exc)
            self._sensors = False
            return []
        samples: list[tuple[Mapping[str, str], float]] = []
        seen: set[str] = set()
        for chip, entries in readings.items():
            for i, entry in enumerate(entries):
                sensor = f"{chip}/{entry.label or i}"
                if sensor in seen or entry.current is None:
                    continue
                seen.add(sensor)
                samples.append((self._labelled("sensor", sensor), float(entry.current)))
        return [family(names.NODE_TEMPERATURE, samples)] if samples else []


def _cpu_busy_total(times: Any) -> tuple[float, float]:
    """(busy, total) CPU seconds over all cores, as psutil.cpu_percent counts them: idle and I/O wait are not
    busy, and guest time is already inside user and nice time."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - times.idle - getattr(times, "iowait", 0.0), total


def _mountpoint_of(path: str, mountpoints: Mapping[str, str]) -> str:
    """The mount point of the file system holding `path` (the longest mount point above it)."""
    current = os.path.realpath(path)
    while True:
        if current in mountpoints:
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return current
        current = parent
