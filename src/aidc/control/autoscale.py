"""Replica autoscaling on in-flight requests, the way Kubernetes' HPA scales on a metric: a desired count
from the ratio of the measured value to the target, a tolerance so that small deviations change nothing,
and stabilization windows so that it does not flap (scale up to the lowest recommendation of the up window,
down to the highest of the down window). Pure: time comes in as monotonic seconds."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from aidc.domain.serving import Autoscale

TOLERANCE = 0.1  # HPA's default: within 10 % of the target, keep the count


def recommend(spec: Autoscale, current: int, in_flight: float) -> int:
    """Replicas to keep `in_flight` requests (summed over the ready replicas) near the target per replica."""
    if current <= 0:
        return spec.min
    ratio = in_flight / (current * spec.target_in_flight_per_replica)
    within = abs(ratio - 1.0) <= TOLERANCE
    wanted = current if within else math.ceil(in_flight / spec.target_in_flight_per_replica)
    return max(spec.min, min(spec.max, wanted))


@dataclass
class Autoscaler:
    """One per deployment: remembers its recent recommendations."""

    _history: deque[tuple[float, int]] = field(default_factory=deque)

    def desired(self, spec: Autoscale, current: int, in_flight: float, now: float) -> int:
        if not self._history:
            # As HPA does: the current count stands as a recommendation (for the down window, not the up
            # one), so that a restart or a new deployment does not act on its first reading.
            self._history.append((now - 1e-6, current))
        self._history.append((now, recommend(spec, current, in_flight)))
        horizon = max(spec.scale_up_window, spec.scale_down_window)
        while self._history and self._history[0][0] < now - horizon:
            self._history.popleft()
        up = [r for t, r in self._history if t >= now - spec.scale_up_window]
        down = [r for t, r in self._history if t >= now - spec.scale_down_window]
        target = current
        if min(up) > current:
            target = min(up)  # every recommendation of the up window wanted more
        elif max(down) < current:
            target = max(down)  # every recommendation of the down window wanted fewer
        return max(spec.min, min(spec.max, target))
