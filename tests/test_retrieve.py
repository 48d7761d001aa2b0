"""Retrieval: exact cosine, MMR diversity, per-file cap, RRF, filters; then end to end over an index."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from ingest.errors import ConfigError
from rag.retrieve import chroma_where, cosine, match_sources, mmr, normalize_kinds, rrf


def test_cosine_is_exact_and_scale_free() -> None:
    m = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    got = cosine(m, np.array([2.0, 0.0]))
    assert got == pytest.approx([1.0, 0.0, 2**-0.5], abs=1e-6)
    assert cosine(np.zeros((0, 2)), np.array([1.0, 0.0])).shape == (0,)


def test_mmr_with_lambda_one_is_plain_ranking() -> None:
    rel = np.array([0.9, 0.8, 0.7])
    emb = np.eye(3)
    assert mmr(rel, emb, 3, 1.0) == [0, 1, 2]


def test_mmr_skips_near_duplicates() -> None:
    # 0 and 1 are the same passage; 2 is different and only slightly less relevant.
    emb = np.array([[1.0, 0.0], [1.0, 0.001], [0.0, 1.0]])
    rel = np.array([0.90, 0.89, 0.80])
    assert mmr(rel, emb, 2, 1.0) == [0, 1]
    assert mmr(rel, emb, 2, 0.7) == [0, 2]


def test_mmr_per_file_cap() -> None:
    rel = np.array([0.9, 0.85, 0.8, 0.75, 0.5])
    emb = np.eye(5)
    groups = ["a.md", "a.md", "a.md", "a.md", "b.md"]
    assert mmr(rel, emb, 4, 1.0, groups=groups, cap=2) == [0, 1, 4]
    assert mmr(rel, emb, 3, 1.0, groups=groups, cap=3) == [0, 1, 2]


def test_mmr_edge_cases() -> None:
    assert mmr(np.array([]), np.zeros((0, 3)), 5, 0.5) == []
    assert mmr(np.array([0.3]), np.ones((1, 3)), 5, 0.5) == [0]


def test_rrf_rewards_agreement() -> None:
    fused = rrf([["a", "b", "c"], ["c", "a", "d"]], k=60)
    order = sorted(fused, key=lambda i: -fused[i])
    assert order[:2] == ["a", "c"]
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)


def test_match_sources_glob_and_folder() -> None:
    sources = ["guide.md", "docs/setup.md", "docs/deep/api.md", "manual.pdf", "zh/微调.md"]
    assert match_sources(sources, "*.pdf") == ["manual.pdf"]
    assert match_sources(sources, "docs/*.md") == ["docs/setup.md", "docs/deep/api.md"]
    assert match_sources(sources, "**/*.md") == ["guide.md", "docs/setup.md", "docs/deep/api.md", "zh/微调.md"]
    assert match_sources(sources, "docs") == ["docs/setup.md", "docs/deep/api.md"]
    assert match_sources(sources, "./zh/") == ["zh/微调.md"]
    assert match_sources(sources, "nothing/*") == []


def test_kinds_accept_extensions_and_reject_unknown() -> None:
    assert normalize_kinds(["PDF", ".md", "markdown"]) == ["markdown", "pdf"]
    assert normalize_kinds(None) is None
    with pytest.raises(ConfigError, match="unknown file type"):
        normalize_kinds(["docx"])


def test_chroma_where() -> None:
    assert chroma_where(None, None) is None
    assert chroma_where(["a.md"], None) == {"source": {"$in": ["a.md"]}}
    assert chroma_where(["a.md"], ["pdf"]) == {
        "$and": [{"source": {"$in": ["a.md"]}}, {"kind": {"$in": ["pdf"]}}]
    }


# -- end to end, against the bundled server --------------------------------------------------

import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402

from readpath import indexed_settings, requests_to  # noqa: E402

from ingest.state import state_path  # noqa: E402
from rag.retrieve import Retriever  # noqa: E402


@pytest.fixture(params=["exact", "hnsw"])
def retriever(request, ollama_server, tmp_path) -> Iterator[Retriever]:
    """The opened index, its dense candidates ranked exactly in memory (what a small index does) or
    found by Chroma's HNSW search (what a large one does)."""
    with Retriever.open(indexed_settings(ollama_server, tmp_path)) as opened:
        yield opened if request.param == "exact" else dataclasses.replace(opened, exact=None)


def test_query_embedded_with_the_index_query_prefix(ollama_server, retriever: Retriever) -> None:
    retriever.search("How long is the dishwasher warranty?")
    last = requests_to(ollama_server, "/api/embed")[-1]
    assert last["input"] == ["search_query: How long is the dishwasher warranty?"]
    assert last["model"] == retriever.store.fingerprint()["embed_model"]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_english_question_finds_the_pdf_page(retriever: Retriever, mode: str) -> None:
    hits = retriever.search("How long is the dishwasher warranty?", mode=mode)
    assert (hits[0].source, hits[0].page) == ("manual.pdf", 2)
    assert "two years" in hits[0].text


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_chinese_question_finds_the_chinese_file(retriever: Retriever, mode: str) -> None:
    assert retriever.search("微调需要什么计算资源？", mode=mode)[0].source == "zh/微调.md"
    assert retriever.search("检索增强生成需要重新训练模型吗？", mode=mode)[0].source == "zh/rag.md"


def test_scores_are_exact_cosines(retriever: Retriever) -> None:
    hits = retriever.search("espresso grind size", k=3, mode="dense")
    q = retriever.embedder.embed_query("espresso grind size")
    rows = {r.id: r for r in retriever.store.get([h.id for h in hits], with_embeddings=True)}
    for h in hits:
        assert h.score == pytest.approx(float(cosine(rows[h.id].embedding[None], q)[0]), abs=1e-4)


def test_per_file_cap(retriever: Retriever) -> None:
    hits = retriever.search("espresso shot grind dose yield time", k=5)
    assert sum(h.source == "espresso.md" for h in hits) == retriever.settings.per_file_cap == 3
    wider = Retriever(retriever.store, retriever.state, retriever.embedder, retriever.settings.with_(per_file_cap=5))
    assert sum(h.source == "espresso.md" for h in wider.search("espresso shot grind dose yield time", k=5)) == 5


def test_path_glob_and_type_filters(retriever: Retriever) -> None:
    q = "warranty receipt purchase"
    assert {h.source for h in retriever.search(q, where_glob="zh/*")} <= {"zh/rag.md", "zh/微调.md"}
    assert {h.source for h in retriever.search("微调", kinds=["pdf"])} <= {"manual.pdf"}
    assert retriever.search(q, where_glob="nothing/*") == []
    assert all(h.source == "guide.md" for h in retriever.search("roses", where_glob="guide.md"))


def test_off_topic_question_falls_below_the_floor(retriever: Retriever) -> None:
    assert retriever.search("What is the capital of France?") == []
    assert retriever.search("量子计算机的原理是什么？") == []
    assert retriever.search("When should I prune roses?")[0].source == "guide.md"


def test_a_lost_state_file_is_rebuilt_by_the_reader(retriever: Retriever) -> None:
    settings = retriever.settings
    retriever.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(state_path(settings.db, settings.collection)) + suffix).unlink(missing_ok=True)
    with Retriever.open(settings) as reopened:
        for mode in ("dense", "bm25", "hybrid"):
            assert reopened.search("How long is the dishwasher warranty?", mode=mode)[0].page == 2


def test_a_search_that_a_writers_commit_overlapped_is_run_again(retriever: Retriever, monkeypatch) -> None:
    """A writer commits while a search reads, and the chunks the search found are gone (from the state's
    copy and from Chroma) by the time it reads them: the search does not come back empty, it runs again
    on the new state."""
    import sqlite3

    real_passages, real_get = retriever.state.passages, retriever.store.get
    raced: list[bool] = []

    def passages_during_a_commit(ids):
        if not raced:
            raced.append(True)
            other = sqlite3.connect(retriever.state.path)  # the writer, in another connection
            other.execute("INSERT OR REPLACE INTO meta VALUES ('written_by_another_client', '1')")
            other.commit()
            other.close()
            return {}  # what it replaced is deleted
        raced.append(False)
        return real_passages(ids)

    monkeypatch.setattr(retriever.state, "passages", passages_during_a_commit)
    monkeypatch.setattr(retriever.store, "get", lambda ids, **kw: [] if raced[-1] else real_get(ids, **kw))
    hits = retriever.search("How long is the dishwasher warranty?", mode="bm25")
    assert raced and hits and (hits[0].source, hits[0].page) == ("manual.pdf", 2)
