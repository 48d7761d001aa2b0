"""The one seam between `rag` and the `ollama` SDK: host rules, finite timeouts, error mapping, retries.

Every call into the SDK goes through `call()` (plain) or `stream()` (streamed), so that the SDK's
inconsistent exceptions (built-in ``ConnectionError`` on plain calls, raw ``httpx.ConnectError`` on
streamed ones, unwrapped timeouts, pydantic errors for an empty model) all become `ingest.errors` types.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import ollama
import pydantic
from ollama._client import _parse_host

from ingest.errors import (
    ModelCapabilityError,
    ModelNotFound,
    OllamaError,
    OllamaResponseError,
    OllamaTimeout,
    OllamaUnreachable,
    RagError,
    ServerBusy,
    StreamError,
)

T = TypeVar("T")

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 300.0  # a cold model load on a CPU box can take minutes
DEFAULT_RETRIES = 3
RETRY_BASE_DELAY = 0.5


@dataclass(frozen=True)
class Timeouts:
    """Finite timeouts in seconds: short to connect, generous to read (cold model loads)."""

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.read, pool=self.connect)

    @classmethod
    def from_env(cls) -> Timeouts:
        """`RAG_CONNECT_TIMEOUT` / `RAG_READ_TIMEOUT` override the defaults."""
        return cls(
            connect=float(os.environ.get("RAG_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT)),
            read=float(os.environ.get("RAG_READ_TIMEOUT", DEFAULT_READ_TIMEOUT)),
        )


def resolve_host(host: str | None = None) -> str:
    """The base URL: ``host`` if given, else ``OLLAMA_HOST``, by the SDK's rules; 0.0.0.0 means loopback.

    >>> resolve_host("localhost:1234")
    'http://localhost:1234'
    >>> resolve_host("0.0.0.0")
    'http://127.0.0.1:11434'
    >>> resolve_host(":5000")
    'http://127.0.0.1:5000'
    >>> resolve_host("https://ollama.example.com")
    'https://ollama.example.com:443'
    """
    url = _parse_host(host if host else os.environ.get("OLLAMA_HOST"))
    parts = urlsplit(url)
    # A server listens on 0.0.0.0 / [::]; a client must connect to loopback instead.
    if parts.hostname in ("0.0.0.0", "::"):
        netloc = f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1"
        url = urlunsplit(parts._replace(netloc=netloc))
    return url


def make_client(host: str | None = None, timeouts: Timeouts | None = None) -> ollama.Client:
    """An SDK client for ``host`` with finite timeouts (the SDK's default is none)."""
    return ollama.Client(host=resolve_host(host), timeout=(timeouts or Timeouts.from_env()).to_httpx())


def client_host(client: ollama.Client) -> str:
    """The base URL an SDK client talks to."""
    return str(client._client.base_url).rstrip("/")


def map_error(exc: BaseException, host: str, model: str = "", action: str = "") -> RagError:
    """Translate an SDK / httpx / pydantic exception into the project's error tree."""
    if isinstance(exc, RagError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return OllamaTimeout(
            f"Ollama at {host} did not answer in time ({type(exc).__name__}) — the model may still be "
            "loading: retry, or raise the read timeout with RAG_READ_TIMEOUT=SECONDS",
            host=host,
        )
    if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.NetworkError)):
        return OllamaUnreachable(
            f"Ollama is not reachable at {host} — start it (`ollama serve`) or set OLLAMA_HOST", host=host
        )
    if isinstance(exc, ollama.ResponseError):
        text = _error_text(exc.error)
        status = exc.status_code
        if status == -1:
            return StreamError(
                f"Ollama at {host} reported an error mid-stream: {text} — retry, or check the server log",
                host=host,
            )
        if status == 404 and text.startswith("404 page not found"):
            # the route itself is missing: an older Ollama (or not Ollama at all) answers
            return OllamaResponseError(
                f"Ollama at {host} has no such endpoint (404 page not found) — upgrade Ollama, "
                "or check that OLLAMA_HOST points at an Ollama server",
                host=host,
                status=404,
            )
        if status == 404 and "not found" in text:
            name = model or _quoted_name(text)
            return ModelNotFound(
                f"model {name} is not available on {host} — run `rag models pull {name}`",
                host=host,
                model=name,
            )
        if status == 400 and "does not support" in text:
            name = model or _quoted_name(text)
            what = text.rsplit("does not support", 1)[1].strip() or action or "this"
            return ModelCapabilityError(
                f"model {name} does not support {what} — pick a model that does "
                f"(`rag models show {name}` lists its capabilities)",
                host=host,
                model=name,
            )
        if status == 503:
            return ServerBusy(
                f"Ollama at {host} is busy (503: {text}) — retry later, or raise OLLAMA_MAX_QUEUE on the server",
                host=host,
            )
        return OllamaResponseError(
            f"Ollama at {host} answered {status}: {text or 'no message'}", host=host, status=status
        )
    if isinstance(exc, pydantic.ValidationError):
        return OllamaError(f"invalid request to Ollama at {host}: {exc.errors()[0].get('msg')}", host=host)
    if isinstance(exc, httpx.HTTPError):
        return OllamaError(f"HTTP error talking to Ollama at {host}: {exc} — check OLLAMA_HOST", host=host)
    raise exc


def _error_text(error: object) -> str:
    # The /v1 endpoints nest the message: {"error": {"message": ..., "type": ...}}.
    if isinstance(error, dict):
        error = error.get("message", "")
    return str(error or "").strip()


def _quoted_name(text: str) -> str:
    for quote in ("'", '"'):
        if text.count(quote) >= 2:
            return text.split(quote)[1]
    return "?"


def _retryable(err: RagError) -> bool:
    if isinstance(err, (OllamaUnreachable, ServerBusy, OllamaTimeout)):
        return True
    return isinstance(err, OllamaResponseError) and err.status >= 500


def call(
    fn: Callable[..., T],
    *args: Any,
    host: str,
    retries: int = 0,
    **kwargs: Any,
) -> T:
    """Run one plain SDK call ``fn(*args, **kwargs)``; map its errors; retry connection errors,
    5xx and 503 with backoff. The model named in error messages is ``kwargs["model"]`` or the
    first positional string argument."""
    model = str(kwargs.get("model") or next((a for a in args if isinstance(a, str)), ""))
    attempt = 0
    while True:
        try:
            return fn(*args, **kwargs)
        except (ollama.ResponseError, ConnectionError, httpx.HTTPError, pydantic.ValidationError) as exc:
            err = map_error(exc, host, model)
            if attempt >= retries or not _retryable(err):
                raise err from None
            time.sleep(RETRY_BASE_DELAY * (2**attempt))
            attempt += 1


def stream(
    open_stream: Callable[[], Iterator[T]], *, host: str, model: str = "", retries: int = 0
) -> Iterator[T]:
    """Iterate a streamed SDK call, mapping errors raised lazily on ``next()``.

    Retries (for 503/connection errors) happen only before the first item arrives: after that the
    caller has already seen output and a silent restart would duplicate it.
    """
    attempt = 0
    while True:
        started = False
        try:
            for item in open_stream():
                started = True
                yield item
            return
        except (ollama.ResponseError, ConnectionError, httpx.HTTPError, pydantic.ValidationError) as exc:
            err = map_error(exc, host, model)
            if started or attempt >= retries or not _retryable(err):
                raise err from None
            time.sleep(RETRY_BASE_DELAY * (2**attempt))
            attempt += 1
