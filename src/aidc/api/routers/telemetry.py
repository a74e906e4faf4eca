"""/metrics (Prometheus text format), metric queries over the embedded buffer and its history, and alerts."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse, Response

from aidc.api.deps import PrincipalDep, ServicesDep
from aidc.api.responses import errors
from aidc.api.telemetry_schemas import (
    AckIn,
    AckOut,
    AlertEventOut,
    AlertOut,
    MatcherIn,
    MetricQueryOut,
    SeriesOut,
    SilenceCreate,
    SilenceOut,
)
from aidc.domain.errors import FieldProblem, InvalidInput
from aidc.domain.silences import AlertAck, Matcher, Silence, SilenceState
from aidc.domain.units import parse_duration
from aidc.services.alerts import AlertStatus
from aidc.telemetry.alert import Alert
from aidc.telemetry.exposition import CONTENT_TYPE
from aidc.telemetry.tsdb import parse_label_filter

router = APIRouter(tags=["telemetry"])
MAX_POINTS = 11_000  # as Prometheus: a query may not return more points per series
NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE: {}}}, **errors()},
    summary="Prometheus exposition: GPUs (dcgm-exporter names), nodes, jobs, queues, scheduler",
)
def metrics(services: ServicesDep, principal: PrincipalDep) -> Response:
    return Response(services.telemetry.exposition(principal), media_type=CONTENT_TYPE)


MAX_UNIX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z


def _time(value: str, field: str, now: float) -> float:
    """A time: Unix seconds, RFC 3339, or a duration ago ("1h"); between 1970 and 9999 (NaN, infinities
    and times a datetime cannot hold are refused with 400, not a 500 later)."""
    seconds = _parse_time(value, field, now)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_UNIX_SECONDS:
        raise InvalidInput([FieldProblem(field, f"{value!r} is not a time between 1970 and 9999")])
    return seconds


def _parse_time(value: str, field: str, now: float) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    except ValueError:
        pass
    try:
        return now - parse_duration(value)
    except (ValueError, TypeError):
        raise InvalidInput(
            [FieldProblem(field, f"{value!r} is not a time: Unix seconds, RFC 3339, or a duration ago such as 1h")]
        ) from None


@router.get("/v1/metrics/query", response_model=MetricQueryOut, responses=errors(400), summary="Query a metric")
def query(
    services: ServicesDep,
    principal: PrincipalDep,
    name: Annotated[str, Query(pattern=NAME_PATTERN, max_length=200, description="Metric name")],
    labels: Annotated[str, Query(max_length=2000, description='Matchers, e.g. gpu="0",Hostname=~"n-.*"')] = "",
    since: Annotated[str, Query(max_length=64, description="Start: duration ago, Unix seconds or RFC 3339")] = "1h",
    until: Annotated[str | None, Query(max_length=64, description="End (default: now)")] = None,
    step: Annotated[str | None, Query(max_length=32, description="Resolution, e.g. 15s (default: ~240 points)")] = None,
) -> MetricQueryOut:
    now = time.time()
    start = _time(since, "since", now)
    end = _time(until, "until", now) if until is not None else now
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise InvalidInput([FieldProblem("until", "must not be before since")])
    try:
        matchers = parse_label_filter(labels) if labels.strip() else []
    except ValueError as exc:
        raise InvalidInput([FieldProblem("labels", str(exc))]) from None
    if step is None:
        width = max(1.0, math.ceil((end - start) / 240))
    else:
        try:
            width = parse_duration(step)
        except (ValueError, TypeError):
            raise InvalidInput([FieldProblem("step", f"{step!r} is not a duration such as 15s")]) from None
        if width <= 0:
            raise InvalidInput([FieldProblem("step", "must be > 0")])
    if (end - start) / width > MAX_POINTS:
        raise InvalidInput([FieldProblem("step", f"too fine: more than {MAX_POINTS} points per series")])
    found = services.telemetry.query(principal, name, matchers, start, end, width)
    series = [SeriesOut(labels=dict(s.labels), points=[(t, v) for t, v in s.points]) for s in found]
    return MetricQueryOut(name=name, start=start, end=end, step=width, series=series)


def _ack_out(ack: AlertAck | None) -> AckOut | None:
    return None if ack is None else AckOut(by=ack.by, at=ack.at, comment=ack.comment)


def _alert_out(alert: Alert, status: AlertStatus | None = None) -> AlertOut:
    def at(t: float | None) -> datetime | None:
        return None if t is None else datetime.fromtimestamp(t, UTC)

    value = alert.value if math.isfinite(alert.value) else None
    return AlertOut(
        name=alert.name,
        state=alert.state.value,
        severity=alert.labels.get("severity", ""),
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        value=value,
        active_at=datetime.fromtimestamp(alert.active_at, UTC),
        fired_at=at(alert.fired_at),
        resolved_at=at(alert.resolved_at),
        fingerprint=alert.fingerprint,
        silenced_by=list(status.silenced_by) if status else [],
        acknowledged=_ack_out(status.acknowledged) if status else None,
    )


@router.get("/v1/alerts", response_model=list[AlertOut], responses=errors(), summary="Current alerts")
def alerts(
    services: ServicesDep,
    principal: PrincipalDep,
    firing: Annotated[bool, Query(description="Only alerts that are firing")] = False,
) -> list[AlertOut]:
    return [_alert_out(s.alert, s) for s in services.alerts.statuses(principal, firing_only=firing)]


@router.get(
    "/v1/alerts/history", response_model=list[AlertEventOut], responses=errors(400), summary="Alerts that fired"
)
def history(
    services: ServicesDep,
    principal: PrincipalDep,
    since: Annotated[str | None, Query(max_length=64, description="Duration ago, Unix seconds or RFC 3339")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[AlertEventOut]:
    start = None if since is None else datetime.fromtimestamp(_time(since, "since", time.time()), UTC)
    return [
        AlertEventOut(
            at=e.at,
            name=e.alertname,
            state=e.state,
            severity=e.severity,
            labels=dict(e.labels),
            annotations=dict(e.annotations),
            value=e.value,
            active_at=e.active_at,
            fingerprint=e.fingerprint,
        )
        for e in services.alerts.history(principal, start, limit)
    ]


@router.get(
    "/v1/alerts/rules",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/yaml": {}}}, **errors(400)},
    summary="The alert rules as a Prometheus rule file",
)
def rules(
    services: ServicesDep,
    principal: PrincipalDep,
    format: Annotated[str, Query(pattern="^(prometheus)$", description="Only prometheus for now")] = "prometheus",
) -> Response:
    return Response(services.alerts.export(principal), media_type="application/yaml")


# ---------------------------------------------------------------------------------- silences and acks

SilenceId = Annotated[str, Path(min_length=1, max_length=36, description="The silence's id (a UUID)")]
Fingerprint = Annotated[
    str, Path(pattern="^[0-9a-f]{16}$", description="The alert's fingerprint (16 hex digits, as Alertmanager's)")
]


def _utc(at: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC (comparing it with aware times would fail)."""
    return at if at is None or at.tzinfo is not None else at.replace(tzinfo=UTC)


def _silence_out(silence: Silence, now: datetime) -> SilenceOut:
    return SilenceOut(
        id=silence.id,
        matchers=[
            MatcherIn(name=m.name, value=m.value, is_regex=m.is_regex, is_equal=m.is_equal) for m in silence.matchers
        ],
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        created_by=silence.created_by,
        comment=silence.comment,
        updated_at=silence.updated_at,
        state=silence.state(now).value,
    )


@router.get("/v1/silences", response_model=list[SilenceOut], responses=errors(), summary="Alert silences")
def silences(
    services: ServicesDep,
    principal: PrincipalDep,
    state: Annotated[SilenceState | None, Query(description="Only those in this state now")] = None,
) -> list[SilenceOut]:
    now = services.alerts.now()
    return [_silence_out(s, now) for s in services.alerts.silences(principal, state)]


@router.post("/v1/silences", status_code=201, response_model=SilenceOut, responses=errors(), summary="Silence alerts")
def create_silence(body: SilenceCreate, services: ServicesDep, principal: PrincipalDep) -> SilenceOut:
    duration = None
    if body.duration is not None:
        try:
            duration = parse_duration(body.duration)
        except ValueError as exc:
            raise InvalidInput([FieldProblem("duration", str(exc))]) from None
    matchers = [Matcher(m.name, m.value, is_regex=m.is_regex, is_equal=m.is_equal) for m in body.matchers]
    silence = services.alerts.create_silence(
        principal,
        matchers,
        body.comment,
        starts_at=_utc(body.starts_at),
        ends_at=_utc(body.ends_at),
        duration=duration,
    )
    return _silence_out(silence, services.alerts.now())


@router.delete(
    "/v1/silences/{silence_id}",
    response_model=SilenceOut,
    responses=errors(404, 409),
    summary="Expire a silence now",
)
def expire_silence(silence_id: SilenceId, services: ServicesDep, principal: PrincipalDep) -> SilenceOut:
    return _silence_out(services.alerts.expire_silence(principal, silence_id), services.alerts.now())


@router.post(
    "/v1/alerts/{fingerprint}/ack",
    response_model=AckOut,
    responses=errors(404),
    summary="Acknowledge a firing alert",
)
def acknowledge(
    fingerprint: Fingerprint, services: ServicesDep, principal: PrincipalDep, body: AckIn | None = None
) -> AckOut:
    ack = services.alerts.acknowledge(principal, fingerprint, (body.comment if body else None) or "")
    out = _ack_out(ack)
    assert out is not None
    return out
