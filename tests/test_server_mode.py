"""The same index in both homes: the embedded store (`--db`) and a Chroma server (`--chroma URL`, a real
`chroma run`). Every reader needs only the server: a second client with an empty `--db` searches,
asks, verifies and resumes indexing. The writer lock holds across clients."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from chroma_server import ChromaServer

from ingest.errors import IndexLocked, StoreError
from ingest.indexer import open_store
from ingest.lock import WriterLock
from ingest.store import HNSW, PREVIOUS_EF_SEARCH, _chroma_client
from rag.api import RAG

SAMPLE = Path(__file__).resolve().parent.parent / "sample_docs"


def copy_docs(dest: Path) -> Path:
    shutil.copytree(SAMPLE, dest)
    return dest


def kb_for(chroma: str | None, db: Path, host: str, collection: str) -> RAG:
    return RAG(db=db, collection=collection, host=host, chroma=chroma)


@pytest.fixture
def collection() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_index_sync_search_ask_verify(store_mode, ollama_server, tmp_path, collection):
    docs = copy_docs(tmp_path / "docs")
    with kb_for(store_mode, tmp_path / "db", ollama_server.url, collection) as kb:
        check_index_sync_search_ask_verify(kb, docs, store_mode)


def check_index_sync_search_ask_verify(kb: RAG, docs: Path, store_mode: str | None) -> None:
    first = kb.index(docs)
    assert len(first.added) == len(list(SAMPLE.iterdir())) and first.chunks > 0
    assert kb.verify().consistent
    for mode in ("dense", "bm25", "hybrid"):
        assert kb.search("How do I install Tidepool?", mode=mode)[0].source.startswith("tidepool")
    assert kb.search("检索增强生成和微调有什么区别？", mode="bm25")[0].source == "rag-vs-finetuning.zh.md"
    (docs / "team-handbook.txt").write_text("The quarterly offsite is in Lisbon this year.\n")
    (docs / "chroma-basics.md").unlink()
    second = kb.index(docs)
    assert second.updated == ["team-handbook.txt"] and second.removed == ["chroma-basics.md"]
    assert kb.search("Where is the quarterly offsite?", k=1)[0].source == "team-handbook.txt"
    assert all(h.source != "chroma-basics.md" for h in kb.search("chroma collection delete", k=10))
    answer = kb.ask("Where is the quarterly offsite?")
    assert "Lisbon" in answer.answer and answer.citations[0].source == "team-handbook.txt"
    assert kb.verify().consistent
    status = kb.status()
    assert status.files == len(list(docs.iterdir())) and status.chroma == store_mode


def test_a_second_client_with_an_empty_cache_reads_everything_from_the_server(chroma_server, ollama_server,
                                                                               tmp_path, collection):
    docs = copy_docs(tmp_path / "docs")
    with kb_for(chroma_server.url, tmp_path / "laptop-a", ollama_server.url, collection) as writer, \
            kb_for(chroma_server.url, tmp_path / "laptop-b", ollama_server.url, collection) as reader:
        writer.index(docs)
        for mode in ("dense", "bm25", "hybrid"):
            hits = reader.search("Tidepool install steps", mode=mode)
            assert hits and hits == writer.search("Tidepool install steps", mode=mode)
        assert reader.verify().consistent
        assert "Tidepool" in reader.ask("How do I install Tidepool?").answer
        # The second machine resumes indexing its own copy of the folder: nothing is re-embedded.
        other_copy = copy_docs(tmp_path / "other-copy")
        ollama_server.clear_requests()
        report = reader.index(other_copy)
        assert report.embed_requests == 0 and len(report.unchanged) == len(list(SAMPLE.iterdir()))
        # A write from one client is seen by the other's next search.
        (docs / "new.md").write_text("# Parking\n\nVisitors park in bay 7 behind the warehouse.\n")
        writer.index(docs)
    with kb_for(chroma_server.url, tmp_path / "laptop-c", ollama_server.url, collection) as fresh:
        assert fresh.search("Where do visitors park?", k=1, mode="bm25")[0].source == "new.md"


def test_hybrid_results_match_the_embedded_store(chroma_server, ollama_server, tmp_path, collection):
    docs = copy_docs(tmp_path / "docs")
    with kb_for(None, tmp_path / "embedded", ollama_server.url, collection) as embedded, \
            kb_for(chroma_server.url, tmp_path / "cache", ollama_server.url, collection) as server:
        embedded.index(docs)
        server.index(docs)
        for question in ("How do I install Tidepool?", "什么是检索增强生成？", "num_ctx truncation", "onboarding week one"):
            assert ([(h.id, h.score) for h in embedded.search(question)]
                    == [(h.id, h.score) for h in server.search(question)])


def search_width(chroma: str | None, db: Path, collection: str) -> int:
    return _chroma_client(db, chroma).get_collection(collection).configuration["hnsw"]["ef_search"]


def test_the_next_index_run_narrows_the_previous_search_width_and_keeps_a_chosen_one(store_mode, ollama_server,
                                                                                     tmp_path, collection):
    """Collections made while rag searched at ef_search 400 get today's width from the next `rag index`,
    with nothing re-embedded; a width someone set by hand stays."""
    docs = copy_docs(tmp_path / "docs")
    db = tmp_path / "db"
    with kb_for(store_mode, db, ollama_server.url, collection) as kb:
        kb.index(docs)
    assert search_width(store_mode, db, collection) == HNSW["ef_search"] == 200
    for before, after in ((PREVIOUS_EF_SEARCH, 200), (300, 300)):
        _chroma_client(db, store_mode).get_collection(collection).modify(configuration={"hnsw": {"ef_search": before}})
        with kb_for(store_mode, db, ollama_server.url, collection) as kb:
            report = kb.index(docs)
            assert report.embed_requests == 0 and len(report.unchanged) == len(list(SAMPLE.iterdir()))
            assert kb.search("How do I install Tidepool?", k=1)[0].source.startswith("tidepool")
        assert search_width(store_mode, db, collection) == after


def test_the_writer_lock_holds_across_clients_of_one_server(chroma_server, ollama_server, tmp_path, collection):
    docs = copy_docs(tmp_path / "docs")
    a = kb_for(chroma_server.url, tmp_path / "a", ollama_server.url, collection)
    a.index(docs)
    store = open_store(a.index_settings)
    held = WriterLock(store, wait=0)
    held.acquire()
    b = RAG(db=tmp_path / "b", collection=collection, host=ollama_server.url, chroma=chroma_server.url, lock_wait=0.3)
    try:
        with pytest.raises(IndexLocked, match=f"is being indexed by process {os.getpid()}"):
            b.index(docs)
        proc = subprocess.run(
            [sys.executable, "-m", "rag", "index", str(docs), "--db", str(tmp_path / "c"), "--collection", collection,
             "--host", ollama_server.url, "--chroma", chroma_server.url, "--wait", "0"],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 5 and "is being indexed by process" in proc.stderr
    finally:
        held.release()
        store.close()
    assert b.index(docs).embed_requests == 0
    a.close()
    b.close()


def test_the_server_going_away_mid_index_is_a_clear_error_and_resumes(ollama_server_factory, tmp_path, collection):
    chroma = ChromaServer(tmp_path / "srv").start()
    slow = ollama_server_factory(embed_ms_per_request=300)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"n{i:02}.md").write_text(f"# Note {i}\n\nUnique word zq{i:02}x. " + "Some text. " * 40)
    cmd = [sys.executable, "-m", "rag", "index", str(docs), "--db", str(tmp_path / "cache"), "--collection",
           collection, "--host", slow.url, "--chroma", chroma.url, "--batch-size", "2", "--parallel", "1", "--json"]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while sum(r.path == "/api/embed" for r in slow.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)  # a few batches are committed: now the server goes away mid-run
        chroma.stop()
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 3, (out, err)
        assert err.startswith("error: the Chroma server at") and "chroma run" in err and err.count("\n") == 1
        chroma = ChromaServer(tmp_path / "srv", chroma.port).start()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert len(report["added"]) + len(report["unchanged"]) == 30
        with kb_for(chroma.url, tmp_path / "cache", slow.url, collection) as kb:
            assert kb.verify().consistent
            assert kb.search("zq17x", mode="bm25", k=1)[0].source == "n17.md"
    finally:
        chroma.stop()


def test_chroma_token_is_sent_as_the_chroma_token_header(tmp_path, monkeypatch, ollama_server):
    import http.server
    import threading

    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.headers.get("X-Chroma-Token"))
            self.send_response(500)
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("RAG_CHROMA_TOKEN", "s3cret-token")
    kb = RAG(db=tmp_path / "c", host=ollama_server.url, chroma=f"http://127.0.0.1:{srv.server_address[1]}")
    with pytest.raises(StoreError):  # the stand-in answers 500: the point is what it was sent
        kb.status()
    srv.shutdown()
    srv.server_close()
    assert seen and all(token == "s3cret-token" for token in seen)
