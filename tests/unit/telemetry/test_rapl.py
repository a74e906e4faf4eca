"""CPU energy from RAPL: zones discovered in a fake powercap tree (tmp_path, laid out as Linux lays out
/sys/class/powercap: zones as entries of the root, subzones inside their parent and repeated in the root),
counters unwrapped, packages alone summed into the node figure, unreadable trees leaving the collector off.
One test reads the real /sys/class/powercap where the host has one."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from aidc.telemetry.collectors import rapl
from aidc.telemetry.collectors.rapl import (
    POWERCAP_ROOT,
    RaplCollector,
    RaplError,
    discover,
    unwrapped_delta,
)
from aidc.telemetry.names import NODE_CPU_ENERGY, NODE_RAPL_ENERGY
from aidc.telemetry.series import Family

RANGE = 262_143_328_850  # max_energy_range_uj as Intel server CPUs report it


def zone(path: Path, name: str, energy_uj: int, range_uj: int = RANGE) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{range_uj}\n")
    return path


def link_subzones(root: Path) -> None:
    """As the kernel does: every subzone also appears as an entry of the root (a symlink)."""
    for parent in root.glob("intel-rapl:*"):
        for child in parent.glob("intel-rapl:*:*"):
            (root / child.name).symlink_to(child)


def two_socket_server(root: Path) -> Path:
    """Two packages with a dram subzone each, a psys zone, the MMIO duplicate of package 0, and the
    control-type directory itself."""
    zone(root / "intel-rapl:0", "package-0", 1_000_000)
    zone(root / "intel-rapl:0" / "intel-rapl:0:0", "dram", 200_000)
    zone(root / "intel-rapl:1", "package-1", 3_000_000)
    zone(root / "intel-rapl:1" / "intel-rapl:1:0", "dram", 400_000)
    zone(root / "intel-rapl:2", "psys", 9_000_000)
    zone(root / "intel-rapl-mmio:0", "package-0", 1_000_000)
    (root / "intel-rapl").mkdir()
    (root / "intel-rapl" / "enabled").write_text("1\n")
    link_subzones(root)
    return root


def write(root: Path, name: str, energy_uj: int) -> None:
    (root / name / "energy_uj").write_text(f"{energy_uj}\n")


def values(families: list[Family]) -> dict[tuple[str, str], float]:
    return {(f.name, labels["zone"]): value for f in families for labels, value in f.samples}


def test_discover_finds_packages_subzones_and_psys_but_not_the_mmio_duplicate(tmp_path: Path) -> None:
    zones = discover(two_socket_server(tmp_path))
    assert [(z.label, z.package) for z in zones] == [
        ("package-0", True),
        ("package-1", True),
        ("package-0/dram", False),
        ("package-1/dram", False),
        ("psys", False),
    ]


def test_subzones_listed_only_in_the_root_are_found(tmp_path: Path) -> None:
    """Some layouts list `intel-rapl:0:1` only as an entry of the root."""
    zone(tmp_path / "intel-rapl:0", "package-0", 10)
    zone(tmp_path / "intel-rapl:0:1", "uncore", 5)
    assert [z.label for z in discover(tmp_path)] == ["package-0", "package-0/uncore"]


def test_collect_reports_packages_as_the_cpu_figure_and_the_rest_apart(tmp_path: Path) -> None:
    root = two_socket_server(tmp_path)
    collector = RaplCollector.open("cpu-node", root=root)
    assert collector is not None
    first = values(collector.collect(0.0))
    assert first == {
        (NODE_CPU_ENERGY.name, "package-0"): 1.0,
        (NODE_CPU_ENERGY.name, "package-1"): 3.0,
        (NODE_RAPL_ENERGY.name, "package-0/dram"): 0.2,
        (NODE_RAPL_ENERGY.name, "package-1/dram"): 0.4,
        (NODE_RAPL_ENERGY.name, "psys"): 9.0,
    }
    write(root, "intel-rapl:0", 1_500_000)
    write(root, "intel-rapl:1", 3_250_000)
    write(root, "intel-rapl:0/intel-rapl:0:0", 300_000)
    second = values(collector.collect(5.0))
    assert second[NODE_CPU_ENERGY.name, "package-0"] == pytest.approx(1.5)
    assert second[NODE_CPU_ENERGY.name, "package-1"] == pytest.approx(3.25)
    assert second[NODE_RAPL_ENERGY.name, "package-0/dram"] == pytest.approx(0.3)
    # The node figure: packages only (neither dram nor psys added).
    assert collector.package_joules() == pytest.approx(4.75)
    family = next(f for f in collector.collect(6.0) if f.name == NODE_CPU_ENERGY.name)
    assert family.type == "counter"
    assert all(labels["node"] == "cpu-node" for labels, _ in family.samples)


def test_a_wrapped_counter_keeps_growing(tmp_path: Path) -> None:
    root = tmp_path
    zone(root / "intel-rapl:0", "package-0", 900, range_uj=1_000)
    collector = RaplCollector.open("n", root=root)
    assert collector is not None
    write(root, "intel-rapl:0", 950)
    collector.read()
    write(root, "intel-rapl:0", 30)  # wrapped: 950 -> 1000 (= 0) -> 30, that is 80 uJ
    collector.read()
    write(root, "intel-rapl:0", 70)
    collector.read()
    assert collector.package_joules() == pytest.approx((900 + 50 + 80 + 40) / 1e6)
    assert unwrapped_delta(950, 30, 1_000) == 80
    assert unwrapped_delta(10, 30, 1_000) == 20


def test_a_short_range_warns_that_wraps_can_be_missed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    zone(tmp_path / "intel-rapl:0", "package-0", 1, range_uj=4_000_000_000)  # 4 kJ: 4 s at 1 kW
    with caplog.at_level(logging.WARNING):
        assert RaplCollector.open("n", interval=5.0, root=tmp_path) is not None
    assert "can miss wraps" in caplog.text


def test_no_powercap_tree_leaves_the_collector_off_and_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert RaplCollector.open("n", root=tmp_path / "missing") is None
    lines = [r.getMessage() for r in caplog.records if "RAPL not available" in r.getMessage()]
    assert len(lines) == 1
    assert "does not exist" in lines[0]


def test_a_tree_without_rapl_zones_is_refused(tmp_path: Path) -> None:
    zone(tmp_path / "dtpm", "dtpm", 1)
    with pytest.raises(RaplError, match="no intel-rapl zone"):
        discover(tmp_path)


def deny(monkeypatch: pytest.MonkeyPatch, *denied: Path) -> None:
    """Reading these counters fails with EACCES, as for a user that is not root since Linux 5.10 (energy_uj is
    0400 root). Done by patching the read: chmod cannot make a file unreadable to root, which tests may be."""
    real = rapl._read_int

    def read(path: Path) -> int:
        if path in denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl, "_read_int", read)


def test_permission_denied_leaves_the_collector_off_and_names_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    counter = zone(tmp_path / "intel-rapl:0", "package-0", 1) / "energy_uj"
    deny(monkeypatch, counter)
    with caplog.at_level(logging.INFO):
        assert RaplCollector.open("n", root=tmp_path) is None
    lines = [r.getMessage() for r in caplog.records if "RAPL not available" in r.getMessage()]
    assert len(lines) == 1
    assert "not readable (Permission denied)" in lines[0]
    assert "only root" in lines[0]


def test_an_unreadable_subzone_is_left_out_but_packages_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zone(tmp_path / "intel-rapl:0", "package-0", 1)
    deny(monkeypatch, zone(tmp_path / "intel-rapl:0" / "intel-rapl:0:0", "dram", 1) / "energy_uj")
    assert [z.label for z in discover(tmp_path)] == ["package-0"]


def test_a_real_unreadable_file_is_refused(tmp_path: Path) -> None:
    """The same through the file system, where the tests do not run as root."""
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading (the patched test covers EACCES)")
    counter = zone(tmp_path / "intel-rapl:0", "package-0", 1) / "energy_uj"
    counter.chmod(0o000)
    try:
        with pytest.raises(RaplError, match="only root"):
            discover(tmp_path)
    finally:
        counter.chmod(0o644)


def test_a_zone_that_stops_reading_goes_stale_and_comes_back(tmp_path: Path) -> None:
    zone(tmp_path / "intel-rapl:0", "package-0", 1_000_000)
    zone(tmp_path / "intel-rapl:1", "package-1", 2_000_000)
    collector = RaplCollector.open("n", root=tmp_path)
    assert collector is not None
    write(tmp_path, "intel-rapl:1", 2_500_000)
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("garbage\n")
    assert values(collector.collect(1.0)) == {(NODE_CPU_ENERGY.name, "package-1"): 2.5}
    write(tmp_path, "intel-rapl:0", 1_200_000)
    assert values(collector.collect(2.0))[NODE_CPU_ENERGY.name, "package-0"] == pytest.approx(1.2)


def test_zones_of_one_name_get_distinct_labels(tmp_path: Path) -> None:
    zone(tmp_path / "intel-rapl:0", "package-0", 1)
    zone(tmp_path / "intel-rapl:1", "package-0", 1)
    assert [z.label for z in discover(tmp_path)] == ["package-0@intel-rapl:0", "package-0@intel-rapl:1"]


def test_the_real_powercap_tree() -> None:
    """Reads this host's RAPL counters where it has them (bare metal, as root since Linux 5.10)."""
    if not (POWERCAP_ROOT / "intel-rapl:0").exists():
        pytest.skip(f"{POWERCAP_ROOT}/intel-rapl:0 does not exist here (a VM or a kernel without intel_rapl)")
    try:
        zones = discover()
    except RaplError as exc:
        pytest.skip(f"RAPL present but not usable here: {exc}")
    collector = RaplCollector("this-host", zones)
    before = collector.package_joules()
    families = collector.collect(0.0)
    assert any(f.name == NODE_CPU_ENERGY.name for f in families)
    assert collector.package_joules() >= before
