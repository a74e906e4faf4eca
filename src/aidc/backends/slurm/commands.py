"""Running Slurm's commands (sbatch, squeue, sacct, scancel, sinfo, scontrol) with timeouts, and reading their
JSON. A command that fails raises SlurmCommandError carrying Slurm's own message."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aidc.backends.slurm.config import SlurmCommands
from aidc.backends.slurm.parsing import (
    SACCT_FORMAT,
    SlurmJob,
    SlurmJsonError,
    SlurmNode,
    errors,
    parse_jobs,
    parse_nodes,
    parse_sacct,
)

log = logging.getLogger(__name__)

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class SlurmCommandError(RuntimeError):
    """A Slurm command failed, could not be run, or said something we cannot read."""


class Slurm:
    """The Slurm commands of one cluster (the one SLURM_CONF names, as the commands themselves read it)."""

    def __init__(self, commands: SlurmCommands, timeout: float, runner: Runner = subprocess.run) -> None:
        self._paths = {name: _resolve(path) for name, path in commands.model_dump().items()}
        self._timeout = timeout
        self._runner = runner
        self._accounting: bool | None = None

    def path(self, name: str) -> str:
        return self._paths[name]

    def run(self, name: str, args: Sequence[str], *, env: Mapping[str, str] | None = None) -> str:
        """stdout of `name args`; raises SlurmCommandError with Slurm's message when it fails."""
        argv = [self._paths[name], *args]
        try:
            result = self._runner(
                argv,
                capture_output=True,
                text=True,
                timeout=self._timeout,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SlurmCommandError(f"{name} did not answer within {self._timeout:g} s") from exc
        except OSError as exc:
            raise SlurmCommandError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
        if result.returncode != 0:
            message = (result.stderr or result.stdout or "").strip() or f"exit status {result.returncode}"
            raise SlurmCommandError(f"{name} failed: {message}")
        return result.stdout

    def _json(self, name: str, args: Sequence[str]) -> Any:
        out = self.run(name, args)
        try:
            doc = json.loads(out)
        except ValueError as exc:
            raise SlurmCommandError(f"{name} --json did not print JSON: {exc}") from exc
        if isinstance(doc, dict) and errors(doc):
            log.warning("%s reported: %s", name, "; ".join(errors(doc)))
        return doc

    # ------------------------------------------------------------------------------------ commands

    def sbatch(self, args: Sequence[str], env: Mapping[str, str]) -> int:
        """Submit; Slurm's job id (from --parsable: "ID" or "ID;CLUSTER")."""
        out = self.run("sbatch", args, env=env).strip()
        head = out.splitlines()[-1].split(";")[0].strip() if out else ""
        if not head.isdigit():
            raise SlurmCommandError(f"sbatch printed no job id: {out!r}")
        return int(head)

    def squeue(self) -> list[SlurmJob]:
        """Every job slurmctld still holds for this user, ended ones included (for MinJobAge seconds)."""
        doc = self._json("squeue", ["--json", "--me", "--states=all"])
        jobs: list[SlurmJob] = self._parse(parse_jobs, doc, "squeue")
        return jobs

    def sacct(self, job_ids: Sequence[int]) -> list[SlurmJob]:
        """Accounting records of the given jobs (needs slurmdbd). Read as text: see `parse_sacct`."""
        ids = ",".join(str(i) for i in job_ids)
        args = ["--noheader", "--parsable2", "--allocations", f"--format={SACCT_FORMAT}", f"--jobs={ids}"]
        out = self.run("sacct", args, env={**os.environ, "SLURM_TIME_FORMAT": "%s"})
        return [job for job in parse_sacct(out) if job.job_id in set(job_ids)]

    def sinfo(self) -> list[SlurmNode]:
        nodes: list[SlurmNode] = self._parse(parse_nodes, self._json("sinfo", ["--json"]), "sinfo")
        return nodes

    def scancel(self, job_id: int, *, signal: str | None = None, full: bool = False, batch: bool = False) -> None:
        """Cancel the job, or with `signal` only signal it: `full` its batch shell's process group and its steps,
        `batch` the batch shell alone."""
        args = []
        if signal is not None:
            args.append(f"--signal={signal}")
        if full:
            args.append("--full")
        if batch:
            args.append("--batch")
        self.run("scancel", [*args, str(job_id)])

    def accounting_enabled(self) -> bool:
        """Whether the cluster keeps accounting (sacct works): AccountingStorageType is not
        accounting_storage/none. Asked once."""
        if self._accounting is None:
            out = self.run("scontrol", ["show", "config"])
            kind = ""
            for line in out.splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "AccountingStorageType":
                    kind = value.strip()
            self._accounting = bool(kind) and not kind.endswith("/none")
        return self._accounting

    @staticmethod
    def _parse(parse: Callable[[Any], Any], doc: Any, name: str) -> Any:
        try:
            return parse(doc)
        except SlurmJsonError as exc:
            raise SlurmCommandError(f"{name} --json: {exc}") from exc


def _resolve(command: str) -> str:
    """An absolute path where the command is on PATH (the batch script runs it on the nodes too)."""
    return shutil.which(command) or command
