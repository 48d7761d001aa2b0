"""Indexing a folder against the bundled server: sync rules, fingerprint, fallbacks, failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import IndexSettings
from ingest.errors import IndexMismatch, OllamaUnreachable
from ingest.indexer import index_folder
from ingest.state import IndexState
from ingest.store import Store

EN = """# Ollama embeddings

## The embed endpoint

The /api/embed endpoint takes a list of inputs and returns unit vectors. Batches keep requests few.

## Context length

Inputs longer than the context are cut silently. Set num_ctx on every chat request.
"""
ZH = """# 检索增强生成

检索增强生成（RAG）先从文档中检索相关段落，再让模型根据这些段落回答问题。

与微调不同，检索增强生成不需要重新训练模型。文档更新后，只需重新建立索引。
"""


def make_folder(root: Path) -> Path:
    docs = root / "docs"
    (docs / "zh").mkdir(parents=True)
    (docs / "ollama.md").write_text(EN, encoding="utf-8")
    (docs / "zh" / "rag.md").write_text(ZH, encoding="utf-8")
    (docs / "notes.txt").write_text("Chroma keeps vectors on disk.\n\nIt uses cosine distance here.\n")
    return docs


def embed_inputs(server) -> list[str]:
    """Every text the server was asked to embed, on either endpoint."""
    texts: list[str] = []
    for req in server.requests:
        body = req.json or {}
        if req.path == "/api/embed":
            inp = body.get("input")
            texts.extend([inp] if isinstance(inp, str) else inp or [])
        elif req.path == "/api/embeddings":
            texts.append(body.get("prompt", ""))
    return texts


def embed_calls(server) -> int:
    return sum(1 for r in server.requests if r.path in ("/api/embed", "/api/embeddings"))


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr("ingest.ollama_calls.RETRY_BASE_DELAY", 0.01)


@pytest.fixture
def settings(ollama_server, tmp_path) -> IndexSettings:
    return IndexSettings.resolve(host=ollama_server.url, db=tmp_path / "db")


def test_first_run_indexes_every_file_with_metadata(ollama_server, settings, tmp_path):
    docs = make_folder(tmp_path)
    report = index_folder(docs, settings)
    assert sorted(report.added) == ["notes.txt", "ollama.md", "zh/rag.md"]
    assert report.chunks > 0 and report.embed_requests == embed_calls(ollama_server) >= 1
    store = Store.open(settings.db, settings.collection)
    assert store.count() == report.chunks
    ids = recorded_ids(settings, "ollama.md")
    rows = store.get(ids)
    assert {r.source for r in rows} == {"ollama.md"}
    assert any("Ollama embeddings > Context length" == r.heading for r in rows)
    fp = store.fingerprint()
    assert fp["embed_model"] == "nomic-embed-text" and fp["dimension"] == 768
    assert fp["document_prefix"] == "search_document: " and fp["query_prefix"] == "search_query: "


def test_nomic_chunks_carry_the_document_prefix(ollama_server, settings, tmp_path):
    index_folder(make_folder(tmp_path), settings)
    texts = embed_inputs(ollama_server)
    assert texts and all(t.startswith("search_document: ") for t in texts)


def test_prefix_override_and_models_without_prefix(ollama_server, tmp_path):
    docs = make_folder(tmp_path)
    custom = IndexSettings.resolve(host=ollama_server.url, db=tmp_path / "a", document_prefix="passage: ")
    index_folder(docs, custom)
    assert all(t.startswith("passage: ") for t in embed_inputs(ollama_server))
    ollama_server.clear_requests()
    minilm = IndexSettings.resolve(host=ollama_server.url, db=tmp_path / "b", embed_model="all-minilm")
    index_folder(docs, minilm)
    assert not any(t.startswith("search_") for t in embed_inputs(ollama_server))


def test_second_run_makes_no_embedding_request(ollama_server, settings, tmp_path):
    docs = make_folder(tmp_path)
    index_folder(docs, settings)
    ollama_server.clear_requests()
    report = index_folder(docs, settings)
    assert report.embed_requests == 0 and embed_calls(ollama_server) == 0
    assert sorted(report.unchanged) == ["notes.txt", "ollama.md", "zh/rag.md"]
    assert report.added == report.updated == report.removed == []


def test_editing_one_file_reembeds_only_it_and_drops_its_old_chunks(ollama_server, settings, tmp_path):
    docs = make_folder(tmp_path)
    index_folder(docs, settings)
    old_ids = set(recorded_ids(settings, "notes.txt"))
    ollama_server.clear_requests()
    (docs / "notes.txt").write_text("Chroma stores embeddings in SQLite and an HNSW index.\n")
    report = index_folder(docs, settings)
    assert report.updated == ["notes.txt"]
    assert sorted(report.unchanged) == ["ollama.md", "zh/rag.md"]
    texts = embed_inputs(ollama_server)
    assert texts and all("HNSW" in t for t in texts)
    store = Store.open(settings.db, settings.collection)
    assert store.get(sorted(old_ids)) == []
    new_ids = recorded_ids(settings, "notes.txt")
    assert [r.text for r in store.get(list(new_ids))] == ["Chroma stores embeddings in SQLite and an HNSW index."]


def test_touching_a_file_without_changing_it_costs_nothing(ollama_server, settings, tmp_path):
    docs = make_folder(tmp_path)
    index_folder(docs, settings)
    ollama_server.clear_requests()
    (docs / "notes.txt").write_text((docs / "notes.txt").read_text())  # new mtime, same bytes
    report = index_folder(docs, settings)
    assert embed_calls(ollama_server) == 0 and "notes.txt" in report.unchanged


def test_deleting_a_file_removes_its_chunks(ollama_server, settings, tmp_path):
    docs = make_folder(tmp_path)
    first = index_folder(docs, settings)
    ids = list(recorded_ids(settings, "zh/rag.md"))
    (docs / "zh" / "rag.md").unlink()
    report = index_folder(docs, settings)
    assert report.removed == ["zh/rag.md"]
    store = Store.open(settings.db, settings.collection)
    assert store.get(ids) == [] and store.count() == first.chunks - len(ids)
    assert "zh/rag.md" not in recorded_files(settings)


def test_bad_files_are_skipped_with_reasons_and_the_rest_indexed(ollama_server, settings, tmp_path):
    docs = make_folder(tmp_path)
    (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<\ngarbage")
    (docs / "empty.txt").write_text("")
    report = index_folder(docs, settings)
    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {"image.png", "broken.pdf", "empty.txt"}
    assert all(reasons.values())
    assert sorted(report.added) == ["notes.txt", "ollama.md", "zh/rag.md"]


def test_a_file_that_breaks_keeps_its_old_chunks(ollama_server, settings, tmp_path):
    docs = make_folder(tmp_path)
    index_folder(docs, settings)
    ids = list(recorded_ids(settings, "notes.txt"))
    (docs / "notes.txt").write_bytes(b"\x00\x01\x02 binary now" * 50)
    report = index_folder(docs, settings)
    assert [s.path for s in report.skipped] == ["notes.txt"]
    assert len(Store.open(settings.db, settings.collection).get(ids)) == len(ids)


def test_old_server_falls_back_to_legacy_endpoint_with_unit_vectors(ollama_server_factory, tmp_path):
    server = ollama_server_factory(old_server=True)
    settings = IndexSettings.resolve(host=server.url, db=tmp_path / "db")
    report = index_folder(make_folder(tmp_path), settings)
    assert report.chunks > 0
    paths = [r.path for r in server.requests if r.path.startswith("/api/embed")]
    assert paths[0] == "/api/embed" and set(paths[1:]) == {"/api/embeddings"}
    store = Store.open(settings.db, settings.collection)
    assert store.fingerprint()["endpoint"] == "api/embeddings"
    rows = store.get(list(recorded_ids(settings, "ollama.md")),
                     with_embeddings=True)
    for row in rows:
        assert abs(float((row.embedding**2).sum()) - 1.0) < 1e-4


def test_requests_hold_at_most_batch_size_inputs_split_evenly(ollama_server, tmp_path):
    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(70):
        (docs / f"note{i:02}.txt").write_text(f"Note number {i} is about topic {i * 7}.\n")
    settings = IndexSettings.resolve(host=ollama_server.url, db=tmp_path / "db", batch_size=32)
    report = index_folder(docs, settings)
    sizes = [len(r.json["input"]) for r in ollama_server.requests if r.path == "/api/embed"]
    # 70 inputs, at most 32 per request, two slots: two rounds of two even requests, not 32+32+6.
    assert report.chunks == 70 and sum(sizes) == 70 and len(sizes) == 4 and max(sizes) - min(sizes) <= 2


def test_mixing_embedding_models_is_refused_until_rebuild(ollama_server, settings, tmp_path):
    docs = make_folder(tmp_path)
    index_folder(docs, settings)
    other = IndexSettings.resolve(host=ollama_server.url, db=settings.db, embed_model="all-minilm")
    with pytest.raises(IndexMismatch) as err:
        index_folder(docs, other)
    message = str(err.value)
    assert "nomic-embed-text" in message and "all-minilm" in message and "--rebuild" in message
    report = index_folder(docs, other, rebuild=True)
    assert len(report.added) == 3
    assert Store.open(settings.db, settings.collection).fingerprint()["dimension"] == 384


def test_changing_chunk_size_is_refused(ollama_server, settings, tmp_path):
    docs = make_folder(tmp_path)
    index_folder(docs, settings)
    resized = IndexSettings.resolve(host=ollama_server.url, db=settings.db, chunk_tokens=128)
    with pytest.raises(IndexMismatch, match="chunk"):
        index_folder(docs, resized)


def test_chunks_fit_a_small_embedding_model(ollama_server, tmp_path):
    docs = tmp_path / "long"
    docs.mkdir()
    (docs / "long.txt").write_text(" ".join(f"word{i}" for i in range(3000)) + "\n" + "长文本测试。" * 400)
    settings = IndexSettings.resolve(host=ollama_server.url, db=tmp_path / "db", embed_model="all-minilm")
    index_folder(docs, settings)
    store = Store.open(settings.db, settings.collection)
    ids = list(recorded_ids(settings, "long.txt"))
    assert max(r.tokens for r in store.get(ids)) <= 256 * 0.7


def test_transient_server_errors_are_retried(ollama_server_factory, tmp_path):
    server = ollama_server_factory(busy_every=2)
    settings = IndexSettings.resolve(host=server.url, db=tmp_path / "db", batch_size=2)
    report = index_folder(make_folder(tmp_path), settings)
    assert len(report.added) == 3
    assert any(r.status == 503 for r in server.requests)


def test_server_down_is_a_clear_error_and_loses_nothing(ollama_server, settings, tmp_path):
    docs = make_folder(tmp_path)
    index_folder(docs, settings)
    (docs / "new.md").write_text("A brand new file about keep_alive.\n")
    down = IndexSettings.resolve(host="http://127.0.0.1:9", db=settings.db)
    with pytest.raises(OllamaUnreachable, match="not reachable at http://127.0.0.1:9"):
        index_folder(docs, down)
    assert recorded_files(settings) == ["notes.txt", "ollama.md", "zh/rag.md"]
    assert Store.open(settings.db, settings.collection).count() > 0


def test_a_run_cut_short_resumes_without_redoing_stored_files(ollama_server_factory, tmp_path):
    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(12):
        (docs / f"f{i:02}.txt").write_text(f"File {i} talks about subject {i}.\n")
    # 1 /api/show, then one request per file; the buffer flushes every 4 files
    dying = ollama_server_factory(exit_after=8)
    settings = IndexSettings.resolve(host=dying.url, db=tmp_path / "db", batch_size=1, parallel=1)
    with pytest.raises(OllamaUnreachable):
        index_folder(docs, settings)
    done = set(recorded_files(settings))
    assert 0 < len(done) < 12
    fresh = ollama_server_factory()
    resumed = IndexSettings.resolve(host=fresh.url, db=settings.db, batch_size=1)
    report = index_folder(docs, resumed)
    assert set(report.added) == {f"f{i:02}.txt" for i in range(12)} - done
    assert Store.open(settings.db, settings.collection).count() == 12


def test_indexing_another_folder_into_the_same_collection_is_refused(ollama_server, settings, tmp_path):
    index_folder(make_folder(tmp_path), settings)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("something else")
    with pytest.raises(IndexMismatch, match="--collection"):
        index_folder(other, settings)


def test_an_outdated_lexical_index_is_rebuilt_from_the_store_without_embedding(ollama_server, settings, tmp_path):
    import sqlite3

    from ingest.state import state_path
    from rag.config import Settings
    from rag.retrieve import Retriever

    docs = make_folder(tmp_path)
    first = index_folder(docs, settings)
    path = state_path(settings.db, settings.collection)
    conn = sqlite3.connect(path)  # as if written by older term rules: unstemmed postings, version 0
    conn.execute("UPDATE postings SET term = term || '_old'")
    conn.execute("PRAGMA user_version = 0")
    conn.commit()
    conn.close()
    with Retriever.open(Settings.resolve(index=settings)) as retriever:
        assert retriever.lexical is None  # the read path does not trust it: dense only until re-indexed
    ollama_server.clear_requests()
    report = index_folder(docs, settings)
    assert embed_calls(ollama_server) == 0 and report.chunks == 0
    assert any("rebuilt the index state" in w.reason for w in report.warnings)
    state = IndexState.open(settings.db, settings.collection)
    assert not state.lexical.outdated and state.lexical.count() == first.chunks
    assert state.lexical.search("embeddings endpoint", 3) and state.lexical.search("检索增强", 3)
    state.close()
    assert index_folder(docs, settings).warnings == []  # rebuilt once, not on every run


def test_a_deleted_state_file_is_rebuilt_from_the_store_without_embedding(ollama_server, settings, tmp_path):
    from ingest.state import state_path

    docs = make_folder(tmp_path)
    first = index_folder(docs, settings)
    for suffix in ("", "-wal", "-shm"):
        Path(str(state_path(settings.db, settings.collection)) + suffix).unlink(missing_ok=True)
    ollama_server.clear_requests()
    report = index_folder(docs, settings)
    assert embed_calls(ollama_server) == 0 and len(report.warnings) == 1
    assert sorted(report.unchanged) == ["notes.txt", "ollama.md", "zh/rag.md"]
    state = IndexState.open(settings.db, settings.collection)
    assert state.lexical.count() == first.chunks and state.lexical.search("cosine distance", 3)
    state.close()


def recorded_ids(settings, source: str) -> list[str]:
    """The chunk ids the index state records for one file."""
    state = IndexState.open(settings.db, settings.collection, create=False)
    try:
        return sorted(state.chunk_ids(source))
    finally:
        state.close()


def recorded_files(settings) -> list[str]:
    """The files the index state holds chunks of."""
    state = IndexState.open(settings.db, settings.collection, create=False)
    try:
        return state.indexed_sources()
    finally:
        state.close()


def test_parsing_in_a_process_pool_indexes_the_same_chunks_as_one_process(ollama_server, tmp_path, monkeypatch):
    import ingest.parsing as parsing

    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(40):  # past POOL_MIN_FILES
        (docs / f"note{i:02}.md").write_text(f"# Note {i}\n\nTopic {i * 7} is covered here.\n\n## More\n\n向量检索 {i}\n")
    pooled = []
    original = parsing._pooled
    monkeypatch.setattr(parsing, "_pooled", lambda jobs, w: pooled.append(w) or original(jobs, w))
    ids = {}
    for workers in (2, 1):
        settings = IndexSettings.resolve(host=ollama_server.url, db=tmp_path / f"db{workers}", workers=workers)
        report = index_folder(docs, settings)
        assert len(report.added) == 40 and not report.warnings and not report.skipped
        ids[workers] = sorted(IndexState.open(settings.db, settings.collection, create=False).chunk_ids())
    assert pooled == [2]  # the first run parsed in two worker processes, the second in this one
    assert ids[2] == ids[1] and len(ids[1]) >= 40


def test_text_files_are_parsed_without_a_pool_unless_asked(ollama_server, tmp_path, monkeypatch):
    import ingest.parsing as parsing

    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(40):
        (docs / f"note{i:02}.txt").write_text(f"Note {i}.\n")
    monkeypatch.setattr(parsing, "_pooled", lambda jobs, w: pytest.fail("pool started"))
    report = index_folder(docs, IndexSettings.resolve(host=ollama_server.url, db=tmp_path / "db"))
    assert len(report.added) == 40


def raw_collection(settings):
    """The Chroma collection itself, as another Chroma client would see it."""
    return Store.open(settings.db, settings.collection)._col


def test_chunk_texts_stay_out_of_chromas_unused_full_text_index(ollama_server, settings, tmp_path):
    """Chroma indexes every document for full-text search, which rag never asks for (its BM25 is its own):
    the texts go into each chunk's metadata, and read back the same."""
    docs = make_folder(tmp_path)
    index_folder(docs, settings)
    stored = raw_collection(settings).get(include=["documents", "metadatas"])
    assert stored["ids"] and all(doc is None for doc in stored["documents"])
    by_id = dict(zip(stored["ids"], stored["metadatas"], strict=True))
    rows = Store.open(settings.db, settings.collection).get(recorded_ids(settings, "zh/rag.md"))
    assert rows and all(r.text and r.text == by_id[r.id]["text"] for r in rows)
    assert any("检索增强生成" in r.text for r in rows)


def test_an_index_holding_texts_as_chroma_documents_is_still_read_updated_and_rebuilt(
    ollama_server, settings, tmp_path
):
    """An index written by an earlier version (texts as Chroma documents) answers and updates as before."""
    from ingest.state import state_path
    from ingest.verify import reinsert
    from rag import RAG

    docs = make_folder(tmp_path)
    index_folder(docs, settings)
    col = raw_collection(settings)
    old = col.get(include=["embeddings", "metadatas"])
    col.delete(ids=old["ids"])
    col.add(ids=old["ids"], embeddings=old["embeddings"],
            documents=[meta["text"] for meta in old["metadatas"]],
            metadatas=[{k: v for k, v in meta.items() if k != "text"} for meta in old["metadatas"]])

    def texts(source: str) -> list[str]:
        return [r.text for r in Store.open(settings.db, settings.collection).get(recorded_ids(settings, source))]

    assert any("cosine distance" in t for t in texts("notes.txt"))
    # `rag verify --repair` re-adds chunks HNSW cannot reach: their texts go with them.
    assert reinsert(Store.open(settings.db, settings.collection), recorded_ids(settings, "ollama.md")) > 0
    assert any("Context length" in t for t in texts("ollama.md"))
    with RAG(db=str(settings.db), collection=settings.collection, host=ollama_server.url) as kb:
        assert any("检索增强生成" in hit.text for hit in kb.search("检索增强生成是什么", mode="bm25"))

    (docs / "notes.txt").write_text("Chroma keeps vectors on disk, in HNSW graphs.\n")
    report = index_folder(docs, settings)
    assert report.updated == ["notes.txt"]
    assert texts("notes.txt") == ["Chroma keeps vectors on disk, in HNSW graphs."]
    assert any("Context length" in t for t in texts("ollama.md"))

    for suffix in ("", "-wal", "-shm"):  # the state rebuilt from the store reads both layouts
        Path(str(state_path(settings.db, settings.collection)) + suffix).unlink(missing_ok=True)
    index_folder(docs, settings)
    state = IndexState.open(settings.db, settings.collection)
    assert state.lexical.search("HNSW graphs", 1) and state.lexical.search("unit vectors", 1)
    state.close()


def assert_copy_matches_store(settings) -> int:
    """Every committed chunk has a copy in the state (text, page, heading, vector) equal to the store's,
    and no copy is left of a chunk no longer owned; returns the number of chunks."""
    import sqlite3

    import numpy as np

    from ingest.state import state_path

    state = IndexState.open(settings.db, settings.collection)
    try:
        ids = state.chunk_ids()
        copies = state.passages(ids)
        assert state.passages_ready
    finally:
        state.close()
    stored = {r.id: r for r in Store.open(settings.db, settings.collection).get(ids, with_embeddings=True)}
    assert ids and set(copies) == set(ids) == set(stored)
    for cid, copy in copies.items():
        row = stored[cid]
        assert (copy.text, copy.page, copy.heading, copy.source, copy.kind) == (
            row.text, row.page, row.heading, row.source, row.kind)
        # Chroma hands back its cosine space's normalised copy of a unit vector: equal to the last bit or so.
        assert np.allclose(copy.embedding, row.embedding, rtol=0, atol=1e-6)
    with sqlite3.connect(state_path(settings.db, settings.collection)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0] == len(ids)
    return len(ids)


def test_the_state_keeps_a_copy_of_every_committed_chunk_in_step_with_the_store(ollama_server, settings, tmp_path):
    """Searches read texts and vectors from the state's copy: it follows every add, edit and delete."""
    docs = make_folder(tmp_path)
    first = index_folder(docs, settings)
    assert assert_copy_matches_store(settings) == first.chunks
    (docs / "notes.txt").write_text("Chroma keeps vectors on disk, in HNSW graphs.\n")
    (docs / "zh" / "rag.md").unlink()
    (docs / "new.md").write_text("# 新文件\n\n向量存储在本地磁盘上。\n", encoding="utf-8")
    report = index_folder(docs, settings)
    assert report.updated == ["notes.txt"] and report.added == ["new.md"] and report.removed == ["zh/rag.md"]
    assert assert_copy_matches_store(settings) == Store.open(settings.db, settings.collection).count()


def test_a_state_from_before_the_copy_is_searched_through_chroma_then_rebuilt_without_embedding(
    ollama_server, settings, tmp_path
):
    import sqlite3

    from ingest.state import PASSAGES_READY, state_path
    from rag import RAG

    docs = make_folder(tmp_path)
    first = index_folder(docs, settings)
    questions = ["How are inputs past the context handled?", "检索增强生成和微调有什么不同", "cosine distance"]

    def answers() -> list[list[tuple[str, str, float]]]:
        with RAG(db=str(settings.db), collection=settings.collection, host=ollama_server.url) as kb:
            return [[(h.source, h.text, h.score) for h in kb.search(q, mode=mode)]
                    for q in questions for mode in ("dense", "bm25", "hybrid")]

    before = answers()
    with sqlite3.connect(state_path(settings.db, settings.collection)) as conn:  # as an earlier version wrote it
        conn.execute("DROP TABLE passages")
        conn.execute("DELETE FROM stats WHERE key = ?", (PASSAGES_READY,))
    assert answers() == before  # read from Chroma meanwhile
    ollama_server.clear_requests()
    report = index_folder(docs, settings)
    assert embed_calls(ollama_server) == 0 and report.chunks == 0
    assert any("rebuilt the index state" in w.reason for w in report.warnings)
    assert assert_copy_matches_store(settings) == first.chunks
    assert answers() == before
    assert index_folder(docs, settings).warnings == []  # rebuilt once, not on every run


def test_searches_read_candidates_from_the_state_not_from_chroma(ollama_server, settings, tmp_path, monkeypatch):
    """Chroma is asked for the nearest ids only (a large index), or not at all (a small one, ranked
    exactly in memory): texts and vectors come from the state's copy."""
    import dataclasses

    from rag.config import Settings
    from rag.retrieve import Retriever

    index_folder(make_folder(tmp_path), settings)
    with Retriever.open(Settings.resolve(index=settings)) as small:
        real_query = small.store.query
        asked: list[bool] = []

        def query(*args, **kwargs):
            asked.append(kwargs.get("with_embeddings", True) or kwargs.get("with_text", True))
            return real_query(*args, **kwargs)

        def get(*args, **kwargs):
            raise AssertionError("a search read chunks from Chroma")

        monkeypatch.setattr(small.store, "query", query)
        monkeypatch.setattr(small.store, "get", get)
        for retriever, chroma_queries in ((dataclasses.replace(small, exact=None), [False, False]), (small, [])):
            asked.clear()
            for mode in ("dense", "bm25", "hybrid"):
                hits = retriever.search("检索增强生成需要重新训练模型吗", mode=mode)
                assert hits and hits[0].source == "zh/rag.md" and "重新训练" in hits[0].text
            assert asked == chroma_queries
