"""The stdlib HTTP plumbing of the bundled server: a threading server that tracks its connections,
and a keep-alive HTTP/1.1 handler writing Content-Length bodies and chunked NDJSON / SSE streams."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rag.server.native import VERSION
from rag.server.protocol import (
    ApiError,
    JsonReply,
    RecordedRequest,
    Reply,
    StreamReply,
    TextReply,
    error_reply,
    openai_error,
)

if TYPE_CHECKING:
    from rag.server.http import OllamaServer

POLL_INTERVAL = 0.05  # how fast stop() takes effect


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    app: OllamaServer

    def get_request(self) -> tuple[socket.socket, Any]:
        if self.app.exiting:  # the listener is shut down: back off instead of spinning on accept errors
            time.sleep(POLL_INTERVAL)
        return super().get_request()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.app._lock:
            self.app._connections[request] = False
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.app._lock:
            self.app._connections.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-reply are normal here (tests, exit_after); stay quiet.
        if self.app.verbose:
            super().handle_error(request, client_address)


class HTTPServer6(HTTPServer):
    address_family = socket.AF_INET6


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every small reply waits 40 ms for a delayed ACK
    server_version = f"rag-ollama/{VERSION}"
    sys_version = ""
    server: HTTPServer

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        self._handle()

    do_HEAD = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.app.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        app = self.server.app
        raw = self._read_body()
        number = app._next_number()
        if number is None:  # the server is exiting: hang up like a dead process would
            self.close_connection = True
            return
        app._set_busy(self.request, True)
        path = urlsplit(self.path).path
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            self._meta = (self.command, path, _json_or_none(raw), headers)
            if not host_allowed(str(self.server.server_address[0]), headers.get("host", "")):
                self._send(JsonReply(None, 403), False)  # Ollama's bare 403: no body at all
                return
            self._send(app.dispatch(self.command, path, raw, number), path.startswith("/v1/"))
        except (ConnectionError, OSError):
            self.close_connection = True
        finally:
            app._set_busy(self.request, False)
            if app.exit_after and number >= app.exit_after:
                self.close_connection = True
                app._exit_now()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _start(self, status: int, headers: dict[str, str]) -> None:
        method, path, body, request_headers = self._meta
        self.server.app._record(RecordedRequest(method, path, body, request_headers, status))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.server.app.exiting:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

    def _send(self, reply: Reply, openai: bool) -> None:
        if isinstance(reply, StreamReply):
            self._send_stream(reply, openai)
            return
        headers: dict[str, str] = {}
        if isinstance(reply, TextReply):
            data = reply.text.encode()
            headers["Content-Type"] = "text/plain; charset=utf-8"
        elif reply.body is None:
            data = b""
        else:
            data = json.dumps(reply.body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json; charset=utf-8"
        headers["Content-Length"] = str(len(data))
        self._start(reply.status, headers)
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    def _send_stream(self, reply: StreamReply, openai: bool) -> None:
        items = iter(reply.items)
        try:
            first = next(items, None)
        except ApiError as exc:  # nothing sent yet: a proper status, as Ollama does
            self._send(error_reply(exc.status, exc.message, openai), openai)
            return
        kind = "text/event-stream" if reply.sse else "application/x-ndjson"
        self._start(200, {"Content-Type": kind, "Transfer-Encoding": "chunked", **reply.headers})
        try:
            item = first
            while item is not None:
                self._chunk(self._encode(item, reply.sse))
                item = next(items, None)
        except ApiError as exc:
            self._chunk(self._encode(openai_error(exc.status, exc.message) if openai else
                                     {"error": exc.message}, reply.sse))
        except Exception as exc:  # noqa: BLE001 - reported in-band like Ollama's final error line
            self._chunk(self._encode({"error": f"{type(exc).__name__}: {exc}"}, reply.sse))
        if reply.sse:
            self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def _encode(item: Any, sse: bool) -> bytes:
        text = json.dumps(item, ensure_ascii=False)
        return f"data: {text}\n\n".encode() if sse else (text + "\n").encode()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


LOCAL_SUFFIXES = (".localhost", ".local", ".internal")


def host_allowed(bound: str, host_header: str) -> bool:
    """Ollama's allowedHostsMiddleware: a server bound to loopback answers only requests whose `Host` is
    local, private, or a `*.localhost|*.local|*.internal` name (this stops DNS rebinding; it also
    bites reverse proxies and tunnels)."""
    try:
        if not ipaddress.ip_address(bound).is_loopback:
            return True
    except ValueError:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:11434
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(host)
        return address.is_loopback or address.is_private or address.is_unspecified
    except ValueError:
        pass
    return host in ("", "localhost", socket.gethostname().lower()) or host.endswith(LOCAL_SUFFIXES)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
