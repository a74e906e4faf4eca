"""Where the Slurm backend keeps its files, under `state_dir` (a filesystem every node sees):

- `jobs/<job>/checkpoints/`            AIDC_CHECKPOINT_DIR when the spec names none (shared by all attempts)
- `jobs/<job>/attempt-<n>/job.sh`      the batch script handed to sbatch (no secrets: they come through the
                                        environment of sbatch)
- `jobs/<job>/attempt-<n>/setup.sh`    the spec's `setup`, and `run.sh` its `run`
- `jobs/<job>/attempt-<n>/output.log`  stdout and stderr of the job (sbatch --output)
- `jobs/<job>/attempt-<n>/slurm.json`  Slurm's job id, written right after sbatch: adopt() starts from it
- `jobs/<job>/attempt-<n>/terminate.json` aidc's stop request: signal sent and when the kill is due
- `jobs/<job>/attempt-<n>/exit.json`   how the batch script ended, written by the script itself (atomically)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def job_dir(state_dir: Path, job_id: int) -> Path:
    return state_dir / "jobs" / str(job_id)


@dataclass(frozen=True)
class AttemptFiles:
    dir: Path

    @classmethod
    def of(cls, state_dir: Path, job_id: int, attempt: int) -> AttemptFiles:
        return cls(job_dir(state_dir, job_id) / f"attempt-{attempt}")

    @property
    def script(self) -> Path:
        return self.dir / "job.sh"

    @property
    def setup(self) -> Path:
        return self.dir / "setup.sh"

    @property
    def run(self) -> Path:
        return self.dir / "run.sh"

    @property
    def output(self) -> Path:
        return self.dir / "output.log"

    @property
    def slurm(self) -> Path:
        return self.dir / "slurm.json"

    @property
    def terminate(self) -> Path:
        return self.dir / "terminate.json"

    @property
    def exit(self) -> Path:
        return self.dir / "exit.json"
