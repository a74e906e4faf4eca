"""Setting GPU power limits through NVML, and the dry run. A fake NVML (tests/fixtures/fake_nvml.py) stands
in for the NVIDIA driver and GPUs this machine does not have: it keeps each GPU's limit, its allowed range,
and refuses to set limits when not root, as NVML does."""

from __future__ import annotations

import logging
import sys

import pytest

from aidc.telemetry.collectors.power_limits import DryRunPowerLimits, NvmlPowerLimits, open_power_limits
from tests.fixtures.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeGpu, FakePowerNvml


def opened(nvml: FakePowerNvml) -> NvmlPowerLimits:
    limits = open_power_limits(nvml=nvml)
    assert isinstance(limits, NvmlPowerLimits)
    return limits


def test_apply_sets_the_limit_in_milliwatts_and_reads_the_previous_one() -> None:
    nvml = FakePowerNvml()
    outcome = opened(nvml).apply("gpu-01", 1, 490.0, "team=research: 70%")
    assert nvml.sets == [(1, 490_000)]
    assert nvml.watts(1) == 490.0
    assert nvml.watts(0) == 700.0  # the other GPU is left alone
    assert outcome.previous_watts == 700.0
    assert outcome.limit_watts == 490.0
    assert not outcome.dry_run
    assert not outcome.clamped
    assert outcome.reason is None


def test_a_limit_outside_the_allowed_range_is_clamped_and_said() -> None:
    nvml = FakePowerNvml()
    limits = opened(nvml)
    low = limits.apply("gpu-01", 0, 140.0, "every job: 20%")  # the fake H100 allows 200..700 W
    assert nvml.watts(0) == 200.0
    assert low.clamped
    assert low.limit_watts == 200.0
    assert low.reason is not None
    assert "140 W clamped to 200 W" in low.reason
    assert "200..700 W" in low.reason
    nvml.gpus[0].max_mw = 600_000
    high = limits.apply("gpu-01", 0, 650.0, "every job: 650W")
    assert (high.limit_watts, nvml.watts(0), high.previous_watts) == (600.0, 600.0, 200.0)


def test_no_permission_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    nvml = FakePowerNvml(root=False)
    with caplog.at_level(logging.WARNING):
        outcome = opened(nvml).apply("gpu-01", 0, 350.0, "every job: 50%")
    assert outcome.dry_run
    assert outcome.reason is not None
    assert "no permission" in outcome.reason
    assert "root" in outcome.reason
    assert outcome.previous_watts == 700.0  # reading needs no root
    assert nvml.watts(0) == 700.0
    assert "no permission" in caplog.text


def test_a_gpu_that_cannot_be_capped_says_so() -> None:
    nvml = FakePowerNvml(gpus=[FakeGpu(settable=False)])
    outcome = opened(nvml).apply("gpu-01", 0, 350.0, "r")
    assert outcome.dry_run
    assert outcome.reason is not None
    assert "does not support" in outcome.reason


def test_a_gpu_index_nvml_does_not_know_is_reported() -> None:
    outcome = opened(FakePowerNvml()).apply("gpu-01", 7, 350.0, "r")
    assert outcome.dry_run
    assert outcome.reason is not None
    assert "Invalid Argument" in outcome.reason


def test_restore_to_a_given_limit_or_to_the_default() -> None:
    nvml = FakePowerNvml(gpus=[FakeGpu(limit_mw=650_000, default_mw=700_000)])
    limits = opened(nvml)
    limits.apply("gpu-01", 0, 300.0, "r")
    back = limits.restore("gpu-01", 0, 650.0)
    assert (back.limit_watts, back.previous_watts, back.dry_run) == (650.0, 300.0, False)
    assert nvml.watts(0) == 650.0
    limits.apply("gpu-01", 0, 300.0, "r")
    default = limits.restore("gpu-01", 0, None)
    assert default.limit_watts == 700.0
    assert nvml.watts(0) == 700.0


def test_restore_without_a_previous_or_default_limit_changes_nothing_and_says_why() -> None:
    nvml = FakePowerNvml(gpus=[FakeGpu(limit_mw=300_000, default_readable=False)])
    outcome = opened(nvml).restore("gpu-01", 0, None)
    assert outcome.dry_run
    assert outcome.reason is not None
    assert "no default limit" in outcome.reason
    assert nvml.sets == []


def test_current_watts_and_range() -> None:
    limits = opened(FakePowerNvml(gpus=[FakeGpu(limit_mw=450_500)]))
    assert limits.current_watts(0) == 450.5
    assert limits.current_watts(3) is None
    allowed = limits.limit_range(0)
    assert (allowed.min_watts, allowed.max_watts, allowed.default_watts) == (200.0, 700.0, 700.0)


def test_close_shuts_nvml_down_once() -> None:
    nvml = FakePowerNvml()
    limits = opened(nvml)
    assert nvml.initialised == 1
    limits.close()
    limits.close()
    assert nvml.initialised == 0


# ---------------------------------------------------------------------------------------------- dry run
def test_without_a_driver_open_gives_a_dry_run_saying_why(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        limits = open_power_limits(nvml=FakePowerNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND))
    assert isinstance(limits, DryRunPowerLimits)
    assert limits.reason.startswith("no NVIDIA driver on this host")
    assert "NVML Shared Library Not Found" in limits.reason
    assert caplog.text.count("dry run") == 1


def test_without_gpus_open_gives_a_dry_run() -> None:
    nvml = FakePowerNvml(gpus=[])
    limits = open_power_limits(nvml=nvml)
    assert isinstance(limits, DryRunPowerLimits)
    assert "no GPU" in limits.reason
    assert nvml.initialised == 0  # NVML shut down again


def test_without_pynvml_open_gives_a_dry_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # importing it raises ImportError
    limits = open_power_limits()
    assert isinstance(limits, DryRunPowerLimits)
    assert "pynvml cannot be imported" in limits.reason


def test_the_dry_run_changes_nothing_and_logs_what_it_would_do(caplog: pytest.LogCaptureFixture) -> None:
    limits = DryRunPowerLimits("node gpu-02 is not this host")
    with caplog.at_level(logging.INFO):
        outcome = limits.apply("gpu-02", 3, 490.0, "team=research: 70%")
        back = limits.restore("gpu-02", 3, None)
    assert "dry-run: would cap GPU 3 of node gpu-02 at 490 W (rule team=research: 70%)" in caplog.text
    assert "node gpu-02 is not this host" in caplog.text
    assert (outcome.dry_run, outcome.limit_watts, outcome.previous_watts) == (True, 490.0, None)
    assert outcome.reason == "node gpu-02 is not this host"
    assert back.dry_run
    assert limits.current_watts(3) is None


def test_the_real_nvml_of_this_host() -> None:
    """The real pynvml: a dry run naming the cause where there is no driver (this machine); on a GPU host,
    the limits of GPU 0 are read (never set: that would change the machine's settings)."""
    pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")
    limits = open_power_limits()
    try:
        if isinstance(limits, DryRunPowerLimits):
            assert limits.reason
            return
        current = limits.current_watts(0)
        allowed = limits.limit_range(0)
        assert current is not None
        assert 0 < allowed.min_watts <= current <= allowed.max_watts
    finally:
        limits.close()
