"""What the gateway reads from a request before forwarding it: the checked body and the prefix key."""

from __future__ import annotations

import json

import pytest

from aidc.gateway.app import _parse
from aidc.gateway.proxy import PREFIX_CHARS, prefix_key
from aidc.gateway.responses import GatewayError, error_body


def _conversation(*turns: str, system: str = "You are terse.") -> dict[str, object]:
    messages: list[dict[str, str]] = [{"role": "system", "content": system}]
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return {"model": "m", "messages": messages}


def test_later_turns_of_a_conversation_share_its_prefix_key() -> None:
    first = prefix_key("chat", _conversation("Tell me about cats."))
    later = prefix_key("chat", _conversation("Tell me about cats.", "Cats purr.", "And dogs?"))
    assert first == later == "system:You are terse.\nuser:Tell me about cats.\n"
    assert prefix_key("chat", _conversation("Tell me about dogs.")) != first


def test_the_prefix_key_is_bounded_and_reads_content_parts_and_prompts() -> None:
    long = prefix_key("chat", _conversation("x", system="y" * 5000))
    assert len(long) == PREFIX_CHARS
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}]}
    assert prefix_key("chat", parts) == "user:hi\n"
    assert prefix_key("completions", {"prompt": "z" * 2000}) == "z" * PREFIX_CHARS
    assert prefix_key("completions", {"prompt": ["first", "second"]}) == "first"
    assert prefix_key("embeddings", {"input": [1, 2, 3]}) == "[1, 2, 3]"


def test_a_good_body_parses_and_says_whether_it_streams() -> None:
    assert _parse("chat", b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}')[1] is True
    assert _parse("completions", b'{"model":"m","prompt":"x"}')[1] is False
    assert _parse("embeddings", b'{"model":"m","input":"x","stream":true}')[1] is False  # no such thing


@pytest.mark.parametrize(
    ("kind", "body", "param"),
    [
        ("chat", b"[1]", None),
        ("chat", b"\xff", None),
        ("chat", b'{"messages":[]}', "model"),
        ("chat", b'{"model":7,"messages":[]}', "model"),
        ("chat", b'{"model":"m"}', "messages"),
        ("chat", b'{"model":"m","messages":[]}', "messages"),
        ("chat", b'{"model":"m","messages":"hi"}', "messages"),
        ("completions", b'{"model":"m"}', "prompt"),
        ("embeddings", b'{"model":"m","input":null}', "input"),
        ("chat", b'{"model":"m","messages":[{}],"stream":1}', "stream"),
        ("chat", b'{"model":"m","messages":[{}],"stream_options":true}', "stream_options"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(kind: str, body: bytes, param: str | None) -> None:
    with pytest.raises(GatewayError) as caught:
        _parse(kind, body)  # type: ignore[arg-type]
    assert (caught.value.status, caught.value.param) == (400, param)


def test_errors_have_openais_shape() -> None:
    body = json.loads(error_body(429, "slow down", code="rate_limit_exceeded"))
    assert body == {
        "error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}
    }
