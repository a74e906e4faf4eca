"""Token metering: usage from JSON bodies and SSE streams (however the bytes are cut), the dropped
usage-only chunk, estimates where an upstream sends no usage, and the per-minute ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from aidc.gateway.metering import (
    StreamMeter,
    Usage,
    UsageLedger,
    estimate_prompt_tokens,
    usage_from_body,
    usage_of_response,
    with_usage_requested,
)


def _event(data: dict[str, Any] | str, sep: str = "\n\n") -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}{sep}".encode()


def _chunk(content: str | None, *, usage: dict[str, int] | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    chunk: dict[str, Any] = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    if usage is not None:
        chunk["usage"] = usage
    return chunk


USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
USAGE_ONLY = {"object": "chat.completion.chunk", "choices": [], "usage": USAGE}


def _stream(*, with_usage: bool, sep: str = "\n\n") -> bytes:
    events = [_chunk(""), _chunk("Hel"), _chunk("lo"), _chunk("!"), _chunk(None)]
    if with_usage:
        events.append(USAGE_ONLY)
    return b"".join(_event(e, sep) for e in events) + _event("[DONE]", sep)


def _relay(meter: StreamMeter, data: bytes, cuts: list[int]) -> bytes:
    out, start = [], 0
    for cut in [*cuts, len(data)]:
        out.append(meter.feed(data[start:cut]))
        start = cut
    out.append(meter.flush())
    return b"".join(out)


# ------------------------------------------------------------------------------------------- JSON bodies


def test_usage_from_a_json_body() -> None:
    body = json.dumps({"choices": [{"message": {"content": "hi"}}], "usage": USAGE}).encode()
    assert usage_from_body(body) == Usage(9, 3)


def test_usage_with_nested_details_and_embeddings_without_completion_tokens() -> None:
    nested = {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 1}}
    assert usage_from_body(json.dumps({"usage": nested}).encode()) == Usage(5, 2)
    assert usage_from_body(b'{"data": [], "usage": {"prompt_tokens": 7, "total_tokens": 7}}') == Usage(7, 0)


def test_text_that_mentions_usage_is_not_taken_for_it() -> None:
    tricky = {"choices": [{"message": {"content": 'the "usage": {"prompt_tokens": 999} key'}}], "usage": USAGE}
    assert usage_from_body(json.dumps(tricky).encode()) == Usage(9, 3)
    value_named_usage = {"usage": USAGE, "choices": [{"message": {"content": "usage"}}]}
    assert usage_from_body(json.dumps(value_named_usage).encode()) == Usage(9, 3)
    assert usage_from_body(b'{"choices": [], "usage": null}') is None
    assert usage_from_body(b"not json at all") is None


def test_a_large_body_is_read_for_its_usage() -> None:
    body = json.dumps({"data": [{"embedding": [0.125] * 200_000}], "usage": {"prompt_tokens": 3}}).encode()
    assert len(body) > 1_000_000
    assert usage_from_body(body) == Usage(3, 0)


def test_a_response_without_usage_is_estimated() -> None:
    payload = {"messages": [{"role": "user", "content": "x" * 40}]}
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "y" * 21}}]}).encode()
    assert usage_of_response("chat", payload, body) == Usage(10 + 3 + 3, 6, estimated=True)


def test_prompt_estimates() -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "abcd" * 3},
            {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url"}]},
        ]
    }
    assert estimate_prompt_tokens("chat", chat) == 4 + 2 * 3 + 3
    assert estimate_prompt_tokens("completions", {"prompt": "abcdefghi"}) == 3
    assert estimate_prompt_tokens("completions", {"prompt": [1, 2, 3, 4, 5]}) == 5  # token ids: exact
    assert estimate_prompt_tokens("embeddings", {"input": ["abcd", "efgh"]}) == 2
    assert estimate_prompt_tokens("embeddings", {"input": [[1, 2], [3]]}) == 3


# ----------------------------------------------------------------------------------------------- streams


@pytest.mark.parametrize("sep", ["\n\n", "\r\n\r\n"])
def test_the_usage_chunk_the_gateway_asked_for_is_read_and_dropped(sep: str) -> None:
    data = _stream(with_usage=True, sep=sep)
    meter = StreamMeter(drop_usage_chunk=True)
    out = _relay(meter, data, [])
    assert out == _stream(with_usage=False, sep=sep)
    assert meter.usage == Usage(9, 3)
    assert meter.result("chat", {}) == Usage(9, 3)


def test_the_usage_chunk_the_client_asked_for_is_passed_on() -> None:
    data = _stream(with_usage=True)
    meter = StreamMeter(drop_usage_chunk=False)
    assert _relay(meter, data, []) == data
    assert meter.usage == Usage(9, 3)


def test_events_cut_anywhere_come_out_whole_and_in_order() -> None:
    data = _stream(with_usage=True, sep="\r\n\r\n")
    expected = _stream(with_usage=False, sep="\r\n\r\n")
    for cut in range(1, len(data)):
        meter = StreamMeter(drop_usage_chunk=True)
        assert _relay(meter, data, [cut]) == expected, cut
        assert meter.usage == Usage(9, 3)
    meter = StreamMeter(drop_usage_chunk=True)
    assert _relay(meter, data, list(range(1, len(data)))) == expected  # a byte at a time


def test_a_complete_event_is_forwarded_at_once() -> None:
    meter = StreamMeter(drop_usage_chunk=True)
    first = _event(_chunk("Hel"))
    assert meter.feed(first) == first
    assert meter.feed(first[:10]) == b""  # half an event waits for its end
    assert meter.feed(first[10:]) == first


def test_a_stream_without_usage_counts_content_chunks_and_estimates_the_prompt() -> None:
    meter = StreamMeter(drop_usage_chunk=True)
    data = _stream(with_usage=False)
    assert _relay(meter, data, [7, 50]) == data
    assert meter.usage is None
    assert meter.content_chunks == 3  # "Hel", "lo", "!": not the empty role chunk, not the final one
    payload = {"messages": [{"role": "user", "content": "abcdefgh"}]}
    assert meter.result("chat", payload) == Usage(2 + 3 + 3, 3, estimated=True)


def test_completions_chunks_count_their_text_and_several_choices_each_count() -> None:
    meter = StreamMeter(drop_usage_chunk=False)
    two = {"choices": [{"index": 0, "text": "a"}, {"index": 1, "text": "b"}]}
    data = _event({"choices": [{"index": 0, "text": "x"}]}) + _event(two) + _event("[DONE]")
    assert _relay(meter, data, []) == data
    assert meter.content_chunks == 3


def test_comments_events_without_data_and_non_json_data_pass_through() -> None:
    meter = StreamMeter(drop_usage_chunk=True)
    data = b': keep-alive\n\nevent: ping\ndata: not json\n\ndata: {"a":\ndata: 1}\n\n'
    assert _relay(meter, data, [3]) == data
    assert meter.events == 3


def test_an_unterminated_last_event_is_flushed() -> None:
    meter = StreamMeter(drop_usage_chunk=True)
    assert meter.feed(b"data: [DONE]") == b""
    assert meter.flush() == b"data: [DONE]"


# ------------------------------------------------------------------------------------ asking for usage


def test_usage_is_asked_for_by_appending_a_member_and_nothing_else_changes() -> None:
    body = b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}\n'
    changed = with_usage_requested(body, json.loads(body))
    assert changed == body.rstrip()[:-1] + b',"stream_options":{"include_usage":true}}'
    assert json.loads(changed or b"")["stream_options"] == {"include_usage": True}


def test_options_the_client_gave_are_kept_and_a_client_asking_itself_is_left_alone() -> None:
    body = b'{"model":"m","stream":true,"stream_options":{"include_obfuscation":false}}'
    changed = with_usage_requested(body, json.loads(body))
    assert json.loads(changed or b"")["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    refused = b'{"model":"m","stream":true,"stream_options":{"include_usage":false}}'
    assert json.loads(with_usage_requested(refused, json.loads(refused)) or b"")["stream_options"] == {
        "include_usage": True
    }
    asked = b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}'
    assert with_usage_requested(asked, json.loads(asked)) is None


# ------------------------------------------------------------------------------------------------ ledger


def test_the_ledger_sums_per_minute_key_team_and_model_and_drains() -> None:
    ledger = UsageLedger()
    minute = datetime(2026, 11, 24, 10, 5, tzinfo=UTC).timestamp()
    ledger.add(minute + 1, 1, "alice", "ml", "m", Usage(10, 2))
    ledger.add(minute + 59, 1, "alice", "ml", "m", Usage(5, 1))
    ledger.add(minute + 61, 1, "alice", "ml", "m", Usage(1, 1))
    ledger.add(minute + 2, 2, "bob", "ml", "m", Usage(3, 3))
    records = {(r.minute.minute, r.token_id): r for r in ledger.drain()}
    assert len(ledger) == 0
    first = records[5, 1]
    assert (first.requests, first.prompt_tokens, first.completion_tokens) == (2, 15, 3)
    assert first.minute == datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
    assert (first.user, first.team, first.model) == ("alice", "ml", "m")
    assert (records[6, 1].requests, records[5, 2].prompt_tokens) == (1, 3)
    assert ledger.drain() == []


def test_records_put_back_after_a_failed_write_go_with_the_next_drain() -> None:
    ledger = UsageLedger()
    ledger.add(120.0, None, "svc", None, "m", Usage(4, 4))
    failed = ledger.drain()
    ledger.add(150.0, None, "svc", None, "m", Usage(1, 1))
    ledger.restore(failed)
    (record,) = ledger.drain()
    assert (record.requests, record.prompt_tokens, record.completion_tokens) == (2, 5, 5)
