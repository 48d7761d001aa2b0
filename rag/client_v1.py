"""The OpenAI-compatible dialect (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
`/v1/models`) for `rag.client.OllamaClient`.

Replies are rebuilt into the SDK's native types (`ChatResponse`, `GenerateResponse`) or `ModelInfo`, and
errors are raised as the SDK's own `ollama.ResponseError` (``{"error": {"message": ...}}`` bodies
included) so that the one seam, `ingest.ollama_calls`, maps them exactly like native ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import httpx
import ollama
from ollama import ChatResponse, GenerateResponse, Message

from ingest.errors import OllamaError
from rag.models_types import ModelInfo

__all__ = [
    "V1_OPTIONS",
    "Think",
    "chat_body",
    "chat_lines",
    "chat_response",
    "completion_body",
    "completion_lines",
    "completion_response",
    "embed_body",
    "embeddings",
    "model_infos",
]

Think = bool | Literal["low", "medium", "high"] | None

# Options the /v1 dialect understands; everything else (num_ctx, ...) cannot travel through it.
V1_OPTIONS = ("temperature", "top_p", "seed", "stop", "frequency_penalty", "presence_penalty")


def _events(http: httpx.Client, host: str, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The JSON objects of an SSE stream from ``path``, up to ``data: [DONE]``."""
    with http.stream("POST", path, json=body) as response:
        if response.status_code >= 400:
            response.read()
            raise ollama.ResponseError(response.text, response.status_code)
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[len("data:") :].strip()
            if payload == "[DONE]":
                return
            yield _chunk(payload, host)


def chat_lines(http: httpx.Client, host: str, body: dict[str, Any], model: str) -> Iterator[ChatResponse]:
    """Stream `/v1/chat/completions` (SSE) as native-shaped chunks ending with a ``done`` one."""
    final = ChatResponse(model=model, message=Message(role="assistant", content=""), done=True)
    for chunk in _events(http, host, "/v1/chat/completions", body):
        piece, final = _piece(chunk, final, model)
        if piece is not None:
            yield piece
    yield final


def chat_body(
    model: str,
    messages: Sequence[Mapping[str, Any] | Message],
    options: Mapping[str, Any] | None,
    think: Think,
    stream: bool,
) -> dict[str, Any]:
    """The `/v1/chat/completions` request for a native-style call (unsupported options dropped)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_plain_message(m) for m in messages],
        "stream": stream,
        **_sampling(options),
    }
    if isinstance(think, str):
        body["reasoning_effort"] = think
    elif think is True:
        body["reasoning_effort"] = "medium"
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _sampling(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The native options /v1 understands, under their /v1 names (``num_predict`` is ``max_tokens``)."""
    opts = dict(options or {})
    found = {key: opts[key] for key in V1_OPTIONS if key in opts}
    if "num_predict" in opts:
        found["max_tokens"] = opts["num_predict"]
    return found


def completion_body(model: str, prompt: str, options: Mapping[str, Any] | None, stream: bool) -> dict[str, Any]:
    """The `/v1/completions` request for a native-style `generate` call (unsupported options dropped)."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": stream, **_sampling(options)}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def completion_response(data: Mapping[str, Any], model: str) -> GenerateResponse:
    """A whole `/v1/completions` reply as a native `GenerateResponse`."""
    choice = (data.get("choices") or [{}])[0]
    usage = data.get("usage") or {}
    return GenerateResponse(
        model=data.get("model") or model,
        response=choice.get("text") or "",
        done=True,
        done_reason=choice.get("finish_reason"),
        prompt_eval_count=usage.get("prompt_tokens"),
        eval_count=usage.get("completion_tokens"),
    )


def completion_lines(
    http: httpx.Client, host: str, body: dict[str, Any], model: str
) -> Iterator[GenerateResponse]:
    """Stream `/v1/completions` (SSE) as native-shaped pieces ending with an empty ``done`` one."""
    final = GenerateResponse(model=model, response="", done=True)
    for chunk in _events(http, host, "/v1/completions", body):
        usage = chunk.get("usage")
        if usage:
            final = final.model_copy(
                update={"prompt_eval_count": usage.get("prompt_tokens"), "eval_count": usage.get("completion_tokens")}
            )
        choices = chunk.get("choices") or []
        if not choices:
            continue
        if choices[0].get("finish_reason"):
            final = final.model_copy(update={"done_reason": choices[0]["finish_reason"]})
        if text := choices[0].get("text") or "":
            yield GenerateResponse(model=chunk.get("model") or model, response=text, done=False)
    yield final


def model_infos(data: Mapping[str, Any]) -> list[ModelInfo]:
    """The models of a `/v1/models` reply; /v1 tells only the name and the creation time."""
    infos = []
    for item in data.get("data") or []:
        created = item.get("created")
        modified = datetime.fromtimestamp(created, timezone.utc) if isinstance(created, (int, float)) else None
        infos.append(ModelInfo(name=str(item.get("id") or ""), size=0, modified=modified, family="",
                               parameter_size="", quantization=""))
    return infos


def _plain_message(message: Mapping[str, Any] | Message) -> dict[str, Any]:
    if isinstance(message, Message):
        return message.model_dump(exclude_none=True)
    return dict(message)


def chat_response(data: Mapping[str, Any], model: str) -> ChatResponse:
    """A whole `/v1/chat/completions` reply as a native `ChatResponse`."""
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    usage = data.get("usage") or {}
    return ChatResponse(
        model=data.get("model") or model,
        message=Message(
            role="assistant", content=message.get("content") or "", thinking=message.get("reasoning")
        ),
        done=True,
        done_reason=choice.get("finish_reason"),
        prompt_eval_count=usage.get("prompt_tokens"),
        eval_count=usage.get("completion_tokens"),
    )


def _chunk(payload: str, host: str) -> dict[str, Any]:
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise OllamaError(
            f"the server at {host} sent a /v1 stream line that is not JSON", host=host
        ) from None
    if isinstance(chunk, dict) and chunk.get("error"):
        error = chunk["error"]
        raise ollama.ResponseError(str(error.get("message") if isinstance(error, dict) else error))
    return chunk if isinstance(chunk, dict) else {}


def _piece(
    chunk: Mapping[str, Any], final: ChatResponse, model: str
) -> tuple[ChatResponse | None, ChatResponse]:
    # Native streams end with an empty done:true line carrying the counts; rebuild that shape.
    usage = chunk.get("usage")
    if usage:
        final = final.model_copy(
            update={
                "prompt_eval_count": usage.get("prompt_tokens"),
                "eval_count": usage.get("completion_tokens"),
            }
        )
    choices = chunk.get("choices") or []
    if not choices:
        return None, final
    choice = choices[0]
    if choice.get("finish_reason"):
        final = final.model_copy(update={"done_reason": choice["finish_reason"]})
    delta = choice.get("delta") or {}
    content, thinking = delta.get("content") or "", delta.get("reasoning")
    if not content and not thinking:
        return None, final
    piece = ChatResponse(
        model=chunk.get("model") or model,
        message=Message(role="assistant", content=content, thinking=thinking),
        done=False,
    )
    return piece, final


def embed_body(model: str, inputs: list[str], dimensions: int | None) -> dict[str, Any]:
    """The `/v1/embeddings` request."""
    body: dict[str, Any] = {"model": model, "input": inputs}
    if dimensions:
        body["dimensions"] = dimensions
    return body


def embeddings(data: Mapping[str, Any]) -> list[list[float]]:
    """The vectors of a `/v1/embeddings` reply, in input order."""
    items = sorted(data.get("data") or [], key=lambda item: item.get("index", 0))
    return [[float(x) for x in item["embedding"]] for item in items]
