"""What a reconciliation of the store's records with the backend did, in numbers and in one line for the log."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reconciliation:
    """What a reconciliation with the backend did."""

    adopted: int  # open attempts found still running
    ended_while_away: int  # open attempts that had ended: their exits recorded now
    lost: int  # open attempts the backend knows nothing of: failed (and retried by the job's policy)
    orphans_stopped: tuple[tuple[int, int], ...] = ()  # (job, attempt) the engine ran with no open record

    def describe(self) -> str:
        orphans = ", ".join(f"job {j} attempt {a}" for j, a in self.orphans_stopped) or "none"
        return (
            f"{self.adopted} running attempt(s) adopted, {self.ended_while_away} ended while away (recorded), "
            f"{self.lost} lost (failed, retried if allowed), orphans stopped: {orphans}"
        )
