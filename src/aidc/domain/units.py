"""Parsing of the units people write in job specs: sizes, durations and GPU requests.

Sizes follow Kubernetes: KB/MB/GB/TB (and K/M/G/T) are powers of 1000, KiB/MiB/GiB/TiB (and Ki/Mi/Gi/Ti)
powers of 1024; a bare integer is bytes. Durations accept "90s", "2h30m", "1d", a bare number of seconds (as a
number or as text), and Slurm's time forms with a colon or a dash ("MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM",
"D-HH:MM:SS"). Slurm reads a bare "45" as minutes; here it is seconds, like every other bare number.
"""

from __future__ import annotations

import math
import re

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "p": 10**15,
    "pb": 10**15,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
    "pi": 2**50,
    "pib": 2**50,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(value: str | int | float) -> int:
    """Return a size in bytes. Raises ValueError with a message fit for a user."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512MB or 16GiB, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"size must be a non-negative number of bytes, got {value}")
        return int(value)
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f"cannot read {value!r} as a size; use forms such as 512MB, 16GB, 1.5TiB")
    number, unit = match.groups()
    factor = _SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(f"unknown size unit {unit!r} in {value!r}; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB")
    return int(float(number) * factor)


def format_size(num_bytes: int) -> str:
    """Render bytes the way people wrote them when the value is whole in some unit (16GiB, 2GB); otherwise
    in binary units with one decimal."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if num_bytes >= factor and num_bytes % factor == 0 and num_bytes // factor < 1000:
            return f"{num_bytes // factor}{unit}"
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f}{unit}" if unit == "B" or size == int(size) else f"{size:.1f}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)", re.IGNORECASE)
_DURATION_FULL = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|d|h|m|s)\s*)+$", re.IGNORECASE)
_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | int | float) -> float:
    """Return a duration in seconds. Raises ValueError with a message fit for a user."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s or 2h30m, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"duration must be a non-negative number of seconds, got {value}")
        return float(value)
    text = value.strip()
    if _DURATION_FULL.match(text):
        return sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in _DURATION_PART.findall(text))
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    slurm = _SLURM_TIME.match(text)
    if slurm and (":" in text or "-" in text):
        return _slurm_seconds(*slurm.groups())
    raise ValueError(f"cannot read {value!r} as a duration; use forms such as 90s, 30m, 2h30m, 1d or HH:MM:SS")


def _slurm_seconds(days: str | None, a: str, b: str | None, c: str | None) -> float:
    d = int(days) if days else 0
    if days:  # D-HH, D-HH:MM, D-HH:MM:SS
        h, m, s = int(a), int(b or 0), int(c or 0)
    elif c is not None:  # HH:MM:SS
        h, m, s = int(a), int(b or 0), int(c)
    else:  # MM:SS
        h, m, s = 0, int(a), int(b or 0)
    return float(((d * 24 + h) * 60 + m) * 60 + s)


def format_duration(seconds: float) -> str:
    """Render seconds compactly: 2h30m, 45s, 1d2h."""
    total = round(seconds)
    if total < 60:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds:.2f}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts[:2])


_GPU_RE = re.compile(r"^\s*(?:([A-Za-z0-9][A-Za-z0-9 ._-]*?)\s*:\s*)?(\d+(?:\.\d+)?|\.\d+)\s*$")

# A GPU is shared in thousandths ("milli-GPUs", as the Alibaba GPU traces and the FGD paper count them).
GPU_MILLI = 1000


def parse_gpus(value: str | int | float) -> tuple[int | float, str | None]:
    """Read a GPU request: 8, "8", "H100:8", or a share of one GPU: 0.25, "T4:0.5".
    Returns (amount, model or None); the amount is an int when whole. See `split_gpus` for its limits."""
    if isinstance(value, bool):
        raise ValueError("expected a GPU count such as 2 or H100:8, got a boolean")
    if isinstance(value, int | float):
        return _whole_if_integral(value), None
    match = _GPU_RE.match(value)
    if not match:
        raise ValueError(
            f"cannot read {value!r} as a GPU request; use a count (2), MODEL:COUNT (H100:8) or a share (T4:0.5)"
        )
    model, amount = match.groups()
    return _whole_if_integral(float(amount)), model


def _whole_if_integral(amount: float) -> int | float:
    if isinstance(amount, int):
        return amount
    return int(amount) if math.isfinite(amount) and amount == int(amount) else amount


def split_gpus(amount: float) -> tuple[int, int]:
    """A GPU amount as (GPUs, thousandths of each): 8 -> (8, 1000), 0.25 -> (1, 250).

    A share of one GPU is rounded to the nearest thousandth and must be at least 0.001; more than one
    GPU must be a whole number (1.5 GPUs cannot be placed: a job gets whole GPUs or a share of one)."""
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"must be a non-negative number of GPUs, got {amount}")
    if amount == int(amount):
        return int(amount), GPU_MILLI
    if amount > 1:
        raise ValueError(f"more than one GPU must be a whole number, got {amount:g}; a share must be below 1 (0.5)")
    milli = round(amount * GPU_MILLI)
    if milli < 1:
        raise ValueError(f"the smallest share of a GPU is 0.001, got {amount:g}")
    return (1, milli) if milli < GPU_MILLI else (1, GPU_MILLI)


def format_gpus(gpus: int, milli: int = GPU_MILLI) -> str:
    """The amount as people write it: "8", "0.25"."""
    return str(gpus) if milli >= GPU_MILLI else f"{milli / GPU_MILLI:g}"


def format_seconds(seconds: float) -> str:
    """Seconds the way people read them in tables: 42s, 12.5m, 3.2h."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
