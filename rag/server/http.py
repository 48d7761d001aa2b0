"""The HTTP side of the bundled server: `OllamaServer`, `serve()`, routing, recording and faults.

Built on the stdlib `ThreadingHTTPServer` speaking HTTP/1.1 keep-alive with Content-Length bodies and
chunked NDJSON / SSE streams, which is what httpx (the `ollama` SDK's transport) expects.
"""

from __future__ import annotations

import functools
import json
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from rag.server import native, openai_routes
from rag.server.engine import DEFAULT_NUM_CTX, Engine
from rag.server.handler import POLL_INTERVAL, Handler, HTTPServer, HTTPServer6
from rag.server.protocol import ApiError, RecordedRequest, Reply, Request, TextReply, error_reply
from rag.server.registry import Registry

Route = Callable[["OllamaServer", Request], Reply]
BUSY = "server busy, please try again.  maximum pending requests exceeded"
INJECTED = "injected failure"
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")

ROUTES: dict[str, dict[str, Route]] = {
    "/": {"GET": native.root, "HEAD": native.root},
    "/api/version": {"GET": native.version, "HEAD": native.version},
    "/api/status": {"GET": native.status},
    "/api/tags": {"GET": native.tags, "HEAD": native.tags},
    "/api/ps": {"GET": native.ps},
    "/api/show": {"POST": native.show},
    "/api/pull": {"POST": native.pull},
    "/api/create": {"POST": native.create},
    "/api/push": {"POST": native.push},
    "/api/copy": {"POST": native.copy},
    "/api/delete": {"DELETE": native.delete},
    "/api/embed": {"POST": native.embed},
    "/api/embeddings": {"POST": native.embeddings},
    "/api/generate": {"POST": native.generate},
    "/api/chat": {"POST": native.chat},
    "/v1/chat/completions": {"POST": openai_routes.chat_completions},
    "/v1/completions": {"POST": openai_routes.completions},
    "/v1/embeddings": {"POST": openai_routes.embeddings},
    "/v1/models": {"GET": openai_routes.models},
}


class EngineUnavailable(RuntimeError):
    """The requested engine cannot be built here (e.g. `folder-rag[local]` is not installed)."""


def make_engine(engine: Engine | str) -> Engine:
    """An engine from a name (`hash`, `local`) or the engine itself."""
    if not isinstance(engine, str):
        return engine
    if engine == "hash":
        from rag.server.hash_engine import HashEngine

        return HashEngine()
    if engine == "local":
        try:
            from rag.server.local_engine import LocalEngine

            return LocalEngine()
        except ImportError as exc:
            hint = "" if "pip install" in str(exc) else "; install them with: pip install 'folder-rag[local]'"
            raise EngineUnavailable(f"the local engine is unavailable: {exc}{hint}") from exc
    raise ValueError(f"unknown engine {engine!r}: use 'hash', 'local' or an Engine instance")


class OllamaServer:
    """An Ollama-protocol server on a background thread. Fault attributes may be changed at any time."""

    def __init__(
        self,
        engine: Engine | str = "hash",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        fail_every: int = 0,
        busy_every: int = 0,
        exit_after: int = 0,
        old_server: bool = False,
        stream_error_after: int | None = None,
        gpu: bool = False,
        num_ctx: int = DEFAULT_NUM_CTX,
        verbose: bool = False,
        embed_ms_per_input: float = 0.0,
        embed_ms_per_request: float = 0.0,
    ) -> None:
        self.engine = make_engine(engine)
        self.registry = Registry(self.engine.models(), tuple(getattr(self.engine, "library", ())))
        self.host, self.port = host, port
        self.latency, self.fail_every, self.busy_every = latency, fail_every, busy_every
        self.exit_after, self.old_server, self.stream_error_after = exit_after, old_server, stream_error_after
        self.gpu, self.num_ctx, self.verbose = gpu, num_ctx, verbose
        # Embedding latency for benchmarks: slept in /api/embed, /api/embeddings and /v1/embeddings.
        self.embed_ms_per_input, self.embed_ms_per_request = embed_ms_per_input, embed_ms_per_request
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._count = 0
        self._exiting = False
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[socket.socket, bool] = {}  # socket -> busy

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. `http://127.0.0.1:54321`."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self) -> OllamaServer:
        """Bind (port 0 picks a free port) and serve on a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        server_class = HTTPServer6 if ":" in self.host else HTTPServer
        self._httpd = server_class((self.host, self.port), Handler)
        self._httpd.app = self
        self.port = self._httpd.server_address[1]
        serve = functools.partial(self._httpd.serve_forever, poll_interval=POLL_INTERVAL)
        self._thread = threading.Thread(target=serve, name=f"ollama-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            self._close_connections(idle_only=False)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Block until stopped (Ctrl-C in the CLI, `exit_after`, or `stop()` from another thread)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.2)

    def __enter__(self) -> OllamaServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- recording -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests (the fault counters keep counting)."""
        with self._lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # -- request numbering and faults ------------------------------------------------------------

    def _next_number(self) -> int | None:
        with self._lock:
            if self._exiting:
                return None
            self._count += 1
            if self.exit_after and self._count >= self.exit_after:
                self._exiting = True
                self._refuse_new_connections()
            return self._count

    def _refuse_new_connections(self) -> None:
        # Shutting the listening socket down refuses connects at once, like a process that exited;
        # merely not calling accept() would leave new clients hanging in the backlog, then reset.
        if self._httpd is not None:
            try:
                self._httpd.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def exiting(self) -> bool:
        """True once `exit_after` requests have arrived."""
        return self._exiting

    def _exit_now(self) -> None:
        # shutdown() waits for serve_forever, so it must run off the handler thread.
        def close() -> None:
            httpd = self._httpd
            if httpd is not None:
                httpd.shutdown()
                httpd.server_close()
            self._close_connections(idle_only=True)

        threading.Thread(target=close, daemon=True).start()

    def _close_connections(self, idle_only: bool) -> None:
        with self._lock:
            doomed = [s for s, busy in self._connections.items() if not (busy and idle_only)]
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _set_busy(self, sock: socket.socket, busy: bool) -> None:
        with self._lock:
            if sock in self._connections:
                self._connections[sock] = busy

    def dispatch(self, method: str, path: str, raw: bytes, number: int) -> Reply:
        """Apply the faults, then route; every error becomes a reply."""
        openai = path.startswith("/v1/")
        if self.latency:
            time.sleep(self.latency)
        if self.fail_every and number % self.fail_every == 0:
            return error_reply(500, INJECTED, openai)
        if self.busy_every and number % self.busy_every == 0:
            return error_reply(503, BUSY, openai)
        routes = {} if self.old_server and path == "/api/embed" else ROUTES.get(path)
        if routes is None and path.startswith("/v1/models/"):
            routes = {"GET": openai_routes.model}
        if routes is None and path.startswith("/api/blobs/") and method in ("HEAD", "POST"):
            return native.blob(self, method, path.removeprefix("/api/blobs/"), raw)  # raw bytes, not JSON
        if not routes:
            return TextReply("404 page not found", 404)
        route = routes.get(method)
        if route is None:
            return TextReply("405 method not allowed", 405)
        try:
            body = _parse_body(raw) if method in BODY_METHODS else {}
            return route(self, Request(method, path, body))
        except ApiError as exc:
            return error_reply(exc.status, exc.message, openai)
        except Exception as exc:  # an engine bug must still answer like a server would
            return error_reply(500, f"{type(exc).__name__}: {exc}", openai)


def _parse_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise ApiError(400, "missing request body")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, _go_json_error(raw, exc)) from None
    if not isinstance(body, dict):
        kind = "array" if isinstance(body, list) else type(body).__name__
        raise ApiError(400, f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
    return body


def _go_json_error(raw: bytes, exc: Exception) -> str:
    position = getattr(exc, "pos", 0)
    text = raw.decode("utf-8", "replace")
    if position >= len(text.rstrip()):
        return "unexpected EOF"
    where = "looking for beginning of value" if position == 0 else "after top-level value"
    if position and "Expecting" in str(exc):
        where = "looking for beginning of object key string" if "property name" in str(exc) else "after value"
    return f"invalid character {text[position]!r} {where}"


def serve(engine: Engine | str = "hash", *, host: str = "127.0.0.1", port: int = 0, **faults: Any) -> OllamaServer:
    """Start a server (use as a context manager to stop it): `with serve(port=0) as srv: srv.url`."""
    return OllamaServer(engine, host=host, port=port, **faults).start()
