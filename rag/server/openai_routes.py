"""The OpenAI-compatible routes (`/v1/*`): chat and text completions (SSE when streamed),
embeddings and models. Errors use OpenAI's `{"error": {"message", "type", ...}}` shape."""

from __future__ import annotations

import base64
import itertools
import struct
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rag.server.catalog import full_name
from rag.server.engine import ContextExceeded
from rag.server.native import chat_messages, start_chat
from rag.server.protocol import (
    ApiError,
    JsonReply,
    Reply,
    Request,
    StreamReply,
    check_options,
    get_field,
    parse_keep_alive,
)
from rag.server.registry import Installed
from rag.server.runs import (
    Run,
    Shape,
    embed_delay,
    options_for,
    require_generator,
    thinks,
    truncate_inputs,
    unit_vectors,
)

if TYPE_CHECKING:
    from rag.server.http import OllamaServer

_ids = itertools.count(1)


def _model(body: dict[str, Any], struct_name: str) -> str:
    name = str(get_field(body, "model", str, struct_name, "")).strip()
    if not name:
        raise ApiError(400, "model is required")
    return name


def _options(srv: OllamaServer, body: dict[str, Any], model: Installed) -> dict[str, Any]:
    # /v1 cannot set num_ctx; temperature and top_p default to OpenAI's 1.0, not Ollama's.
    # The model's own parameters (e.g. a `num_ctx` given at /api/create) still apply.
    options = options_for(srv, {}, model, "ChatCompletionRequest")
    options["temperature"] = body.get("temperature", 1.0)
    options["top_p"] = body.get("top_p", 1.0)
    stop = body.get("stop")
    for ours, value in (("num_predict", body.get("max_tokens")), ("seed", body.get("seed")),
                        ("stop", [stop] if isinstance(stop, str) else stop),
                        ("frequency_penalty", body.get("frequency_penalty")),
                        ("presence_penalty", body.get("presence_penalty"))):
        if value is not None:
            options[ours] = value
    return check_options(options, status=400)


def _think(body: dict[str, Any]) -> Any:
    effort = body.get("reasoning_effort") or (body.get("reasoning") or {}).get("effort")
    return None if effort is None else effort != "none" and effort


def _response_format(body: dict[str, Any]) -> Any:
    wanted = body.get("response_format") or {}
    if not isinstance(wanted, dict) or wanted.get("type") in (None, "text"):
        return None
    if wanted.get("type") == "json_object":
        return "json"
    if wanted.get("type") == "json_schema":
        return (wanted.get("json_schema") or {}).get("schema") or "json"
    raise ApiError(400, f"invalid response format type: {wanted.get('type')!r}")


def _usage(run: Run) -> dict[str, int]:
    prompt, completion = run.gen.prompt_tokens, run.eval_count
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_completions(srv: OllamaServer, req: Request) -> Reply:
    """`POST /v1/chat/completions`; `stream: true` gives SSE chunks ending in `data: [DONE]`."""
    start = time.perf_counter_ns()
    body = req.body
    name = _model(body, "ChatCompletionRequest")
    think = _think(body)
    model = require_generator(srv, name, {**body, "think": think}, "chat")
    messages = chat_messages(get_field(body, "messages", list, "ChatCompletionRequest", []))
    options = _options(srv, body, model)
    load_ns = srv.registry.load(model, options["num_ctx"], parse_keep_alive(None))
    run = start_chat(srv, model, messages, options, start, load_ns, thinks(model, think), _response_format(body))
    head = {"id": f"chatcmpl-{next(_ids)}", "created": int(time.time()), "model": name,
            "system_fingerprint": "fp_ollama"}
    if not get_field(body, "stream", bool, "ChatCompletionRequest", False):
        reasoning, content = run.joined()
        message = {"role": "assistant", "content": content}
        if reasoning:
            message["reasoning"] = reasoning
        choice = {"index": 0, "message": message, "finish_reason": run.done_reason}
        return JsonReply({**head, "object": "chat.completion", "choices": [choice], "usage": _usage(run)})
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunks() -> Iterator[dict[str, Any]]:
        chunk = {**head, "object": "chat.completion.chunk"}
        for kind, text in run.parts():
            delta = {"role": "assistant", "content": ""}
            delta["reasoning" if kind == "thinking" else "content"] = text
            yield {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        delta = {"role": "assistant", "content": ""}
        yield {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": run.done_reason}]}
        if include_usage:
            yield {**chunk, "choices": [], "usage": _usage(run)}

    return StreamReply(chunks(), sse=True)


def completions(srv: OllamaServer, req: Request) -> Reply:
    """`POST /v1/completions`: `prompt` must be a string."""
    start = time.perf_counter_ns()
    body = req.body
    name = _model(body, "CompletionRequest")
    if not isinstance(body.get("prompt", ""), str):
        raise ApiError(400, "prompt must be a string")
    model = require_generator(srv, name, body, "generate")
    options = _options(srv, body, model)
    load_ns = srv.registry.load(model, options["num_ctx"], parse_keep_alive(None))
    engine_ns = time.perf_counter_ns()
    gen = srv.engine.generate(model.engine_name, body.get("prompt") or "", model.spec.system, options)
    run = Run(gen, start, load_ns, engine_ns, srv.stream_error_after, Shape.of(options))
    head = {"id": f"cmpl-{next(_ids)}", "object": "text_completion", "created": int(time.time()),
            "model": name, "system_fingerprint": "fp_ollama"}
    if not get_field(body, "stream", bool, "CompletionRequest", False):
        choice = {"text": "".join(run.pieces()), "index": 0, "finish_reason": run.done_reason}
        return JsonReply({**head, "choices": [choice], "usage": _usage(run)})

    def chunks() -> Iterator[dict[str, Any]]:
        for text in run.pieces():
            yield {**head, "choices": [{"text": text, "index": 0, "finish_reason": None}]}
        yield {**head, "choices": [{"text": "", "index": 0, "finish_reason": run.done_reason}]}

    return StreamReply(chunks(), sse=True)


def embeddings(srv: OllamaServer, req: Request) -> Reply:
    """`POST /v1/embeddings`: normalised vectors (it runs `/api/embed`), float or base64."""
    body = req.body
    name = _model(body, "EmbedRequest")
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not texts or not isinstance(texts, list) or not all(isinstance(t, str) and t for t in texts):
        raise ApiError(400, "invalid input")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise ApiError(400, f"invalid encoding format: {encoding!r}")
    model = srv.registry.find(name)
    if model is None:
        raise ApiError(404, f'model "{name}" not found, try pulling it first')
    num_ctx = options_for(srv, {}, model, "EmbedRequest")["num_ctx"]
    srv.registry.load(model, num_ctx, parse_keep_alive(None))
    embed_delay(srv, len(texts))
    texts = truncate_inputs(texts, num_ctx, truncate=True)
    try:
        vectors, count = srv.engine.embed(model.engine_name, texts, truncate=True)
    except ContextExceeded:
        raise ApiError(400, "the input length exceeds the context length") from None
    data = []
    for index, vector in enumerate(unit_vectors(vectors, get_field(body, "dimensions", int, "EmbedRequest", 0))):
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "embedding": value, "index": index})
    return JsonReply({"object": "list", "data": data, "model": name,
                      "usage": {"prompt_tokens": count, "total_tokens": count}})


def _model_object(model: Installed) -> dict[str, Any]:
    name = model.spec.name
    owner = name.split("/")[-2] if "/" in name else "library"
    return {"id": name, "object": "model", "created": int(model.modified_at.timestamp()), "owned_by": owner}


def models(srv: OllamaServer, req: Request) -> Reply:
    """`GET /v1/models`."""
    return JsonReply({"object": "list", "data": [_model_object(m) for m in srv.registry.installed()]})


def model(srv: OllamaServer, req: Request) -> Reply:
    """`GET /v1/models/{model}`."""
    name = req.path.removeprefix("/v1/models/")
    found = srv.registry.find(name)
    if found is None:  # named as resolved, tag included, like /api/show
        raise ApiError(404, f"model '{full_name(name)}' not found")
    return JsonReply(_model_object(found))
