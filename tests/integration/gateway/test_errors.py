"""Errors come back in OpenAI's shape with the status that makes the openai SDK raise the right class."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from aidc.gateway.limits import Limit, Limits
from aidc.gateway.proxy import WATCH_AFTER
from tests.integration.gateway.conftest import FakeBackplane, Gateway, route
from tests.integration.gateway.stubs import StubReplica

MESSAGES = [{"role": "user", "content": "hi"}]


def _error(exc: openai.APIStatusError) -> dict[str, object]:
    body = exc.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def gw(stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]) -> Gateway:
    return gateway(route("chat-m", stubs("a")))


def test_a_bad_or_missing_token_is_an_authentication_error(gw: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        gw.client("tok-nobody").chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    assert _error(caught.value)["message"] == "unknown API token"
    assert caught.value.response.headers["www-authenticate"] == "Bearer"
    with httpx.Client(base_url=gw.url) as http:
        answer = http.post("/v1/chat/completions", json={"model": "chat-m", "messages": MESSAGES})
    assert answer.status_code == 401
    assert "no API token" in answer.json()["error"]["message"]


def test_a_token_without_inference_rights_is_denied(gw: Gateway) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        gw.client("tok-viewer").chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    assert _error(caught.value)["type"] == "permission_error"
    # An inference token limited to other models is denied this one, whether or not it exists.
    with pytest.raises(openai.PermissionDeniedError):
        gw.client("tok-other-only").chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]


def test_an_unknown_model_is_not_found(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().chat.completions.create(model="no-such-model", messages=MESSAGES)  # type: ignore[arg-type]
    error = _error(caught.value)
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    with pytest.raises(openai.NotFoundError):
        gw.client().models.retrieve("no-such-model")


def test_a_bad_body_names_the_field(gw: Gateway) -> None:
    client = gw.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/chat/completions", body={"messages": MESSAGES}, cast_to=object)
    assert _error(caught.value)["param"] == "model"
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/chat/completions", body={"model": "chat-m"}, cast_to=object)
    assert _error(caught.value)["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/embeddings", body={"model": "chat-m"}, cast_to=object)
    assert _error(caught.value)["param"] == "input"
    with pytest.raises(openai.BadRequestError) as caught:
        client.post(
            "/chat/completions", body={"model": "chat-m", "messages": MESSAGES, "stream": "yes"}, cast_to=object
        )
    assert _error(caught.value)["param"] == "stream"
    with httpx.Client(base_url=gw.url, headers={"Authorization": "Bearer tok-alice"}) as http:
        answer = http.post("/v1/chat/completions", content=b"{not json")
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_json")
        assert http.get("/v1/chat/completions").status_code == 405
        assert http.get("/v1/nothing-here").status_code == 404


def test_no_ready_replica_is_a_503(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    gw = gateway(route("chat-m", stubs("down", ready=False)))
    with pytest.raises(openai.InternalServerError) as caught:
        gw.client().chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 503
    assert _error(caught.value)["code"] == "no_ready_replica"


def test_a_model_slower_than_its_timeout_is_a_504(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    gw = gateway(route("chat-m", stubs("slow", delay=3.0), timeout=0.3))
    with pytest.raises(openai.InternalServerError) as caught:
        gw.client().chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 504
    assert _error(caught.value)["code"] == "timeout"


def test_a_timeout_shorter_than_the_wait_before_watching_is_a_504_too(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    # Plain requests are watched (client gone, timeout) only after WATCH_AFTER, unless their timeout
    # comes first: then at the timeout itself.
    assert WATCH_AFTER > 0.02
    gw = gateway(route("chat-m", stubs("slow", delay=3.0), timeout=0.02))
    with pytest.raises(openai.InternalServerError) as caught:
        gw.client().chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 504
    assert _error(caught.value)["code"] == "timeout"


def test_concurrent_first_requests_of_a_token_share_its_check_and_failures_are_each_checked(
    gw: Gateway, backplane: FakeBackplane
) -> None:
    backplane.auth_delay = 0.3  # a check takes a while (a scrypt, the database)

    def ask(token: str) -> int:
        with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            return http.post("/v1/chat/completions", json={"model": "chat-m", "messages": MESSAGES}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(ask, ["tok-bob"] * 8)) == [200] * 8
    assert backplane.authentications == 1  # one check for all of them, not one each
    backplane.authentications = 0
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(ask, ["tok-nobody"] * 8)) == [401] * 8
    assert backplane.authentications == 8  # a failure is not shared: each request is checked on its own


def test_a_rate_limit_is_a_429_with_retry_after(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    gw = gateway(route("chat-m", stubs("a")), limits=Limits(default=Limit(requests_per_minute=1)))
    client = gw.client()
    client.chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    assert 50 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert _error(caught.value)["code"] == "rate_limit_exceeded"


def test_replicas_that_all_fail_are_a_502_after_the_retries(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    a, b = stubs("a", fail_status=500), stubs("b", fail_status=502)
    gw = gateway(route("chat-m", a, b), probe_interval=60.0)
    with pytest.raises(openai.InternalServerError) as caught:
        gw.client().chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 502
    error = _error(caught.value)
    assert error["code"] == "upstream_error"
    assert error["message"] == "replica 101 answered 502: b is failing"  # the last one tried, in its words
    assert (a.total, b.total) == (1, 1)
    # A replica that cannot be reached is named, not its address.
    gone = stubs("gone")
    gw2 = gateway(route("other", gone, first_job=400), probe_interval=60.0)
    gone.stop()  # after its readiness check passed
    with pytest.raises(openai.InternalServerError) as caught:
        gw2.client().chat.completions.create(model="other", messages=MESSAGES)  # type: ignore[arg-type]
    assert _error(caught.value)["message"] == "replica 400 could not be reached"
