"""The official openai SDK against the gateway: chat (plain and streamed), completions, embeddings, the
models list, and usage metered from what the replicas said."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx

from tests.integration.gateway.conftest import FakeBackplane, Gateway, route
from tests.integration.gateway.stubs import CONTENT, DIMENSIONS, PROMPT_TOKENS, StubReplica

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]


def test_chat_plain_is_forwarded_unchanged_and_its_usage_metered(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    stub = stubs("a")
    gw = gateway(route("chat-m", stub))
    answer = gw.client().chat.completions.create(model="chat-m", messages=MESSAGES, max_tokens=16, temperature=0.5)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "".join(CONTENT)
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == PROMPT_TOKENS
    assert stub.bodies == [{"model": "chat-m", "messages": MESSAGES, "max_tokens": 16, "temperature": 0.5}]
    backplane.wait_for(lambda b: b.tokens_used(1) == (1, PROMPT_TOKENS, len(CONTENT)), what="usage of alice")
    (record,) = backplane.usage
    assert (record.user, record.team, record.model, record.minute.second) == ("alice", "ml", "chat-m", 0)


def test_stream_arrives_chunk_by_chunk_and_the_added_usage_chunk_is_dropped(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    gate = threading.Event()
    stub = stubs("a", gate=gate)
    gw = gateway(route("chat-m", stub))
    stream = gw.client().chat.completions.create(model="chat-m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 2:  # the role chunk and the first content chunk
            assert not gate.is_set(), "the gate opens only here"
            gate.set()  # now the stub may produce its last content chunk
    assert stub.gate_open_at_last_chunk is True
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(CONTENT)
    # The gateway asked for usage for itself, and the client, which did not, got no usage chunk.
    assert stub.bodies[0]["stream_options"] == {"include_usage": True}
    assert all(c.choices and c.usage is None for c in chunks)
    backplane.wait_for(lambda b: b.tokens_used(1) == (1, PROMPT_TOKENS, len(CONTENT)), what="usage of the stream")


def test_stream_whose_client_asks_for_usage_keeps_the_usage_chunk(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    stub = stubs("a")
    gw = gateway(route("chat-m", stub))
    chunks = list(
        gw.client().chat.completions.create(
            model="chat-m",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(CONTENT)


def test_stream_without_upstream_usage_counts_content_chunks_and_estimates_the_prompt(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    stub = stubs("llama-like", usage_in_stream=False)
    gw = gateway(route("chat-m", stub))
    list(gw.client().chat.completions.create(model="chat-m", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    # "Be brief." + "Say hello." = 19 characters -> 5 tokens, + 3 per message (2) + 3 for the reply.
    backplane.wait_for(lambda b: b.tokens_used(1) == (1, 5 + 6 + 3, len(CONTENT)), what="estimated usage")


def test_completions_and_their_stream(stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]) -> None:
    stub = stubs("a")
    gw = gateway(route("base-m", stub))
    client = gw.client()
    answer = client.completions.create(model="base-m", prompt="The capital of France is", max_tokens=8)
    assert answer.choices[0].text == "".join(CONTENT)
    streamed = list(client.completions.create(model="base-m", prompt="Once", stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "".join(CONTENT)
    assert all(c.usage is None for c in streamed)


def test_embeddings_pass_the_sdks_base64_through(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway], backplane: FakeBackplane
) -> None:
    stub = stubs("e")
    gw = gateway(route("emb-m", stub))
    answer = gw.client().embeddings.create(model="emb-m", input=["hello world", "second"])
    assert [len(d.embedding) for d in answer.data] == [DIMENSIONS, DIMENSIONS]
    assert stub.bodies[0]["encoding_format"] == "base64"  # as the SDK sent it
    backplane.wait_for(lambda b: b.tokens_used(1) == (1, 6, 0), what="embedding usage")


def test_models_lists_only_what_the_caller_may_call(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    stub = stubs("a")
    gw = gateway(route("chat-m", stub), route("other", stub, first_job=200))
    assert sorted(m.id for m in gw.client().models.list()) == ["chat-m", "other"]
    listed = gw.client("tok-other-only").models.list()
    assert [(m.id, m.object, m.owned_by) for m in listed] == [("other", "model", "aidc")]
    assert gw.client().models.retrieve("other").id == "other"


def test_healthz_needs_no_token_and_metrics_need_scrape_rights(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    stub = stubs("a")
    gw = gateway(route("chat-m", stub))
    gw.client().chat.completions.create(model="chat-m", messages=MESSAGES)  # type: ignore[arg-type]
    with httpx.Client(base_url=gw.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer tok-other-only"}).status_code == 403
        text = http.get("/metrics", headers={"Authorization": "Bearer tok-admin"}).text
    assert 'aidc_gateway_requests_total{code="200",model="chat-m",replica="100"} 1.0' in text
    assert 'aidc_gateway_replica_ready{model="chat-m",replica="100"} 1.0' in text
    assert 'aidc_gateway_tokens_total{kind="prompt",model="chat-m"} 11.0' in text
    assert "aidc_gateway_request_duration_seconds_bucket" in text


def test_streams_tell_proxies_in_front_not_to_buffer(
    stubs: Callable[..., StubReplica], gateway: Callable[..., Gateway]
) -> None:
    gw = gateway(route("chat-m", stubs("a")))
    body = {"model": "chat-m", "messages": MESSAGES, "stream": True}
    with (
        httpx.Client(base_url=gw.url, headers={"Authorization": "Bearer tok-alice"}) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as answer,
    ):
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["x-accel-buffering"] == "no"
        assert answer.headers["cache-control"] == "no-cache"
        assert "content-length" not in answer.headers
        events = [line for line in answer.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert len(events) == 1 + len(CONTENT) + 1 + 1  # role, content, finish, [DONE]: no usage chunk
