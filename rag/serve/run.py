"""Running the app under uvicorn: in the foreground (`rag serve`) or on a background thread (tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from rag.serve.app import create_app
from rag.serve.state import ServeConfig

START_TIMEOUT = 20.0


def url_for(host: str, port: int) -> str:
    """The URL to open: IPv6 in brackets; a wildcard address opened as loopback."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one); OSError when the address is taken or invalid."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only for sockets that say TCP, and
    # with Nagle on, every small SSE event waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


def uvicorn_server(config: ServeConfig, *, log_level: str = "warning") -> uvicorn.Server:
    app = create_app(config)
    # One event loop, plain asyncio and h11: predictable, and nothing to compile.
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, loop="asyncio", http="h11", lifespan="on",
                                         timeout_graceful_shutdown=3))


class RunningServer:
    """A `rag serve` on a background thread; `.url` ends with a slash."""

    def __init__(self, config: ServeConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.url = url_for(host, self.port)
        self.server = uvicorn_server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name=f"rag-serve-{self.port}", daemon=True)

    def start(self) -> RunningServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("rag serve did not start — see the log above")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()


@contextmanager
def running(config: ServeConfig, host: str = "127.0.0.1", port: int = 0) -> Iterator[RunningServer]:
    """``with running(ServeConfig(db=...)) as srv: httpx.get(srv.url + "api/status")``."""
    server = RunningServer(config, host, port).start()
    try:
        yield server
    finally:
        server.stop()
