"""A stand-in for Slurm's commands: a queue the test edits by hand, and a log of what was asked of it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aidc.backends.slurm.commands import Slurm, SlurmCommandError
from aidc.backends.slurm.config import SlurmCommands
from aidc.backends.slurm.parsing import ExitStatus, SlurmJob, SlurmNode


def _no_runner(*args: object, **kwargs: object) -> None:
    raise AssertionError("the fake runs no command")


class FakeSlurm(Slurm):
    def __init__(self) -> None:
        super().__init__(SlurmCommands(), 1.0, runner=_no_runner)  # type: ignore[arg-type]
        self.queue: dict[int, SlurmJob] = {}
        self.accounted: dict[int, SlurmJob] = {}
        self.accounting = False
        self.nodes: list[SlurmNode] = []
        self.calls: list[tuple[str, ...]] = []
        self.submitted: list[tuple[list[str], dict[str, str]]] = []
        self.fail: dict[str, str] = {}  # command -> Slurm's message
        self._next_id = 100

    def _call(self, *call: str) -> None:
        self.calls.append(call)
        if call[0] in self.fail:
            raise SlurmCommandError(f"{call[0]} failed: {self.fail[call[0]]}")

    def path(self, name: str) -> str:
        return f"/usr/bin/{name}"

    def sbatch(self, args: Sequence[str], env: Mapping[str, str]) -> int:
        self._call("sbatch")
        self._next_id += 1
        name = next(a.split("=", 1)[1] for a in args if a.startswith("--job-name="))
        self.submitted.append((list(args), dict(env)))
        self.queue[self._next_id] = job(self._next_id, name, "PENDING", nodes="")
        return self._next_id

    def squeue(self) -> list[SlurmJob]:
        self._call("squeue")
        return list(self.queue.values())

    def sacct(self, job_ids: Sequence[int]) -> list[SlurmJob]:
        self._call("sacct", *map(str, job_ids))
        return [self.accounted[i] for i in job_ids if i in self.accounted]

    def sinfo(self) -> list[SlurmNode]:
        self._call("sinfo")
        return self.nodes

    def scancel(self, job_id: int, *, signal: str | None = None, full: bool = False, batch: bool = False) -> None:
        flags = [f"--signal={signal}"] if signal else []
        flags += ["--full"] if full else []
        flags += ["--batch"] if batch else []
        self._call("scancel", *flags, str(job_id))

    def accounting_enabled(self) -> bool:
        return self.accounting


def job(
    job_id: int,
    name: str,
    state: str,
    *,
    exit: ExitStatus | None = None,
    nodes: str = "n1",
    end_time: float | None = None,
) -> SlurmJob:
    return SlurmJob(
        job_id=job_id,
        name=name,
        states=(state,),
        exit=exit,
        start_time=1_700_000_000.0 if nodes else None,
        end_time=end_time,
        reason="None",
        nodes=nodes,
    )
