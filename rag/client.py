"""`OllamaClient`: a thin typed layer over the `ollama` SDK for model setup, health and generation.

Every SDK call goes through `ingest.ollama_calls.call` / `stream` (the one seam), so whatever goes
wrong arrives as an `ingest.errors` type whose one-line message names the fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, overload

import httpx
import ollama
from ollama import ChatResponse, GenerateResponse, Message

from ingest.errors import ConfigError, ModelCapabilityError, ModelNotFound, OllamaError, StreamError
from ingest.ollama_calls import (
    DEFAULT_RETRIES,
    Timeouts,
    call,
    close_client,
    make_client,
    make_http,
    request,
    resolve_host,
    stream,
)
from rag import client_v1 as v1
from rag.client_v1 import Think
from rag.config import DEFAULT_CHAT_MODEL
from rag.models_types import Health, ModelDetails, ModelInfo, ModelsReady, PullProgress, RunningModel

__all__ = [
    "SUGGESTED_CHAT_MODEL",
    "SUGGESTED_EMBED_MODEL",
    "Api",
    "OllamaClient",
    "Progress",
    "check_capability",
]

T = TypeVar("T")
Api = Literal["native", "openai"]
Progress = Callable[[PullProgress], None]

SUGGESTED_CHAT_MODEL = DEFAULT_CHAT_MODEL  # named in "use e.g. --model ..." hints
SUGGESTED_EMBED_MODEL = "nomic-embed-text"


class OllamaClient:
    """Health, model management, generation and embeddings against one Ollama server.

    ``api="openai"`` sends `chat`, `generate`, `embed` and `models` through `/v1/chat/completions`,
    `/v1/completions`, `/v1/embeddings` and `/v1/models` for servers that only speak that dialect. The
    cost: `/v1` cannot set ``num_ctx``, ``keep_alive``, ``truncate`` or a `generate` ``system`` prompt
    (the server's defaults apply, so long prompts are cut silently at its context length; a model made
    with `/api/create` can carry a bigger ``num_ctx``), `models` reports names and dates only, and
    ``temperature`` / ``top_p`` default to 1.0 instead of Ollama's 0.8 / 0.9 unless passed in
    ``options``. The rest of model management and `health` always use the native API.
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        timeouts: Timeouts | None = None,
        retries: int = DEFAULT_RETRIES,
        api: Api = "native",
    ) -> None:
        if api not in ("native", "openai"):
            raise ConfigError(f"unknown api {api!r} — use 'native' or 'openai'")
        self.host = resolve_host(host)
        self.timeouts = timeouts or Timeouts.from_env()
        self.retries = retries
        self.api: Api = api
        self._sdk = make_client(self.host, self.timeouts)
        self._http = make_http(self.host, self.timeouts)  # for the requests the SDK has no method for

    def close(self) -> None:
        """Close the HTTP connection pools."""
        close_client(self._sdk)
        self._http.close()

    def __enter__(self) -> OllamaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OllamaClient({self.host!r}, api={self.api!r})"

    # -- the seam -----------------------------------------------------------------------------

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # `call` names the model in errors after the first positional string: keep the model first.
        deadline = self.timeouts.retry_deadline
        return call(fn, *args, host=self.host, retries=self.retries, deadline=deadline, **kwargs)

    def _stream(self, open_stream: Callable[[], Iterator[T]], model: str = "") -> Iterator[T]:
        return stream(
            open_stream, host=self.host, model=model, retries=self.retries, deadline=self.timeouts.retry_deadline
        )

    def _raw(self, method: str, path: str, *, model: str = "", **kwargs: Any) -> httpx.Response:
        """One request the SDK has no method for: same timeouts and credentials, errors the seam maps."""

        def send(_model: str) -> httpx.Response:  # `_model` only names the model in errors
            return request(self._http, method, path, **kwargs)

        return self._call(send, model)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise OllamaError(
                f"the server at {self.host} sent a reply that is not JSON",
                fix="is OLLAMA_HOST an Ollama server?",
                host=self.host,
            ) from None
        return data if isinstance(data, dict) else {}

    # -- health and models --------------------------------------------------------------------

    def health(self) -> Health:
        """`GET /` ("Ollama is running") and `/api/version`: host, version and round-trip latency."""
        start = time.perf_counter()
        response = self._raw("GET", "/")
        latency_ms = (time.perf_counter() - start) * 1000
        if "Ollama is running" not in response.text:
            raise OllamaError(
                f"the server at {self.host} answered but is not Ollama",
                fix="check OLLAMA_HOST / --host",
                host=self.host,
            )
        version = str(self._json(self._raw("GET", "/api/version")).get("version", ""))
        return Health(host=self.host, version=version, latency_ms=round(latency_ms, 1))

    def models(self) -> list[ModelInfo]:
        """The local models (`/api/tags`, or `/v1/models` with names and dates only when ``api="openai"``)."""
        if self.api == "openai":
            return v1.model_infos(self._json(self._raw("GET", "/v1/models")))
        listed = self._call(self._sdk.list)
        return [_model_info(m) for m in listed.models]

    def show(self, model: str) -> ModelDetails:
        """Template, parameters, system prompt, capabilities and lengths of one model (`/api/show`)."""
        _require(model)
        # Raw JSON: the SDK's ShowResponse drops `system` and the lengths in `details`.
        data = self._json(self._raw("POST", "/api/show", json={"model": model}, model=model))
        return _model_details(model, data)

    def running(self) -> list[RunningModel]:
        """The loaded models (`/api/ps`); ``size_vram`` tells GPU from CPU."""
        listed = self._call(self._sdk.ps)
        return [
            RunningModel(
                name=m.name or m.model or "",
                size=int(m.size or 0),
                size_vram=int(m.size_vram or 0),
                expires_at=m.expires_at,
                context_length=m.context_length,
            )
            for m in listed.models
        ]

    def pull(self, model: str) -> Iterator[PullProgress]:
        """Download a model, yielding its progress lines as they stream in."""
        _require(model)
        parts = self._stream(lambda: self._sdk.pull(model, stream=True), model=model)
        try:
            for part in parts:
                yield PullProgress(
                    status=part.status or "",
                    digest=part.digest or "",
                    completed=part.completed,
                    total=part.total,
                )
        except (ModelNotFound, StreamError) as err:
            raise _pull_error(err, model, self.host) from None

    def copy(self, source: str, destination: str) -> None:
        """Copy a model under a new name."""
        _require(source)
        _require(destination)
        self._call(self._sdk.copy, source, destination)

    def delete(self, model: str) -> None:
        """Delete a local model."""
        _require(model)
        self._call(self._sdk.delete, model)

    # -- generation ---------------------------------------------------------------------------

    @overload
    def generate(
        self,
        model: str,
        prompt: str,
        *,
        stream: Literal[False] = False,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        think: Think = None,
        keep_alive: float | str | None = None,
    ) -> GenerateResponse: ...

    @overload
    def generate(
        self,
        model: str,
        prompt: str,
        *,
        stream: Literal[True],
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        think: Think = None,
        keep_alive: float | str | None = None,
    ) -> Iterator[GenerateResponse]: ...

    def generate(
        self,
        model: str,
        prompt: str,
        *,
        stream: bool = False,
        system: str | None = None,
        options: Mapping[str, Any] | None = None,
        think: Think = None,
        keep_alive: float | str | None = None,
    ) -> GenerateResponse | Iterator[GenerateResponse]:
        """Complete a prompt (`/api/generate`, or `/v1/completions` when ``api="openai"``), whole or streamed."""
        _require(model)
        if self.api == "openai":
            if system:
                raise ConfigError("a system prompt cannot be sent through /v1/completions — put it in the prompt, "
                                  "or use api='native'")
            if think:
                raise ConfigError("think cannot be sent through /v1/completions — use api='native'")
            body = v1.completion_body(model, prompt, options, stream)
            if stream:
                return self._stream(
                    lambda: v1.completion_lines(self._http, self.host, body, model), model=model
                )
            return v1.completion_response(
                self._json(self._raw("POST", "/v1/completions", json=body, model=model)), model
            )
        kwargs: dict[str, Any] = dict(
            system=system, options=dict(options) if options else None, think=think, keep_alive=keep_alive
        )
        if stream:
            return self._stream(lambda: self._sdk.generate(model, prompt, stream=True, **kwargs), model=model)
        return self._call(self._sdk.generate, model, prompt, stream=False, **kwargs)

    @overload
    def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        stream: Literal[False] = False,
        options: Mapping[str, Any] | None = None,
        think: Think = None,
        keep_alive: float | str | None = None,
        format: str | dict[str, Any] | None = None,
    ) -> ChatResponse: ...

    @overload
    def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        stream: Literal[True],
        options: Mapping[str, Any] | None = None,
        think: Think = None,
        keep_alive: float | str | None = None,
        format: str | dict[str, Any] | None = None,
    ) -> Iterator[ChatResponse]: ...

    def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        stream: bool = False,
        options: Mapping[str, Any] | None = None,
        think: Think = None,
        keep_alive: float | str | None = None,
        format: str | dict[str, Any] | None = None,
    ) -> ChatResponse | Iterator[ChatResponse]:
        """Answer a conversation (`/api/chat`, or `/v1/chat/completions` when ``api="openai"``)."""
        _require(model)
        if self.api == "openai":
            body = v1.chat_body(model, messages, options, think, stream)
            if stream:
                return self._stream(
                    lambda: v1.chat_lines(self._http, self.host, body, model), model=model
                )
            data = self._json(self._raw("POST", "/v1/chat/completions", json=body, model=model))
            return v1.chat_response(data, model)
        kwargs: dict[str, Any] = dict(
            options=dict(options) if options else None, think=think, keep_alive=keep_alive, format=format
        )
        msgs = list(messages)
        if stream:
            return self._stream(lambda: self._sdk.chat(model, msgs, stream=True, **kwargs), model=model)
        return self._call(self._sdk.chat, model, msgs, stream=False, **kwargs)

    def embed(
        self,
        model: str,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        options: Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
        dimensions: int | None = None,
    ) -> list[list[float]]:
        """One vector per text (`/api/embed`, or `/v1/embeddings` when ``api="openai"``)."""
        _require(model)
        inputs = [texts] if isinstance(texts, str) else list(texts)
        if self.api == "openai":
            if not truncate:
                raise ConfigError("truncate=False cannot be sent through /v1/embeddings — use api='native'")
            body = v1.embed_body(model, inputs, dimensions)
            return v1.embeddings(self._json(self._raw("POST", "/v1/embeddings", json=body, model=model)))
        reply = self._call(
            self._sdk.embed,
            model,
            inputs,
            truncate=truncate,
            options=dict(options) if options else None,
            keep_alive=keep_alive,
            dimensions=dimensions,
        )
        return [[float(x) for x in vector] for vector in reply.embeddings]

    # -- ensuring models ----------------------------------------------------------------------

    def ensure_models(
        self,
        embed_model: str | None,
        chat_model: str | None,
        *,
        pull: bool = False,
        progress: Progress | None = None,
    ) -> ModelsReady:
        """Check (one `/api/show` each) that the models exist and can embed / chat; pull missing ones."""
        embed = self._ensure(embed_model, "embedding", pull, progress) if embed_model else None
        chat = self._ensure(chat_model, "completion", pull, progress) if chat_model else None
        return ModelsReady(embed=embed, chat=chat)

    def _ensure(self, model: str, capability: str, pull: bool, progress: Progress | None) -> ModelDetails:
        try:
            details = self.show(model)
        except ModelNotFound as err:
            if not pull:
                raise ModelNotFound(
                    f"model {model} is not available on {self.host} — run `rag models pull {model}` "
                    "(or add --pull)",
                    host=self.host,
                    model=model,
                ) from None
            for part in self.pull(model):
                if progress is not None:
                    progress(part)
            try:
                details = self.show(model)
            except ModelNotFound:
                raise err from None
        check_capability(details, capability, self.host)
        return details


def check_capability(details: ModelDetails, capability: str, host: str) -> None:
    """Raise ModelCapabilityError when a model cannot do ``capability`` ("embedding" / "completion")."""
    caps = details.capabilities
    if not caps or capability in caps:  # servers before capabilities existed: nothing to check
        return
    name = details.name
    if capability == "completion":
        what = (
            "is an embedding model" if details.is_embedder else f"has no chat capability ({', '.join(caps)})"
        )
        message, fix = f"model {name} {what} and cannot chat", f"use e.g. --model {SUGGESTED_CHAT_MODEL}"
    else:
        message = f"model {name} is not an embedding model ({', '.join(caps)})"
        fix = f"use e.g. --embed-model {SUGGESTED_EMBED_MODEL}"
    raise ModelCapabilityError(message, fix=fix, host=host, model=name)


def _require(model: str) -> None:
    # The SDK would raise a pydantic error; say what to do instead.
    if not model or not model.strip():
        raise ConfigError("no model name given — pass one, e.g. `rag models pull nomic-embed-text`")


def _pull_error(err: ModelNotFound | StreamError, model: str, host: str) -> OllamaError:
    text = str(err).lower()
    if isinstance(err, ModelNotFound) or "not exist" in text or "not found" in text:
        return ModelNotFound(
            f"model {model} could not be pulled: the registry does not have it — check the name "
            "at https://ollama.com/library",
            host=host,
            model=model,
        )
    return err


def _model_info(m: ollama.ListResponse.Model) -> ModelInfo:
    d = m.details
    return ModelInfo(
        name=m.model or "",
        size=int(m.size or 0),
        modified=m.modified_at,
        family=(d.family if d else None) or "",
        parameter_size=(d.parameter_size if d else None) or "",
        quantization=(d.quantization_level if d else None) or "",
    )


def _model_details(model: str, data: Mapping[str, Any]) -> ModelDetails:
    details = data.get("details") or {}
    info = data.get("model_info") or {}
    arch = info.get("general.architecture") or details.get("family") or ""

    def length(kind: str) -> int | None:
        value = info.get(f"{arch}.{kind}")
        if value is None:  # unknown architecture key: take any `<x>.<kind>`
            value = next((v for k, v in info.items() if k.endswith(f".{kind}")), None)
        if value is None:
            value = details.get(kind)
        return int(value) if value is not None else None

    return ModelDetails(
        name=model,
        template=data.get("template") or "",
        parameters=data.get("parameters") or "",
        system=data.get("system") or "",
        capabilities=tuple(data.get("capabilities") or ()),
        embedding_length=length("embedding_length"),
        context_length=length("context_length"),
        family=details.get("family") or arch,
    )
