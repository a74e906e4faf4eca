"""This host's NVIDIA GPUs through NVML (package nvidia-ml-py, module pynvml, imported lazily)."""

from __future__ import annotations

import contextlib
import logging

from aidc.domain.nodes import Gpu

log = logging.getLogger(__name__)


def gpu_from_nvml(index: int, name: bytes | str, uuid: bytes | str, memory_total: int) -> Gpu:
    """A `Gpu` from raw NVML values. Older pynvml releases return bytes, newer ones str;
    `memory_total` is nvmlDeviceGetMemoryInfo(handle).total, in bytes."""
    return Gpu(index=index, uuid=_text(uuid), model=_text(name).strip(), memory=int(memory_total))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def read_gpus(*, report_missing: bool = True) -> list[Gpu]:
    """The GPUs NVML sees, in NVML's order (PCI bus order), or [] when there is no NVIDIA driver.
    `report_missing` logs that at INFO (once per caller: discovery runs again and again)."""
    try:
        import pynvml
    except ImportError as exc:
        _missing(f"pynvml cannot be imported: {exc}", report_missing)
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        _missing(str(exc), report_missing)
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append(
                gpu_from_nvml(
                    index,
                    pynvml.nvmlDeviceGetName(handle),
                    pynvml.nvmlDeviceGetUUID(handle),
                    pynvml.nvmlDeviceGetMemoryInfo(handle).total,
                )
            )
        return gpus
    except pynvml.NVMLError as exc:
        log.warning("NVML failed while listing GPUs (%s); this host is reported without GPUs", exc)
        return []
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _missing(why: str, report: bool) -> None:
    level = logging.INFO if report else logging.DEBUG
    log.log(level, "no NVIDIA driver found (%s); this host has no GPUs to offer", why)
