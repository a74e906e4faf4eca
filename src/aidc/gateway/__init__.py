"""The pure core of the inference gateway: replica pools, routing policies, passive health and retry
rules. No I/O here: time comes in as monotonic seconds, randomness from an injected random.Random."""

from aidc.gateway.health import BreakerState, CircuitBreaker, HealthConfig
from aidc.gateway.policies import POLICIES, Policy, PolicyOptions, RouteRequest, policy_for, register
from aidc.gateway.replicas import Dispatch, Pool, Replica, ReplicaStats
from aidc.gateway.retry import Backoff, BudgetConfig, Outcome, RetryBudget, may_retry, parse_retry_after, retryable

__all__ = [
    "POLICIES",
    "Backoff",
    "BreakerState",
    "BudgetConfig",
    "CircuitBreaker",
    "Dispatch",
    "HealthConfig",
    "Outcome",
    "Policy",
    "PolicyOptions",
    "Pool",
    "Replica",
    "ReplicaStats",
    "RetryBudget",
    "RouteRequest",
    "may_retry",
    "parse_retry_after",
    "policy_for",
    "register",
    "retryable",
]
