"""BM25 search that reads rare terms first (MaxScore) and keeps per-term document frequencies:
the same ranking as scoring every posting, on English and Chinese text, with filters, after edits."""

from __future__ import annotations

import math
import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

import ingest.lexical
from ingest.lexical import K1, B, LexicalIndex, index_terms, query_terms
from ingest.records import Chunk
from ingest.state import IndexState, state_path

ENGLISH = ("data model vector search index chunk token window embedding answer question file folder "
           "statin vitamin cancer diet zebra quasar nebula").split()
CHINESE = ["检索", "增强", "生成", "模型", "向量", "文档", "问题", "回答", "熊猫", "银河"]


def chunk(cid: str, text: str, source: str, kind: str = "markdown") -> Chunk:
    return Chunk(id=cid, text=text, source=source, page=None, heading="", start=0, end=len(text), tokens=0,
                 kind=kind)


def corpus(n: int, seed: int = 7) -> list[Chunk]:
    """``n`` chunks: a few words in every chunk, the rest Zipf-like, a quarter Chinese; some words rare."""
    rng = random.Random(seed)
    chunks = []
    for i in range(n):
        if i % 4 == 3:
            words = [rng.choice(CHINESE[:8]) for _ in range(rng.randint(4, 20))]
            if i % 97 == 0:
                words.append("熊猫")
            text = "".join(words)
        else:
            words = ["data"] + [ENGLISH[min(int(rng.expovariate(0.25)), 16)] for _ in range(rng.randint(3, 30))]
            words += [rare for rare, every in (("zebra", 89), ("quasar", 53), ("nebula", 61)) if i % every == 0]
            text = " ".join(words)
        chunks.append(chunk(f"c{i:05}", text, f"f{i % 40}.md", "pdf" if i % 5 == 0 else "markdown"))
    return chunks


def reference(chunks: list[Chunk], query: str, k: int, sources: set[str] | None = None) -> list[tuple[str, float]]:
    """BM25 the plain way: every chunk scored on every query term."""
    counts = {c.id: Counter(index_terms(c.text)) for c in chunks}
    n = len(chunks)
    avgdl = max(sum(sum(tf.values()) for tf in counts.values()) / n, 1.0)
    qterms = query_terms(query)
    df = {t: sum(1 for tf in counts.values() if t in tf) for t in qterms}
    scores: dict[str, float] = {}
    for c in chunks:
        if sources is not None and c.source not in sources:
            continue
        tf, length = counts[c.id], sum(counts[c.id].values())
        for t, w in qterms.items():
            if tf[t]:
                idf = math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5))
                norm = tf[t] * (K1 + 1) / (tf[t] + K1 * (1 - B + B * length / avgdl))
                scores[c.id] = scores.get(c.id, 0.0) + w * idf * norm
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [cid for cid, _ in got] == [cid for cid, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9)


QUERIES = ["zebra data", "data model", "statin vitamin cancer", "quasar nebula zebra", "检索增强生成",
           "熊猫 模型", "向量 data 文档", "nothing-here", "data"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[LexicalIndex, list[Chunk]]:
    chunks = corpus(1500)
    idx = LexicalIndex.open(tmp_path_factory.mktemp("lex") / "db", "docs")
    idx.add(chunks)
    idx.commit()
    return idx, chunks


@pytest.mark.parametrize("query", QUERIES)
def test_ranking_equals_scoring_every_posting(built: tuple[LexicalIndex, list[Chunk]], query: str) -> None:
    idx, chunks = built
    for k in (1, 5, 30):
        same(idx.search(query, k), reference(chunks, query, k))


@pytest.mark.parametrize("query", ["zebra data", "熊猫 模型", "data model"])
def test_source_filter_ranks_like_scoring_every_posting(built: tuple[LexicalIndex, list[Chunk]], query: str) -> None:
    idx, chunks = built
    allowed = {"f3.md", "f17.md"}
    same(idx.search(query, 10, sources=allowed), reference(chunks, query, 10, allowed))


def test_a_rare_term_ranks_exactly_without_reading_the_common_terms_postings(
    built: tuple[LexicalIndex, list[Chunk]], monkeypatch: pytest.MonkeyPatch
) -> None:
    idx, chunks = built
    # "data" is in every English chunk (over 1,000), "zebra" in 13, "熊猫" in 4: with a budget far below
    # the common terms' postings, the rare terms' chunks still come out exactly as full scoring ranks them.
    monkeypatch.setattr(ingest.lexical, "MAX_POSTINGS", 100)
    for query, k in (("zebra data", 10), ("zebra quasar diet data", 10), ("熊猫 模型 文档", 3)):
        same(idx.search(query, k), reference(chunks, query, k))


def test_a_budget_bounds_a_query_of_only_common_terms(
    built: tuple[LexicalIndex, list[Chunk]], monkeypatch: pytest.MonkeyPatch
) -> None:
    idx, chunks = built
    monkeypatch.setattr(ingest.lexical, "MAX_POSTINGS", 100)
    monkeypatch.setattr(ingest.lexical, "MAX_LOOKUPS", 100)
    got = idx.search("data model", 10)
    # Ranked among the candidates read: real chunks holding the terms, with their exact full scores.
    want = dict(reference(chunks, "data model", len(chunks)))
    assert len(got) == 10
    for cid, score in got:
        assert score == pytest.approx(want[cid], rel=1e-9)
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


@pytest.mark.parametrize("query", ["data model vector", "检索增强生成模型"])
def test_past_the_lookup_budget_only_fully_scored_candidates_rank(
    built: tuple[LexicalIndex, list[Chunk]], monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    idx, chunks = built
    # Few postings read, and fewer lookups than the candidates need (lookups go 256 candidates at a
    # time, and a k past that reaches the ones not looked up): the candidates left without their unread
    # terms' scores are dropped, never ranked on a partial score.
    monkeypatch.setattr(ingest.lexical, "MAX_POSTINGS", 300)
    monkeypatch.setattr(ingest.lexical, "MAX_LOOKUPS", 10)
    got = idx.search(query, 290)
    want = dict(reference(chunks, query, len(chunks)))
    assert got
    for cid, score in got:
        assert score == pytest.approx(want[cid], rel=1e-9)
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


def _frequencies(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    conn = sqlite3.connect(path)
    try:
        kept = dict(conn.execute("SELECT term, df FROM term_df").fetchall())
        counted = dict(conn.execute("SELECT term, COUNT(*) FROM postings GROUP BY term").fetchall())
    finally:
        conn.close()
    return kept, counted


def test_document_frequencies_follow_adds_replacements_and_deletes(tmp_path: Path) -> None:
    chunks = corpus(300, seed=3)
    idx = LexicalIndex.open(tmp_path / "db", "docs")
    idx.add(chunks)
    idx.add([chunk("c00001", "zebra 熊猫 brand new text", "f1.md")])  # replaces an id
    idx.delete([c.id for c in chunks[100:180]] + ["never-added"])
    idx.commit()
    kept, counted = _frequencies(idx.path)  # type: ignore[arg-type]
    assert kept == counted
    assert kept["zebra"] >= 1 and "熊猫" in kept
    remaining = [c for c in chunks if c.id != "c00001" and not 100 <= int(c.id[1:]) < 180]
    remaining.append(chunk("c00001", "zebra 熊猫 brand new text", "f1.md"))
    same(idx.search("zebra 熊猫 data", 10), reference(remaining, "zebra 熊猫 data", 10))
    idx.reset()
    idx.commit()
    assert _frequencies(idx.path) == ({}, {})  # type: ignore[arg-type]
    idx.close()


def test_a_state_file_from_before_the_frequency_table_is_counted_on_open(tmp_path: Path) -> None:
    chunks = corpus(400, seed=5)
    state = IndexState.open(tmp_path, "docs")
    state.lexical.add(chunks)
    state.commit()
    state.close()
    path = state_path(tmp_path, "docs")
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE term_df")
    conn.execute("DELETE FROM stats WHERE key = ?", (ingest.lexical.DF_READY,))
    conn.commit()
    conn.close()
    state = IndexState.open(tmp_path, "docs", create=False)
    kept, counted = _frequencies(path)
    assert kept == counted and kept
    same(state.lexical.search("zebra data 检索", 10), reference(chunks, "zebra data 检索", 10))
    state.close()


def test_until_the_frequencies_are_counted_a_search_counts_postings(tmp_path: Path) -> None:
    # The count on open is skipped while a writer holds the file; searches must rank the same meanwhile.
    chunks = corpus(400, seed=9)
    idx = LexicalIndex.open(tmp_path / "db", "docs")
    idx.add(chunks)
    idx.commit()
    conn = sqlite3.connect(idx.path)  # type: ignore[arg-type]
    conn.execute("DELETE FROM term_df")
    conn.execute("DELETE FROM stats WHERE key = ?", (ingest.lexical.DF_READY,))
    conn.commit()
    conn.close()
    same(idx.search("zebra data 检索", 10), reference(chunks, "zebra data 检索", 10))
    idx.close()
