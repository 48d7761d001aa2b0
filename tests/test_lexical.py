"""BM25 lexical index: terms (English words, Han bigrams), scoring, filters, sync operations."""

from __future__ import annotations

import doctest
import sqlite3
from pathlib import Path

import pytest

import ingest.lexical
from ingest.errors import StoreError
from ingest.lexical import LexicalIndex, lexical_path, terms
from ingest.records import Chunk


def chunk(cid: str, text: str, source: str = "a.md", kind: str = "markdown") -> Chunk:
    return Chunk(id=cid, text=text, source=source, page=None, heading="", start=0, end=len(text), tokens=0,
                 kind=kind)


def test_doctests() -> None:
    assert doctest.testmod(ingest.lexical).failed == 0


def test_han_runs_become_bigrams_not_one_token() -> None:
    ts = terms("检索增强生成")
    assert "检索增强生成" not in ts
    assert ts == ["检索", "索增", "增强", "强生", "生成"]


def test_single_han_character_is_a_unigram_and_words_are_lowercased() -> None:
    assert terms("用 Python 写") == ["用", "python", "写"]


def test_full_width_latin_is_folded() -> None:
    assert terms("ＲＡＧ１２") == ["rag12"]


def test_stop_words_dropped() -> None:
    assert terms("What is the chunk size?") == ["chunk", "size"]


@pytest.fixture
def index(tmp_path: Path) -> LexicalIndex:
    idx = LexicalIndex.open(tmp_path / "db", "docs")
    idx.add(
        [
            chunk("en1", "Chunking splits documents into overlapping token windows.", "guide.md"),
            chunk("en2", "The embedding model turns text into vectors for similarity search.", "guide.md"),
            chunk("zh1", "微调是在预训练模型上继续训练，以适应特定任务。", "zh/微调.md"),
            chunk("zh2", "检索增强生成先检索相关文档，再让模型根据文档回答问题。", "zh/rag.md"),
            chunk("pdf1", "Page three of the manual describes the warranty terms.", "manual.pdf", "pdf"),
        ]
    )
    idx.commit()
    return idx


def test_file_lives_beside_the_store(tmp_path: Path, index: LexicalIndex) -> None:
    assert lexical_path(tmp_path / "db", "docs").is_file()
    assert index.count() == 5


def test_english_query_ranks_the_matching_chunk_first(index: LexicalIndex) -> None:
    hits = index.search("how does chunking split documents", 3)
    assert hits[0][0] == "en1"
    assert all(score > 0 for _, score in hits)


def test_chinese_query_matches_by_bigrams(index: LexicalIndex) -> None:
    assert index.search("什么是检索增强？", 3)[0][0] == "zh2"
    assert index.search("微调和预训练", 3)[0][0] == "zh1"


def test_no_matching_terms_gives_nothing(index: LexicalIndex) -> None:
    assert index.search("kubernetes", 5) == []
    assert index.search("", 5) == []


def test_filters_by_source_and_kind(index: LexicalIndex) -> None:
    assert [i for i, _ in index.search("manual warranty page", 5, kinds=["pdf"])] == ["pdf1"]
    assert index.search("manual warranty", 5, kinds=["markdown"]) == []
    assert index.search("模型", 5, sources=["zh/rag.md"])[0][0] == "zh2"
    assert index.search("模型", 5, sources=[]) == []


def test_bm25_prefers_rarer_terms_and_shorter_docs(tmp_path: Path) -> None:
    idx = LexicalIndex.open(tmp_path, "c")
    idx.add([
        chunk("short", "alpha beta"),
        chunk("long", "alpha beta " + "filler words here " * 20),
        chunk("common", "beta beta"),
    ])
    hits = dict(idx.search("alpha", 5))
    assert hits["short"] > hits["long"]
    assert "common" not in hits


def test_delete_and_replace_keep_totals_in_sync(tmp_path: Path, index: LexicalIndex) -> None:
    index.delete(["en1", "missing"])
    assert index.count() == 4
    assert index.search("chunking", 5) == []
    index.add([chunk("en2", "Chunking again, replaced text.", "guide.md")])  # same id: replaced
    assert index.count() == 4
    assert index.search("chunking", 5)[0][0] == "en2"
    index.commit()
    reopened = LexicalIndex.open(tmp_path / "db", "docs")
    assert reopened.count() == 4
    assert reopened.search("vectors similarity", 5) == []
    reopened.reset()
    assert reopened.count() == 0 and reopened.search("微调", 5) == []


def test_corpus_totals_are_stored_not_recomputed(tmp_path: Path, index: LexicalIndex) -> None:
    conn = sqlite3.connect(lexical_path(tmp_path / "db", "docs"))
    stats = dict(conn.execute("SELECT key, value FROM stats").fetchall())
    assert stats["n"] == 5 and stats["total_length"] > 0


def test_open_without_create_does_not_make_folders(tmp_path: Path) -> None:
    idx = LexicalIndex.open(tmp_path / "nowhere", "docs", create=False)
    assert idx.count() == 0 and idx.search("x", 3) == []
    assert not (tmp_path / "nowhere").exists()


def test_corrupt_file_is_a_store_error(tmp_path: Path) -> None:
    lexical_path(tmp_path, "docs").write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="rag index"):
        LexicalIndex.open(tmp_path, "docs")


def test_english_words_are_stemmed_so_plurals_match(tmp_path: Path) -> None:
    assert terms("Statins reduce studies") == ["statin", "reduc", "studi"]
    assert terms("第3章 running ＲＡＧ１２") == ["第", "3", "章", "run", "rag12"]
    idx = LexicalIndex.open(tmp_path, "c")
    idx.add([chunk("v", "Vitamin D deficiency."), chunk("o", "Other text entirely.")])
    assert [i for i, _ in idx.search("vitamins", 5)] == ["v"]


def test_new_file_carries_the_terms_version_and_is_current(tmp_path: Path) -> None:
    idx = LexicalIndex.open(tmp_path, "docs")
    assert not idx.outdated
    idx.close()
    conn = sqlite3.connect(lexical_path(tmp_path, "docs"))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == ingest.lexical.TERMS_VERSION
    conn.close()
    assert not LexicalIndex.open(tmp_path, "docs").outdated


def test_a_file_from_older_term_rules_is_reported_until_reset(tmp_path: Path, index: LexicalIndex) -> None:
    index.close()
    conn = sqlite3.connect(lexical_path(tmp_path / "db", "docs"))
    conn.execute("PRAGMA user_version = 0")  # what a file written before versioning reads as
    conn.commit()
    conn.close()
    old = LexicalIndex.open(tmp_path / "db", "docs")
    assert old.outdated
    assert LexicalIndex.open(tmp_path / "db", "docs", create=False).outdated
    old.reset()
    assert not old.outdated and old.count() == 0
    old.close()
    assert not LexicalIndex.open(tmp_path / "db", "docs").outdated


# -- Han unigrams and Traditional/Simplified folding (TERMS_VERSION 3) ----------------------------


@pytest.fixture
def water(tmp_path: Path) -> LexicalIndex:
    idx = LexicalIndex.open(tmp_path, "zh")
    idx.add([
        chunk("drink", "喝水很重要，每天八杯。", "health.md"),
        chunk("rag", "检索增强生成先检索相关文档。", "rag.md"),
        chunk("scattered", "成本增加，强度不够，生命周期短。", "cost.md"),
        chunk("trad", "資料庫每天凌晨兩點自動備份。", "ops.md"),
    ])
    return idx


def test_a_one_character_query_finds_it_inside_longer_text(water: LexicalIndex) -> None:
    assert [i for i, _ in water.search("水", 5)] == ["drink"]
    assert [i for i, _ in water.search("用 水", 5)] == ["drink"]  # a lone character inside a longer query


def test_multi_character_queries_still_match_by_bigrams(water: LexicalIndex) -> None:
    # "scattered" holds 增, 强, 生 and 成 but none of the bigrams 增强 / 强生 / 生成
    assert [i for i, _ in water.search("增强生成", 5)] == ["rag"]


def test_a_unigram_weight_lets_characters_match_where_bigrams_do_not(
    water: LexicalIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert water.search("重水", 5) == []  # no chunk has the bigram 重水
    monkeypatch.setattr(ingest.lexical, "UNIGRAM_WEIGHT", 0.5)
    assert ingest.lexical.query_terms("重水") == {"重水": 1.0, "重": 0.5, "水": 0.5}
    assert water.search("重水", 5)[0][0] == "drink"


def test_traditional_query_finds_simplified_text(water: LexicalIndex) -> None:
    assert terms("檢索") == terms("检索") == ["检索"]
    assert water.search("檢索增強", 5)[0][0] == "rag"


def test_simplified_query_finds_traditional_text(water: LexicalIndex) -> None:
    assert water.search("数据库几点备份", 5)[0][0] == "trad"


def test_folding_leaves_the_chunk_text_as_written(tmp_path: Path) -> None:
    original = chunk("t", "資料庫每天備份。")
    idx = LexicalIndex.open(tmp_path, "t")
    idx.add([original])
    assert original.text == "資料庫每天備份。"
    assert "资料" in ingest.lexical.index_terms(original.text)


def test_postings_from_before_han_unigrams_are_outdated(tmp_path: Path, water: LexicalIndex) -> None:
    water.commit()
    water.close()
    conn = sqlite3.connect(lexical_path(tmp_path, "zh"))
    conn.execute("PRAGMA user_version = 2")  # bigrams only, no folding: the indexer must rebuild
    conn.commit()
    conn.close()
    assert LexicalIndex.open(tmp_path, "zh").outdated


def test_a_file_with_postings_keyed_by_chunk_id_is_carried_over_with_the_same_results(
    tmp_path: Path, index: LexicalIndex
) -> None:
    queries = ["token windows", "检索文档", "warranty", "model"]
    before = {q: index.search(q, 5) for q in queries}
    path = lexical_path(tmp_path / "db", "docs")
    index.close()
    # Rewrite the file in the layout of earlier releases: postings keyed by the 32-character chunk id.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("""
        CREATE TABLE old_docs (id TEXT PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL, length INTEGER NOT NULL);
        INSERT INTO old_docs SELECT id, source, kind, length FROM docs;
        CREATE TABLE old_postings (term TEXT NOT NULL, id TEXT NOT NULL, tf INTEGER NOT NULL,
                                   PRIMARY KEY (term, id)) WITHOUT ROWID;
        INSERT INTO old_postings SELECT p.term, d.id, p.tf FROM postings p JOIN docs d ON d.doc = p.doc;
        DROP TABLE postings; DROP TABLE docs;
        ALTER TABLE old_docs RENAME TO docs; ALTER TABLE old_postings RENAME TO postings;
        CREATE INDEX docs_by_source ON docs (source);
        CREATE INDEX docs_for_bm25 ON docs (id, length, source, kind);
        CREATE INDEX postings_by_id ON postings (id);
    """)
    conn.close()
    reopened = LexicalIndex.open(tmp_path / "db", "docs", create=False)
    assert {q: reopened.search(q, 5) for q in queries} == before and reopened.count() == 5
    reopened.delete(["zh2"])  # the carried-over file takes writes in the new layout
    reopened.add([chunk("en3", "Windows of tokens overlap by sixty tokens.", "more.md")])
    reopened.commit()
    assert [cid for cid, _ in reopened.search("检索文档", 5)] == []
    assert reopened.search("overlap", 5)[0][0] == "en3"
    assert {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(postings)")} == {"term", "doc", "tf"}


def test_terms_in_names_the_query_terms_the_given_chunks_hold(index: LexicalIndex) -> None:
    from rag.retrieve import overlap

    asked = set(terms("how does chunking use token windows for 检索 and 训练 warranty?"))
    texts = ["Chunking splits documents into overlapping token windows.", "检索增强生成先检索相关文档，再让模型根据文档回答问题。"]

    found = index.terms_in(["en1", "zh2"], asked)

    # Not 训练 or warranty: other chunks hold those.
    assert found == {"chunk", "token", "window", "检索"}
    # The relevance floor's share of query terms, from postings, is the one splitting the texts gives.
    assert len(found) / len(asked) == overlap(asked, "\n".join(texts))
    assert index.terms_in([], asked) == set() and index.terms_in(["en1"], set()) == set()


def test_a_long_lived_reader_scores_chunks_written_since_as_a_fresh_reader_does(tmp_path: Path) -> None:
    """A reader (`rag serve`, an app's RAG object) keeps chunk lengths between searches: chunks another
    connection writes and replaces later must rank and score exactly as for a reader opened after."""
    writer = LexicalIndex.open(tmp_path / "db", "docs")
    writer.add([chunk("a", "backup runs nightly at two"), chunk("b", "the backup window is short and backup logs rotate")])
    writer.commit()
    reader = LexicalIndex.open(tmp_path / "db", "docs")
    assert [cid for cid, _ in reader.search("backup", 5)] == ["b", "a"]

    writer.add([chunk("c", "backup " * 40 + "archive"), chunk("a", "备份 每晚 backup backup backup")])
    writer.delete(["b"])
    writer.commit()
    fresh = LexicalIndex.open(tmp_path / "db", "docs")
    for query in ("backup", "backup archive", "备份"):
        assert reader.search(query, 5) == fresh.search(query, 5)
    assert {cid for cid, _ in reader.search("backup", 5)} == {"a", "c"}


def test_a_posting_left_for_a_chunk_no_longer_in_docs_is_not_returned(tmp_path: Path, index: LexicalIndex) -> None:
    conn = sqlite3.connect(lexical_path(tmp_path / "db", "docs"))
    conn.execute("INSERT INTO postings VALUES ('warranti', 999999, 3)")
    conn.commit()
    reader = LexicalIndex.open(tmp_path / "db", "docs")
    assert [cid for cid, _ in reader.search("warranty", 1)] == ["pdf1"]
