"""Alert label and annotation templates: a small, safe subset of Go's text/template as Prometheus runs it, so a
rule file renders the same here and in Prometheus.

Supported actions (with Go's `{{-`/`-}}` whitespace trimming):
    {{ $labels.NAME }}  {{ $value }}  {{ $value | FUNC }}  {{ printf "FORMAT" $value }}  {{ $value | printf "FORMAT" }}
where FUNC is humanize, humanize1024, humanizePercentage or humanizeDuration, and FORMAT holds one float verb
(%f %e %g %v with optional flags, width and precision) besides literal text and %%. Anything else is refused
when the rule is loaded (TemplateError)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal


class TemplateError(ValueError):
    pass


# ---------------------------------------------------------------------------------- Go float formatting
def _special(v: float) -> str | None:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return None


def format_value(v: float) -> str:
    """Go's `fmt.Sprint(float64)` (%v, what `{{ $value }}` prints): the shortest digits that read back the
    same, in exponent form below 1e-4 and from 1e+06 (Go's %g with the shortest precision)."""
    special = _special(v)
    if special is not None:
        return special
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(v)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    point = len(digit_tuple) + exponent  # the value is 0.DIGITS x 10^point
    x = point - 1
    prefix = "-" if sign else ""
    if x < -4 or x >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def _g4(v: float) -> str:
    return _special(v) or "%.4g" % v  # noqa: UP031  # C's %g is Go's %g here (same rounding and cut-over)


def humanize(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return _g4(v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix = p
            v /= 1000
        return _g4(v) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return _g4(v) + prefix


def humanize1024(v: float) -> str:
    if abs(v) <= 1 or not math.isfinite(v):
        return _g4(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix = p
        v /= 1024
    return _g4(v) + prefix


def humanize_percentage(v: float) -> str:
    return _g4(v * 100) + "%"


def humanize_duration(v: float) -> str:
    if not math.isfinite(v):
        return _g4(v)
    if v == 0:
        return _g4(v) + "s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        total = int(v)
        seconds, minutes, hours, days = total % 60, (total // 60) % 60, (total // 3600) % 24, total // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return f"{_g4(v)}{prefix}s"


FUNCTIONS: dict[str, Callable[[float], str]] = {
    "humanize": humanize,
    "humanize1024": humanize1024,
    "humanizePercentage": humanize_percentage,
    "humanizeDuration": humanize_duration,
}

_VERB = re.compile(r"%([-+ 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])")


def _printf(fmt: str) -> Callable[[float], str]:
    """A printf of one float: Go's and C's formatting agree for %e %f %g; %v is Go's default format."""
    pieces: list[str | tuple[str, str]] = []
    pos = 0
    verbs = 0
    for m in _VERB.finditer(fmt):
        pieces.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, precision, verb = m.groups()
        if verb == "%":
            if flags or width or precision is not None:
                raise TemplateError(f"bad printf format {fmt!r}")
            pieces.append("%")
            continue
        if verb not in "eEfgGv" or (verb == "v" and (flags or width or precision is not None)):
            raise TemplateError(f"printf verb %{verb} is not supported (use %f, %e, %g or %v on $value)")
        verbs += 1
        pieces.append((verb, m.group(0)))
    pieces.append(fmt[pos:])
    if "%" in "".join(p for p in pieces if isinstance(p, str) and p != "%"):
        raise TemplateError(f"bad printf format {fmt!r}")
    if verbs != 1:
        raise TemplateError(f"printf format {fmt!r} must format $value exactly once")

    def render(v: float) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
            elif piece[0] == "v":
                out.append(format_value(v))
            else:
                out.append(_special(v) or piece[1] % v)
        return "".join(out)

    return render


# ------------------------------------------------------------------------------------------- templates
_ACTION = re.compile(r"\{\{(-[ \t\r\n])?(.*?)([ \t\r\n]-)?\}\}", re.DOTALL)
_LABEL = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\Z")
_PRINTF = re.compile(r'printf\s+"((?:[^"\\]|\\.)*)"\s+\$value\Z')
_PIPE_PRINTF = re.compile(r'\$value\s*\|\s*printf\s+"((?:[^"\\]|\\.)*)"\Z')
_PIPE_FUNC = re.compile(r"\$value\s*\|\s*([a-zA-Z0-9]+)\Z")

Render = Callable[[Mapping[str, str], float], str]


def _unquote(text: str) -> str:
    try:
        decoded: str = text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"bad string {text!r}") from exc
    return decoded


def _action(body: str) -> Render:
    body = body.strip()
    if body == "$value":
        return lambda labels, value: format_value(value)
    if m := _LABEL.match(body):
        name = m.group(1)
        return lambda labels, value: labels.get(name, "")
    if m := _PIPE_FUNC.match(body):
        fn = FUNCTIONS.get(m.group(1))
        if fn is None:
            raise TemplateError(f"template function {m.group(1)} is not supported (only {', '.join(FUNCTIONS)})")
        return lambda labels, value: fn(value)
    if m := (_PRINTF.match(body) or _PIPE_PRINTF.match(body)):
        render = _printf(_unquote(m.group(1)))
        return lambda labels, value: render(value)
    raise TemplateError(
        f"unsupported template action {{{{ {body} }}}} (supported: $labels.NAME, $value, $value | humanize..., "
        'printf "%.1f" $value)'
    )


@dataclass(frozen=True)
class Template:
    """A parsed template; `render(labels, value)` expands it for one alert."""

    text: str
    parts: tuple[str | Render, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[str | Render] = []
        pos = 0
        for m in _ACTION.finditer(text):
            literal = text[pos : m.start()]
            if m.group(1):
                literal = literal.rstrip(" \t\r\n")
            parts.append(literal)
            parts.append(_action(m.group(2)))
            pos = m.end()
            if m.group(3):
                while pos < len(text) and text[pos] in " \t\r\n":
                    pos += 1
        tail = text[pos:]
        if "{{" in tail or any("{{" in p for p in parts if isinstance(p, str)):
            raise TemplateError(f"unclosed action in template {text!r}")
        parts.append(tail)
        return cls(text, tuple(p for p in parts if p != ""))

    @property
    def is_constant(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def render(self, labels: Mapping[str, str], value: float) -> str:
        return "".join(p if isinstance(p, str) else p(labels, value) for p in self.parts)
