"""Shared test setup: every test runs with its own HOME and no inherited RAG_* / OLLAMA_* settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from chroma_server import ChromaServer


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point HOME at a temp dir and drop user settings that would leak into tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in list(os.environ):
        if name.startswith(("RAG_", "OLLAMA_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One real `chroma run` for the whole session (started on first use, stopped at the end)."""
    server = ChromaServer(tmp_path_factory.mktemp("chroma") / "data").start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "server"])
def store_mode(request: pytest.FixtureRequest) -> str | None:
    """Run a test against the embedded store and against a Chroma server: returns the Chroma URL or None."""
    if request.param == "embedded":
        return None
    server: ChromaServer = request.getfixturevalue("chroma_server")
    return server.url
