"""A small client of Ray's Job Submission REST API (what ray.job_submission.JobSubmissionClient calls), so that
the control plane never imports ray. Paths and shapes are those of Ray 2.60
(ray/dashboard/modules/job/job_head.py, common.py, pydantic_models.py; the state API's /api/v0/nodes)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import httpx

_T = TypeVar("_T")

ALREADY_EXISTS = "already exists"  # in the traceback Ray answers a duplicate submission_id with
STOP_WAIT_VARIABLE = "RAY_JOB_STOP_WAIT_TIME_S"  # read by Ray's job supervisor from its own environment
DEFAULT_STOP_WAIT = 3  # Ray's JobSupervisor.DEFAULT_RAY_JOB_STOP_WAIT_TIME_S


class RayJobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in (RayJobStatus.STOPPED, RayJobStatus.SUCCEEDED, RayJobStatus.FAILED)


@dataclass(frozen=True)
class RayJob:
    """The fields of Ray's JobDetails that aidc reads. Times are Unix milliseconds."""

    submission_id: str
    status: RayJobStatus
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    driver_exit_code: int | None = None
    driver_node_id: str | None = None
    stop_wait: int | None = None  # RAY_JOB_STOP_WAIT_TIME_S in its runtime_env, when it has one


class RayError(Exception):
    """The Ray dashboard answered, but not as hoped; `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class RayUnreachable(RayError):
    """No answer from the dashboard at all (connection refused, timeout)."""


class RayNotFound(RayError):
    """No submission of that id (HTTP 404)."""


def parse_job(data: Any) -> RayJob:
    """One JobDetails object (GET /api/jobs/{id}, an item of GET /api/jobs/). Raises ValueError when it is not
    one (a DRIVER job, started by a plain `ray.init`, has no submission_id)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a Ray job is a JSON object, not {type(data).__name__}")
    submission_id = data.get("submission_id")
    if not isinstance(submission_id, str):
        raise ValueError("a Ray job without a submission_id (not a submitted job)")
    try:
        status = RayJobStatus(str(data.get("status")))
    except ValueError:
        raise ValueError(f"Ray job {submission_id}: unknown status {data.get('status')!r}") from None
    exit_code = data.get("driver_exit_code")
    return RayJob(
        submission_id=submission_id,
        status=status,
        message=_optional(data, "message", str),
        error_type=_optional(data, "error_type", str),
        start_time=_optional(data, "start_time", int),
        end_time=_optional(data, "end_time", int),
        driver_exit_code=exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None,
        driver_node_id=_optional(data, "driver_node_id", str),
        stop_wait=_stop_wait(data.get("runtime_env")),
    )


def _stop_wait(runtime_env: Any) -> int | None:
    """Ray serves runtime_env unredacted to API clients (it redacts for browsers only)."""
    env = runtime_env.get("env_vars") if isinstance(runtime_env, Mapping) else None
    value = env.get(STOP_WAIT_VARIABLE) if isinstance(env, Mapping) else None
    try:
        return int(value) if isinstance(value, str) else None
    except ValueError:
        return None


def parse_jobs(data: Any) -> list[RayJob]:
    """GET /api/jobs/: submitted jobs only (driver jobs and anything unreadable are left out)."""
    if not isinstance(data, list):
        raise ValueError(f"the Ray job list is a JSON array, not {type(data).__name__}")
    jobs = []
    for item in data:
        try:
            jobs.append(parse_job(item))
        except ValueError:
            continue
    return jobs


def parse_nodes(data: Any) -> list[dict[str, Any]]:
    """GET /api/v0/nodes: the node records, {"result": true, "data": {"result": {"result": [...]}}}."""
    try:
        if not data["result"]:
            raise ValueError(f"the Ray state API refused to list nodes: {data.get('msg')}")
        nodes = data["data"]["result"]["result"]
    except (KeyError, TypeError):
        raise ValueError("the Ray node list is not shaped as the state API's answer") from None
    if not isinstance(nodes, list):
        raise ValueError("the Ray node list is not a JSON array")
    return [n for n in nodes if isinstance(n, dict)]


def _optional(data: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    value = data.get(key)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


class RayJobsClient:
    """Synchronous calls to one Ray head's dashboard. Every failure is a RayError naming the address."""

    def __init__(
        self,
        address: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.address = address
        self._http = httpx.Client(base_url=address, timeout=timeout, headers=dict(headers or {}), transport=transport)

    def close(self) -> None:
        self._http.close()

    def version(self) -> dict[str, Any]:
        data = self._json("GET", "/api/version")
        return data if isinstance(data, dict) else {}

    def submit(self, body: Mapping[str, Any]) -> str:
        """POST /api/jobs/; the submission id. A taken submission_id is a RayError whose text says so."""
        data = self._json("POST", "/api/jobs/", json=dict(body))
        submission_id = data.get("submission_id") if isinstance(data, dict) else None
        if not isinstance(submission_id, str):
            raise RayError(f"the Ray dashboard at {self.address} answered the submission without a submission_id")
        return submission_id

    def job(self, submission_id: str) -> RayJob:
        return self._parsed(parse_job, self._json("GET", f"/api/jobs/{submission_id}"))

    def jobs(self) -> list[RayJob]:
        return self._parsed(parse_jobs, self._json("GET", "/api/jobs/"))

    def logs(self, submission_id: str) -> str:
        """The whole driver log (the API has no ranges)."""
        data = self._json("GET", f"/api/jobs/{submission_id}/logs")
        logs = data.get("logs") if isinstance(data, dict) else None
        return logs if isinstance(logs, str) else ""

    def stop(self, submission_id: str) -> bool:
        """POST /api/jobs/{id}/stop: True when Ray signalled a live job (false: it had ended, or its supervisor
        is not up yet)."""
        data = self._json("POST", f"/api/jobs/{submission_id}/stop")
        return bool(data.get("stopped")) if isinstance(data, dict) else False

    def delete(self, submission_id: str) -> bool:
        data = self._json("DELETE", f"/api/jobs/{submission_id}")
        return bool(data.get("deleted")) if isinstance(data, dict) else False

    def nodes(self) -> list[dict[str, Any]]:
        return self._parsed(parse_nodes, self._json("GET", "/api/v0/nodes", params={"limit": 10000, "detail": "false"}))

    def _parsed(self, parse: Callable[[Any], _T], data: Any) -> _T:
        try:
            return parse(data)
        except ValueError as exc:
            raise RayError(f"the Ray dashboard at {self.address}: {exc}") from None

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RayUnreachable(
                f"cannot reach the Ray dashboard at {self.address}: {exc or type(exc).__name__}"
            ) from exc
        if response.status_code == 404:
            raise RayNotFound(_first_line(response.text) or f"{path} not found", 404)
        if response.status_code >= 400:
            raise RayError(
                f"the Ray dashboard at {self.address} answered {method} {path} with HTTP {response.status_code}: "
                f"{_error_text(response.text)}",
                response.status_code,
            )
        try:
            return response.json()
        except ValueError:
            raise RayError(f"the Ray dashboard at {self.address} answered {method} {path} with no JSON") from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:500] if text.strip() else ""


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception): ")


def _error_text(text: str) -> str:
    """Ray answers errors with a whole traceback (the agent's, nested in the head's): its last exception line
    says what went wrong."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip() not in ("", ".")]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line[:500]
    return lines[-1][:500] if lines else "(no text)"
