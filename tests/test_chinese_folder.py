"""A Chinese-heavy folder indexed with an English-centred embedding model: one warning naming the fix."""

from __future__ import annotations

from ingest.config import IndexSettings
from ingest.indexer import index_folder


def test_a_chinese_heavy_folder_warns_once_naming_bge_m3(ollama_server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        (docs / f"笔记{i}.md").write_text(f"# 第{i}章\n\n检索增强生成先检索相关文档，再让模型回答问题。" * 5, encoding="utf-8")
    (docs / "readme.md").write_text("A short English note.\n")
    report = index_folder(docs, IndexSettings.resolve(host=ollama_server.url, db=tmp_path / "db"))
    advice = [w.reason for w in report.warnings if "bge-m3" in w.reason]
    assert len(advice) == 1 and f"rag index {docs} --rebuild --embed-model bge-m3" in advice[0]


def test_an_english_folder_gets_no_language_warning(ollama_server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Notes\n\nPlain English text about lakes and rivers. 一个词.\n" * 5)
    report = index_folder(docs, IndexSettings.resolve(host=ollama_server.url, db=tmp_path / "db"))
    assert not [w for w in report.warnings if "bge-m3" in w.reason]
