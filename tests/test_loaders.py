"""ingest.loaders.load: encodings, kinds, HTML, PDF pages, and every reason a file is skipped."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from ingest import loaders
from ingest.errors import LoadError
from ingest.loaders import LoadResult, decode, html_to_text, load, normalize
from ingest.records import Document, Skip


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def _pdf(pages: list[str], title: str = "") -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def _encrypted(data: bytes, *, user: str, owner: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user, owner_password=owner, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _reason(path: Path, root: Path) -> str:
    with pytest.raises(LoadError) as e:
        load(path, root)
    return str(e.value)


# --- kinds and sources -----------------------------------------------------------------------------

def test_text_file_one_document(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes" / "todo.txt", "first line\r\nsecond line\r\n")
    result = load(path, tmp_path)
    assert isinstance(result, LoadResult) and result.warnings == []
    assert result.documents == [Document(source="notes/todo.txt", text="first line\nsecond line\n")]


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.md", "markdown"), ("a.markdown", "markdown"), ("a.rst", "rst"), ("a.rst.txt", "rst"),
     ("a.py", "code"), ("a.go", "code"), ("a.yaml", "code"), ("a.json", "code"), ("a.txt", "text"),
     ("a.unknownext", "text"), ("README", "text")],
)
def test_kind_by_extension(tmp_path: Path, name: str, kind: str) -> None:
    assert load(_write(tmp_path / name, "hello = 1\n"), tmp_path).documents[0].kind == kind


def test_markdown_title_from_first_heading(tmp_path: Path) -> None:
    doc = load(_write(tmp_path / "g.md", "intro\n\n# Install guide\n\n## Linux\n"), tmp_path).documents[0]
    assert doc.title == "Install guide"
    setext = load(_write(tmp_path / "s.md", "安装指南\n========\n\n正文。\n"), tmp_path).documents[0]
    assert setext.title == "安装指南"


def test_rst_title_from_underline(tmp_path: Path) -> None:
    text = ".. _top:\n\n*******\nClasses\n*******\n\nBody.\n"
    assert load(_write(tmp_path / "c.rst.txt", text), tmp_path).documents[0].title == "Classes"


# --- encodings -------------------------------------------------------------------------------------

CHINESE = "检索增强生成（RAG）先从文档中检索相关段落，再让模型根据这些段落回答问题。\n"


def test_utf8_bom_is_stripped(tmp_path: Path) -> None:
    doc = load(_write(tmp_path / "a.md", b"\xef\xbb\xbf# Title\n"), tmp_path).documents[0]
    assert doc.text == "# Title\n" and doc.title == "Title"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom(tmp_path: Path, codec: str) -> None:
    data = CHINESE.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    assert load(_write(tmp_path / "u.txt", data), tmp_path).documents[0].text == CHINESE


@pytest.mark.parametrize("codec", ["gbk", "gb18030"])
def test_gbk_chinese_file(tmp_path: Path, codec: str) -> None:
    assert load(_write(tmp_path / "zh.txt", CHINESE.encode(codec)), tmp_path).documents[0].text == CHINESE


TRADITIONAL = "檢索增強生成先從文件中檢索相關段落，再讓模型根據這些段落回答問題。\n"
JAPANESE = "日本語のテキストです。これは検索拡張生成のテストです。\n"


@pytest.mark.parametrize(
    ("text", "codec"),
    [(TRADITIONAL, "big5"), (CHINESE * 3, "gb18030"), (JAPANESE, "shift_jis"), (CHINESE, "utf-16-le"),
     (CHINESE, "utf-16-be"), ("检索增强生成先从文档中检索相关段落", "utf-16-le"),
     ("Plain English notes, stored as UTF-16.\n", "utf-16-le")],
)
def test_legacy_encodings_and_utf16_without_bom_are_read(tmp_path: Path, text: str, codec: str) -> None:
    result = load(_write(tmp_path / "legacy.txt", text.encode(codec)), tmp_path)
    assert result.documents[0].text == text and result.warnings == []


def test_chinese_file_with_a_few_bad_bytes_is_read_with_a_warning(tmp_path: Path) -> None:
    text = CHINESE * 4
    data = text[:20].encode("gb18030") + b"\xff" + text[20:90].encode("gb18030") + b"\xff" + text[90:].encode("gb18030")
    result = load(_write(tmp_path / "damaged.txt", data), tmp_path)
    text = result.documents[0].text
    assert text.count("\ufffd") == 2 and "检索增强生成" in text and "回答问题" in text
    assert result.warnings == [Skip("damaged.txt", "2 undecodable byte sequence(s) replaced with U+FFFD "
                                                   "(read as gb18030)")]


def test_utf8_file_with_a_bad_byte_is_read_with_a_warning(tmp_path: Path) -> None:
    text = CHINESE * 3
    result = load(_write(tmp_path / "utf8.md", text[:31].encode() + b"\xfe" + text[31:].encode()), tmp_path)
    assert result.documents[0].text.count("\ufffd") == 1
    assert [w.reason for w in result.warnings] == ["1 undecodable byte sequence(s) replaced with U+FFFD (read as utf-8)"]


@pytest.mark.parametrize(
    "text", ["Привет, мир! Это обычный текст.", "Ελληνικά κείμενα", "café 中文 naïve", CHINESE,
             "日本語のテキストです。", "plain ascii"],
)
def test_utf8_stays_utf8(text: str) -> None:
    assert decode(text.encode("utf-8")).text == text


def test_latin1_text_is_read_but_random_bytes_are_binary() -> None:
    assert decode("Résumé of the café meeting, 1999.\n".encode("latin-1")).text == "Résumé of the café meeting, 1999.\n"
    with pytest.raises(LoadError, match="^binary file$"):
        decode(bytes(range(1, 256)) * 4)


def test_normalize_newlines_nuls_and_nfc() -> None:
    assert normalize("a\r\nb\rc\x00d") == "a\nb\ncd"
    assert normalize("cafe\u0301") == "café"
    assert normalize("中文，全角标点：保持。") == "中文，全角标点：保持。"


def test_groff_space_runs_inside_chinese_are_closed() -> None:
    assert normalize("本手册页记录了       GNU       版本的") == "本手册页记录了 GNU 版本的"
    assert normalize("选项   说明") == "选项说明"
    assert normalize("       缩进保留") == "       缩进保留"  # indentation is layout, not a gap
    assert normalize("English  text   stays") == "English  text   stays"
    assert normalize("x  =  1  # 中文  注释", kind="code") == "x  =  1  # 中文  注释"


def test_pdf_normalisation_ligatures_and_hyphens() -> None:
    text = "the \ufb01le is speci\ufb01c, e\ufb00ort; head-\nings and two-\ncolumn, soft\u00adhyphen"
    assert normalize(text, kind="pdf") == "the file is specific, effort; headings and two-column, softhyphen"
    assert normalize("head-\nings") == "head-\nings"  # only PDFs are re-joined


# --- skipped files ---------------------------------------------------------------------------------

def test_binary_by_nul_bytes(tmp_path: Path) -> None:
    assert _reason(_write(tmp_path / "data.txt", b"abc\x00\x01\x02def"), tmp_path) == "binary file"


def test_binary_by_extension(tmp_path: Path) -> None:
    assert _reason(_write(tmp_path / "pic.png", b"not really a png"), tmp_path) == "binary file"
    assert _reason(_write(tmp_path / "doc.docx", b"PK\x03\x04"), tmp_path) == "binary file"


def test_binary_without_nul_bytes(tmp_path: Path) -> None:
    blob = bytes(b for b in os.urandom(4096) if b) + b"\xff\xfe\xfd"
    assert _reason(_write(tmp_path / "blob.dat", b"\x81" + blob), tmp_path) == "binary file"


def test_late_nul_bytes_are_stripped(tmp_path: Path) -> None:
    data = b"x" * 9000 + b"\x00tail\n"
    assert load(_write(tmp_path / "a.txt", data), tmp_path).documents[0].text.endswith("xtail\n")


@pytest.mark.parametrize("data", [b"", b"   \n\n\t  \r\n", "\ufeff".encode(), "\u3000\n".encode()])
def test_empty_or_whitespace_file(tmp_path: Path, data: bytes) -> None:
    assert _reason(_write(tmp_path / "e.md", data), tmp_path) == "empty file"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "locked.txt", "secret")

    def denied(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(loaders, "open", denied, raising=False)
    assert _reason(path, tmp_path) == "permission denied"


def test_missing_file(tmp_path: Path) -> None:
    assert _reason(tmp_path / "gone.txt", tmp_path) == "file not found"


# --- HTML ------------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>  Ollama  API 指南 </title>
<style>body { color: red }</style><script>var tracking = 1;</script></head>
<body><nav class="menu"><a href="/">Home</a> | <a href="/next">Next</a></nav>
<div class="sphinxsidebar" role="navigation"><p>Sidebar noise</p></div>
<main><h1>Embeddings <a class="headerlink" href="#e">¶</a></h1>
<p>Call   <code>/api/embed</code>
with a list of inputs.</p><h2>Options</h2><ul><li>keep_alive &amp; num_ctx</li><li>二、中文项</li></ul>
<pre># not a heading
curl http://localhost:11434/api/embed</pre>
<table><tr><td>a</td><td>b</td></tr></table></main>
<footer>Copyright footer</footer><noscript>enable js</noscript></body></html>"""


def test_html_title_text_and_headings(tmp_path: Path) -> None:
    doc = load(_write(tmp_path / "api.html", PAGE), tmp_path).documents[0]
    assert doc.kind == "html" and doc.title == "Ollama API 指南"
    assert doc.text.startswith("# Embeddings\n\nCall /api/embed with a list of inputs.\n\n## Options\n")
    assert "keep_alive & num_ctx\n二、中文项" in doc.text
    assert "```\n# not a heading\ncurl http://localhost:11434/api/embed\n```" in doc.text
    for noise in ("tracking", "color: red", "Home", "Sidebar", "footer", "enable js", "¶", "Ollama API 指南"):
        assert noise not in doc.text


def test_html_tolerates_broken_markup() -> None:
    title, text = html_to_text("<html><body><nav><ul><li>menu<li>more</nav><p>Body <b>bold</p></div>tail")
    assert title == "" and text == "Body bold\n\ntail\n"


def test_html_without_text_is_empty(tmp_path: Path) -> None:
    assert _reason(_write(tmp_path / "x.htm", "<html><script>x()</script></html>"), tmp_path) == "empty file"


# --- PDF -------------------------------------------------------------------------------------------

def test_pdf_one_document_per_page(tmp_path: Path) -> None:
    data = _pdf(["Page one talks about Chroma.", "Page two: keep_alive is 5m."], title="Sample Guide")
    result = load(_write(tmp_path / "docs" / "guide.pdf", data), tmp_path)
    assert [(d.page, d.source, d.kind, d.title) for d in result.documents] == [
        (1, "docs/guide.pdf", "pdf", "Sample Guide"), (2, "docs/guide.pdf", "pdf", "Sample Guide")]
    assert "keep_alive is 5m" in result.documents[1].text
    assert result.warnings == []


def test_pdf_empty_page_is_a_warning(tmp_path: Path) -> None:
    result = load(_write(tmp_path / "file.pdf", _pdf(["one", "", "three"])), tmp_path)
    assert [d.page for d in result.documents] == [1, 3]
    assert result.warnings == [Skip("file.pdf#page=2", "no extractable text on page 2 (scanned image?)")]


def test_pdf_without_any_text(tmp_path: Path) -> None:
    assert "no extractable text" in _reason(_write(tmp_path / "scan.pdf", _pdf(["", ""])), tmp_path)


def test_pdf_detected_by_magic_bytes(tmp_path: Path) -> None:
    assert load(_write(tmp_path / "download", _pdf(["magic"])), tmp_path).documents[0].page == 1


def test_encrypted_pdf_needing_a_password(tmp_path: Path) -> None:
    data = _encrypted(_pdf(["top secret"]), user="x", owner="y")
    assert _reason(_write(tmp_path / "locked.pdf", data), tmp_path) == "encrypted PDF (password required)"


def test_owner_password_only_pdf_loads(tmp_path: Path) -> None:
    data = _encrypted(_pdf(["readable by anyone"]), user="", owner="owner-secret")
    assert PdfReader(io.BytesIO(data)).is_encrypted
    doc = load(_write(tmp_path / "owner.pdf", data), tmp_path).documents[0]
    assert "readable by anyone" in doc.text


@pytest.mark.parametrize(
    "data", [b"%PDF-1.4\nthis is not a pdf at all", b"%PDF-", _pdf(["truncated"])[:300]],
)
def test_corrupt_pdf(tmp_path: Path, data: bytes) -> None:
    assert _reason(_write(tmp_path / "broken.pdf", data), tmp_path).startswith("corrupt PDF")


def test_useless_pdf_title_is_dropped(tmp_path: Path) -> None:
    for title in ("各院、系：", "Microsoft Word - plan.docx", "untitled"):
        doc = load(_write(tmp_path / "t.pdf", _pdf(["text"], title=title)), tmp_path).documents[0]
        assert doc.title == ""


def test_chinese_pdf_line_wraps_are_joined() -> None:
    from ingest.loaders import _join_cjk_wraps

    wrapped = "第一章 总则\n硕士学位论文一般在三万字以上，博士学位\n论文一般在五万字以上。\n下一段开始。"
    assert _join_cjk_wraps(wrapped) == "第一章 总则\n硕士学位论文一般在三万字以上，博士学位论文一般在五万字以上。\n下一段开始。"
    assert _join_cjk_wraps("English line that is long enough\nnext") == "English line that is long enough\nnext"


SAMPLE_DOCS = Path(__file__).resolve().parents[1] / "sample_docs"


def test_sample_docs_all_load_cleanly() -> None:
    from ingest.chunking import chunk_document
    from ingest.walk import discover

    files = [p for p in discover(SAMPLE_DOCS) if isinstance(p, Path)]
    assert 8 <= len(files) <= 12
    kinds, pages = set(), {}
    for path in files:
        result = load(path, SAMPLE_DOCS)
        assert result.warnings == []
        kinds |= {d.kind for d in result.documents}
        if path.suffix == ".pdf":
            pages[path.name] = [d.page for d in result.documents]
        assert sum(len(chunk_document(d, chunk_tokens=400, chunk_overlap=60)) for d in result.documents) >= 2
    assert kinds == {"markdown", "text", "html", "pdf"}
    assert pages == {"tidepool-admin-manual.pdf": [1, 2, 3, 4, 5], "ollama-deployment.zh.pdf": [1, 2, 3, 4]}


def test_sample_docs_facts_on_their_pages() -> None:
    admin = load(SAMPLE_DOCS / "tidepool-admin-manual.pdf", SAMPLE_DOCS).documents
    assert "02:30" in admin[2].text and "E1042" in admin[4].text and "E1042" not in admin[2].text
    zh = load(SAMPLE_DOCS / "ollama-deployment.zh.pdf", SAMPLE_DOCS).documents
    assert "OLLAMA_NUM_PARALLEL=4" in zh[1].text and "每周一凌晨 03:00" in zh[2].text
    onboarding = SAMPLE_DOCS / "onboarding.zh.txt"
    raw = onboarding.read_bytes()
    assert b"\r\n" in raw and raw.decode("gbk")  # kept as GBK with CRLF on purpose
    assert "14 天内完成线上安全培训" in load(onboarding, SAMPLE_DOCS).documents[0].text
