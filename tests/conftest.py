"""Shared test setup: every test runs with its own HOME and no inherited RAG_* / OLLAMA_* settings."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point HOME at a temp dir and drop user settings that would leak into tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in list(os.environ):
        if name.startswith(("RAG_", "OLLAMA_")):
            monkeypatch.delenv(name)
