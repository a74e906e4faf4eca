"""Sends the Dispatcher's webhook bodies with httpx, as Alertmanager's webhook receiver does.

A failed send (connection error, timeout, non-2xx) is logged on one line and retried: soon (with backoff)
for errors that may pass (network, 5xx, 408, 429, honouring Retry-After), at the next group interval for
other 4xx, which will not pass by themselves (Alertmanager does not retry those within a tick either)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import httpx

from aidc.telemetry.alert import Alert
from aidc.telemetry.notify import Dispatcher, Notification, NotifyConfig, encode_body

log = logging.getLogger(__name__)

USER_AGENT = "aidc-alert-webhook"
_RETRY_SOON = {408, 429}
_MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class SendResult:
    """What happened to one body. `status_code` is None when no response came back."""

    group_key: str
    ok: bool
    status_code: int | None
    error: str
    alerts: int


def safe_url(url: str) -> str:
    """The URL to log: no user-info and no query (either may carry a token)."""
    try:
        return str(httpx.URL(url).copy_with(username=None, password=None, query=None, fragment=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid url>"


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare for webhooks and ignored)."""
    value = response.headers.get("retry-after", "").strip()
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER) if value else None
    except ValueError:
        return None


class WebhookNotifier:
    """Posts alert notifications to one URL. `update` and `flush` may be called from any thread;
    `start` runs `flush` every `every` seconds on a daemon thread until `stop`."""

    def __init__(
        self,
        url: str,
        config: NotifyConfig,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url
        self.dispatcher = Dispatcher(config)
        self._headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        self._timeout = timeout
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._lock = threading.Lock()  # guards the dispatcher
        self._flushing = threading.Lock()  # one flush at a time, so bodies of a group go out in order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, alerts: Iterable[Alert], now: float) -> None:
        with self._lock:
            self.dispatcher.update(alerts, now)

    def mute(self, silenced: Iterable[str], acknowledged: Iterable[str] = ()) -> None:
        """The fingerprints silenced and acknowledged now (see Dispatcher.mute)."""
        with self._lock:
            self.dispatcher.mute(silenced, acknowledged)

    def flush(self, now: float) -> list[SendResult]:
        """Send every body due at `now`; report each."""
        with self._flushing:
            with self._lock:
                due = self.dispatcher.due(now)
            return [self._send(note, now) for note in due]

    def _send(self, note: Notification, now: float) -> SendResult:
        retry_in: float | None = None
        status: int | None = None
        try:
            response = self._client.post(
                self.url, content=encode_body(note.body), headers=self._headers, timeout=self._timeout
            )
            status = response.status_code
            if response.is_success:
                with self._lock:
                    self.dispatcher.mark_sent(note, now)
                return SendResult(note.group_key, True, status, "", len(note.alerts))
            error = f"HTTP {status}"
            if status in _RETRY_SOON or status >= 500:
                retry_in = _retry_after(response)
            else:
                retry_in = self.dispatcher.config.group_interval
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # str(exc) of a connection error may span lines and name the URL with its credentials.
            error = type(exc).__name__
        with self._lock:
            self.dispatcher.mark_failed(note, now, retry_in=retry_in)
        log.warning(
            "alert webhook %s failed for group %s (%d alerts): %s; will retry",
            safe_url(self.url),
            note.group_key,
            len(note.alerts),
            error,
        )
        return SendResult(note.group_key, False, status, error, len(note.alerts))

    # ------------------------------------------------------------------------------------ background

    def start(self, clock: Callable[[], float], every: float = 1.0) -> None:
        """Flush every `every` seconds with the time `clock()` gives, on a daemon thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(clock, every), name="alert-webhook", daemon=True)
        self._thread.start()

    def _run(self, clock: Callable[[], float], every: float) -> None:
        while not self._stop.is_set():
            try:
                self.flush(clock())
            except Exception:  # the loop must outlive a bug in one flush; the next one may work
                log.exception("alert webhook flush failed")
            self._stop.wait(every)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread (after its current flush); waits up to `timeout` seconds (default: the send
        timeout plus a second)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self._timeout + 1.0 if timeout is None else timeout)

    def close(self) -> None:
        """Stop and close the HTTP client if this notifier made it."""
        self.stop()
        if self._own_client:
            self._client.close()

    def __enter__(self) -> WebhookNotifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
