"""Token metering: usage read from upstream responses (JSON bodies and SSE streams), estimates where an
upstream sends none, and the per-minute sums the gateway writes to the control plane. Pure.

Streams: the gateway asks for `stream_options: {"include_usage": true}` when the client did not, and
then drops the usage-only final chunk (`"choices": []` with `usage`) from what the client sees, so
the client gets exactly the stream it asked for. Some runtimes (llama-cpp-python's server) ignore the
option and send no usage at all; then:

- completion tokens = the chunks carrying content (one token per chunk, as such servers send them; for
  n > 1 each choice's chunk counts);
- prompt tokens are ESTIMATED from the request: ceil(characters / 4) of the text (OpenAI's rule of thumb
  for English), plus 3 tokens per chat message and 3 for the reply's priming (the chat-template overhead
  OpenAI documents for its models); a prompt given as token ids counts exactly.

A non-streamed response without `usage` is estimated the same way (completion: characters / 4 of the
returned text).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aidc.domain.serving import UsageRecord

Kind = Literal["chat", "completions", "embeddings"]

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3

_USAGE_KEY = b'"usage"'
# (text, index) -> (value, end), StopIteration when no JSON value starts there (the C scanner; untyped)
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # counted by the gateway, not reported by the upstream

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def parse_usage(value: Any) -> Usage | None:
    """Usage from an OpenAI `usage` object; None when it is not one."""
    if type(value) is dict:  # as JSON gives it: the usual case first, checked quickly (the same rules)
        prompt = value.get("prompt_tokens")
        completion = value.get("completion_tokens") or 0
        if type(prompt) is int and prompt >= 0 and type(completion) is int and completion >= 0:
            return Usage(prompt, completion)
    if not isinstance(value, Mapping):
        return None
    prompt = _count(value.get("prompt_tokens"))
    completion = _count(value.get("completion_tokens") or 0)
    if prompt is None or completion is None:
        return None
    return Usage(prompt, completion)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_from_body(body: bytes) -> Usage | None:
    """The `usage` of a JSON response body, without parsing the whole body (an embeddings response may be
    megabytes of floats): the last `"usage"` key followed by an object, decoded alone. Inside JSON strings
    a quote is escaped, so the key cannot be confused with text the model wrote."""
    end = len(body)
    while True:
        i = body.rfind(_USAGE_KEY, 0, end)
        if i < 0:
            return None
        j = i + len(_USAGE_KEY)
        while j < len(body) and body[j] in b" \t\r\n":
            j += 1
        if j < len(body) and body[j] == ord(":"):
            j += 1
            while j < len(body) and body[j] in b" \t\r\n":
                j += 1
            if j < len(body) and body[j] == ord("{"):
                usage = parse_usage(_object_at(body, j))
                if usage is not None:
                    return usage
        end = i


def _object_at(body: bytes, start: int) -> Any:
    """The JSON object that starts at body[start] (a usage object is small: look at 2 KiB first)."""
    for window in (2048, len(body) - start):
        try:
            value, _ = _SCAN(body[start : start + window].decode("utf-8", "replace"), 0)
        except (ValueError, StopIteration):
            continue
        return value
    return None


def _chars(value: Any) -> int:
    """Characters of text in a message content, a prompt or an input (strings, lists of strings, lists of
    content parts with `text`)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, str):
                total += len(item)
            elif isinstance(item, Mapping):
                total += _chars(item.get("text"))
        return total
    return 0


def _tokens_of_ids(value: Any) -> int | None:
    """A prompt given as token ids (a list of ints, or a list of such lists) counts exactly."""
    if isinstance(value, list) and value:
        if all(isinstance(x, int) for x in value):
            return len(value)
        if all(isinstance(x, list) and all(isinstance(y, int) for y in x) for x in value):
            return sum(len(x) for x in value)
    return None


def estimate_text_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_prompt_tokens(kind: Kind, payload: Mapping[str, Any]) -> int:
    """The prompt tokens of a request, estimated (see the module's docstring)."""
    if kind == "chat":
        messages = payload.get("messages")
        if not isinstance(messages, list):
            return 0
        chars = sum(_chars(m.get("content")) for m in messages if isinstance(m, Mapping))
        return estimate_text_tokens(chars) + TOKENS_PER_MESSAGE * len(messages) + REPLY_PRIMING
    value = payload.get("prompt" if kind == "completions" else "input")
    exact = _tokens_of_ids(value)
    return exact if exact is not None else estimate_text_tokens(_chars(value))


def estimate_completion_tokens(response: Any) -> int:
    """Completion tokens of a parsed non-streamed response without usage: characters / 4 of its text."""
    if not isinstance(response, Mapping):
        return 0
    choices = response.get("choices")
    if not isinstance(choices, list):
        return 0
    chars = 0
    for choice in choices:
        if not isinstance(choice, Mapping):
            continue
        message = choice.get("message")
        if isinstance(message, Mapping):
            chars += _chars(message.get("content"))
        chars += _chars(choice.get("text"))
    return estimate_text_tokens(chars)


def usage_of_response(kind: Kind, payload: Mapping[str, Any], body: bytes) -> Usage:
    """Usage of a non-streamed response: the upstream's, else the estimate."""
    usage = usage_from_body(body)
    if usage is not None:
        return usage
    completion = 0
    if kind != "embeddings":
        try:
            completion = estimate_completion_tokens(json.loads(body))
        except ValueError:
            completion = 0
    return Usage(estimate_prompt_tokens(kind, payload), completion, estimated=True)


# ----------------------------------------------------------------------------------------------- streams


def _carries_content(choice: Any) -> bool:
    if not isinstance(choice, Mapping):
        return False
    if choice.get("text"):
        return True
    delta = choice.get("delta")
    return isinstance(delta, Mapping) and bool(
        delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls")
    )


class StreamMeter:
    """Reads an upstream SSE stream as it passes: splits it into events (however the bytes were cut),
    returns the events to forward, reads `usage` and counts content chunks. With `drop_usage_chunk`, the
    usage-only chunk (`"choices": []` with `usage`) is read but not forwarded."""

    __slots__ = ("_buffer", "content_chunks", "drop_usage_chunk", "events", "usage")

    def __init__(self, *, drop_usage_chunk: bool) -> None:
        self.drop_usage_chunk = drop_usage_chunk
        self.usage: Usage | None = None
        self.content_chunks = 0
        self.events = 0
        self._buffer = b""

    def feed(self, data: bytes) -> bytes:
        """The bytes of complete events to forward now (possibly b""); an incomplete one waits."""
        buffer = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        start = 0
        while True:
            end, size = _event_end(buffer, start)
            if end < 0:
                break
            event = buffer[start : end + size]
            if self._read(buffer[start:end]):
                out.append(event)
            start = end + size
        self._buffer = buffer[start:]
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)

    def flush(self) -> bytes:
        """What is left at the end of the stream (an event without its blank line)."""
        rest, self._buffer = self._buffer, b""
        if rest.strip() and not self._read(rest):
            return b""
        return rest

    def _read(self, event: bytes) -> bool:
        """Read one event (without its blank line); False to drop it."""
        self.events += 1
        data = _data_of(event)
        if data is None or data.startswith(b"[DONE]"):
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            return True
        if not isinstance(chunk, Mapping):
            return True
        choices = chunk.get("choices")
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        if isinstance(choices, list):
            if usage is not None and not choices:
                return not self.drop_usage_chunk
            for choice in choices:
                if _carries_content(choice):
                    self.content_chunks += 1
        return True

    def result(self, kind: Kind, payload: Mapping[str, Any]) -> Usage:
        """The stream's usage: the upstream's, else counted chunks and the estimated prompt."""
        if self.usage is not None:
            return self.usage
        return Usage(estimate_prompt_tokens(kind, payload), self.content_chunks, estimated=True)


def _event_end(buffer: bytes, start: int) -> tuple[int, int]:
    """(index, length) of the first blank-line separator at or after `start`, or (-1, 0)."""
    lf = buffer.find(b"\n\n", start)
    crlf = buffer.find(b"\r\n\r\n", start)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    if lf >= 0:
        return lf, 2
    return -1, 0


def _data_of(event: bytes) -> bytes | None:
    """The data of an SSE event: its `data:` lines (one leading space removed), joined by newlines."""
    if event.startswith(b"data:") and b"\n" not in event:
        data = event[5:]
        return data[1:] if data.startswith(b" ") else data
    lines = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(lines) if lines else None


def with_usage_requested(body: bytes, payload: Mapping[str, Any]) -> bytes | None:
    """The body of a streamed request with `stream_options.include_usage` set, or None when the client
    asked for it itself (then its stream keeps the usage chunk). The body is changed by appending one
    member when it has no stream_options (bytes otherwise unchanged), else re-serialized."""
    options = payload.get("stream_options")
    if options is None:
        trimmed = body.rstrip()
        if trimmed.endswith(b"}") and payload:
            return trimmed[:-1] + b',"stream_options":{"include_usage":true}}'
        options = {}
    if isinstance(options, Mapping) and options.get("include_usage") is True:
        return None
    changed = dict(payload)
    changed["stream_options"] = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
    return json.dumps(changed, ensure_ascii=False, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------------------------ ledger

UsageKey = tuple[int, int | None, str, str | None, str]  # minute (epoch // 60), token id, user, team, model


class UsageLedger:
    """Usage summed per (minute, token id, user, team, model) until drained."""

    def __init__(self) -> None:
        self._sums: dict[UsageKey, list[int]] = {}

    def add(
        self, at: float, token_id: int | None, user: str, team: str | None, model: str, usage: Usage, requests: int = 1
    ) -> None:
        """`at`: wall-clock seconds since the epoch of the request's end."""
        key = (int(at // 60), token_id, user, team, model)
        sums = self._sums.get(key)
        if sums is None:
            self._sums[key] = [requests, usage.prompt_tokens, usage.completion_tokens]
        else:
            sums[0] += requests
            sums[1] += usage.prompt_tokens
            sums[2] += usage.completion_tokens

    def __len__(self) -> int:
        return len(self._sums)

    def drain(self) -> list[UsageRecord]:
        """Everything summed so far, as records; the ledger starts again empty."""
        sums, self._sums = self._sums, {}
        return [
            UsageRecord(
                minute=datetime.fromtimestamp(minute * 60, UTC),
                token_id=token_id,
                user=user,
                team=team,
                model=model,
                requests=n,
                prompt_tokens=prompt,
                completion_tokens=completion,
            )
            for (minute, token_id, user, team, model), (n, prompt, completion) in sums.items()
        ]

    def restore(self, records: Iterable[UsageRecord]) -> None:
        """Put drained records back (their write failed), to go with the next drain."""
        for r in records:
            self.add(
                r.minute.timestamp(),
                r.token_id,
                r.user,
                r.team,
                r.model,
                Usage(r.prompt_tokens, r.completion_tokens),
                requests=r.requests,
            )
