"""Whether a canary must be rolled back: its error rate or mean latency against the stable version's,
from the counters the gateways report. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from aidc.domain.serving import RolloutPolicy


@dataclass(frozen=True)
class Traffic:
    requests: int = 0
    errors: int = 0
    latency_sum: float = 0.0  # over successful requests

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_latency(self) -> float | None:
        ok = self.requests - self.errors
        return self.latency_sum / ok if ok > 0 else None

    def since(self, earlier: Traffic | None) -> Traffic:
        """What was counted after `earlier` (a reading of the same cumulative counters); everything when
        the counters went back (the gateway restarted and counts from zero again)."""
        if earlier is None or self.requests < earlier.requests or self.errors < earlier.errors:
            return self
        return Traffic(
            self.requests - earlier.requests,
            self.errors - earlier.errors,
            max(0.0, self.latency_sum - earlier.latency_sum),
        )

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(self.requests + other.requests, self.errors + other.errors, self.latency_sum + other.latency_sum)


def rollback_reason(stable: Traffic, canary: Traffic, policy: RolloutPolicy) -> str | None:
    """Why the canary must go (None: keep it).

    Latency is judged once the canary has served `min_requests`. Errors are judged earlier when the outcome
    is already certain: the canary's errors over max(requests, min_requests) is the lowest error rate it
    can still end with, and once even that is over the limit there is no point waiting. This matters
    because a failing canary is soon ejected by the gateway's circuit breaker and then gets only a trickle
    of probe requests: it might never reach `min_requests`."""
    limit = stable.error_rate + policy.max_error_rate_increase
    lowest = canary.errors / max(canary.requests, policy.min_requests)
    if canary.errors and lowest > limit:
        return (
            f"canary error rate {canary.error_rate:.1%} over {canary.requests} requests vs stable "
            f"{stable.error_rate:.1%} (allowed +{policy.max_error_rate_increase:.1%})"
        )
    if canary.requests < policy.min_requests:
        return None
    stable_latency, canary_latency = stable.mean_latency, canary.mean_latency
    if stable_latency and canary_latency and canary_latency > stable_latency * policy.max_latency_ratio:
        return (
            f"canary mean latency {canary_latency * 1000:.0f} ms vs stable {stable_latency * 1000:.0f} ms "
            f"(allowed x{policy.max_latency_ratio:g})"
        )
    return None
