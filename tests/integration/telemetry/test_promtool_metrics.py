"""`promtool check metrics` on the exposition of many GPUs, as the control plane renders them: the only lints are
those that come with dcgm-exporter's names (its camelCase `modelName` label, its counters without `_total`, its
counter named `..._COUNTER`), which we keep so that existing dashboards work. The GPU values are simulated (this
machine has no GPU)."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from aidc.telemetry.collectors.gpu_reading import GpuReading, XidState, families_from_readings
from aidc.telemetry.exposition import render
from aidc.telemetry.names import all_names

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed: scripts/install-test-deps.sh installs it (CI runs it)"
)
NOW = 1_790_000_000.0
KNOWN = (
    "label names should be written in 'snake_case' not 'camelCase'",
    'counter metrics should have "_total" suffix',
    "metric name should not include type 'counter'",
)


def _readings(count: int) -> list[GpuReading]:
    rng = random.Random(3)
    return [
        GpuReading(
            index=i % 8,
            uuid=f"GPU-{rng.getrandbits(128):032x}",
            name="NVIDIA H100 80GB HBM3",
            util_gpu=float(rng.randrange(101)),
            util_memory=40.0,
            memory_used=2**34,
            memory_free=2**34,
            memory_total=2**35,
            temperature_gpu=float(rng.randrange(40, 90)),
            temperature_memory=70.0,
            power_mw=float(rng.randrange(80_000, 700_000)),
            power_limit_mw=700_000.0,
            energy_mj=float(10**11),
            sm_clock_mhz=1980.0,
            mem_clock_mhz=2619.0,
            ecc_sbe_volatile=0,
            ecc_dbe_volatile=0,
            ecc_sbe_aggregate=1,
            ecc_dbe_aggregate=0,
            remapped_correctable=0,
            remapped_uncorrectable=0,
            remap_pending=False,
            remap_failure=False,
            throttle_reasons=4,
            nvlink_crc_flit_errors=0,
            nvlink_crc_data_errors=0,
            nvlink_replay_errors=0,
            nvlink_recovery_errors=0,
            pcie_replay=0,
            processes=(),
        )
        for i in range(count)
    ]


def test_only_dcgm_exporters_own_lints_on_a_thousand_gpus() -> None:
    assert PROMTOOL is not None
    readings = _readings(1000)
    xids = XidState()
    for reading in readings:
        xids.watch(reading.uuid)
    xids.record(readings[5].uuid, 79, NOW - 1)
    families = []
    for start in range(0, len(readings), 8):
        families += families_from_readings(readings[start : start + 8], f"node-{start // 8:03d}", xids, NOW)
    text = render(families)
    assert text.count(b"\nDCGM_FI_DEV_GPU_UTIL{") == 1000
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, check=False)
    problems = [line for line in checked.stderr.decode().splitlines() if line.strip()]
    assert problems, "promtool should report dcgm-exporter's camelCase label (else this test checks nothing)"
    for line in problems:
        name, _, problem = line.partition(" ")
        assert name.startswith("DCGM_FI_DEV_"), line
        assert problem in KNOWN, line
        if problem in KNOWN[1:]:
            assert all_names()[name].type == "counter", line
