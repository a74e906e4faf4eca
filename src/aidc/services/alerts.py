"""Alerting use cases: evaluate the rules (and the anomaly detectors) on a schedule, record when alerts fire and
resolve, act on the node an alert names when its rule carries an `action` label (cordon, drain, mark unhealthy),
hand alerts to the webhook notifier, and answer `aidc alerts`."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aidc.domain.errors import Conflict, NotFound
from aidc.domain.health import AlertEvent
from aidc.ports import Clock, Store
from aidc.security.rbac import Action, Principal
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
NODE_LABELS = ("node", "Hostname")  # where an alert names its node: aidc_* series, then dcgm-exporter's


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


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
            self._current = alerts
            self._firing = firing_now
        if events:
            with self._store.unit_of_work() as uow:
                uow.alerts.add(events)
                uow.commit()
        for alert in newly_firing:
            log.warning("alert firing: %s %s", alert.name, dict(alert.labels))
            self._act(alert)
        severities = Counter({"critical": 0, "warning": 0, "info": 0})  # 0, not absent, when none fire
        severities.update(a.labels.get("severity", "none") for a in alerts if a.state == AlertState.FIRING)
        self._control.alerts_firing(severities)
        if self._notifier is not None:
            self._notifier.update(alerts, now)
        return alerts

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

    def history(self, principal: Principal, since: datetime | None = None, limit: int = 1000) -> list[AlertEvent]:
        self._guard.check(principal, Action.NODE_READ, target="alerts")
        with self._store.unit_of_work(read_only=True) as uow:
            return uow.alerts.list(since, limit)

    def export(self, principal: Principal) -> str:
        """The rules as a Prometheus rule file (`promtool check rules` accepts it)."""
        self._guard.check(principal, Action.NODE_READ, target="alerts")
        return export_prometheus(self._groups)
