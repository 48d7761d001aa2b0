"""Several Ollama hosts: embedding spread over them, a host dying mid-run, chat fail-over, the role split."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from ingest.config import IndexSettings
from ingest.indexer import index_folder, open_store
from ingest.state import IndexState
from ingest.verify import verify
from rag.api import RAG


def folder(tmp_path: Path, n: int) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(n):
        (docs / f"n{i:03}.md").write_text(f"# Note {i}\n\nUnique word qx{i:03}z. " + "Text about lakes. " * 30)
    return docs


def test_embedding_is_spread_over_every_host(ollama_server_factory, tmp_path):
    a = ollama_server_factory(embed_ms_per_request=30)
    b = ollama_server_factory(embed_ms_per_request=30)
    settings = IndexSettings.resolve(host=f"{a.url},{b.url}", db=tmp_path / "db", batch_size=2)
    report = index_folder(folder(tmp_path, 40), settings)
    assert set(report.hosts) == {a.url, b.url}
    assert all(n > 0 for n in report.hosts.values()) and sum(report.hosts.values()) == report.embed_requests
    assert len(report.added) == 40


def test_a_host_killed_mid_run_loses_nothing(ollama_server_factory, tmp_path):
    a = ollama_server_factory(embed_ms_per_request=60)
    b = ollama_server_factory(embed_ms_per_request=60)
    docs = folder(tmp_path, 60)
    settings = IndexSettings.resolve(host=f"{a.url},{b.url}", db=tmp_path / "db", batch_size=2)

    def kill_b_after_some_work() -> None:
        deadline = time.monotonic() + 60
        while sum(r.path == "/api/embed" for r in b.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        b.stop()

    killer = threading.Thread(target=kill_b_after_some_work)
    killer.start()
    report = index_folder(docs, settings)
    killer.join()
    assert len(report.added) == 60
    assert report.hosts[b.url] >= 3 and report.hosts[a.url] > report.hosts[b.url]
    assert any(w.path == b.url and "set aside" in w.reason for w in report.warnings)
    store = open_store(settings)
    state = IndexState.open(settings.db, settings.collection, create=False)
    try:
        assert verify(store, state, reachability=False).consistent
        assert state.lexical.search("qx059z", 1)
    finally:
        state.close()
        store.close()


def test_cli_json_reports_requests_per_host(ollama_server_factory, tmp_path):
    a, b = ollama_server_factory(), ollama_server_factory()
    docs = folder(tmp_path, 12)
    proc = subprocess.run([sys.executable, "-m", "rag", "index", str(docs), "--db", str(tmp_path / "db"), "--host",
                           f"{a.url},{b.url}", "--batch-size", "1", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    hosts = json.loads(proc.stdout)["hosts"]
    assert set(hosts) == {a.url, b.url} and all(n > 0 for n in hosts.values())


def test_chat_fails_over_to_the_next_host_and_roles_split(ollama_server_factory, tmp_path, monkeypatch):
    embedder, dead, chat = ollama_server_factory(), ollama_server_factory(), ollama_server_factory()
    dead_url = dead.url
    dead.stop()
    docs = folder(tmp_path, 3)
    monkeypatch.setenv("RAG_EMBED_HOSTS", embedder.url)
    monkeypatch.setenv("RAG_CHAT_HOSTS", f"{dead_url},{chat.url}")
    with RAG(db=tmp_path / "db") as kb:
        kb.index(docs)
        answer = kb.ask("Which note has the unique word qx002z?")
    assert answer.citations and answer.citations[0].source == "n002.md"
    assert any(r.path == "/api/chat" for r in chat.requests)
    assert not any(r.path == "/api/chat" for r in embedder.requests)
    assert not any(r.path == "/api/embed" for r in chat.requests)
