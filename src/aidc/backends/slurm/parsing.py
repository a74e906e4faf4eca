"""Reading the JSON of `squeue --json`, `sinfo --json` and `sacct --json` (pure: no commands run here).

Written against Slurm 22.05 (openapi v0.0.38: `job_state` a string such as "RUNNING" or "COMPLETING", `exit_code`
a wait status such as 768 for exit code 3, times as epoch integers, node `state` a lower-case string plus
`state_flags`) and tolerant of the shapes of 23.02 and later that we know of: states as lists (["IDLE",
"DRAIN"]), numbers as {"set": .., "infinite": .., "number": ..} objects, and `exit_code` as
{"status": [..], "return_code": .., "signal": {"id": .., "name": ..}}."""

from __future__ import annotations

import re
import signal as signals
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A job in one of these base states has ended, unless a flag below says Slurm is still busy with it.
TERMINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"}
)
# Still holding resources, or about to run again (requeued): the attempt is still open.
BUSY_FLAGS = frozenset(
    {"COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "STAGE_OUT", "SPECIAL_EXIT", "CONFIGURING"}
)


class SlurmJsonError(ValueError):
    """Output that is not the JSON we expect; the message says what was wrong."""


def number(value: Any) -> float | None:
    """A number as Slurm writes it: 3, 3.5, null, or (23.02+) {"set": true, "infinite": false, "number": 3};
    None for unset or infinite."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, Mapping):
        if not value.get("set", True) or value.get("infinite", False):
            return None
        return number(value.get("number"))
    return None


def integer(value: Any) -> int | None:
    found = number(value)
    return None if found is None else int(found)


def states(value: Any) -> tuple[str, ...]:
    """A state as upper-case words: "RUNNING" -> ("RUNNING",), ["IDLE", "DRAIN"] -> ("IDLE", "DRAIN"),
    "idle+drain" (some versions' node states) -> ("IDLE", "DRAIN")."""
    if isinstance(value, str):
        return tuple(part.upper() for part in re.split(r"[+,\s]+", value) if part)
    if isinstance(value, Sequence):
        return tuple(str(part).upper() for part in value if str(part))
    return ()


@dataclass(frozen=True)
class ExitStatus:
    """How a job's batch script ended as Slurm saw it: `exit_code` in the shell's convention (128 + N when
    killed by signal N), `signal` that N."""

    exit_code: int | None
    signal: int | None


def exit_status(value: Any) -> ExitStatus | None:
    """From a wait status (22.05: 768 is exit code 3, 9 is killed by SIGKILL) or from the object of 23.02+
    and of sacct (return_code, signal.id or signal.signal_id)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if value & 0x7F:
            return ExitStatus(128 + (value & 0x7F), value & 0x7F)
        return ExitStatus((value >> 8) & 0xFF, None)
    if isinstance(value, Mapping):
        sig_value = value.get("signal")
        sig: int | None = None
        if isinstance(sig_value, Mapping):
            sig = integer(sig_value.get("id", sig_value.get("signal_id")))
            if sig is None and sig_value.get("name"):
                sig = _signal_number(str(sig_value["name"]))
        status = states(value.get("status"))
        if sig and (not status or "SIGNALED" in status):
            return ExitStatus(128 + sig, sig)
        code = integer(value.get("return_code"))
        return None if code is None else ExitStatus(code, None)
    return None


def _signal_number(name: str) -> int | None:
    try:
        return int(signals.Signals[name if name.startswith("SIG") else f"SIG{name}"])
    except KeyError:
        return None


@dataclass(frozen=True)
class SlurmJob:
    job_id: int
    name: str
    states: tuple[str, ...]  # the base state first, then flags (23.02+; 22.05 gives one word)
    exit: ExitStatus | None
    start_time: float | None  # seconds since the epoch; None (or 0) before it started
    end_time: float | None
    reason: str  # Slurm's state_reason, e.g. "Resources", "NonZeroExitCode"
    nodes: str  # e.g. "node[1-2]"; "" while queued

    @property
    def state(self) -> str:
        return self.states[0] if self.states else "UNKNOWN"

    @property
    def finished(self) -> bool:
        """Ended for good: a terminal state, and Slurm neither still cleaning up nor about to run it again."""
        return self.state in TERMINAL_STATES and not BUSY_FLAGS.intersection(self.states)

    @property
    def started(self) -> bool:
        """Whether it ever ran: it was given nodes (a job cancelled while queued has a start time, but no nodes)."""
        return bool(self.nodes)


def _document(doc: Any, key: str) -> list[Mapping[str, Any]]:
    if not isinstance(doc, Mapping):
        raise SlurmJsonError("expected a JSON object")
    problems = errors(doc)
    items = doc.get(key)
    if items is None:
        raise SlurmJsonError(f"no {key!r} in the output" + (f": {'; '.join(problems)}" if problems else ""))
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise SlurmJsonError(f"{key!r} is not a list of objects")
    return items


def errors(doc: Mapping[str, Any]) -> list[str]:
    """The messages in the document's `errors` list (strings, or objects with error/description)."""
    found: list[str] = []
    for item in doc.get("errors") or []:
        text = str(item.get("description") or item.get("error") or item) if isinstance(item, Mapping) else str(item)
        if text:
            found.append(text)
    return found


def _time(value: Any) -> float | None:
    found = number(value)
    return found if found else None


def parse_jobs(doc: Any) -> list[SlurmJob]:
    """The jobs of `squeue --json`. The nested state and times of `sacct --json` are read too, but the backend
    reads sacct's text instead (see `parse_sacct`)."""
    jobs = []
    for item in _document(doc, "jobs"):
        job_id = integer(item.get("job_id"))
        if job_id is None:
            raise SlurmJsonError("a job without job_id")
        state: Any = item.get("job_state")
        times: Any = item.get("time") if isinstance(item.get("time"), Mapping) else item
        if state is None and isinstance(item.get("state"), Mapping):  # sacct
            state = item["state"].get("current")
            reason = item["state"].get("reason")
        else:
            reason = item.get("state_reason")
        start = _time(times.get("start_time", times.get("start")))
        end = _time(times.get("end_time", times.get("end")))
        nodes = item.get("nodes")
        jobs.append(
            SlurmJob(
                job_id=job_id,
                name=str(item.get("name") or ""),
                states=states(state),
                exit=exit_status(item.get("exit_code")),
                start_time=start,
                end_time=end,
                reason=str(reason or ""),
                nodes=nodes if isinstance(nodes, str) and nodes != "None assigned" else "",  # sacct's words
            )
        )
    return jobs


SACCT_FORMAT = "JobID,JobName,State,ExitCode,Start,End,NodeList"


def parse_sacct(text: str) -> list[SlurmJob]:
    """The jobs of `sacct --noheader --parsable2 --allocations --format=SACCT_FORMAT` with SLURM_TIME_FORMAT=%s
    (times in epoch seconds). Text, not `sacct --json`: Slurm 22.05.8's JSON gave return_code 0 for a job whose
    text record (and squeue) said exit code 5 (checked on this machine with slurmdbd and MariaDB)."""
    jobs = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 7 or not parts[0].isdigit():  # steps (123.batch), arrays (123_4), blank lines
            continue
        state, exit_code, start, end, nodes = parts[-5:]
        code, _, sig = exit_code.partition(":")
        exit = None
        if sig.isdigit() and int(sig):
            exit = ExitStatus(128 + int(sig), int(sig))
        elif code.isdigit():
            exit = ExitStatus(int(code), None)
        jobs.append(
            SlurmJob(
                job_id=int(parts[0]),
                name="|".join(parts[1:-5]),
                states=states(state.split(" ")[0]),  # "CANCELLED by 0"
                exit=exit,
                start_time=float(start) if start.isdigit() and int(start) else None,
                end_time=float(end) if end.isdigit() and int(end) else None,
                reason="",
                nodes="" if nodes in ("None assigned", "(null)") else nodes,
            )
        )
    return jobs


@dataclass(frozen=True)
class SlurmNode:
    name: str
    cpus: int
    memory_mb: int  # real_memory
    gres: str  # e.g. "gpu:a100:4(S:0-1)"
    states: tuple[str, ...]  # base state and flags, upper case: ("MIXED", "DRAIN")
    partitions: tuple[str, ...]
    reason: str


def parse_nodes(doc: Any) -> list[SlurmNode]:
    """The nodes of `sinfo --json` or `scontrol show nodes --json`."""
    nodes = []
    for item in _document(doc, "nodes"):
        name = item.get("name") or item.get("hostname")
        if not name:
            raise SlurmJsonError("a node without a name")
        partitions = item.get("partitions") or []
        if isinstance(partitions, str):
            partitions = [p for p in partitions.split(",") if p]
        reason = item.get("reason")
        nodes.append(
            SlurmNode(
                name=str(name),
                cpus=integer(item.get("cpus")) or 0,
                memory_mb=integer(item.get("real_memory")) or 0,
                gres=str(item.get("gres") or ""),
                states=states(item.get("state")) + states(item.get("state_flags")),
                partitions=tuple(str(p) for p in partitions),
                reason=str(reason.get("description", "")) if isinstance(reason, Mapping) else str(reason or ""),
            )
        )
    return nodes


_GRES_ITEM = re.compile(r"^(?P<name>[^:(]+)(?::(?P<type>[^:(]+))?(?::(?P<count>\d+))?(?:\(.*\))?$")


def gpus_of(gres: str) -> list[tuple[str | None, int]]:
    """The GPU entries of a node's GRES string: "gpu:a100:4(S:0-1),gpu:2,nic:1" -> [("a100", 4), (None, 2)].
    A type without a count ("gpu:a100") counts 1, as Slurm reads it."""
    found: list[tuple[str | None, int]] = []
    for item in _split_gres(gres):
        match = _GRES_ITEM.match(item.strip())
        if match is None or match.group("name") != "gpu":
            continue
        kind, count = match.group("type"), match.group("count")
        if kind is not None and kind.isdigit() and count is None:  # "gpu:2": the 2 is the count
            kind, count = None, kind
        found.append((kind, int(count) if count is not None else 1))
    return found


def _split_gres(gres: str) -> list[str]:
    """Split on commas outside parentheses ("gpu:a100:2(S:0,1),gpu:v100:1")."""
    items, depth, current = [], 0, ""
    for char in gres:
        if char == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    if current:
        items.append(current)
    return [item for item in items if item and item != "(null)"]
