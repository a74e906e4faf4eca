"""Setting this host's GPU power limits: through NVML (package nvidia-ml-py, module pynvml, imported lazily),
or a dry run that only says what it would do, and why it does not.

Limits are in watts here; NVML speaks milliwatts. Setting a limit needs root (NVML answers NO_PERMISSION
otherwise): that is reported in the outcome, never raised. A limit outside what the GPU allows
(nvmlDeviceGetPowerManagementLimitConstraints) is clamped into the range, and the outcome says so.
NVML keeps a limit until it is changed again or the driver is reloaded: callers restore the previous one.

`open_power_limits()` gives the NVML executor where NVML initialises and sees GPUs, else a dry run saying why.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

# NVML's return codes (nvml.h) that get words of their own.
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NO_DRIVER = "no NVIDIA driver on this host"


@dataclass(frozen=True)
class LimitOutcome:
    """What setting (or restoring) one GPU's limit did.

    `limit_watts` is the limit set, or that would have been set (after clamping); None only when restoring to
    a default limit nobody could read. `previous_watts` is the limit read before (None where it could not be
    read). `dry_run`: the hardware was not changed (a dry run, or NVML refused), `reason` says why; it also
    carries a clamping note when a limit was set."""

    node: str
    gpu_index: int
    requested_watts: float | None
    limit_watts: float | None
    previous_watts: float | None
    dry_run: bool
    reason: str | None = None

    @property
    def clamped(self) -> bool:
        return self.limit_watts != self.requested_watts


class PowerLimits(Protocol):
    """Sets GPU power limits on one host (or pretends to)."""

    def current_watts(self, gpu_index: int) -> float | None:
        """The GPU's limit now, None where it cannot be read."""
        ...

    def apply(self, node: str, gpu_index: int, watts: float, rule: str) -> LimitOutcome:
        """Set the GPU's limit to `watts` (clamped into its range) because of `rule` (for the log)."""
        ...

    def restore(self, node: str, gpu_index: int, watts: float | None) -> LimitOutcome:
        """Set the GPU's limit back to `watts`, or to the GPU's default limit when None."""
        ...

    def close(self) -> None: ...


class DryRunPowerLimits:
    """Changes nothing: logs what it would do, and `reason` (why it is a dry run)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def current_watts(self, gpu_index: int) -> float | None:
        return None

    def apply(self, node: str, gpu_index: int, watts: float, rule: str) -> LimitOutcome:
        log.info(
            "dry-run: would cap GPU %d of node %s at %g W (rule %s): %s", gpu_index, node, watts, rule, self.reason
        )
        return LimitOutcome(node, gpu_index, watts, watts, None, dry_run=True, reason=self.reason)

    def restore(self, node: str, gpu_index: int, watts: float | None) -> LimitOutcome:
        target = "its default limit" if watts is None else f"{watts:g} W"
        log.info("dry-run: would restore GPU %d of node %s to %s: %s", gpu_index, node, target, self.reason)
        return LimitOutcome(node, gpu_index, watts, watts, None, dry_run=True, reason=self.reason)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class LimitRange:
    """What a GPU allows (watts); `default_watts` None where NVML does not say."""

    min_watts: float
    max_watts: float
    default_watts: float | None


class NvmlPowerLimits:
    """This host's GPUs' power limits through NVML, GPUs by NVML index. Make one with `open_power_limits`."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._closed = False

    def _handle(self, gpu_index: int) -> Any:
        return self._nvml.nvmlDeviceGetHandleByIndex(gpu_index)

    def current_watts(self, gpu_index: int) -> float | None:
        try:
            return float(self._nvml.nvmlDeviceGetPowerManagementLimit(self._handle(gpu_index))) / 1000.0
        except self._nvml.NVMLError as exc:
            log.debug("power limit of GPU %d cannot be read: %s", gpu_index, exc)
            return None

    def limit_range(self, gpu_index: int) -> LimitRange:
        """Raises pynvml.NVMLError."""
        handle = self._handle(gpu_index)
        low, high = self._nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
        default: float | None
        try:
            default = float(self._nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle)) / 1000.0
        except self._nvml.NVMLError:
            default = None
        return LimitRange(float(low) / 1000.0, float(high) / 1000.0, default)

    def apply(self, node: str, gpu_index: int, watts: float, rule: str) -> LimitOutcome:
        outcome = self._set(node, gpu_index, watts)
        if not outcome.dry_run:
            log.info(
                "capped GPU %d of node %s at %g W (was %s; rule %s)%s",
                gpu_index,
                node,
                outcome.limit_watts,
                _watts(outcome.previous_watts),
                rule,
                f": {outcome.reason}" if outcome.reason else "",
            )
        return outcome

    def restore(self, node: str, gpu_index: int, watts: float | None) -> LimitOutcome:
        if watts is None:
            try:
                default = self.limit_range(gpu_index).default_watts
            except self._nvml.NVMLError as exc:
                return self._failed(node, gpu_index, None, None, exc)
            if default is None:
                reason = "no previous limit was recorded and NVML gives no default limit"
                log.warning("GPU %d of node %s not restored: %s", gpu_index, node, reason)
                return LimitOutcome(node, gpu_index, None, None, None, dry_run=True, reason=reason)
            watts = default
        outcome = self._set(node, gpu_index, watts)
        if not outcome.dry_run:
            log.info("restored GPU %d of node %s to %g W", gpu_index, node, outcome.limit_watts)
        return outcome

    def _set(self, node: str, gpu_index: int, watts: float) -> LimitOutcome:
        nvml = self._nvml
        previous = self.current_watts(gpu_index)
        try:
            allowed = self.limit_range(gpu_index)
        except nvml.NVMLError as exc:
            return self._failed(node, gpu_index, watts, previous, exc)
        limit = min(max(watts, allowed.min_watts), allowed.max_watts)
        note = None
        if limit != watts:
            note = f"{watts:g} W clamped to {limit:g} W: the GPU allows {allowed.min_watts:g}..{allowed.max_watts:g} W"
            log.info("GPU %d of node %s: %s", gpu_index, node, note)
        try:
            nvml.nvmlDeviceSetPowerManagementLimit(self._handle(gpu_index), round(limit * 1000))
        except nvml.NVMLError as exc:
            outcome = self._failed(node, gpu_index, watts, previous, exc, limit)
            return outcome if note is None else _with_note(outcome, note)
        return LimitOutcome(node, gpu_index, watts, limit, previous, dry_run=False, reason=note)

    def _failed(
        self,
        node: str,
        gpu_index: int,
        watts: float | None,
        previous: float | None,
        exc: Exception,
        limit: float | None = None,
    ) -> LimitOutcome:
        code = getattr(exc, "value", None)
        if code == NVML_ERROR_NO_PERMISSION:
            reason = f"no permission to set GPU power limits (NVML: {exc}; it needs root)"
        elif code == NVML_ERROR_NOT_SUPPORTED:
            reason = f"this GPU does not support setting its power limit (NVML: {exc})"
        else:
            reason = f"NVML could not set the power limit: {exc}"
        log.warning("GPU %d of node %s left at %s: %s", gpu_index, node, _watts(previous), reason)
        return LimitOutcome(node, gpu_index, watts, watts if limit is None else limit, previous, True, reason)

    def close(self) -> None:
        """Shuts NVML down (idempotent). NVML counts its initialisations: other users in the process go on."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()


def _with_note(outcome: LimitOutcome, note: str) -> LimitOutcome:
    return LimitOutcome(
        outcome.node,
        outcome.gpu_index,
        outcome.requested_watts,
        outcome.limit_watts,
        outcome.previous_watts,
        outcome.dry_run,
        f"{outcome.reason}; {note}",
    )


def _watts(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g} W"


def open_power_limits(*, nvml: Any = None) -> NvmlPowerLimits | DryRunPowerLimits:
    """The NVML executor where NVML initialises and sees at least one GPU, else a dry run that says why
    (logged once, at INFO). `nvml` stands in for the pynvml module (tests)."""
    if nvml is None:
        try:
            import pynvml
        except ImportError as exc:
            return _dry(f"{NO_DRIVER} (pynvml cannot be imported: {exc})")
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return _dry(f"{NO_DRIVER} (NVML: {exc})")
    try:
        count = int(nvml.nvmlDeviceGetCount())
    except nvml.NVMLError as exc:
        count, why = 0, f"listing GPUs failed: {exc}"
    else:
        why = "the driver sees no GPU"
    if count == 0:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()
        return _dry(f"no GPU to cap on this host ({why})")
    log.info("GPU power caps through NVML on %d GPU(s)", count)
    return NvmlPowerLimits(nvml)


def _dry(reason: str) -> DryRunPowerLimits:
    log.info("GPU power caps are a dry run: %s", reason)
    return DryRunPowerLimits(reason)
