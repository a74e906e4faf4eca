"""Wake-ups between control-plane instances on PostgreSQL: LISTEN/NOTIFY on one channel.

An API request on a follower (a submit, a cancel, a scale) publishes `topic[:key]`; the leader listens on a
connection of its own and wakes its loops. A lost message only delays work: the loop reads every active job
afresh every 30 seconds anyway."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from aidc.store.leadership import libpq_conninfo

log = logging.getLogger(__name__)

CHANNEL = "aidc_wake"
RECONNECT_AFTER = 1.0  # seconds


def parse(payload: str) -> tuple[str, int | None]:
    topic, _, key = payload.partition(":")
    return topic, int(key) if key.isdigit() else None


class PostgresWakeChannel:
    def __init__(self, url: str) -> None:
        self._conninfo = libpq_conninfo(url)
        self._send_lock = threading.Lock()
        self._sender: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self, topic: str, key: int | None = None) -> None:
        payload = topic if key is None else f"{topic}:{key}"
        with self._send_lock:
            for _ in range(2):  # once more on a fresh connection if the kept one broke
                try:
                    if self._sender is None or self._sender.closed:
                        self._sender = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
                    self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                    return
                except psycopg.Error as exc:
                    log.warning("cannot wake the leader (%s): %s", payload, exc)
                    self._sender = None

    def listen(self, deliver: Callable[[str, int | None], None]) -> None:
        self._thread = threading.Thread(target=self._listen, args=(deliver,), name="aidc-wake", daemon=True)
        self._thread.start()

    def _listen(self, deliver: Callable[[str, int | None], None]) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    deliver("*", None)  # messages may have been missed while not listening
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            deliver(*parse(note.payload))
            except psycopg.Error as exc:
                log.warning("wake-up listener: %s; listening again in %.0fs", exc, RECONNECT_AFTER)
                self._stop.wait(RECONNECT_AFTER)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._send_lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None
