"""The contract suite: the same tests against the bundled server (default) and a real Ollama.

    make test-live                                   # OLLAMA_LIVE_HOST defaults to http://127.0.0.1:11434
    OLLAMA_LIVE_HOST=http://gpu-box:11434 OLLAMA_LIVE_CHAT_MODEL=llama3.2:1b make test-live

Against a real server the models named by OLLAMA_LIVE_CHAT_MODEL (default qwen2.5:7b),
OLLAMA_LIVE_EMBED_MODEL (all-minilm) and OLLAMA_LIVE_THINK_MODEL (qwen3:0.6b) must be pulled first.
Tests marked `model_output` depend on what the model writes and check its shape, never its words.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import ollama
import pytest

from rag.server import OllamaServer

# Read at import: the suite-wide autouse fixture removes OLLAMA_* variables from each test's environment.
LIVE_HOST = os.environ.get("OLLAMA_LIVE_HOST", "").strip()
CATALOG_MODELS = {"chat": "qwen2.5:7b", "embed": "all-minilm", "think": "qwen3:0.6b"}
MODELS = {
    role: (os.environ.get(f"OLLAMA_LIVE_{role.upper()}_MODEL") or default) if LIVE_HOST else default
    for role, default in CATALOG_MODELS.items()
}
TIMEOUT = 600.0 if LIVE_HOST else 30.0  # a real server may load a model first


@pytest.fixture(scope="session")
def host() -> Iterator[str]:
    """The server under test: OLLAMA_LIVE_HOST, else a bundled hash-engine server for the session."""
    if LIVE_HOST:
        yield LIVE_HOST
        return
    with OllamaServer("hash") as server:
        yield server.url


@pytest.fixture(scope="session")
def installed(host: str) -> set[str]:
    """The installed model names; a live server missing a model the suite uses fails here, naming it."""
    with httpx.Client(base_url=host, timeout=TIMEOUT) as raw:
        names = {m["name"] for m in raw.get("/api/tags").json()["models"]}
    missing = [name for name in MODELS.values() if name not in names and f"{name}:latest" not in names]
    if missing:
        pulls = " && ".join(f"ollama pull {name}" for name in missing)
        pytest.fail(f"the server at {host} lacks {', '.join(missing)}: run `{pulls}` first, or choose other "
                    "models with OLLAMA_LIVE_CHAT_MODEL / OLLAMA_LIVE_EMBED_MODEL / OLLAMA_LIVE_THINK_MODEL")
    return names


@pytest.fixture
def chat_model(installed: set[str]) -> str:
    """A chat model without thinking."""
    return MODELS["chat"]


@pytest.fixture
def embed_model(installed: set[str]) -> str:
    """An embedding model."""
    return MODELS["embed"]


@pytest.fixture
def think_model(installed: set[str]) -> str:
    """A thinking-capable chat model."""
    return MODELS["think"]


@pytest.fixture
def sdk(host: str) -> Iterator[ollama.Client]:
    """The official SDK pointed at the server under test."""
    client = ollama.Client(host=host, timeout=TIMEOUT)
    yield client
    client.close()


@pytest.fixture
def http(host: str) -> Iterator[httpx.Client]:
    """Raw HTTP to the server under test."""
    with httpx.Client(base_url=host, timeout=TIMEOUT) as raw:
        yield raw
