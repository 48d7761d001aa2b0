"""Loading and chunking the real, awkward documents of the shared corpus (see its MANIFEST.md).

The corpus lives beside the repository (`../shared/corpus`, or `$RAG_SHARED_DIR/corpus`) and is
never copied into the project; the module is skipped when it is absent.
"""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path

import pytest

from ingest.chunking import chunk_document, count_tokens, encoding
from ingest.config import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_TOKENS
from ingest.errors import LoadError
from ingest.language import HAN
from ingest.loaders import LoadResult, load
from ingest.records import Document, Skip
from ingest.walk import discover

SHARED = Path(os.environ.get("RAG_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
CORPUS = SHARED / "corpus"
if not CORPUS.is_dir():
    pytest.skip(f"shared corpus not found at {CORPUS}", allow_module_level=True)

pytestmark = pytest.mark.corpus


@functools.cache
def _load(rel: str) -> LoadResult:
    return load(CORPUS / rel, CORPUS)


def _page(rel: str, page: int) -> str:
    (doc,) = [d for d in _load(rel).documents if d.page == page]
    return re.sub(r"\s+", " ", doc.text)  # the manifest's facts were checked whitespace-collapsed


def _text(rel: str) -> str:
    (doc,) = _load(rel).documents
    return doc.text


def _check_chunks(doc: Document, size: int = DEFAULT_CHUNK_TOKENS, overlap: int = DEFAULT_CHUNK_OVERLAP) -> int:
    chunks = chunk_document(doc, chunk_tokens=size, chunk_overlap=overlap)
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert c.tokens == count_tokens(c.text) <= size
    return len(chunks)


def test_walk_finds_every_corpus_file() -> None:
    found = list(discover(CORPUS))
    assert not [s for s in found if isinstance(s, Skip)]
    rels = [p.relative_to(CORPUS).as_posix() for p in found if isinstance(p, Path)]
    assert len(rels) == 19 and rels == sorted(rels) and "pdf/ctex.zh.pdf" in rels


# --- PDFs ------------------------------------------------------------------------------------------

def test_owner_password_pdf_opens_with_the_empty_password() -> None:
    result = _load("pdf/pypdf-r4-owner-password.encrypted.pdf")
    (doc,) = result.documents
    assert doc.page == 1 and doc.kind == "pdf"
    assert "pdf encryption test" in doc.text and "password: asdfzxcv" in doc.text


def test_two_column_pdf_ligatures_and_hyphens_fixed() -> None:
    rel = "pdf/revtex4-1-apssamp.pdf"
    docs = _load(rel).documents
    assert [d.page for d in docs] == list(range(1, 8))
    everything = "".join(d.text for d in docs)
    assert not re.search("[\ufb00-\ufb06]", everything)
    assert "(Dated: August 10, 2010)" in _page(rel, 1)
    assert "requires version 8.31a or later of natbib" in _page(rel, 2)
    assert "fills the entire width of the column" in _page(rel, 4)
    assert "file" in everything and "specific" in everything
    assert "headings" in everything and "head-\nings" not in everything


def test_chinese_ctex_manual_pages() -> None:
    rel = "pdf/ctex.zh.pdf"
    result = _load(rel)
    assert len(result.documents) == 175 and result.documents[0].title == "CTeX 宏集手册"
    assert "2022/07/14 v2.5.10" in _page(rel, 1)
    assert "升级版本号为 2.0" in _page(rel, 2) and "ctex-kit 项目迁移至 GitHub" in _page(rel, 2)
    assert "标准文档类 article 的汉化版本" in _page(rel, 3)
    assert "mpm --admin --install=ctex" in _page(rel, 4) and "tlmgr update --all" in _page(rel, 4)


def test_chinese_word_pdf_pages_and_useless_title() -> None:
    rel = "pdf/seuthesix-rules.zh.pdf"
    docs = _load(rel).documents
    assert len(docs) == 12 and {d.title for d in docs} == {""}  # metadata title is "各院、系："
    assert "硕士学位论文一般在三万字以上，博士学位论文一般在五万字以上" in _page(rel, 1)
    assert "FENG Changgen" in _page(rel, 2)
    assert "A4 纸张，四周页边距 2cm" in _page(rel, 9)


def test_arabic_type3_pdf_loads_or_skips_with_a_reason() -> None:
    try:
        result = load(CORPUS / "pdf/arabi-user_guide.ar.pdf", CORPUS)
    except LoadError as e:  # acceptable, as long as it is a reason and not a crash
        assert str(e)
        return
    assert len(result.documents) + len(result.warnings) == 103
    assert all(w.path.startswith("pdf/arabi-user_guide.ar.pdf#page=") for w in result.warnings)
    assert any("Arabi" in d.text for d in result.documents)


def test_old_pdftex_code_listings_load() -> None:
    docs = _load("pdf/camlidl-1.04.doc.pdf").documents
    assert len(docs) == 26 and any("camlidl" in d.text for d in docs)


# --- Chinese text and HTML -------------------------------------------------------------------------

def test_bash_man_page_chunks_under_the_limit_quickly() -> None:
    doc = _load("zh/man-bash.1.zh_CN.txt").documents[0]
    assert len(HAN.findall(doc.text)) > 40000
    encoding()
    t0 = time.perf_counter()
    n = _check_chunks(doc)
    assert time.perf_counter() - t0 < 3.0  # ~0.1 s here; generous for a busy 2-core machine
    assert n > 100
    headings = {c.heading for c in chunk_document(doc, chunk_tokens=400, chunk_overlap=60)}
    assert {"描述(DESCRIPTION)", "选项(OPTIONS)", "shell 内建命令(SHELL BUILTIN COMMANDS)"} <= headings


@pytest.mark.parametrize(
    "rel", ["zh/man-chmod.1.zh_CN.txt", "zh/man-grep.1.zh_CN.txt", "zh/man-ls.1.zh_TW.txt",
            "zh/man-find.1.zh_TW.txt"],
)
@pytest.mark.parametrize("size", [64, 400])
def test_man_pages_chunk_within_the_limit(rel: str, size: int) -> None:
    assert _check_chunks(_load(rel).documents[0], size=size, overlap=size // 8) > 1


def test_groff_gaps_in_chinese_are_closed() -> None:
    assert "本手册页记录了 GNU 版本的 chmod" in _text("zh/man-chmod.1.zh_CN.txt")


def test_traditional_chinese_loads_as_is() -> None:
    text = _text("zh/man-ls.1.zh_TW.txt")
    assert "使用者命令" in text and "列出目錄內容" in text
    assert "列出目录内容" not in text  # no conversion to Simplified
    assert "find" in _text("zh/man-find.1.zh_TW.txt")


def test_chinese_html_title_and_text() -> None:
    (doc,) = _load("zh/debian-reference.index.zh-cn.html").documents
    assert doc.title == "Debian 参考手册" and doc.kind == "html"
    assert "Debian 系统安装后的用户指南" in doc.text and "1.1.12. sudo 配置" in doc.text
    assert "<" not in doc.text.replace("<=", "")
    assert _check_chunks(doc) > 5


def test_sphinx_html_without_navigation_or_scripts() -> None:
    (doc,) = _load("mixed/python311-library-json.html").documents
    assert doc.title.startswith("json — JSON encoder and decoder")
    assert doc.text.startswith("# json — JSON encoder and decoder")
    assert "json.dumps" in doc.text and "## Basic Usage" in doc.text
    for noise in ("Previous topic", "Next topic", "Show Source", "Report a Bug", "Quick search",
                  "Table of Contents", "function(", "Copyright"):
        assert noise not in doc.text
    assert "json — JSON encoder and decoder > Basic Usage" in {
        c.heading for c in chunk_document(doc, chunk_tokens=400, chunk_overlap=60)}


def test_texinfo_html_without_navigation() -> None:
    (doc,) = _load("mixed/libffi-The-Basics.html").documents
    assert doc.title.startswith("The Basics (libffi")
    assert doc.text.startswith("### 2.1 The Basics") and "ffi_prep_cif" in doc.text
    assert "Next:" not in doc.text and "Up:" not in doc.text


def test_rst_txt_is_restructured_text_with_headings() -> None:
    (doc,) = _load("mixed/python311-tutorial-classes.rst.txt").documents
    assert doc.kind == "rst" and doc.title == "Classes"
    headings = {c.heading for c in chunk_document(doc, chunk_tokens=400, chunk_overlap=60)}
    assert "Classes > A Word About Names and Objects" in headings


def test_markdown_with_setext_and_fences() -> None:
    (readme,) = _load("mixed/ctex-README.md").documents
    assert readme.kind == "markdown" and "Li Qing" in readme.text
    (path_md,) = _load("mixed/nodejs-api-path.md").documents
    headings = {c.heading for c in chunk_document(path_md, chunk_tokens=400, chunk_overlap=60)}
    assert any(h.startswith("Path > ") for h in headings)


def test_every_corpus_document_chunks_within_the_limit() -> None:
    counts: dict[str, int] = {}
    for item in discover(CORPUS):
        assert isinstance(item, Path)
        rel = item.relative_to(CORPUS).as_posix()
        if rel == "pdf/arabi-user_guide.ar.pdf":
            continue  # 2 s to load; covered above
        counts[rel] = sum(_check_chunks(d) for d in _load(rel).documents)
    assert all(n > 0 for n in counts.values())
