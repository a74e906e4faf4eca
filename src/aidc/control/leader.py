"""Leader election: one instance runs the scheduling and reconcile loops; every instance serves the API.

An instance that is not the leader tries to become it every `retry` seconds. The leader proves its lease every
`lease / 3` seconds; when it cannot, it stops acting at once and reports itself deposed. Like client-go's
leader election, a deposed instance then exits (its supervisor restarts it as a follower): loops that were
cut off mid-cycle are not restarted in place."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from aidc.ports import Leadership

log = logging.getLogger(__name__)


class LeaderElection:
    def __init__(
        self,
        leadership: Leadership,
        *,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        lease: float = 10.0,
        retry: float = 1.0,
    ) -> None:
        self._leadership = leadership
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._lease = lease
        self._retry = retry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.leading = False
        self.deposed = False

    @property
    def instance(self) -> str:
        return self._leadership.instance

    def leader(self) -> str | None:
        return self.instance if self.leading else self._leadership.leader()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aidc-leader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.leading:
                if self._leadership.try_acquire():
                    self.leading = True
                    log.info("%s is the leader: running the scheduling and reconcile loops", self.instance)
                    try:
                        self._on_elected()
                    except Exception:
                        log.exception("starting the leader's loops failed; stepping down")
                        self._step_down()
                        return
                    continue
                self._stop.wait(self._retry)
                continue
            self._stop.wait(self._lease / 3)
            if self._stop.is_set():
                break
            if not self._leadership.renew():
                log.error("%s lost leadership (lease not renewed): stopping its loops", self.instance)
                self._step_down()
                return

    def _step_down(self) -> None:
        self.leading = False
        self.deposed = True
        self._leadership.release()
        self._on_deposed()

    def stop(self) -> None:
        """At shutdown: stop trying; the caller stops the loops, then `release()`s."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def release(self) -> None:
        self.leading = False
        self._leadership.release()
