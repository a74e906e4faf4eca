"""Serving statistics per model over a window: requests/s, error ratio, latency and time-to-first-token
quantiles, tokens/s, in flight and ready replicas. Read from the time-series buffer, which takes in the
in-process gateway's metrics every telemetry tick (histograms as `_bucket{le}` counters, see
aidc.gateway.telemetry_feed).

Who sees what follows the deployments' read path: a model's stats are shown to those who may list its
deployment (job.read in its team, or its owner).

Counters are read from `LOOKBACK` before the window so that the value a counter had when the window opened is
known; a series with no point then was created inside the window and is counted from 0 (the gateway creates a
series at its first increment). Nothing is extrapolated: a rate is the increase divided by the whole window,
so in a window longer than the gateway has run it reads low rather than invented."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from aidc.domain.errors import FieldProblem, InvalidInput
from aidc.security.rbac import Principal
from aidc.services.serving import DeploymentService, DeploymentView
from aidc.telemetry import names
from aidc.telemetry.promql.histogram import bucket_quantile, parse_bound
from aidc.telemetry.quantile import step_increases
from aidc.telemetry.series import Labels, Matcher, label_value
from aidc.telemetry.tsdb import LATEST_WINDOW, MemoryTSDB

LOOKBACK = LATEST_WINDOW  # how far before a window a counter's opening value is looked for
MIN_WINDOW = 10.0  # two telemetry ticks
HISTORY_STEP = 60.0
MAX_HISTORY_POINTS = 1440


@dataclass(frozen=True)
class ModelStats:
    model: str
    deployment: str
    team: str | None
    window_seconds: float
    requests: float  # answered in the window
    requests_per_second: float
    errors: float  # answered with a 5xx (gateway-made 502/503/504 included)
    error_ratio: float | None  # errors / requests; None without requests
    failed_attempts: float  # tries at a replica that failed (some were retried and answered well)
    latency_p50: float | None  # seconds, request duration; None without requests
    latency_p95: float | None
    ttft_p50: float | None  # seconds, streamed requests only; None without any
    ttft_p95: float | None
    prompt_tokens_per_second: float
    completion_tokens_per_second: float
    in_flight: float  # now, summed over replicas
    replicas: int  # wanted
    ready_replicas: int
    history: list[tuple[float, float]] = field(default_factory=list)  # (step end, requests/s)


def check_window(window: float, tsdb: MemoryTSDB, field_name: str = "window") -> None:
    if not MIN_WINDOW <= window <= tsdb.retention:
        raise InvalidInput(
            [FieldProblem(field_name, f"must be between {MIN_WINDOW:g}s and {tsdb.retention:g}s, not {window:g}s")]
        )


class ServingStats:
    def __init__(self, deployments: DeploymentService, tsdb: MemoryTSDB) -> None:
        self._deployments = deployments
        self._tsdb = tsdb

    def stats(self, principal: Principal, window: float, history: float = 0.0) -> list[ModelStats]:
        """Every model of every deployment `principal` may read, over the last `window` seconds; with
        `history` > 0, also requests/s per minute over that long."""
        check_window(window, self._tsdb)
        if history:
            check_window(history, self._tsdb, "history")
        views = self._deployments.list(principal)  # the permission check and the team scoping
        now = self._deployments.now().timestamp()
        start = now - window
        found = []
        for view in views:
            for model in _models(view):
                found.append(self._model(view, model, start, now, window, history))
        return sorted(found, key=lambda s: (s.deployment, s.model))

    def _model(
        self, view: DeploymentView, model: str, start: float, now: float, window: float, history: float
    ) -> ModelStats:
        by_model = [Matcher("model", "=", model)]
        requests = self._increases(names.GATEWAY_REQUESTS.name, by_model, start, now)
        total = sum(requests.values())
        errors = sum(v for labels, v in requests.items() if _is_5xx(label_value(labels, "code")))
        tokens = self._increases(names.GATEWAY_TOKENS.name, by_model, start, now)
        duration = self._buckets(names.GATEWAY_REQUEST_DURATION.name, by_model, start, now)
        ttft = self._buckets(names.GATEWAY_TTFT.name, by_model, start, now)
        in_flight = sum(v for _, v in self._tsdb.latest(names.GATEWAY_IN_FLIGHT.name, by_model, now))
        return ModelStats(
            model=model,
            deployment=view.deployment.name,
            team=view.team,
            window_seconds=window,
            requests=total,
            requests_per_second=total / window,
            errors=errors,
            error_ratio=errors / total if total > 0 else None,
            failed_attempts=sum(self._increases(names.GATEWAY_ERRORS.name, by_model, start, now).values()),
            latency_p50=_finite(bucket_quantile(0.5, duration)),
            latency_p95=_finite(bucket_quantile(0.95, duration)),
            ttft_p50=_finite(bucket_quantile(0.5, ttft)),
            ttft_p95=_finite(bucket_quantile(0.95, ttft)),
            prompt_tokens_per_second=_by_kind(tokens, "prompt") / window,
            completion_tokens_per_second=_by_kind(tokens, "completion") / window,
            in_flight=in_flight,
            replicas=view.deployment.replicas,
            ready_replicas=view.ready_replicas,
            history=self._history(by_model, now, history) if history else [],
        )

    def _series_steps(
        self, name: str, matchers: Sequence[Matcher], start: float, end: float, step: float
    ) -> list[tuple[Labels, float, list[float]]]:
        """Each matching counter's labels, the time memory holds it from, and its increase per step."""
        out = []
        for covered in self._tsdb.select_covered(name, matchers, start - LOOKBACK, end):
            points = list(zip(covered.times, covered.values, strict=True))
            out.append((covered.labels, covered.covered_from, step_increases(points, 0.0, start, end, step)))
        return out

    def _increases(self, name: str, matchers: Sequence[Matcher], start: float, end: float) -> dict[Labels, float]:
        """Each matching counter's increase over [start, end]."""
        return {labels: sum(steps) for labels, _, steps in self._series_steps(name, matchers, start, end, end - start)}

    def _buckets(
        self, histogram: str, matchers: Sequence[Matcher], start: float, end: float
    ) -> list[tuple[float, float]]:
        """(upper bound, increase) per `le` of a histogram over [start, end]."""
        out = []
        for labels, increase in self._increases(f"{histogram}_bucket", matchers, start, end).items():
            bound = parse_bound(label_value(labels, "le"))
            if bound is not None:  # else not a bucket series
                out.append((bound, increase))
        return out

    def _history(self, matchers: Sequence[Matcher], now: float, span: float) -> list[tuple[float, float]]:
        """(step end, requests/s in the step) over the last `span` seconds, steps aligned to multiples of the
        step; the last one ends now and its rate is over the part that has passed. Steps before memory holds
        the series (before this control plane started) are left out rather than drawn as zeros."""
        step = max(HISTORY_STEP, span / MAX_HISTORY_POINTS)
        start = math.floor((now - span) / step) * step
        totals = [0.0] * math.ceil((now - start) / step)
        known_from = math.inf
        for _, covered_from, steps in self._series_steps(names.GATEWAY_REQUESTS.name, matchers, start, now, step):
            known_from = min(known_from, covered_from)
            for i, value in enumerate(steps[: len(totals)]):
                totals[i] += value
        out = []
        for i, value in enumerate(totals):
            begin, end = start + i * step, min(now, start + (i + 1) * step)
            if end > known_from:
                out.append((end, value / (end - begin)))
        return out


def _models(view: DeploymentView) -> list[str]:
    """The models a deployment serves, its rolling-out version's included."""
    models = list(view.spec.serve.models) if view.spec.serve is not None else []
    if view.rollout_spec is not None and view.rollout_spec.serve is not None:
        models += [m for m in view.rollout_spec.serve.models if m not in models]
    return models


def _is_5xx(code: str) -> bool:
    return len(code) == 3 and code.startswith("5")


def _by_kind(increases: dict[Labels, float], kind: str) -> float:
    return sum(v for labels, v in increases.items() if label_value(labels, "kind") == kind)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
