"""The two real model runtimes of the examples, each started as one replica exactly as its job.yaml says,
driven directly (no gateway) with the official openai SDK: all-MiniLM-L6-v2 (examples/serve_embeddings)
and SmolLM2-135M-Instruct on llama-cpp-python (examples/serve_chat). Skipped without the runtimes
(scripts/install-serve-runtimes.sh), failed instead when CI is set."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest

from tests.fixtures.runtimes import Replica

# Every test here needs a real model process (seconds to start, and to answer on a CPU).
pytestmark = pytest.mark.slow

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
CHAT_MODEL = "SmolLM2-135M-Instruct"
DIMENSIONS = 384
MAX_TOKENS = 16


def _client(replica: Replica) -> openai.OpenAI:
    # No SDK retries: a failure must show as it is. Generous timeout: a loaded CI machine is slow.
    return openai.OpenAI(base_url=replica.api_url, api_key="unused", max_retries=0, timeout=120.0)


@pytest.fixture(scope="module")
def embeddings(embeddings_replica: Replica) -> Iterator[openai.OpenAI]:
    with _client(embeddings_replica) as client:
        yield client


@pytest.fixture(scope="module")
def chat(chat_replica: Replica) -> Iterator[openai.OpenAI]:
    with _client(chat_replica) as client:
        yield client


def _unit_vector(vector: list[float]) -> None:
    assert len(vector) == DIMENSIONS
    assert all(isinstance(x, float) and math.isfinite(x) for x in vector)
    assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-4)


# ---- embeddings: all-MiniLM-L6-v2 ------------------------------------------------------------------------


def test_embeddings_replica_answers_503_until_its_model_is_loaded(embeddings_replica: Replica) -> None:
    # It listens at once and loads in the background: its readiness probe saw 503, then 200, never an error.
    assert embeddings_replica.readiness_answers == [503, 200]


def test_embeddings_models_list_names_the_served_model(embeddings: openai.OpenAI) -> None:
    assert [m.id for m in embeddings.models.list()] == [EMBEDDING_MODEL]
    assert embeddings.models.retrieve(EMBEDDING_MODEL).id == EMBEDDING_MODEL


@pytest.mark.parametrize("encoding_format", [None, "float"], ids=["sdk-default-base64", "float"])
def test_embedding_of_one_string(embeddings: openai.OpenAI, encoding_format: str | None) -> None:
    kwargs = {} if encoding_format is None else {"encoding_format": encoding_format}
    answer = embeddings.embeddings.create(model=EMBEDDING_MODEL, input="hello world", **kwargs)  # type: ignore[arg-type]
    assert answer.model == EMBEDDING_MODEL
    assert len(answer.data) == 1
    assert answer.data[0].index == 0
    _unit_vector(answer.data[0].embedding)
    # [CLS] hello world [SEP]: the tokens the model saw.
    assert answer.usage.prompt_tokens == 4
    assert answer.usage.total_tokens == 4


@pytest.mark.parametrize("encoding_format", [None, "float"], ids=["sdk-default-base64", "float"])
def test_embeddings_of_a_list(embeddings: openai.OpenAI, encoding_format: str | None) -> None:
    texts = ["hello world", "second", "A cat sits on the mat."]
    kwargs = {} if encoding_format is None else {"encoding_format": encoding_format}
    answer = embeddings.embeddings.create(model=EMBEDDING_MODEL, input=texts, **kwargs)  # type: ignore[arg-type]
    assert [d.index for d in answer.data] == [0, 1, 2]
    for item in answer.data:
        _unit_vector(item.embedding)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 7
    # Each input's vector is the one it gets on its own.
    alone = embeddings.embeddings.create(model=EMBEDDING_MODEL, input=texts[1], encoding_format="float")
    assert np.allclose(answer.data[1].embedding, alone.data[0].embedding, atol=1e-5)


def test_base64_is_little_endian_float32_of_the_float_answer(embeddings: openai.OpenAI) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    raw = embeddings.embeddings.create(model=EMBEDDING_MODEL, input=text, encoding_format="base64")
    encoded = raw.data[0].embedding
    assert isinstance(encoded, str)  # asked for explicitly, the SDK leaves it as the server sent it
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    floats = embeddings.embeddings.create(model=EMBEDDING_MODEL, input=text, encoding_format="float")
    assert decoded.shape == (DIMENSIONS,)
    assert np.allclose(decoded, floats.data[0].embedding, atol=1e-6)


def test_similar_sentences_are_closer_than_unrelated_ones(embeddings: openai.OpenAI) -> None:
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    answer = embeddings.embeddings.create(model=EMBEDDING_MODEL, input=texts, encoding_format="float")
    a, b, c = (np.array(d.embedding) for d in answer.data)
    assert float(a @ b) > 0.6
    assert float(a @ b) > float(a @ c) + 0.3


def test_concurrent_embedding_requests_all_succeed(embeddings_replica: Replica) -> None:
    # Encodes run one at a time inside a replica; concurrent callers queue rather than fail.
    def one(i: int) -> int:
        with _client(embeddings_replica) as client:
            answer = client.embeddings.create(model=EMBEDDING_MODEL, input=[f"sentence number {i}"] * 4)
            return len(answer.data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(one, range(16))) == [4] * 16


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["fine", ""]}, "input"),
        ({"input": [101, 7592, 102]}, "input"),  # token ids: not for this tokenizer
        ({"input": "hello", "dimensions": 128}, "dimensions"),
        ({"input": "hello", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "word " * 300}, "input"),  # beyond the model's 256-token window
    ],
    ids=["empty-string", "empty-list", "empty-item", "token-ids", "dimensions", "encoding-format", "too-long"],
)
def test_bad_embedding_requests_are_openai_400s(embeddings: openai.OpenAI, body: dict[str, object], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        embeddings.embeddings.create(model=EMBEDDING_MODEL, **body)  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    error = caught.value.body
    assert isinstance(error, dict)  # the SDK unwraps {"error": {...}}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_unknown_model_is_404(embeddings: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        embeddings.embeddings.create(model="text-embedding-3-small", input="hello")


def test_invalid_json_is_an_openai_400(embeddings_replica: Replica) -> None:
    response = httpx.post(
        f"{embeddings_replica.api_url}/embeddings",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


# ---- chat: SmolLM2-135M-Instruct on llama-cpp-python -----------------------------------------------------


def test_chat_models_list_names_the_served_model(chat: openai.OpenAI) -> None:
    assert CHAT_MODEL in [m.id for m in chat.models.list()]


def test_chat_plain(chat: openai.OpenAI) -> None:
    answer = chat.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        max_tokens=MAX_TOKENS,
        temperature=0,
    )
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 0
    assert 0 < answer.usage.completion_tokens <= MAX_TOKENS
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_chat_streamed(chat: openai.OpenAI) -> None:
    stream = chat.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Count from one to twenty in words."}],
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
    )
    pieces: list[str] = []
    finish: list[str] = []
    with stream:
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                if choice.finish_reason:
                    finish.append(choice.finish_reason)
    # One chunk per token: a real stream, not one buffered answer.
    assert len(pieces) > 1
    assert "".join(pieces).strip()
    assert finish in (["stop"], ["length"])


def test_completions(chat: openai.OpenAI) -> None:
    answer = chat.completions.create(
        model=CHAT_MODEL, prompt="The capital of France is", max_tokens=MAX_TOKENS, temperature=0
    )
    assert answer.choices[0].text.strip()
    assert answer.usage is not None
    assert 0 < answer.usage.completion_tokens <= MAX_TOKENS


def test_bad_chat_request_is_an_openai_400(chat: openai.OpenAI) -> None:
    # A prompt far beyond the model's context window (n_ctx 2048 tokens).
    with pytest.raises(openai.BadRequestError) as caught:
        chat.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "word " * 5000}], max_tokens=MAX_TOKENS
        )
    assert caught.value.status_code == 400
    assert caught.value.code == "context_length_exceeded"


def test_llama_cpp_answers_a_malformed_request_with_500(chat_replica: Replica) -> None:
    # What the gateway has to expect from this upstream (llama-cpp-python 0.3.36): a request that fails its
    # schema is a 500 (its message holds a traceback excerpt), not a 400 or 422. Retrying it elsewhere is futile.
    response = httpx.post(
        f"{chat_replica.api_url}/chat/completions", json={"model": CHAT_MODEL, "messages": "not a list"}, timeout=60
    )
    assert response.status_code == 500
    assert "valid list" in response.json()["error"]["message"]
