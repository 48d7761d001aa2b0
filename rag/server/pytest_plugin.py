"""pytest fixtures for the bundled Ollama-protocol server (registered as the `rag_ollama` plugin).

    def test_embed(ollama_server):
        client = ollama.Client(host=ollama_server.url)
        ...

    def test_retry(ollama_server_factory):
        srv = ollama_server_factory(fail_every=2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rag.server.http import OllamaServer


@pytest.fixture
def ollama_server() -> Iterator[OllamaServer]:
    """A fresh hash-engine server for one test."""
    with OllamaServer("hash") as server:
        yield server


@pytest.fixture
def ollama_server_factory() -> Iterator[Callable[..., OllamaServer]]:
    """Build started servers with any `OllamaServer` arguments (faults); all are stopped at teardown."""
    servers: list[OllamaServer] = []

    def make(engine: Any = "hash", **kwargs: Any) -> OllamaServer:
        server = OllamaServer(engine, **kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
