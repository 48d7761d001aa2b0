"""`make demo` (`python -m rag.dev.demo`): it always does the main job, with or without an Ollama."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.dev import demo


def run_demo(tmp_path: Path, ollama_host: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLLAMA_HOST": ollama_host}
    env.pop("RAG_EMBED_MODEL", None)
    env.pop("RAG_CHAT_MODEL", None)
    return subprocess.run([sys.executable, "-m", "rag.dev.demo", "--db", str(tmp_path / "demo-db")],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)


def test_demo_uses_an_ollama_that_answers(ollama_server, tmp_path: Path) -> None:
    proc = run_demo(tmp_path, ollama_server.url)
    assert proc.returncode == 0, proc.stderr
    assert f"using the Ollama server at {ollama_server.url}" in proc.stderr
    assert "indexed: 10 added" in proc.stderr
    for question in demo.QUESTIONS:
        assert f"Q: {question}" in proc.stdout
    assert proc.stdout.count("Sources:") == 2
    asked = [r.json["model"] for r in ollama_server.requests if r.path == "/api/chat"]
    assert asked and set(asked) == {"qwen2.5:7b"}


@pytest.mark.real_models
def test_demo_starts_the_bundled_local_engine_when_no_ollama_answers(tmp_path: Path) -> None:
    proc = run_demo(tmp_path, "http://127.0.0.1:9")
    assert proc.returncode == 0, proc.stderr
    assert "starting the bundled Ollama-protocol server with the local engine" in proc.stderr
    assert "bundled server stopped" in proc.stderr
    assert "tidepool-admin-manual.pdf, page 3" in proc.stdout  # the backup question's source
    assert "Traceback" not in proc.stderr
