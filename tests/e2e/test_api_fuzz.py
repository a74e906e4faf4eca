"""Schemathesis against the running server's OpenAPI: every operation gets generated requests (data that fits
the schema, and data that does not), once with a valid admin token and once with no token at all. No answer
may be a 5xx, and every answer must match what the schema declares for it: its status code, its content type
and its body. At least MIN_REQUESTS requests are sent.

Each pass has a fixed seed: CI sends the same requests every run, and a failure replays locally with
`pytest tests/e2e/test_api_fuzz.py`. Failures are collected rather than raised (nothing is shrunk), so one
run lists every distinct one, each with a curl command that reproduces it.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.server import AidcServer

pytestmark = pytest.mark.slow

# Generated cases per operation and pass: (admin token, no token) x (positive, negative), and for operations on
# one job, an admin pass on a job that exists. Operations with few inputs (GET /healthz) run out of distinct
# cases sooner. The 11 operations of the jobs and cluster API alone make about 1,900 requests.
MAX_EXAMPLES = 50
MIN_REQUESTS = 1000
# Integers in paths and queries are also sent at the edges of a 64-bit column (random draws reach them only
# now and then), a few cases each with the other inputs generated.
INT64_EDGES = (2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1)  # 32-bit ids on PostgreSQL, 64-bit columns
EDGE_EXAMPLES = 3

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
SUBMIT = ("POST", "/v1/jobs")


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[tuple[str, str, int]] = field(default_factory=Counter)  # (who, operation, status)
    failures: dict[tuple[str, int], str] = field(default_factory=dict)  # the first report per (operation, status)


@dataclass(frozen=True)
class Caller:
    who: str
    token: str | None
    user: str | None = None  # whose credentials these are, and the token's id: never disabled or revoked here
    token_id: int | None = None


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fuzz_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AidcServer]:
    """The same run on SQLite and on PostgreSQL: they refuse different things (32-bit ids, NUL in text)."""
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").fresh_database("aidc_fuzz")
    srv = AidcServer(data_dir=tmp_path_factory.mktemp("fuzz") / "data", database_url=url).start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.reap_jobs()


def defang(case: Case[Any]) -> None:
    """Accepted jobs really run on this host (the local backend): a generated job runs `true` instead of
    generated shell text, and names no checkpoint_dir (the backend creates that directory, anywhere on disk).
    Only strings that are valid anyway are replaced, so what makes a body invalid (a blank `run`, a number
    where a string belongs) is still sent as generated."""
    if (case.method.upper(), case.path) != SUBMIT or not isinstance(case.body, dict):
        return
    body = case.body
    for key in ("run", "setup"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            body[key] = "true"
    if isinstance(body.get("checkpoint_dir"), str):
        del body["checkpoint_dir"]


def with_auth(case: Case[Any], caller: Caller) -> None:
    """`authorization` is declared as an optional header, so it is generated too: it is replaced by the
    caller's token, or dropped."""
    case.headers.pop("Authorization", None)  # the headers are case-insensitive
    if caller.token is not None:
        case.headers["Authorization"] = f"Bearer {caller.token}"


def spares_the_caller(case: Case[Any], caller: Caller) -> bool:
    """False for a change aimed at the caller's own user or token (PATCH /v1/users/admin, DELETE
    /v1/tokens/1): it would lock the rest of the run out."""
    if case.method.upper() in {"GET", "HEAD", "OPTIONS"} or caller.user is None:
        return True
    for name, value in (case.path_parameters or {}).items():
        if value == caller.user or (name == "token_id" and str(value) == str(caller.token_id)):
            return False
    return True


def fuzz(
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    caller: Caller,
    base_url: str,
    tally: Tally,
    *,
    path: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    examples: int = MAX_EXAMPLES,
) -> None:
    """One pass: `examples` generated cases of `operation` (`path` and `query` fix some inputs)."""
    session = requests.Session()
    # Each pass has its own seed, the same every run: passes do not all draw the same values.
    label = f"{caller.who} {mode.value} {operation.label} {path} {query}"

    @seed(zlib.crc32(label.encode()))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path, query=query))
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # failures are collected, not raised: nothing to shrink
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any]) -> None:
        if not spares_the_caller(case, caller):
            return
        defang(case)
        with_auth(case, caller)
        response = case.call(base_url=base_url, session=session, timeout=30)
        tally.requests += 1
        tally.statuses[(caller.who, operation.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            key = (operation.label, response.status_code)
            sent = response.request.body  # as bytes: the curl line above mangles bodies that are not UTF-8
            tally.failures.setdefault(key, f"{caller.who}, {mode.value} data: {group}\nBody sent: {sent!r}")

    try:
        run()
    except Unsatisfiable:
        pass  # no negative data for an operation without inputs
    finally:
        session.close()


def integer_parameters(document: dict[str, Any], operation: APIOperation[Any, Any, Any, Any]) -> list[tuple[str, str]]:
    """(location, name) of the operation's path and query parameters that take an integer."""
    found = []
    for param in document["paths"][operation.path][operation.method.lower()].get("parameters", []):
        schema = param.get("schema", {})
        types = [schema.get("type"), *(s.get("type") for s in schema.get("anyOf", []))]
        if param["in"] in {"path", "query"} and "integer" in types:
            found.append((param["in"], param["name"]))
    return found


def whoami(server: AidcServer) -> Caller:
    """The admin caller, with its user and token id where the server says (GET /v1/whoami)."""
    with server.api() as api:
        response = api.get("/v1/whoami")
    if response.status_code != 200:
        return Caller("admin", server.token)
    me = response.json()
    return Caller("admin", server.token, user=me["user"], token_id=(me.get("token") or {}).get("id"))


def known_job(server: AidcServer) -> int:
    """A job that ran and left output, for the operations on one job to reach its attempts and logs."""
    with server.api() as api:
        response = api.post("/v1/jobs", json={"name": "fuzz-known", "run": "echo hello; echo world"})
    assert response.status_code == 201, response.text
    job_id: int = response.json()["id"]
    server.wait_state(job_id, "SUCCEEDED", "FAILED")
    return job_id


def admin_still_signs_in(server: AidcServer, after: str) -> None:
    with server.api() as api:
        status = api.get("/v1/queues").status_code
    assert status == 200, f"the admin token no longer works after fuzzing {after} ({status}): spare it"


def test_generated_requests_get_no_5xx_and_match_the_schema(fuzz_server: AidcServer) -> None:
    document = httpx.get(f"{fuzz_server.url}/openapi.json", timeout=10).raise_for_status().json()
    schema = schemathesis.openapi.from_dict(document)
    results = list(schema.get_all_operations())
    assert not [r.err() for r in results if isinstance(r, Err)]
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) >= 11, [op.label for op in operations]
    anonymous, admin = Caller("anonymous", None), whoami(fuzz_server)
    job = {"job_id": known_job(fuzz_server)}
    url = fuzz_server.url

    tally = Tally()
    for operation in operations:
        on_a_job = "{job_id}" in operation.path
        for mode in MODES:
            fuzz(operation, mode, anonymous, url, tally)
            fuzz(operation, mode, admin, url, tally)
            if on_a_job:
                fuzz(operation, mode, admin, url, tally, path=job)
        for location, name in integer_parameters(document, operation):
            for edge in INT64_EDGES:
                # A query edge on a job that exists, so that it gets past looking the job up.
                path, query = ({name: edge}, None) if location == "path" else (job if on_a_job else None, {name: edge})
                fuzz(
                    operation,
                    GenerationMode.POSITIVE,
                    admin,
                    url,
                    tally,
                    path=path,
                    query=query,
                    examples=EDGE_EXAMPLES,
                )
        admin_still_signs_in(fuzz_server, operation.label)

    lines = [f"{n:5} {who} {op} -> {status}" for (who, op, status), n in sorted(tally.statuses.items())]
    statuses = "\n".join(lines)
    print(f"{tally.requests} requests:\n{statuses}")  # shown with -rA
    failures = sorted(tally.failures, key=lambda key: (-key[1], key))  # 5xx first
    assert not failures, "\n\n".join(f"{op} -> {status}: {tally.failures[op, status]}" for op, status in failures)
    assert tally.requests >= MIN_REQUESTS, statuses
    # The admin token got past authentication: not all of the admin's requests were refused.
    assert any(who == "admin" and 200 <= status < 300 for who, _, status in tally.statuses), statuses
