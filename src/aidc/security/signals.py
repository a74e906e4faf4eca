"""Counting bad things per key over a sliding window: failed sign-ins per client address (to slow down
token guessing) and denied requests per user (to notice someone probing). Pure: the caller passes the
time (monotonic seconds), so tests need no sleeps."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Window:
    times: deque[float] = field(default_factory=deque)
    raised_at: float | None = None  # when this key last crossed the threshold


class BurstCounter:
    """Counts events per key in the last `window` seconds; `hit` says when a key crosses `threshold`
    (once per window, so one burst is one security event, not one per request)."""

    def __init__(self, threshold: int, window: float, max_keys: int = 10_000) -> None:
        self.threshold = threshold
        self.window = window
        self._max_keys = max_keys  # bounds memory when addresses are spoofed or many
        self._keys: dict[str, _Window] = {}

    def hit(self, key: str, now: float) -> bool:
        """Count one event; True when this event makes `key` reach the threshold (a new burst)."""
        win = self._keys.get(key)
        if win is None:
            if len(self._keys) >= self._max_keys:
                self._forget_idle(now)
            win = self._keys[key] = _Window()
        self._expire(win, now)
        win.times.append(now)
        if len(win.times) >= self.threshold and (win.raised_at is None or now - win.raised_at >= self.window):
            win.raised_at = now
            return True
        return False

    def count(self, key: str, now: float) -> int:
        win = self._keys.get(key)
        if win is None:
            return 0
        self._expire(win, now)
        return len(win.times)

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until `key` falls back under the threshold, or None when it is under it now."""
        win = self._keys.get(key)
        if win is None:
            return None
        self._expire(win, now)
        if len(win.times) < self.threshold:
            return None
        # The oldest events leave the window first; once enough have left, the key is under the threshold.
        leaving = win.times[len(win.times) - self.threshold]
        return max(0.0, leaving + self.window - now)

    def _expire(self, win: _Window, now: float) -> None:
        while win.times and win.times[0] <= now - self.window:
            win.times.popleft()

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, w in self._keys.items() if not w.times or w.times[-1] <= now - self.window]:
            del self._keys[key]
        if len(self._keys) >= self._max_keys:  # all busy: drop the oldest-started
            del self._keys[next(iter(self._keys))]
