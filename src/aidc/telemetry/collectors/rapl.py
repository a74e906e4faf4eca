"""This host's CPU energy from RAPL through the Linux powercap interface (`/sys/class/powercap`).

Zones (`intel-rapl:N`, their subzones `intel-rapl:N:M`; AMD's kernels expose the same `intel-rapl` tree) each
have a `name` and an `energy_uj` counter that wraps at `max_energy_range_uj`. The collector keeps the last raw
value of each and adds the range on a wrap, so its counters only grow (Prometheus' rate() would take a wrap for
a reset and lose up to a whole range). It must read more often than a counter can wrap twice: ranges differ
by CPU, from a few kJ to hundreds of kJ (the log warns when the interval is longer than a range lasts at 1 kW).

Series (labels `node` + `zone`):
- `aidc_node_cpu_energy_joules_total{zone="package-0"}`: the top-level package zones only; their sum is the
  node's CPU figure (subzones are never added: core and uncore are parts of their package).
- `aidc_node_rapl_energy_joules_total{zone=...}`: the other zones, for detail: subzones as
  "package-0/core", "package-0/uncore", "package-0/dram" (DRAM is a plane of its own, NOT inside the package
  figure), and top-level zones that are not packages, such as "psys" (the whole platform as Intel defines it:
  SoC, memory and more, packages included): never add these to the CPU figure.
`intel-rapl-mmio:*` zones repeat the package counter through MMIO on some Intel CPUs: they are skipped.

Unreadable counters (no powercap tree, as in most VMs; or EACCES: since Linux 5.10 `energy_uj` is readable
by root only, after CVE-2020-8694): `RaplCollector.open` returns None and says why once, at INFO.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aidc.telemetry.names import NODE_CPU_ENERGY, NODE_RAPL_ENERGY
from aidc.telemetry.series import Family

log = logging.getLogger(__name__)

POWERCAP_ROOT = Path("/sys/class/powercap")
WRAP_WARNING_WATTS = 1000.0  # the interval should be shorter than a wrap at this power
_TOP = re.compile(r"^intel-rapl:(\d+)$")
_SUB = re.compile(r"^intel-rapl:(\d+):(\d+)$")


@dataclass
class Zone:
    """One RAPL zone and its unwrapped counter."""

    path: Path
    label: str  # "package-0", "package-0/dram", "psys"
    package: bool  # a top-level package zone (counted in the node's CPU figure)
    range_uj: int
    last_raw: int
    total_uj: int  # unwrapped: starts at the first raw reading


class RaplError(Exception):
    """The powercap tree cannot be used; the message says why."""


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def discover(root: Path = POWERCAP_ROOT) -> list[Zone]:
    """Every RAPL zone under `root`, packages first, each read once. Raises RaplError saying why none can be
    used (no tree, no zone, a package counter not readable). A subzone or psys that cannot be read is left
    out (logged at INFO): the packages alone make the node's figure."""
    if not root.is_dir():
        raise RaplError(f"{root} does not exist (no powercap driver: a VM, or a kernel without intel_rapl)")
    try:
        entries = {p.name for p in root.iterdir()}
    except OSError as exc:
        raise RaplError(f"{root} cannot be listed: {exc}") from exc
    tops = sorted((int(m.group(1)), name) for name in entries if (m := _TOP.match(name)))
    if not tops:
        raise RaplError(f"no intel-rapl zone under {root}")
    packages: list[Zone] = []
    others: list[Zone] = []
    for number, name in tops:
        path = root / name
        zone_name = _zone_name(path)
        if zone_name.startswith("package"):
            packages.append(_open_zone(path, zone_name, package=True))
        else:
            _add_optional(others, path, zone_name)
        # Subzones: inside their parent's directory, and (on most kernels) repeated as links in the root.
        children = {c.name: c for c in path.glob(f"intel-rapl:{number}:*") if _SUB.match(c.name)}
        for child in entries:
            m = _SUB.match(child)
            if m is not None and int(m.group(1)) == number:
                children.setdefault(child, root / child)
        for child_name in sorted(children, key=lambda n: int(n.rsplit(":", 1)[1])):
            child_path = children[child_name]
            _add_optional(others, child_path, f"{zone_name}/{_zone_name(child_path)}")
    zones = packages + others
    if not zones:
        raise RaplError(f"no RAPL zone under {root} can be read")
    return _distinct_labels(zones)


def _add_optional(zones: list[Zone], path: Path, label: str) -> None:
    try:
        zones.append(_open_zone(path, label, package=False))
    except RaplError as exc:
        log.info("RAPL zone %s left out: %s", label, exc)


def _zone_name(path: Path) -> str:
    try:
        return path.joinpath("name").read_text().strip() or path.name
    except OSError:
        return path.name


def _open_zone(path: Path, label: str, *, package: bool) -> Zone:
    counter = path / "energy_uj"
    try:
        raw = _read_int(counter)
        range_uj = _read_int(path / "max_energy_range_uj")
    except PermissionError as exc:
        raise RaplError(
            f"{counter} is not readable ({exc.strerror}): since Linux 5.10 only root can read RAPL counters "
            "(CVE-2020-8694); run the agent as root or grant read access to energy_uj"
        ) from exc
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENODATA:
            raise RaplError(f"{counter} gives no data (the zone is disabled by firmware)") from exc
        raise RaplError(f"{counter} cannot be read: {exc}") from exc
    if range_uj <= 0:
        raise RaplError(f"{path / 'max_energy_range_uj'} is {range_uj}: the counter's range is unknown")
    return Zone(path, label, package, range_uj, raw, raw)


def _distinct_labels(zones: list[Zone]) -> list[Zone]:
    """Two zones with one name (seen on odd firmware) get their sysfs name appended, so no series collide."""
    seen: dict[str, int] = {}
    for zone in zones:
        seen[zone.label] = seen.get(zone.label, 0) + 1
    for zone in zones:
        if seen[zone.label] > 1:
            zone.label = f"{zone.label}@{zone.path.name}"
    return zones


class RaplCollector:
    """The RAPL energy counters of this host, unwrapped. Make one with `open`."""

    def __init__(self, node: str, zones: Sequence[Zone], interval: float = 5.0) -> None:
        self.name = "rapl"
        self.interval = interval
        self.node = node
        self.zones = list(zones)
        self._labels = {z.path: {"node": node, "zone": z.label} for z in self.zones}
        self._failing: set[Path] = set()

    @classmethod
    def open(cls, node: str, interval: float = 5.0, *, root: Path = POWERCAP_ROOT) -> RaplCollector | None:
        """A collector of the RAPL zones under `root`, or None (logged once, at INFO, with the reason)."""
        try:
            zones = discover(root)
        except RaplError as exc:
            log.info("RAPL not available (%s): CPU energy telemetry is off", exc)
            return None
        for zone in zones:
            wrap_seconds = zone.range_uj / 1e6 / WRAP_WARNING_WATTS
            if interval >= wrap_seconds:
                log.warning(
                    "RAPL zone %s wraps after %.0f s at %g W: a %g s interval can miss wraps",
                    zone.label,
                    wrap_seconds,
                    WRAP_WARNING_WATTS,
                    interval,
                )
        log.info("CPU energy from RAPL: %s", ", ".join(z.label for z in zones))
        return cls(node, zones, interval)

    def read(self) -> None:
        """Reads every zone's counter once and adds the difference to its total (a zone that cannot be read
        keeps its total; the failure is logged once until it reads again)."""
        for zone in self.zones:
            try:
                raw = _read_int(zone.path / "energy_uj")
            except (OSError, ValueError) as exc:
                if zone.path not in self._failing:
                    self._failing.add(zone.path)
                    log.warning("RAPL zone %s cannot be read: %s", zone.label, exc)
                continue
            self._failing.discard(zone.path)
            zone.total_uj += unwrapped_delta(zone.last_raw, raw, zone.range_uj)
            zone.last_raw = raw

    def collect(self, now: float) -> list[Family]:
        self.read()
        packages: list[tuple[Mapping[str, str], float]] = []
        others: list[tuple[Mapping[str, str], float]] = []
        for zone in self.zones:
            if zone.path in self._failing:
                continue  # its series go stale rather than repeat an old figure
            (packages if zone.package else others).append((self._labels[zone.path], zone.total_uj / 1e6))
        families = []
        for series, samples in ((NODE_CPU_ENERGY, packages), (NODE_RAPL_ENERGY, others)):
            if samples:
                families.append(Family(series.name, series.help, series.type, samples))
        return families

    def package_joules(self) -> float:
        """The node's CPU figure: the package zones' unwrapped totals (as of the last read), in joules."""
        return sum(z.total_uj for z in self.zones if z.package) / 1e6


def unwrapped_delta(previous: int, current: int, range_uj: int) -> int:
    """The energy (uJ) between two raw readings of a counter that wraps to 0 at `range_uj` (at most one wrap)."""
    delta = current - previous
    return delta + range_uj if delta < 0 else delta
