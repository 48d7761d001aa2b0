"""Every knowledge base as a model: the Ollama and OpenAI chat APIs over `rag/<collection>`.

`/api/tags` and `/v1/models` list each collection as the model ``rag/<collection>``. `/api/chat`,
`/api/generate` and `/v1/chat/completions` with such a model retrieve from that collection and
answer with the configured chat model on the configured Ollama, in the same wire format as Ollama:
NDJSON lines for the native API (streamed by default), ``data:`` events ending in ``data: [DONE]``
for `/v1` (when ``"stream": true``). The answer carries ``[n]`` markers and ends with a sources
footer; the final chunk (or the whole reply) also has a ``citations`` field.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ingest.errors import RagError
from rag.aio import AsyncAnswerStream
from rag.serve.errors import error_status
from rag.serve.state import MODEL_PREFIX, ServeState
from rag.types import Answer, Citation, location

NDJSON = "application/x-ndjson"
DISTRIBUTION = "folder-rag"  # the name pyproject.toml installs `rag` under
ROLES = ("user", "assistant")


def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.rag
    return state


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def sources_footer(citations: list[Citation]) -> str:
    """The text appended to an answer: its cited sources, one per line."""
    if not citations:
        return ""
    lines = []
    for c in citations:
        lines.append(f"[{c.n}] {location(c.source, c.page, c.heading)}")
    return "\n\nSources:\n" + "\n".join(lines)


def citation_dicts(answer: Answer) -> list[dict[str, Any]]:
    return [c.to_dict() for c in answer.citations]


class ModelError(Exception):
    """A model request that cannot be served: HTTP status and the message in the dialect's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ModelError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ModelError(400, "the request body must be a JSON object")
    return body


def _collection(state: ServeState, body: dict[str, Any]) -> tuple[str, str]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ModelError(400, "model is required")
    collection = state.collection_of_model(model)
    if collection is None:
        listed = ", ".join(MODEL_PREFIX + c for c in state.collections()) or "none yet: run `rag index PATH`"
        raise ModelError(404, f"model '{model}' not found — this server answers as {listed}")
    return model, collection


def _question_and_history(messages: Any) -> tuple[str, list[dict[str, str]]]:
    """The last user message is the question; earlier user/assistant turns are the history."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ModelError(400, "messages must be a list of {role, content} objects")
    turns = [{"role": m["role"], "content": _text(m.get("content"))} for m in messages if m.get("role") in ROLES]
    if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise ModelError(400, "the last message must be a user message with the question")
    return turns[-1]["content"], turns[:-1]


def _text(content: Any) -> str:
    """Message content as text; OpenAI clients may send a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _start(request_state: ServeState, collection: str, question: str,
           history: list[dict[str, str]]) -> AsyncAnswerStream:
    return request_state.kb(collection).ask(question, stream=True, history=history)


async def _pieces(stream: AsyncAnswerStream) -> AsyncIterator[str]:
    """The answer's pieces, then its sources footer."""
    try:
        async for piece in stream:
            yield piece
        footer = sources_footer(stream.answer.citations)
        if footer:
            yield footer
    finally:
        await stream.aclose()


# -- the Ollama dialect ----------------------------------------------------------------------------


def _ollama_error(err: ModelError | RagError) -> JSONResponse:
    status = err.status if isinstance(err, ModelError) else error_status(err)
    return JSONResponse({"error": str(err)}, status_code=status)


def _model_entry(collection: str, state: ServeState) -> dict[str, Any]:
    file = state.state_file(collection).stat()
    modified = datetime.fromtimestamp(file.st_mtime, timezone.utc).isoformat().replace("+00:00", "Z")
    name = MODEL_PREFIX + collection
    return {
        "name": name,
        "model": name,
        "modified_at": modified,
        "size": file.st_size,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {"parent_model": "", "format": "rag", "family": "rag", "families": ["rag"],
                    "parameter_size": "", "quantization_level": ""},
    }


async def tags(request: Request) -> Response:
    """GET /api/tags: each collection as a model."""
    state = _state(request)
    return JSONResponse({"models": [_model_entry(c, state) for c in state.collections()]})


async def version(request: Request) -> Response:
    """GET /api/version: rag's own version (clients such as Open WebUI show it)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return JSONResponse({"version": package_version(DISTRIBUTION)})
    except PackageNotFoundError:  # run from a source tree that is not installed
        return JSONResponse({"version": "0.0.0"})


async def ps(request: Request) -> Response:
    return JSONResponse({"models": []})


async def show(request: Request) -> Response:
    """POST /api/show: enough for clients that look a model up before chatting with it."""
    state = _state(request)
    try:
        _, collection = _collection(state, await _body(request))
    except ModelError as err:
        return _ollama_error(err)
    entry = _model_entry(collection, state)
    return JSONResponse({"modelfile": "", "parameters": "", "template": "", "details": entry["details"],
                         "model_info": {}, "capabilities": ["completion"], "modified_at": entry["modified_at"]})


async def chat(request: Request) -> Response:
    """POST /api/chat with model rag/<collection>."""
    return await _ollama_reply(request, chat=True)


async def generate(request: Request) -> Response:
    """POST /api/generate with model rag/<collection>."""
    return await _ollama_reply(request, chat=False)


async def _ollama_reply(request: Request, *, chat: bool) -> Response:
    state = _state(request)
    try:
        body = await _body(request)
        model, collection = _collection(state, body)
        if chat:
            question, history = _question_and_history(body.get("messages"))
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise ModelError(400, "prompt is required")
            question, history = prompt, []
        stream = _start(state, collection, question, history)
        await stream.start()
    except (ModelError, RagError) as err:
        return _ollama_error(err)
    started = time.perf_counter_ns()

    def chunk(text: str, done: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "created_at": now_iso()}
        if chat:
            out["message"] = {"role": "assistant", "content": text}
        else:
            out["response"] = text
        out["done"] = done
        return out

    def last(answer: Answer, text: str) -> dict[str, Any]:
        out = chunk(text, True)
        out.update(done_reason="stop", total_duration=time.perf_counter_ns() - started,
                   citations=citation_dicts(answer))
        if not chat:
            out["context"] = []
        return out

    if body.get("stream", True) is False:
        try:
            text = "".join([piece async for piece in _pieces(stream)])
        except RagError as err:
            return _ollama_error(err)
        return JSONResponse(last(stream.answer, text))

    async def lines() -> AsyncIterator[str]:
        try:
            async for piece in _pieces(stream):
                yield json.dumps(chunk(piece, False), ensure_ascii=False) + "\n"
            yield json.dumps(last(stream.answer, ""), ensure_ascii=False) + "\n"
        except RagError as err:  # mid-stream: an error line, as Ollama sends
            yield json.dumps({"error": str(err)}, ensure_ascii=False) + "\n"

    return StreamingResponse(lines(), media_type=NDJSON)


# -- the OpenAI dialect ----------------------------------------------------------------------------


def _openai_error(err: ModelError | RagError) -> JSONResponse:
    status = err.status if isinstance(err, ModelError) else error_status(err)
    kind = "invalid_request_error" if status < 500 else "api_error"
    code = "model_not_found" if status == 404 else None
    return JSONResponse({"error": {"message": str(err), "type": kind, "param": None, "code": code}},
                        status_code=status)


async def openai_models(request: Request) -> Response:
    """GET /v1/models."""
    state = _state(request)
    data = [_openai_model(c, state) for c in state.collections()]
    return JSONResponse({"object": "list", "data": data})


def _openai_model(collection: str, state: ServeState) -> dict[str, Any]:
    created = int(state.state_file(collection).stat().st_mtime)
    return {"id": MODEL_PREFIX + collection, "object": "model", "created": created, "owned_by": "rag"}


async def openai_model(request: Request) -> Response:
    """GET /v1/models/{model}."""
    state = _state(request)
    name = request.path_params["model"]
    collection = state.collection_of_model(name)
    if collection is None:
        return _openai_error(ModelError(404, f"The model '{name}' does not exist"))
    return JSONResponse(_openai_model(collection, state))


async def chat_completions(request: Request) -> Response:
    """POST /v1/chat/completions with model rag/<collection>."""
    state = _state(request)
    try:
        body = await _body(request)
        model, collection = _collection(state, body)
        question, history = _question_and_history(body.get("messages"))
        stream = _start(state, collection, question, history)
        await stream.start()
    except (ModelError, RagError) as err:
        return _openai_error(err)
    ident = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())

    def envelope(kind: str, choice: dict[str, Any]) -> dict[str, Any]:
        return {"id": ident, "object": kind, "created": created, "model": model, "system_fingerprint": "rag",
                "choices": [choice]}

    if not body.get("stream"):
        try:
            text = "".join([piece async for piece in _pieces(stream)])
        except RagError as err:
            return _openai_error(err)
        reply = envelope("chat.completion", {"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": "stop"})
        reply["citations"] = citation_dicts(stream.answer)
        return JSONResponse(reply)

    def event(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def events() -> AsyncIterator[str]:
        try:
            async for piece in _pieces(stream):
                yield event(envelope("chat.completion.chunk", {
                    "index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": None}))
            final = envelope("chat.completion.chunk", {"index": 0, "delta": {}, "finish_reason": "stop"})
            final["citations"] = citation_dicts(stream.answer)
            yield event(final)
        except RagError as err:
            yield event({"error": {"message": str(err), "type": "api_error", "param": None, "code": None}})
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


ROUTES = [
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/version", version, methods=["GET"]),
    Route("/api/ps", ps, methods=["GET"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/generate", generate, methods=["POST"]),
    Route("/v1/models", openai_models, methods=["GET"]),
    Route("/v1/models/{model:path}", openai_model, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
]
