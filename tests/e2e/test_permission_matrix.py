"""Every route of the application x every role: allowed, refused (403), or hidden (404, where the thing's
existence must not leak across teams). The routes come from the app's own route table, so a new route
without a rule here fails `test_every_route_has_a_rule`.

The requests go to a real `aidc up` on SQLite; the route table is read from the same application factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from aidc.api.app import create_app
from tests.e2e.server import AidcServer

ROLES = ("admin", "operator", "member", "viewer", "inference", "other_team", "anonymous")
A, D, H = "allow", "deny", "hide"  # 2xx or a non-permission error; 403; 404


@dataclass(frozen=True)
class Rule:
    expect: dict[str, str]  # role -> A, D or H
    path: Callable[[dict[str, Any]], str] | None = None  # fills the path's parameters from the fixture's ids
    body: Callable[[str], Any] | None = None  # the JSON body for a role's request
    raw: bytes | None = None  # a raw body instead (a chunk upload)
    allowed_404: str | None = None  # an allowed request may answer 404 with a detail containing this


def everyone(but: dict[str, str] | None = None, default: str = A) -> dict[str, str]:
    expect = {r: default for r in ROLES if r != "anonymous"}
    expect.update(but or {})
    return expect


ADMIN_ONLY = everyone({"admin": A}, default=D)
READERS = everyone({"inference": D})
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256 of no bytes
MANIFEST = {"format": "aidc-manifest", "version": 1, "chunk_size": 4 << 20,
            "files": [{"path": "a", "size": 0, "mode": 0o644, "chunks": []}]}  # fmt: skip
JOB_SPEC = {"name": "m", "queue": "ml-q", "run": "true", "resources": {"cpus": 0.1, "memory": "1MB"}}


def serve_spec(name: str) -> dict[str, Any]:
    """A deployment of team ml with no replicas (nothing runs)."""
    return {**JOB_SPEC, "name": name, "kind": "serve", "run": "sleep 600",
            "serve": {"models": [f"model-{name}"], "replicas": 0}}  # fmt: skip


WRITERS_OF_ML = everyone({"viewer": D, "inference": D, "other_team": H})

RULES: dict[tuple[str, str], Rule | None] = {  # None: public, no token needed
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("GET", "/v1/schemas/jobspec"): Rule(everyone()),
    ("POST", "/v1/jobs"): Rule(everyone({"viewer": D, "inference": D, "other_team": D}), body=lambda role: JOB_SPEC),
    ("GET", "/v1/jobs"): Rule(READERS),
    ("GET", "/v1/jobs/{job_id}"): Rule(
        everyone({"inference": D, "other_team": H}), path=lambda ids: f"/v1/jobs/{ids['job']}"
    ),
    ("POST", "/v1/jobs/{job_id}/cancel"): Rule(
        everyone({"viewer": D, "inference": D, "other_team": H}), path=lambda ids: f"/v1/jobs/{ids['job']}/cancel"
    ),
    ("GET", "/v1/jobs/{job_id}/logs"): Rule(
        everyone({"inference": D, "other_team": H}), path=lambda ids: f"/v1/jobs/{ids['job']}/logs"
    ),
    ("GET", "/v1/nodes"): Rule(READERS),
    ("GET", "/v1/queues"): Rule(READERS),
    # Operators drain and resume nodes; the node of this host is "local"'s: its name is filled in.
    ("POST", "/v1/nodes/{name}/drain"): Rule(
        everyone({"admin": A, "operator": A}, default=D), path=lambda ids: f"/v1/nodes/{ids['node']}/drain"
    ),
    ("POST", "/v1/nodes/{name}/resume"): Rule(
        everyone({"admin": A, "operator": A}, default=D), path=lambda ids: f"/v1/nodes/{ids['node']}/resume"
    ),
    ("POST", "/v1/nodes/{name}/cordon"): Rule(
        everyone({"admin": A, "operator": A}, default=D), path=lambda ids: f"/v1/nodes/{ids['node']}/cordon"
    ),
    ("POST", "/v1/nodes/{name}/uncordon"): Rule(
        everyone({"admin": A, "operator": A}, default=D), path=lambda ids: f"/v1/nodes/{ids['node']}/uncordon"
    ),
    # Node agents send heartbeats with an operator's token.
    ("POST", "/v1/nodes/{name}/heartbeat"): Rule(
        everyone({"admin": A, "operator": A}, default=D), path=lambda ids: f"/v1/nodes/{ids['node']}/heartbeat"
    ),
    ("GET", "/metrics"): Rule(READERS),
    ("GET", "/v1/metrics/query"): Rule(READERS, path=lambda ids: "/v1/metrics/query?name=aidc_jobs"),
    ("GET", "/v1/alerts"): Rule(READERS),
    ("GET", "/v1/alerts/history"): Rule(READERS),
    ("GET", "/v1/alerts/rules"): Rule(READERS),
    ("GET", "/v1/silences"): Rule(READERS),
    ("POST", "/v1/silences"): Rule(
        everyone({"admin": A, "operator": A}, default=D),
        body=lambda role: {"matchers": [{"name": "alertname", "value": f"M-{role}"}], "duration": "1h", "comment": "x"},
    ),
    ("DELETE", "/v1/silences/{silence_id}"): Rule(
        everyone({"admin": A, "operator": A}, default=D), path=lambda ids: "/v1/silences/nope", allowed_404="silence"
    ),
    ("POST", "/v1/alerts/{fingerprint}/ack"): Rule(
        everyone({"admin": A, "operator": A}, default=D),
        path=lambda ids: "/v1/alerts/0123456789abcdef/ack",
        allowed_404="firing alert",
    ),
    ("POST", "/v1/queues"): Rule(
        everyone({"admin": A, "operator": A}, default=D), body=lambda role: {"name": f"q-{role.replace('_', '-')}"}
    ),
    ("POST", "/v1/users"): Rule(ADMIN_ONLY, body=lambda role: {"name": f"u-{role.replace('_', '-')}"}),
    ("GET", "/v1/users"): Rule(READERS),
    ("PATCH", "/v1/users/{name}"): Rule(
        ADMIN_ONLY, path=lambda ids: "/v1/users/spare", body=lambda role: {"disabled": True}
    ),
    ("POST", "/v1/teams"): Rule(ADMIN_ONLY, body=lambda role: {"name": f"t-{role.replace('_', '-')}"}),
    ("GET", "/v1/teams"): Rule(READERS),
    ("POST", "/v1/teams/{team}/members"): Rule(
        ADMIN_ONLY, path=lambda ids: "/v1/teams/ml/members", body=lambda role: {"user": "spare", "role": "viewer"}
    ),
    ("POST", "/v1/tokens"): Rule(everyone(), body=lambda role: {"name": "matrix"}),
    ("GET", "/v1/tokens"): Rule(everyone()),
    # Another user's token: the member owns it; others who may not manage users do not learn it exists.
    ("DELETE", "/v1/tokens/{token_id}"): Rule(
        everyone({"viewer": H, "inference": H, "other_team": H, "operator": H}),
        path=lambda ids: f"/v1/tokens/{ids['member_spare_token']}",
    ),
    ("GET", "/v1/whoami"): Rule(everyone()),
    # Artifacts of team ml: its members write, its viewers read, other teams do not learn they exist.
    ("POST", "/v1/artifacts/chunks/missing"): Rule(
        everyone({"viewer": D, "inference": D, "other_team": H}), body=lambda role: {"team": "ml", "digests": []}
    ),
    ("PUT", "/v1/artifacts/chunks/{digest}"): Rule(
        everyone({"viewer": D, "inference": D, "other_team": H}),
        path=lambda ids: f"/v1/artifacts/chunks/{EMPTY}?team=ml",
        raw=b"",
    ),
    ("GET", "/v1/artifacts/chunks/{digest}"): Rule(
        everyone({"inference": D, "other_team": H}), path=lambda ids: f"/v1/artifacts/chunks/{EMPTY}?team=ml"
    ),
    ("POST", "/v1/artifacts"): Rule(
        everyone({"viewer": D, "inference": D, "other_team": H}),
        body=lambda role: {"name": "m", "team": "ml", "manifest": MANIFEST},
    ),
    ("GET", "/v1/artifacts"): Rule(READERS),
    ("GET", "/v1/artifacts/{name}"): Rule(
        everyone({"inference": D, "other_team": H}), path=lambda ids: "/v1/artifacts/m?team=ml"
    ),
    ("DELETE", "/v1/artifacts/{name}"): Rule(
        everyone({"viewer": D, "inference": D, "other_team": H}),
        path=lambda ids: "/v1/artifacts/m?team=ml&version=99",
        allowed_404="m:99",
    ),
    # Backups: admins only (this server has no backup key: an admin's request is refused with 409, not 403).
    ("POST", "/v1/backups"): Rule(ADMIN_ONLY, body=lambda role: {}),
    ("GET", "/v1/backups"): Rule(ADMIN_ONLY),
    ("POST", "/v1/backups/{name}/verify"): Rule(ADMIN_ONLY, path=lambda ids: "/v1/backups/b1/verify"),
    # Deployments of team ml: like its jobs.
    ("POST", "/v1/deployments"): Rule(
        everyone({"viewer": D, "inference": D, "other_team": D}),
        body=lambda role: serve_spec(f"d-{role}".replace("_", "-")),
    ),
    ("GET", "/v1/deployments"): Rule(READERS),
    ("GET", "/v1/deployments/{name}"): Rule(
        everyone({"inference": D, "other_team": H}), path=lambda ids: f"/v1/deployments/{ids['deployment']}"
    ),
    ("POST", "/v1/deployments/{name}/scale"): Rule(
        WRITERS_OF_ML, path=lambda ids: f"/v1/deployments/{ids['deployment']}/scale", body=lambda role: {"replicas": 0}
    ),
    ("POST", "/v1/deployments/{name}/rollout/promote"): Rule(
        WRITERS_OF_ML, path=lambda ids: f"/v1/deployments/{ids['deployment']}/rollout/promote"
    ),
    ("POST", "/v1/deployments/{name}/rollout/abort"): Rule(
        WRITERS_OF_ML, path=lambda ids: f"/v1/deployments/{ids['deployment']}/rollout/abort"
    ),
    # The first allowed role deletes it; the next ones are told it is gone.
    ("DELETE", "/v1/deployments/{name}"): Rule(
        WRITERS_OF_ML, path=lambda ids: "/v1/deployments/doomed", allowed_404="doomed"
    ),
    ("GET", "/v1/usage"): Rule(READERS),
    ("GET", "/v1/serving/stats"): Rule(READERS),  # as GET /v1/deployments: a member sees its team's models
    ("GET", "/v1/energy"): Rule(READERS),
    ("GET", "/v1/jobs/{job_id}/energy"): Rule(
        everyone({"inference": D, "other_team": H}), path=lambda ids: f"/v1/jobs/{ids['job']}/energy"
    ),
    ("GET", "/v1/audit"): Rule(everyone({"admin": A, "operator": A}, default=D)),
    ("POST", "/v1/audit/verify"): Rule(everyone({"admin": A, "operator": A}, default=D)),
    # Simulations: every reader reads them; starting one needs job.submit in some team (a member of any team).
    ("GET", "/v1/traces"): Rule(READERS),
    ("POST", "/v1/simulations"): Rule(
        everyone({"viewer": D, "inference": D}),
        body=lambda role: {"trace": "synthetic:jobs=20,gpus=8", "policies": ["fifo"]},
    ),
    ("GET", "/v1/simulations"): Rule(READERS),
    ("GET", "/v1/simulations/{run_id}"): Rule(
        READERS, path=lambda ids: "/v1/simulations/20000101-000000-000000", allowed_404="simulation"
    ),
    ("GET", "/v1/simulations/{run_id}/report"): Rule(
        READERS, path=lambda ids: "/v1/simulations/20000101-000000-000000/report", allowed_404="simulation"
    ),
    ("GET", "/v1/simulations/{run_id}/plots/{name}"): Rule(
        READERS, path=lambda ids: "/v1/simulations/20000101-000000-000000/plots/jct_cdf.png", allowed_404="simulation"
    ),
}


def route_table(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route: the routers' from the OpenAPI document the app derives from its route
    table (FastAPI keeps included routers behind a private type), plus the app's own top-level routes."""
    found = {(method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations}
    for route in app.routes:
        if isinstance(route, Route):
            found.update((m, route.path) for m in route.methods or () if m != "HEAD")
    return found


World = tuple[httpx.Client, dict[str, str], dict[str, Any]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("matrix") / "data"
    server = AidcServer(data_dir).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield _populate(client, server.token)
    finally:
        server.stop()
        server.reap_jobs()


def _populate(client: httpx.Client, admin_token: str) -> World:
    admin = {"Authorization": f"Bearer {admin_token}"}

    def ok(response: Any) -> Any:
        assert response.status_code < 300, response.text
        return response.json()

    for team in ("ml", "vision"):
        ok(client.post("/v1/teams", json={"name": team}, headers=admin))
        ok(client.post("/v1/queues", json={"name": f"{team}-q", "team": team}, headers=admin))
    people = {
        "operator": {"name": "op", "role": "operator"},
        "member": {"name": "alice", "team": "ml", "role": "member"},
        "viewer": {"name": "carol", "team": "ml", "role": "viewer"},
        "inference": {"name": "bot", "role": "inference"},
        "other_team": {"name": "bob", "team": "vision", "role": "member"},
    }
    tokens = {"admin": admin["Authorization"][7:]}
    for role, body in people.items():
        ok(client.post("/v1/users", json=body, headers=admin))
        tokens[role] = ok(client.post("/v1/tokens", json={"user": body["name"]}, headers=admin))["token"]
    ok(client.post("/v1/users", json={"name": "spare"}, headers=admin))
    alice = {"Authorization": f"Bearer {tokens['member']}"}
    ids = {
        "job": ok(client.post("/v1/jobs", json=JOB_SPEC, headers=alice))["id"],
        "node": ok(client.get("/v1/nodes", headers=admin))[0]["name"],
        "member_spare_token": ok(client.post("/v1/tokens", json={"name": "spare"}, headers=alice))["id"],
        "deployment": ok(client.post("/v1/deployments", json=serve_spec("served"), headers=alice))["deployment"][
            "name"
        ],
    }
    ok(client.post("/v1/deployments", json=serve_spec("doomed"), headers=alice))
    return client, tokens, ids


def test_every_route_has_a_rule() -> None:
    routes = route_table(create_app(None))  # type: ignore[arg-type]  # routes only: no services needed
    missing = routes - set(RULES)
    assert not missing, f"routes without a permission rule in this test: {sorted(missing)}"
    assert not set(RULES) - routes, f"rules for routes that no longer exist: {sorted(set(RULES) - routes)}"


CASES = [(m, p, role) for (m, p), rule in RULES.items() if rule is not None for role in ROLES]


@pytest.mark.parametrize(("method", "path", "role"), CASES, ids=[f"{m} {p} as {r}" for m, p, r in CASES])
def test_route_as_role(world: World, method: str, path: str, role: str) -> None:
    client, tokens, ids = world
    rule = RULES[(method, path)]
    assert rule is not None
    url = rule.path(ids) if rule.path else path
    headers = {"Authorization": f"Bearer {tokens[role]}"} if role != "anonymous" else {}
    if rule.raw is not None:
        response = client.request(method, url, headers=headers, content=rule.raw)
    else:
        response = client.request(method, url, headers=headers, json=rule.body(role) if rule.body else None)
    json_body = response.headers.get("content-type", "").startswith("application/json")
    body = response.json() if json_body else {"detail": ""}  # a job's log is plain bytes
    if role == "anonymous":
        assert response.status_code == 401, body
        return
    expected = rule.expect[role]
    if expected == D:
        assert response.status_code == 403, body
        assert "may not" in body["detail"]
    elif expected == H:
        assert response.status_code == 404, body
        assert body["detail"].endswith("not found")
    else:
        assert response.status_code not in (401, 403), body
        # Allowed, yet the answer may be 404 for other reasons (a log not written yet), never "<thing> not found"
        # unless the rule says which missing thing (a version that does not exist) it may name.
        if response.status_code == 404 and body["detail"].endswith("not found"):
            assert rule.allowed_404 is not None, body
            assert rule.allowed_404 in body["detail"], body


def test_public_routes_need_no_token(world: World) -> None:
    client = world[0]
    for (method, path), rule in RULES.items():
        if rule is None:
            assert client.request(method, path).status_code == 200, path
            if path.startswith("/v1/"):
                pytest.fail(f"{path} is public: API routes need a token")
