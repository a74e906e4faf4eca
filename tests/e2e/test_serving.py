"""Serving as a user does it: `aidc submit` the example deployments on a real `aidc up`, then the official
openai SDK against its gateway. Real models (all-MiniLM-L6-v2 and SmolLM2-135M-Instruct, CPU runtimes
installed by scripts/install-serve-runtimes.sh); replicas are jobs the control plane starts, restarts and
routes to."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import psutil
import pytest
import yaml

from tests.e2e.server import AidcServer, wait_for
from tests.fixtures.runtimes import EXAMPLES, require_runtime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EMBED = "all-MiniLM-L6-v2"
CHAT = "SmolLM2-135M-Instruct"


def _spec_file(example: str, tmp: Path, **changes: Any) -> Path:
    """The example's job.yaml with its workdir made absolute (the copy lives elsewhere) and `changes`."""
    path = EXAMPLES / example / "job.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["workdir"] = str((path.parent / spec.get("workdir", ".")).resolve())
    for key, value in changes.items():
        spec[key] = value
    out = tmp / f"{example}.yaml"
    out.write_text(yaml.safe_dump(spec))
    return out


def _deployment(server: AidcServer, name: str) -> dict[str, Any]:
    result = server.cli("models", "show", name, "--json")
    assert result.code == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def _ready(server: AidcServer, name: str, count: int) -> dict[str, Any] | None:
    d = _deployment(server, name)
    return d if d["ready_replicas"] == count else None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AidcServer]:
    require_runtime("serve_embeddings")
    require_runtime("serve_chat")
    tmp = tmp_path_factory.mktemp("serving")
    server = AidcServer(tmp / "data").start()
    try:
        # Two embedding replicas and one chat replica share this 2-core machine: half a core each.
        small = {"gpus": 0, "cpus": 0.5, "memory": "1GB"}
        for example in ("serve_embeddings", "serve_chat"):
            result = server.cli("submit", str(_spec_file(example, tmp, resources=small)))
            assert result.code == 0, result.stderr
            assert "created" in result.stdout
        wait_for(lambda: _ready(server, "minilm", 2), timeout=180, every=1, what="two ready embedding replicas")
        wait_for(lambda: _ready(server, "smollm2", 1), timeout=120, every=1, what="a ready chat replica")
        yield server
    finally:
        server.stop()
        server.reap_jobs()


@pytest.fixture
def client(served: AidcServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.gateway_url}/v1", api_key=served.token, max_retries=0, timeout=60)


def test_models_list_names_the_served_models(client: openai.OpenAI) -> None:
    names = {m.id for m in client.models.list()}
    assert {EMBED, CHAT} <= names


def test_embeddings_through_the_gateway(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model=EMBED, input="The GPU is hot.")  # the SDK asks for base64
    assert len(one.data) == 1
    assert len(one.data[0].embedding) == 384
    norm = sum(x * x for x in one.data[0].embedding) ** 0.5
    assert abs(norm - 1.0) < 1e-3
    many = client.embeddings.create(model=EMBED, input=["a", "b", "c"], encoding_format="float")
    assert [len(d.embedding) for d in many.data] == [384, 384, 384]
    assert many.usage.prompt_tokens > 0


def test_chat_plain_and_streamed(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Count from one to twenty."}]
    plain = client.chat.completions.create(model=CHAT, messages=messages, max_tokens=16, temperature=0)
    assert plain.choices[0].message.content
    assert plain.usage is not None
    assert plain.usage.completion_tokens > 0

    arrivals: list[float] = []
    text = ""
    stream = client.chat.completions.create(model=CHAT, messages=messages, max_tokens=48, temperature=0, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
            text += chunk.choices[0].delta.content
    assert text
    # Streamed chunk by chunk: the first token reached the client well before the last was generated
    # (~75 tokens/s here, so 48 tokens take over half a second).
    assert len(arrivals) > 5
    assert arrivals[-1] - arrivals[0] > 0.2, "the stream arrived in one piece: something buffered it"


def test_completions(client: openai.OpenAI) -> None:
    done = client.completions.create(model=CHAT, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert done.choices[0].text


def test_errors_map_to_the_sdk_exceptions(served: AidcServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    bad = openai.OpenAI(base_url=f"{served.gateway_url}/v1", api_key="aidc_not_a_token", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=CHAT, messages="not a list")  # type: ignore[arg-type]


def test_usage_is_metered_per_model(served: AidcServer, client: openai.OpenAI) -> None:
    client.embeddings.create(model=EMBED, input="metered")

    def metered() -> list[dict[str, Any]] | None:
        result = served.cli("usage", "--by", "model", "--json")
        assert result.code == 0, result.stderr
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        models = {r["key"] for r in rows if r["total_tokens"] > 0}
        return rows if {EMBED, CHAT} <= models else None

    rows = wait_for(metered, timeout=30, what="usage of both models")
    assert all(r["requests"] > 0 for r in rows)


def _replica(server: AidcServer, job_id: int) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in _deployment(server, "minilm")["replica_list"] if r["job_id"] == job_id)
    return found


def _listener_pid(endpoint: str) -> int:
    port = int(endpoint.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    raise AssertionError(f"nothing listens on {endpoint}")


def test_a_replica_killed_under_load_costs_no_request(served: AidcServer, client: openai.OpenAI) -> None:
    """Two embedding replicas, four clients: kill one replica's server. No (non-streamed) request fails:
    the gateway retries on the other; the dead one is ejected, its job restarts it, and it is readmitted."""
    before = _deployment(served, "minilm")
    victim = before["replica_list"][0]
    failures: list[BaseException] = []
    done = 0
    stop = threading.Event()
    lock = threading.Lock()

    def load() -> None:
        nonlocal done
        while not stop.is_set():
            try:
                client.embeddings.create(model=EMBED, input="keep going")
                with lock:
                    done += 1
            except Exception as exc:  # every failure is a test failure; keep them for the message
                failures.append(exc)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: done >= 20, timeout=30, what="load to be flowing")
        os.kill(_listener_pid(victim["endpoint"]), signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(
            lambda: not _replica(served, victim["job_id"])["ready"],
            timeout=15,
            every=0.5,
            what="the dead replica to be ejected",
        )
        ejected_after = time.monotonic() - killed_at
        at_kill = done
        wait_for(lambda: _ready(served, "minilm", 2), timeout=120, every=1, what="the restarted replica")
        wait_for(lambda: done >= at_kill + 20, timeout=30, what="load after readmission")
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    assert not failures, f"{len(failures)} requests failed, first: {failures[0]!r}"
    assert ejected_after < 10
    after = _replica(served, victim["job_id"])
    assert after["endpoint"] != victim["endpoint"]  # the same replica job, a new attempt on a new port
