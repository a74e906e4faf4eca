"""Rate limits per API key and per team: 429 with Retry-After, through the openai SDK."""

from __future__ import annotations

import threading
from collections.abc import Callable

import openai
import pytest

from aidc.gateway.limits import Limit, Limits
from tests.integration.gateway.conftest import Gateway, route
from tests.integration.gateway.stubs import StubReplica

MESSAGES = [{"role": "user", "content": "hi"}]


def _ask(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]


def test_requests_per_minute_per_key(stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]) -> None:
    limits = Limits(default=Limit(requests_per_minute=2), keys={2: Limit(requests_per_minute=5)})
    gw = gateway(route("chat-m", stubs("a")), limits=limits)
    alice, bob = gw.client("tok-alice"), gw.client("tok-bob")
    _ask(alice)
    _ask(alice)
    with pytest.raises(openai.RateLimitError, match="requests per minute for this API key") as caught:
        _ask(alice)
    assert 55 <= int(caught.value.response.headers["retry-after"]) <= 60
    for _ in range(5):  # bob's own key, with its own higher limit
        _ask(bob)
    with pytest.raises(openai.RateLimitError):
        _ask(bob)


def test_requests_per_minute_per_team(stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]) -> None:
    gw = gateway(route("chat-m", stubs("a")), limits=Limits(teams={"ml": Limit(requests_per_minute=3)}))
    alice, bob = gw.client("tok-alice"), gw.client("tok-bob")
    _ask(alice)
    _ask(alice)
    _ask(bob)
    with pytest.raises(openai.RateLimitError, match="for your team") as caught:
        _ask(bob)  # bob's first refusal: the team (alice and bob, both charged to ml) used its 3
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_concurrent_requests_per_key(stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]) -> None:
    gate = threading.Event()
    gw = gateway(route("chat-m", stubs("a", gate=gate)), limits=Limits(default=Limit(concurrent=1)))
    alice = gw.client()
    stream = alice.chat.completions.create(model="chat-m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    next(iter(stream))  # in flight, held by the gate
    with pytest.raises(openai.RateLimitError, match="concurrent requests") as caught:
        _ask(alice)
    assert caught.value.response.headers["retry-after"] == "1"
    _ask(gw.client("tok-bob"))  # another key is not held back
    gate.set()
    list(stream)
    _ask(alice)  # the slot is free again


def test_tokens_per_minute_per_key(stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]) -> None:
    gw = gateway(route("chat-m", stubs("a")), limits=Limits(default=Limit(tokens_per_minute=20)))
    alice = gw.client()
    _ask(alice)  # 15 tokens charged after it (11 + 4), under 20: the next one is admitted
    _ask(alice)  # 30 now
    with pytest.raises(openai.RateLimitError, match="tokens per minute") as caught:
        _ask(alice)
    assert 55 <= int(caught.value.response.headers["retry-after"]) <= 60


def test_concurrent_requests_per_team(stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]) -> None:
    gate = threading.Event()
    gw = gateway(route("chat-m", stubs("a", gate=gate)), limits=Limits(teams={"ml": Limit(concurrent=1)}))
    stream = gw.client("tok-alice").chat.completions.create(model="chat-m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    next(iter(stream))
    with pytest.raises(openai.RateLimitError, match="concurrent requests for your team") as caught:
        _ask(gw.client("tok-bob"))  # another key of the same team
    assert caught.value.response.headers["retry-after"] == "1"
    _ask(gw.client("tok-admin"))  # no team: not held back
    gate.set()
    list(stream)
    _ask(gw.client("tok-bob"))
