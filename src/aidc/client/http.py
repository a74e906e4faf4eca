"""A typed client over httpx. Responses are parsed into the API's own wire schemas."""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from aidc.api.identity_schemas import (
    ArtifactCreate,
    ArtifactCreated,
    ArtifactDeleted,
    ArtifactDetailOut,
    ArtifactOut,
    AuditRecordOut,
    AuditVerifyOut,
    BackupOut,
    BackupVerifyOut,
    BindingOut,
    MemberAdd,
    MissingOut,
    TeamOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    WhoAmIOut,
)
from aidc.api.schemas import ErrorOut, JobDetailOut, JobOut, NodeOut, ProblemOut, QueueCreate, QueueOut
from aidc.api.telemetry_schemas import AlertEventOut, AlertOut, MetricQueryOut

T = TypeVar("T")


class ApiError(Exception):
    """The server answered with an error status; `detail` and `errors` come from its JSON body."""

    def __init__(self, status: int, detail: str, errors: list[ProblemOut] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.errors = errors or []
        super().__init__(f"HTTP {status}: {detail}")


class ConnectionFailed(Exception):
    pass


@dataclass(frozen=True)
class LogChunkOut:
    data: bytes
    next_offset: int
    attempt: int
    complete: bool


class AidcClient:
    def __init__(self, base_url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        # HTTPS with a private CA or a self-signed lab certificate: trust the file AIDC_CA_CERT names.
        ca_cert = os.environ.get("AIDC_CA_CERT")
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_cert) if ca_cert else True
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, verify=verify)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AidcClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach aidc at {self.base_url} ({exc}); is `aidc up` running?") from None
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call with the client's auth and errors (ApiError, ConnectionFailed), for the feature modules
        beside this one (client/alerts.py)."""
        return self._request(method, path, **kwargs)

    def _get(self, path: str, adapter: TypeAdapter[T], **kwargs: Any) -> T:
        return adapter.validate_json(self._request("GET", path, **kwargs).content)

    # ------------------------------------------------------------------ deployments (kind serve)

    def deploy(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Create, scale or roll out a deployment: {"outcome": ..., "deployment": {...}}."""
        result: dict[str, Any] = self._request("POST", "/v1/deployments", json=spec).json()
        return result

    def deployments(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._request("GET", "/v1/deployments").json()
        return found

    def deployment(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._request("GET", f"/v1/deployments/{quote(name, safe='')}").json()
        return found

    def scale(self, name: str, replicas: int) -> dict[str, Any]:
        path = f"/v1/deployments/{quote(name, safe='')}/scale"
        result: dict[str, Any] = self._request("POST", path, json={"replicas": replicas}).json()
        return result

    def rollout(self, name: str, action: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "POST", f"/v1/deployments/{quote(name, safe='')}/rollout/{action}"
        ).json()
        return result

    def delete_deployment(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("DELETE", f"/v1/deployments/{quote(name, safe='')}").json()
        return result

    def usage(self, by: str, since: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._request("GET", "/v1/usage", params={"by": by, "since": since}).json()
        return found

    def serving_stats(self, window: str = "5m") -> list[dict[str, Any]]:
        """Per served model over `window`: requests/s, errors, latency and time-to-first-token quantiles."""
        found: list[dict[str, Any]] = self._request("GET", "/v1/serving/stats", params={"window": window}).json()
        return found

    def energy_report(self, by: str, since: str) -> dict[str, Any]:
        found: dict[str, Any] = self._request("GET", "/v1/energy", params={"by": by, "since": since}).json()
        return found

    def job_energy(self, job_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self._request("GET", f"/v1/jobs/{job_id}/energy").json()
        return found

    # ------------------------------------------------------------------ jobs

    def submit(self, spec: dict[str, Any]) -> JobOut:
        return JobOut.model_validate_json(self._request("POST", "/v1/jobs", json=spec).content)

    def jobs(self, states: Sequence[str] = (), queue: str | None = None, limit: int = 1000) -> list[JobOut]:
        params: dict[str, Any] = {"limit": limit}
        if states:
            params["state"] = list(states)
        if queue:
            params["queue"] = queue
        return self._get("/v1/jobs", _JOBS, params=params)

    def show(self, job_id: int) -> JobDetailOut:
        return JobDetailOut.model_validate_json(self._request("GET", f"/v1/jobs/{job_id}").content)

    def cancel(self, job_id: int) -> JobOut:
        return JobOut.model_validate_json(self._request("POST", f"/v1/jobs/{job_id}/cancel").content)

    def logs(self, job_id: int, attempt: int | None = None, offset: int = 0) -> LogChunkOut:
        params: dict[str, Any] = {"offset": offset}
        if attempt is not None:
            params["attempt"] = attempt
        response = self._request("GET", f"/v1/jobs/{job_id}/logs", params=params)
        return LogChunkOut(
            data=response.content,
            next_offset=int(response.headers["X-Aidc-Next-Offset"]),
            attempt=int(response.headers["X-Aidc-Attempt"]),
            complete=response.headers.get("X-Aidc-Complete") == "true",
        )

    # ------------------------------------------------------------------ cluster

    def nodes(self) -> list[NodeOut]:
        return self._get("/v1/nodes", _NODES)

    def node_action(self, name: str, action: str, reason: str | None = None) -> NodeOut:
        """`action`: cordon, uncordon, drain or resume."""
        body = {"reason": reason} if reason else None
        response = self._request("POST", f"/v1/nodes/{quote(name, safe='')}/{action}", json=body)
        return NodeOut.model_validate_json(response.content)

    def heartbeat(self, name: str, families: list[dict[str, Any]]) -> NodeOut:
        response = self._request("POST", f"/v1/nodes/{quote(name, safe='')}/heartbeat", json={"families": families})
        return NodeOut.model_validate_json(response.content)

    # ------------------------------------------------------------------ telemetry

    def metrics_text(self) -> str:
        return self._request("GET", "/metrics").text

    def metric_query(self, name: str, **params: Any) -> MetricQueryOut:
        query = {"name": name, **{k: v for k, v in params.items() if v is not None}}
        return MetricQueryOut.model_validate_json(self._request("GET", "/v1/metrics/query", params=query).content)

    def alerts(self, firing: bool = False) -> list[AlertOut]:
        return self._get("/v1/alerts", _ALERTS, params={"firing": "true"} if firing else {})

    def alert_history(self, since: str | None = None, limit: int = 1000) -> list[AlertEventOut]:
        params: dict[str, Any] = {"limit": limit, **({"since": since} if since else {})}
        return self._get("/v1/alerts/history", _ALERT_EVENTS, params=params)

    def alert_rules(self, fmt: str = "prometheus") -> str:
        return self._request("GET", "/v1/alerts/rules", params={"format": fmt}).text

    def queues(self) -> list[QueueOut]:
        return self._get("/v1/queues", _QUEUES)

    def create_queue(self, body: QueueCreate) -> QueueOut:
        content = self._request("POST", "/v1/queues", json=body.model_dump(mode="json", exclude_none=True)).content
        return QueueOut.model_validate_json(content)

    # ------------------------------------------------------------------ identity and audit

    def create_user(self, body: UserCreate) -> UserOut:
        return UserOut.model_validate_json(
            self._request("POST", "/v1/users", json=body.model_dump(mode="json")).content
        )

    def users(self) -> list[UserOut]:
        return self._get("/v1/users", _USERS)

    def set_user_disabled(self, name: str, disabled: bool) -> UserOut:
        content = self._request("PATCH", f"/v1/users/{quote(name, safe='')}", json={"disabled": disabled}).content
        return UserOut.model_validate_json(content)

    def create_team(self, name: str) -> TeamOut:
        return TeamOut.model_validate_json(self._request("POST", "/v1/teams", json={"name": name}).content)

    def teams(self) -> list[TeamOut]:
        return self._get("/v1/teams", _TEAMS)

    def add_member(self, team: str, body: MemberAdd) -> BindingOut:
        path = f"/v1/teams/{_segment(team)}/members"
        return BindingOut.model_validate_json(self._request("POST", path, json=body.model_dump(mode="json")).content)

    def create_token(self, body: TokenCreate) -> TokenCreated:
        content = self._request("POST", "/v1/tokens", json=body.model_dump(mode="json", exclude_none=True)).content
        return TokenCreated.model_validate_json(content)

    def tokens(self, user: str | None = None, all_users: bool = False) -> list[TokenOut]:
        params: dict[str, Any] = {"all": all_users}
        if user:
            params["user"] = user
        return self._get("/v1/tokens", _TOKENS, params=params)

    def revoke_token(self, token_id: int) -> TokenOut:
        return TokenOut.model_validate_json(self._request("DELETE", f"/v1/tokens/{token_id}").content)

    def whoami(self) -> WhoAmIOut:
        return WhoAmIOut.model_validate_json(self._request("GET", "/v1/whoami").content)

    def audit(self, **params: Any) -> list[AuditRecordOut]:
        return self._get("/v1/audit", _AUDIT, params={k: v for k, v in params.items() if v is not None})

    def audit_verify(self) -> AuditVerifyOut:
        return AuditVerifyOut.model_validate_json(self._request("POST", "/v1/audit/verify", timeout=600).content)

    # ------------------------------------------------------------------ artifacts

    def missing_chunks(self, team: str | None, digests: list[str]) -> MissingOut:
        content = self._request("POST", "/v1/artifacts/chunks/missing", json={"team": team, "digests": digests}).content
        return MissingOut.model_validate_json(content)

    def put_chunk(self, digest: str, data: bytes, team: str | None) -> None:
        params = {"team": team} if team else {}
        headers = {"content-type": "application/octet-stream"}
        self._request("PUT", f"/v1/artifacts/chunks/{digest}", content=data, params=params, headers=headers)

    def chunk(self, digest: str, team: str | None) -> bytes:
        params = {"team": team} if team else {}
        return self._request("GET", f"/v1/artifacts/chunks/{digest}", params=params).content

    def create_artifact(self, body: ArtifactCreate) -> ArtifactCreated:
        content = self._request("POST", "/v1/artifacts", json=body.model_dump(mode="json")).content
        return ArtifactCreated.model_validate_json(content)

    def artifacts(self, team: str | None = None, name: str | None = None) -> list[ArtifactOut]:
        params = {k: v for k, v in {"team": team, "name": name}.items() if v}
        return self._get("/v1/artifacts", _ARTIFACTS, params=params)

    def artifact(self, name: str, team: str | None = None, version: int | None = None) -> ArtifactDetailOut:
        params = {k: v for k, v in {"team": team, "version": version}.items() if v}
        content = self._request("GET", f"/v1/artifacts/{quote(name, safe='')}", params=params).content
        return ArtifactDetailOut.model_validate_json(content)

    def delete_artifact(self, name: str, team: str | None = None, version: int | None = None) -> ArtifactDeleted:
        params = {k: v for k, v in {"team": team, "version": version}.items() if v}
        content = self._request("DELETE", f"/v1/artifacts/{quote(name, safe='')}", params=params).content
        return ArtifactDeleted.model_validate_json(content)

    # ------------------------------------------------------------------ backups

    def create_backup(self, name: str | None = None) -> BackupOut:
        body = {"name": name} if name else {}
        return BackupOut.model_validate_json(self._request("POST", "/v1/backups", json=body, timeout=None).content)

    def backups(self) -> list[BackupOut]:
        return self._get("/v1/backups", _BACKUPS)

    def verify_backup(self, name: str) -> BackupVerifyOut:
        content = self._request("POST", f"/v1/backups/{quote(name, safe='')}/verify", timeout=None).content
        return BackupVerifyOut.model_validate_json(content)

    def jobspec_schema(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/v1/schemas/jobspec").json()
        return result


_JOBS: TypeAdapter[list[JobOut]] = TypeAdapter(list[JobOut])
_NODES: TypeAdapter[list[NodeOut]] = TypeAdapter(list[NodeOut])
_ALERTS: TypeAdapter[list[AlertOut]] = TypeAdapter(list[AlertOut])
_ALERT_EVENTS: TypeAdapter[list[AlertEventOut]] = TypeAdapter(list[AlertEventOut])
_QUEUES: TypeAdapter[list[QueueOut]] = TypeAdapter(list[QueueOut])
_USERS: TypeAdapter[list[UserOut]] = TypeAdapter(list[UserOut])
_TEAMS: TypeAdapter[list[TeamOut]] = TypeAdapter(list[TeamOut])
_TOKENS: TypeAdapter[list[TokenOut]] = TypeAdapter(list[TokenOut])
_ARTIFACTS: TypeAdapter[list[ArtifactOut]] = TypeAdapter(list[ArtifactOut])
_BACKUPS: TypeAdapter[list[BackupOut]] = TypeAdapter(list[BackupOut])
_AUDIT: TypeAdapter[list[AuditRecordOut]] = TypeAdapter(list[AuditRecordOut])


def _segment(value: str) -> str:
    """A path segment, escaped (a name with '/' or '?' must not change the route)."""
    return quote(value, safe="")


def _api_error(response: httpx.Response) -> ApiError:
    try:
        body = ErrorOut.model_validate_json(response.content)
    except ValueError:
        return ApiError(response.status_code, response.text.strip()[:500] or response.reason_phrase)
    return ApiError(response.status_code, body.detail, body.errors)


def dump(model: BaseModel | Sequence[BaseModel]) -> Any:
    """JSON-ready data of one model or a list of them."""
    if isinstance(model, BaseModel):
        return model.model_dump(mode="json")
    return [m.model_dump(mode="json") for m in model]
