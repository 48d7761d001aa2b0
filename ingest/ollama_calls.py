"""The one seam between `rag` and the `ollama` SDK: host rules, credentials, finite timeouts, error
mapping, retries.

Every call into the SDK goes through `call()` (plain) or `stream()` (streamed), so that the SDK's
inconsistent exceptions (built-in ``ConnectionError`` on plain calls, raw ``httpx.ConnectError`` on
streamed ones, unwrapped timeouts, pydantic errors for an empty model) all become `ingest.errors` types.
Requests the SDK has no method for (`GET /`, raw `/api/show`, `/v1`) go through `request()` on an
`httpx.Client` from `make_http()`, with the same base URL, timeouts and credentials; only public SDK
names are used (`ollama.Client`, `ollama.ResponseError`), so any `ollama` 0.x from 0.6 on fits.

Credentials: ``OLLAMA_HOST=https://user:pass@host`` (or ``--host`` with the same form) sends HTTP basic
auth, for an Ollama behind an authenticating proxy. `resolve_host` returns the URL *without* them, so
the host that errors, `doctor`, `status` and ``--json`` print never holds a password; the credentials
are kept here, by base URL, and only `make_client` / `make_http` read them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import httpx
import ollama
import pydantic

from ingest.errors import (
    ConfigError,
    ModelCapabilityError,
    ModelNotFound,
    OllamaAuthError,
    OllamaError,
    OllamaResponseError,
    OllamaTimeout,
    OllamaUnreachable,
    RagError,
    ServerBusy,
    StreamError,
)

T = TypeVar("T")

DEFAULT_PORT = 11434
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 300.0  # a cold model load on a CPU box can take minutes
DEFAULT_RETRIES = 3
# No retry starts once this many seconds have passed since the first attempt: with a read timeout of
# minutes, "3 retries" alone could keep a user waiting for a quarter of an hour.
DEFAULT_RETRY_DEADLINE = 60.0
RETRY_BASE_DELAY = 0.5


@dataclass(frozen=True)
class Timeouts:
    """Finite timeouts in seconds: short to connect, generous to read (cold model loads); and the
    overall deadline after which no retry starts."""

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT
    retry_deadline: float = DEFAULT_RETRY_DEADLINE

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.read, pool=self.connect)

    @classmethod
    def from_env(cls) -> Timeouts:
        """`RAG_CONNECT_TIMEOUT` / `RAG_READ_TIMEOUT` / `RAG_RETRY_DEADLINE` override the defaults
        (the only place these variables are read; `ingest.config` lists them with the other settings)."""
        return cls(
            connect=_seconds("RAG_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
            read=_seconds("RAG_READ_TIMEOUT", DEFAULT_READ_TIMEOUT),
            retry_deadline=_seconds("RAG_RETRY_DEADLINE", DEFAULT_RETRY_DEADLINE),
        )


def _seconds(var: str, default: float) -> float:
    raw = os.environ.get(var)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{var}={raw!r} is not a number of seconds above 0", fix="fix or unset it")
    return value


# base URL (without credentials) -> (user, password), filled by `resolve_host`.
_credentials: dict[str, tuple[str, str]] = {}


def resolve_host(host: str | None = None) -> str:
    """The base URL: ``host`` if given, else ``OLLAMA_HOST``, by the SDK's rules; 0.0.0.0 means
    loopback. Credentials in the URL are remembered for `make_client` and left out of the result.

    >>> resolve_host("localhost:1234")
    'http://localhost:1234'
    >>> resolve_host("0.0.0.0")
    'http://127.0.0.1:11434'
    >>> resolve_host(":5000")
    'http://127.0.0.1:5000'
    >>> resolve_host("https://ollama.example.com")
    'https://ollama.example.com:443'
    >>> resolve_host("https://me:s3cret@ollama.example.com/ollama/")
    'https://ollama.example.com:443/ollama'
    >>> resolve_host("[::1]:5000")
    'http://[::1]:5000'
    """
    raw = host if host else os.environ.get("OLLAMA_HOST") or ""
    url, user, password = _split_host(raw)
    if user or password:
        _credentials[url] = (user, password)
    return url


def _split_host(raw: str) -> tuple[str, str, str]:
    # The SDK's host rules (its doctests), restated here because its own function is private.
    scheme, _, hostport = raw.strip().partition("://")
    port = DEFAULT_PORT
    if not hostport:
        scheme, hostport = "http", raw.strip()
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    parts = urlsplit(f"{scheme}://{hostport}")
    name = parts.hostname or "127.0.0.1"
    # A server listens on 0.0.0.0 / [::]; a client must connect to loopback instead.
    if name in ("0.0.0.0", "::"):
        name = "127.0.0.1"
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    except ValueError:
        pass
    url = f"{scheme}://{name}:{parts.port or port}"
    path = parts.path.strip("/")
    if path:
        url += f"/{path}"
    return url, unquote(parts.username or ""), unquote(parts.password or "")


def _auth(url: str) -> httpx.BasicAuth | None:
    if url not in _credentials:  # e.g. a worker process given the resolved URL: OLLAMA_HOST may hold them
        resolve_host(os.environ.get("OLLAMA_HOST"))
    user, password = _credentials.get(url, ("", ""))
    return httpx.BasicAuth(user, password) if (user or password) else None


# SDKs before 0.6.2 have no `Client.close()`. For those, each client made here gets a transport of its
# own, kept here, so that `close_client` can close the connection pool without the SDK's private parts.
_SDK_CAN_CLOSE = hasattr(ollama.Client, "close") and hasattr(ollama.AsyncClient, "close")
_transports: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def make_client(host: str | None = None, timeouts: Timeouts | None = None) -> ollama.Client:
    """An SDK client for ``host`` with finite timeouts (the SDK's default is none) and the host's
    basic-auth credentials, if it has any. Close it with `close_client`."""
    url = resolve_host(host)
    extra: dict[str, Any] = {} if _SDK_CAN_CLOSE else {"transport": httpx.HTTPTransport()}
    client = ollama.Client(host=url, timeout=(timeouts or Timeouts.from_env()).to_httpx(), auth=_auth(url), **extra)
    if extra:
        _transports[client] = extra["transport"]
    return client


def close_client(client: ollama.Client) -> None:
    """Close an SDK client's connection pool (with any SDK version from 0.6 on)."""
    transport = _transports.pop(client, None)
    if transport is not None:
        transport.close()
    elif _SDK_CAN_CLOSE:
        client.close()


@contextlib.contextmanager
def open_client(host: str | None = None, timeouts: Timeouts | None = None) -> Iterator[ollama.Client]:
    """`make_client` as a context manager (the SDK's own ``with`` needs 0.6.2)."""
    client = make_client(host, timeouts)
    try:
        yield client
    finally:
        close_client(client)


def make_async_client(host: str | None = None, timeouts: Timeouts | None = None) -> ollama.AsyncClient:
    """`make_client` for asyncio: the same URL, finite timeouts and credentials. Close with `aclose_client`."""
    url = resolve_host(host)
    extra: dict[str, Any] = {} if _SDK_CAN_CLOSE else {"transport": httpx.AsyncHTTPTransport()}
    client = ollama.AsyncClient(
        host=url, timeout=(timeouts or Timeouts.from_env()).to_httpx(), auth=_auth(url), **extra
    )
    if extra:
        _transports[client] = extra["transport"]
    return client


async def aclose_client(client: ollama.AsyncClient) -> None:
    """Close an async SDK client's connection pool (with any SDK version from 0.6 on)."""
    transport = _transports.pop(client, None)
    if transport is not None:
        await transport.aclose()
    elif _SDK_CAN_CLOSE:
        await client.close()


def make_http(host: str | None = None, timeouts: Timeouts | None = None) -> httpx.Client:
    """A plain HTTP client for the requests the SDK has no method for; same URL, timeouts and auth."""
    url = resolve_host(host)
    headers = {"Accept": "application/json"}
    api_key = os.environ.get("OLLAMA_API_KEY")
    if api_key:  # what the SDK sends too; basic auth, when given, replaces it
        headers["Authorization"] = f"Bearer {api_key}"
    return httpx.Client(
        base_url=url,
        timeout=(timeouts or Timeouts.from_env()).to_httpx(),
        auth=_auth(url),
        headers=headers,
        follow_redirects=True,
    )


def request(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request; an error status raises `ollama.ResponseError` as the SDK's own calls do, so that
    `call()` maps both the same way."""
    response = http.request(method, path, **kwargs)
    if response.status_code >= 400:
        raise ollama.ResponseError(response.text, response.status_code)
    return response


@contextlib.contextmanager
def ollama_errors(host: str, model: str = "") -> Iterator[None]:
    """Translate whatever the SDK, httpx or pydantic raise in the block into `ingest.errors` types
    (the one translation point, used by `call` and `stream`; like httpx's `map_httpcore_exceptions`)."""
    try:
        yield
    except SDK_ERRORS as exc:
        raise map_error(exc, host, model) from None


# What the SDK can raise: its ResponseError, the built-in ConnectionError of plain calls, any httpx
# error (streamed calls and timeouts come through unwrapped), pydantic's for a malformed request.
SDK_ERRORS = (ollama.ResponseError, ConnectionError, httpx.HTTPError, pydantic.ValidationError)


def map_error(exc: BaseException, host: str, model: str = "", action: str = "") -> RagError:
    """Translate an SDK / httpx / pydantic exception into the project's error tree."""
    if isinstance(exc, RagError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return OllamaTimeout(
            f"Ollama at {host} did not answer in time ({type(exc).__name__})",
            fix="the model may still be loading: retry, or raise the read timeout with RAG_READ_TIMEOUT=SECONDS",
            host=host,
            phase=_TIMEOUT_PHASES.get(type(exc), "read"),
        )
    # RemoteProtocolError: the server closed the connection without answering (it died mid-request).
    if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.NetworkError, httpx.RemoteProtocolError)):
        return OllamaUnreachable(
            f"Ollama is not reachable at {host}", fix="start it (`ollama serve`) or set OLLAMA_HOST", host=host
        )
    if isinstance(exc, ollama.ResponseError):
        return _response_error(exc, host, model, action)
    if isinstance(exc, pydantic.ValidationError):
        return OllamaError(f"invalid request to Ollama at {host}: {exc.errors()[0].get('msg')}", host=host)
    if isinstance(exc, httpx.HTTPError):
        return OllamaError(f"HTTP error talking to Ollama at {host}: {exc}", fix="check OLLAMA_HOST", host=host)
    raise exc


def _response_error(exc: ollama.ResponseError, host: str, model: str, action: str) -> OllamaError:
    text = _error_text(exc.error)
    status = exc.status_code
    if status == -1:
        return StreamError(
            f"Ollama at {host} reported an error mid-stream: {text}", fix="retry, or check the server log", host=host
        )
    if status == 404 and text.startswith("404 page not found"):
        # the route itself is missing: an older Ollama (or not Ollama at all) answers
        return OllamaResponseError(
            f"Ollama at {host} has no such endpoint (404 page not found)",
            fix="upgrade Ollama, or check that OLLAMA_HOST points at an Ollama server",
            host=host,
            status=404,
        )
    if status == 404 and "not found" in text:
        name = model or _quoted_name(text)
        return ModelNotFound(
            f"model {name} is not available on {host}", fix=f"run `rag models pull {name}`", host=host, model=name
        )
    if status == 400 and "does not support" in text:
        name = model or _quoted_name(text)
        what = text.rsplit("does not support", 1)[1].strip() or action or "this"
        return ModelCapabilityError(
            f"model {name} does not support {what}",
            fix=f"pick a model that does (`rag models show {name}` lists its capabilities)",
            host=host,
            model=name,
        )
    if status in (401, 403):
        return _auth_error(host, status)
    if status == 503:
        return ServerBusy(
            f"Ollama at {host} is busy (503: {text})",
            fix="retry later, or raise OLLAMA_MAX_QUEUE on the server",
            host=host,
        )
    return OllamaResponseError(f"Ollama at {host} answered {status}: {text or 'no message'}", host=host, status=status)


_TIMEOUT_PHASES: dict[type, str] = {
    httpx.ConnectTimeout: "connect",
    httpx.PoolTimeout: "pool",
    httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write",
}


def _auth_error(host: str, status: int) -> OllamaAuthError:
    has_credentials = host in _credentials
    if status == 401:
        what = "asks for credentials" if not has_credentials else "refused the credentials"
        fix = (
            "set OLLAMA_HOST=https://USER:PASSWORD@HOST (or --host) with the proxy's user and password"
            if not has_credentials
            else "check the user and password in OLLAMA_HOST=https://USER:PASSWORD@HOST (or --host)"
        )
    else:  # 403: a proxy that denies this user, or Ollama's own check of the Host header
        what = "refused access (403 Forbidden)"
        fix = (
            "check the user in OLLAMA_HOST=https://USER:PASSWORD@HOST; if no proxy is in front, "
            "Ollama rejects the Host header: connect to it by a local name or IP"
        )
    return OllamaAuthError(f"Ollama at {host} {what} ({status})", fix=fix, host=host, status=status)


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


def _retryable(err: RagError, retry_read_timeouts: bool) -> bool:
    # A read timeout means the server took the request and is (maybe still) working on it: sending it
    # again queues a second copy behind the first and multiplies the wait, so it is not retried unless
    # asked. A connect or pool timeout never reached the server.
    if isinstance(err, OllamaTimeout):
        return retry_read_timeouts or err.phase in ("connect", "pool")
    if isinstance(err, (OllamaUnreachable, ServerBusy)):
        return True
    return isinstance(err, OllamaResponseError) and err.status >= 500


def _backoff(attempt: int) -> float:
    # Exponential with "equal jitter": half fixed, half random, so clients that failed together do
    # not retry together.
    delay = RETRY_BASE_DELAY * (2**attempt)
    return delay / 2 + random.uniform(0, delay / 2)


def _wait_before_retry(err: RagError, attempt: int, retries: int, started: float, deadline: float,
                       retry_read_timeouts: bool) -> bool:
    """Sleep before the next attempt and return True, or return False when no retry is due."""
    if attempt >= retries or not _retryable(err, retry_read_timeouts):
        return False
    delay = _backoff(attempt)
    if time.monotonic() - started + delay > deadline:
        return False
    time.sleep(delay)
    return True


def call(
    fn: Callable[..., T],
    *args: Any,
    host: str,
    retries: int = 0,
    deadline: float = DEFAULT_RETRY_DEADLINE,
    retry_read_timeouts: bool = False,
    **kwargs: Any,
) -> T:
    """Run one plain SDK call ``fn(*args, **kwargs)``; map its errors; retry connection errors,
    5xx and 503 with jittered backoff, at most ``retries`` times and never after ``deadline`` seconds.
    The model named in error messages is ``kwargs["model"]`` or the first positional string argument."""
    model = str(kwargs.get("model") or next((a for a in args if isinstance(a, str)), ""))
    attempt, started = 0, time.monotonic()
    while True:
        try:
            with ollama_errors(host, model):
                return fn(*args, **kwargs)
        except OllamaError as err:
            if not _wait_before_retry(err, attempt, retries, started, deadline, retry_read_timeouts):
                raise
            attempt += 1


def stream(
    open_stream: Callable[[], Iterator[T]],
    *,
    host: str,
    model: str = "",
    retries: int = 0,
    deadline: float = DEFAULT_RETRY_DEADLINE,
    retry_read_timeouts: bool = False,
) -> Iterator[T]:
    """Iterate a streamed SDK call, mapping errors raised lazily on ``next()``.

    Retries (for 503/connection errors) happen only before the first item arrives: after that the
    caller has already seen output and a silent restart would duplicate it.
    """
    attempt, started = 0, time.monotonic()
    while True:
        is_started = False
        try:
            with ollama_errors(host, model):
                for item in open_stream():
                    is_started = True
                    yield item
            return
        except OllamaError as err:
            if is_started or not _wait_before_retry(err, attempt, retries, started, deadline, retry_read_timeouts):
                raise
            attempt += 1
