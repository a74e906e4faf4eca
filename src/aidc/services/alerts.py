"""Alerting use cases: evaluate the rules (and the anomaly detectors) on a schedule, record when alerts fire and
resolve, act on the node an alert names when its rule carries an `action` label (cordon, drain, mark unhealthy),
hand alerts to the webhook notifier, and answer `aidc alerts`; silence alerts and acknowledge them.

A silence (Alertmanager's model) keeps the notifier from sending the alerts it matches while it is active; it
does not stop an alert's node action (cordon, drain, unhealthy): those protect jobs and are taken anyway. An
acknowledgement lasts until its alert stops firing (a new firing needs a new one) and stops the notifier's
reminders on repeat_interval. Both are kept in the store, so they survive a restart."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aidc.domain.errors import Conflict, FieldProblem, InvalidInput, NotFound
from aidc.domain.health import AlertEvent
from aidc.domain.silences import MAX_COMMENT, AlertAck, Matcher, Silence, SilenceState, new_silence
from aidc.ports import Clock, Store
from aidc.security.rbac import Action, Principal
from aidc.services.audit_log import AuditLog
from aidc.services.authz import Guard
from aidc.services.control_metrics import ControlMetrics
from aidc.services.nodes import NodeAction, NodeService
from aidc.telemetry.alert import Alert, AlertState
from aidc.telemetry.alerting import RuleEvaluator
from aidc.telemetry.anomaly import AnomalyMonitor
from aidc.telemetry.rules import RuleGroup, export_prometheus
from aidc.telemetry.webhook import WebhookNotifier

log = logging.getLogger(__name__)

ACTIONS = {"cordon": NodeAction.CORDON, "drain": NodeAction.DRAIN, "unhealthy": NodeAction.UNHEALTHY}
ACK_SWEEP_AFTER = 300.0  # seconds after a start when acks of alerts not seen since are cleared (resolve_timeout)
NODE_LABELS = ("node", "Hostname")  # where an alert names its node: aidc_* series, then dcgm-exporter's


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True)
class AlertStatus:
    """An alert as `aidc alerts` shows it: with the active silences that mute it and who acknowledged it."""

    alert: Alert
    silenced_by: tuple[str, ...]
    acknowledged: AlertAck | None


@dataclass(frozen=True)
class _Mutes:
    silences: list[Silence]  # not expired
    acks: dict[str, AlertAck]

    def silenced_by(self, labels: dict[str, str], now: datetime) -> tuple[str, ...]:
        return tuple(s.id for s in self.silences if s.mutes(labels, now))


class AlertService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        guard: Guard,
        nodes: NodeService,
        groups: Sequence[RuleGroup],
        evaluator: RuleEvaluator,
        control: ControlMetrics,
        *,
        anomaly: AnomalyMonitor | None = None,
        notifier: WebhookNotifier | None = None,
        every: float = 15.0,
        before_evaluate: Callable[[], None] | None = None,
        audit: AuditLog | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._guard = guard
        self._nodes = nodes
        self._groups = list(groups)
        self._evaluator = evaluator
        self._control = control
        self._anomaly = anomaly
        self._notifier = notifier
        self._every = every
        self._before = before_evaluate  # e.g. read the control plane's gauges first, so rules see fresh values
        self._audit = audit if audit is not None else AuditLog(store, clock)
        self._new_id = new_id if new_id is not None else lambda: str(uuid.uuid4())  # Alertmanager's ids are UUIDs
        self._started_at: float | None = None  # the first round's time
        self._seen_live: set[str] = set()  # fingerprints seen pending or firing since the start
        self._swept = False
        self._lock = threading.Lock()
        self._current: list[Alert] = []
        self._firing: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ evaluation

    def evaluate(self) -> list[Alert]:
        """One round: rules and anomaly detectors, alert events recorded, actions taken, notifier told."""
        if self._before is not None:
            self._before()
        now = self._clock.now().timestamp()
        alerts = list(self._evaluator.evaluate(now))
        if self._anomaly is not None:
            alerts.extend(self._anomaly.alerts(now))
        events: list[AlertEvent] = []
        newly_firing: list[Alert] = []
        firing_now: set[str] = set()
        for alert in alerts:
            fp = alert.fingerprint
            if alert.state == AlertState.FIRING:
                firing_now.add(fp)
                if fp not in self._firing:
                    newly_firing.append(alert)
                    events.append(self._event(alert, "firing", alert.fired_at or now))
            elif alert.state == AlertState.RESOLVED and fp in self._firing:
                events.append(self._event(alert, "resolved", alert.resolved_at or now))
        # Alerts that left without a resolved state (their rule was removed): resolved now.
        with self._lock:
            stopped = self._firing - firing_now
            self._current = alerts
            self._firing = firing_now
        try:
            mutes = self._mutes(_at(now))
        except Exception:  # the round (its node actions above all) must go on; notifying too much is the safe side
            log.exception("could not read the silences and acknowledgements; this round notifies as if none")
            mutes = _Mutes([], {})
        # An acknowledgement ends with its firing. After a restart, one whose alert has not fired (or been
        # pending) again within ACK_SWEEP_AFTER resolved while the server was down. Not at the first round:
        # the metrics that make an alert fire may take a few rounds to arrive after a start.
        unacked = {fp for fp in mutes.acks if fp in stopped}
        if not self._swept:
            self._seen_live.update(a.fingerprint for a in alerts if a.state != AlertState.RESOLVED)
            if self._started_at is None:
                self._started_at = now
            elif now - self._started_at >= ACK_SWEEP_AFTER:
                unacked |= {fp for fp in mutes.acks if fp not in self._seen_live}
                self._swept = True
                self._seen_live.clear()  # only needed until then
        if events or unacked:
            with self._store.unit_of_work() as uow:
                uow.alerts.add(events)
                uow.alert_acks.delete(unacked)
                uow.commit()
        for alert in newly_firing:
            log.warning("alert firing: %s %s", alert.name, dict(alert.labels))
            self._act(alert)
        severities = Counter({"critical": 0, "warning": 0, "info": 0})  # 0, not absent, when none fire
        severities.update(a.labels.get("severity", "none") for a in alerts if a.state == AlertState.FIRING)
        self._control.alerts_firing(severities)
        if self._notifier is not None:
            self._tell_notifier(alerts, mutes, unacked, _at(now))
            self._notifier.update(alerts, now)
        return alerts

    def _mutes(self, now: datetime) -> _Mutes:
        with self._store.unit_of_work(read_only=True) as uow:
            silences = uow.silences.list(ending_after=now)
            acks = {a.fingerprint: a for a in uow.alert_acks.list()}
        return _Mutes(silences, acks)

    def _tell_notifier(self, alerts: Iterable[Alert], mutes: _Mutes, unacked: set[str], now: datetime) -> None:
        if self._notifier is None:
            return
        silenced = [a.fingerprint for a in alerts if mutes.silenced_by(dict(a.labels), now)]
        self._notifier.mute(silenced, [fp for fp in mutes.acks if fp not in unacked])

    def _refresh_notifier(self) -> None:
        """After a silence or an acknowledgement changed: the notifier knows before the next round."""
        if self._notifier is None:
            return
        with self._lock:
            alerts = list(self._current)
        now = self._clock.now()
        self._tell_notifier(alerts, self._mutes(now), set(), now)

    def _event(self, alert: Alert, state: str, at: float) -> AlertEvent:
        return AlertEvent(
            at=_at(at),
            fingerprint=alert.fingerprint,
            alertname=alert.name,
            state=state,
            severity=alert.labels.get("severity", ""),
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            value=alert.value if alert.value == alert.value else None,  # NaN is not stored
            active_at=_at(alert.active_at),
        )

    def _act(self, alert: Alert) -> None:
        action = ACTIONS.get(alert.labels.get("action", ""))
        if action is None:
            return
        node = next((alert.labels[k] for k in NODE_LABELS if alert.labels.get(k)), None)
        if node is None:
            log.warning("alert %s has action %s but names no node", alert.name, action.value)
            return
        summary = alert.annotations.get("summary", "")
        reason = f"alert {alert.name}" + (f": {summary}" if summary else "")
        try:
            self._nodes.act(None, node, action, reason, actor=f"alert:{alert.name}")
        except (NotFound, Conflict) as exc:
            log.warning("alert %s could not %s node %s: %s", alert.name, action.value, node, exc)
        except Exception:  # e.g. the database refused it: the other alerts' actions must still happen
            log.exception("alert %s could not %s node %s", alert.name, action.value, node)

    def start(self) -> None:
        if self._notifier is not None:
            self._notifier.start(lambda: self._clock.now().timestamp())
        self._thread = threading.Thread(target=self._run, name="aidc-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._notifier is not None:
            self._notifier.stop()
            self._notifier.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.evaluate()
            except Exception:  # a failing round must not end alerting; the next one tries again
                log.exception("alert evaluation failed")
            self._stop.wait(max(0.1, self._every - (time.monotonic() - began)))

    # ------------------------------------------------------------------ reading

    def current(self, principal: Principal, firing_only: bool = False) -> list[Alert]:
        self._guard.check(principal, Action.NODE_READ, target="alerts")
        with self._lock:
            alerts = list(self._current)
        if firing_only:
            alerts = [a for a in alerts if a.state == AlertState.FIRING]
        order = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2}
        return sorted(alerts, key=lambda a: (order[a.state], a.name, sorted(a.labels.items())))

    def statuses(self, principal: Principal, firing_only: bool = False) -> list[AlertStatus]:
        """current(), each alert with the silences muting it now and its acknowledgement."""
        alerts = self.current(principal, firing_only)
        now = self._clock.now()
        mutes = self._mutes(now)
        return [
            AlertStatus(
                a,
                mutes.silenced_by(dict(a.labels), now),
                mutes.acks.get(a.fingerprint) if a.state == AlertState.FIRING else None,
            )
            for a in alerts
        ]

    # ------------------------------------------------------------------ silences and acknowledgements

    def now(self) -> datetime:
        """The service's clock: what a silence's state is judged by."""
        return self._clock.now()

    def silences(self, principal: Principal, state: SilenceState | None = None) -> list[Silence]:
        """Every silence (newest start first), or those in `state` now."""
        self._guard.check(principal, Action.NODE_READ, target="silences")
        now = self._clock.now()
        with self._store.unit_of_work(read_only=True) as uow:
            found = uow.silences.list(ending_after=None if state is SilenceState.EXPIRED or state is None else now)
        return [s for s in found if state is None or s.state(now) is state]

    def create_silence(
        self,
        principal: Principal,
        matchers: Sequence[Matcher],
        comment: str,
        *,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        duration: float | None = None,
    ) -> Silence:
        self._guard.check(principal, Action.NODE_WRITE, target="silences")
        now = self._clock.now()
        silence = new_silence(
            self._new_id(),
            matchers,
            starts_at=starts_at,
            ends_at=ends_at,
            duration=duration,
            created_by=principal.name,
            comment=comment,
            now=now,
        )
        detail = {
            "matchers": [str(m) for m in silence.matchers],
            "starts_at": silence.starts_at.isoformat(),
            "ends_at": silence.ends_at.isoformat(),
            "comment": silence.comment,
        }
        with self._store.unit_of_work() as uow:
            uow.silences.add(silence)
            self._audit.append(
                uow, self._audit.entry(principal, "alert.silence", f"silence/{silence.id}", detail=detail)
            )
            uow.commit()
        log.info("silence %s by %s: %s", silence.id, principal.name, ",".join(detail["matchers"]))
        self._refresh_notifier()
        return silence

    def expire_silence(self, principal: Principal, silence_id: str) -> Silence:
        """End a silence now (NotFound for an unknown id, Conflict for one already expired)."""
        self._guard.check(principal, Action.NODE_WRITE, target=f"silence/{silence_id}")
        now = self._clock.now()
        with self._store.unit_of_work() as uow:
            found = uow.silences.get(silence_id)
            if found is None:
                raise NotFound("silence", silence_id)
            if found.state(now) is SilenceState.EXPIRED:
                raise Conflict(f"silence {silence_id} has already expired")
            expired = found.expired(now)
            uow.silences.update_times(expired)
            self._audit.append(uow, self._audit.entry(principal, "alert.silence.expire", f"silence/{silence_id}"))
            uow.commit()
        self._refresh_notifier()
        return expired

    def acknowledge(self, principal: Principal, fingerprint: str, comment: str = "") -> AlertAck:
        """Acknowledge the firing alert `fingerprint` (NotFound unless one fires now); replaces an earlier one."""
        self._guard.check(principal, Action.NODE_WRITE, target=f"alert/{fingerprint}")
        if len(comment) > MAX_COMMENT:
            raise InvalidInput([FieldProblem("comment", f"at most {MAX_COMMENT} characters")])
        with self._lock:
            alert = next(
                (a for a in self._current if a.fingerprint == fingerprint and a.state == AlertState.FIRING), None
            )
        if alert is None:
            raise NotFound("firing alert", fingerprint)
        ack = AlertAck(fingerprint, alert.name, principal.name, self._clock.now(), comment.strip())
        detail = {"alertname": alert.name, "comment": ack.comment}
        with self._store.unit_of_work() as uow:
            uow.alert_acks.put(ack)
            self._audit.append(uow, self._audit.entry(principal, "alert.ack", f"alert/{fingerprint}", detail=detail))
            uow.commit()
        self._refresh_notifier()
        return ack

    def history(self, principal: Principal, since: datetime | None = None, limit: int = 1000) -> list[AlertEvent]:
        self._guard.check(principal, Action.NODE_READ, target="alerts")
        with self._store.unit_of_work(read_only=True) as uow:
            return uow.alerts.list(since, limit)

    def export(self, principal: Principal) -> str:
        """The rules as a Prometheus rule file (`promtool check rules` accepts it)."""
        self._guard.check(principal, Action.NODE_READ, target="alerts")
        return export_prometheus(self._groups)
