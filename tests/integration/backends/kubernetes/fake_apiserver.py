"""A stand-in for the Kubernetes API server: a stdlib HTTP server in a thread that answers the real `kubernetes`
client with the JSON fixtures of tests/fixtures/k8s_recorded (written from the API reference, not recorded), and
keeps every request it receives (method, path, query, JSON body, headers) for the tests to assert.

A test queues the answers it wants (`reply`); a POST with no answer queued is answered as the API server does,
with the object it received plus a uid (201), and a merge PATCH of an object created so is applied. Any other
request without an answer gets a 404 Status and is kept in `unexpected`, which the fixtures assert empty after
each test."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "k8s_recorded"
NAMESPACE = "ml"


def fixture(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / name).read_text())
    assert isinstance(data, dict)
    return data


def job(name: str = "aidc-7-1", status: str | None = None, **metadata: Any) -> dict[str, Any]:
    """The running Job fixture renamed to `name` (labels follow), with the status block of fixture `status`."""
    obj = fixture("job-running.json")
    _rename(obj, name)
    if status is not None:
        obj["status"] = fixture(status)
    obj["metadata"].update(metadata)
    return obj


def deployment(name: str = "aidc-7-1", status: str | None = None) -> dict[str, Any]:
    obj = fixture("deployment-available.json")
    _rename(obj, name)
    if status is not None:
        obj["status"] = fixture(status)
    return obj


def pods(name: str = "aidc-7-1", *statuses: str) -> dict[str, Any]:
    """A PodList with one pod of attempt `name` per status fixture (completion index = position)."""
    listing = fixture("pod-running.json")
    template = listing["items"][0]
    items = []
    for index, status in enumerate(statuses or (None,)):
        pod = copy.deepcopy(template)
        pod["metadata"]["name"] = f"{name}-{index}-x7k2p"
        pod["metadata"]["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
        _relabel(pod, name)
        if status is not None:
            pod["status"] = fixture(status)
        items.append(pod)
    listing["items"] = items
    return listing


def listing(kind: str, api_version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": "184400"}, "items": items}


def _rename(obj: dict[str, Any], name: str) -> None:
    obj["metadata"]["name"] = name
    _relabel(obj, name)


def _relabel(obj: dict[str, Any], name: str) -> None:
    parts = name.split("-")
    if len(parts) == 3 and parts[0] == "aidc":
        labels = obj["metadata"].setdefault("labels", {})
        labels["aidc.dev/job-id"], labels["aidc.dev/attempt"] = parts[1], parts[2]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    content_type: str | None
    authorization: str | None

    @property
    def kind(self) -> str | None:
        return self.body.get("kind") if isinstance(self.body, dict) else None


class FakeApiServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.unexpected: list[Request] = []
        self._replies: dict[tuple[str, str], deque[tuple[int, Any]]] = defaultdict(deque)
        self._created: dict[str, dict[str, Any]] = {}  # path of the object -> what a POST created
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._http.serve_forever, name="fake-apiserver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=10)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.unexpected.clear()
            self._replies.clear()
            self._created.clear()

    def reply(self, method: str, path: str, body: Any, status: int = 200, times: int = 1) -> None:
        """Answer the next `times` requests `method path` with `body` (a dict as JSON, bytes as text)."""
        with self._lock:
            for _ in range(times):
                self._replies[(method, path)].append((status, body))

    def seen(self, method: str | None = None, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if (method in (None, r.method)) and (path in (None, r.path))]

    def _answer(self, request: Request) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            queued = self._replies.get((request.method, request.path))
            if queued:
                return queued.popleft()
            if request.method == "POST" and isinstance(request.body, dict):
                created = copy.deepcopy(request.body)
                created["metadata"] |= {"uid": str(uuid.uuid4()), "creationTimestamp": "2026-03-01T12:00:00Z"}
                created["metadata"].setdefault("resourceVersion", "184200")
                self._created[f"{request.path}/{created['metadata']['name']}"] = created
                return 201, created
            stored = self._created.get(request.path)
            if request.method == "PATCH" and stored is not None and isinstance(request.body, dict):
                # A JSON merge patch of metadata, as the API server applies it (enough for ownerReferences).
                stored["metadata"] |= request.body.get("metadata", {})
                return 200, stored
            self.unexpected.append(request)
            status = fixture("status-404.json") | {"message": f"no answer queued for {request.method} {request.path}"}
            return 404, status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
                pass

            def _handle(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body: Any = json.loads(raw) if raw else None
                request = Request(
                    self.command,
                    split.path,
                    parse_qs(split.query),
                    body,
                    self.headers.get("Content-Type"),
                    self.headers.get("Authorization"),
                )
                status, answer = server._answer(request)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(answer, bytes) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        return Handler
