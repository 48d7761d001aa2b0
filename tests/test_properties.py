"""Property tests (hypothesis): loaders, chunker and walker never crash and never drop anything silently.

Every input is either loaded/yielded, or skipped with a one-line reason. Example counts stay
modest (CI has two cores).
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import unicodedata
from pathlib import Path

from fpdf import FPDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chunking import _heading_only, chunk_document, count_tokens, sections_of
from ingest.errors import LoadError
from ingest.loaders import LoadResult, load, normalize
from ingest.paths import source_name, source_path
from ingest.records import Document, Notice, Skip
from ingest.walk import discover

FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXTENSIONS = [".pdf", ".html", ".htm", ".md", ".rst", ".rst.txt", ".txt", ".py", ".json", ".yaml", "", ".png"]
# Characters real Chinese, English and mixed documents are made of (and a few awkward ones).
ZH = "检索增强生成先从文档中检索相关段落再让模型根据这些回答问题数据库索引向量的是了和在有我们"
PUNCT = "。！？；，、：“”「」（）……!?.,;:-#*=\t\n "
TEXTS = st.text(alphabet=st.sampled_from(list(ZH + PUNCT + "abcdefgHIJ0123é🚀\u3000\r")), max_size=1500)


def _load_or_skip(path: Path, root: Path) -> LoadResult | LoadError:
    """Load a file; the only failure allowed is a LoadError with a one-line reason."""
    try:
        result = load(path, root)
    except LoadError as e:
        assert str(e) and "\n" not in str(e)
        return e
    assert result.documents  # a loaded file has something to index
    for doc in result.documents:
        doc.source.encode("utf-8")
        assert doc.text.strip()
    for warning in result.warnings:
        assert warning.reason and "\n" not in warning.reason
    return result


def _small_pdf() -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in ("First page about Chroma.", "Second page: keep_alive."):
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


PDF = _small_pdf()


# --- loaders ---------------------------------------------------------------------------------------

@FEW
@given(data=st.binary(max_size=4096), ext=st.sampled_from(EXTENSIONS), pdf_magic=st.booleans())
def test_random_bytes_under_every_extension(data: bytes, ext: str, pdf_magic: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"random{ext}"
        path.write_bytes((b"%PDF-1.7\n" if pdf_magic else b"") + data)
        _load_or_skip(path, Path(tmp))


@FEW
@given(edits=st.lists(st.tuples(st.integers(0, len(PDF) - 1), st.integers(0, 255)), min_size=1, max_size=12),
       cut=st.integers(200, len(PDF)))
def test_damaged_pdfs(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(PDF)
    for pos, value in edits:
        data[pos] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damaged.pdf"
        path.write_bytes(bytes(data[:cut]))
        _load_or_skip(path, Path(tmp))


@SOME
@given(text=st.text(max_size=2000), ext=st.sampled_from([".txt", ".md", ".rst", ".py"]))
def test_any_valid_utf8_text_is_read_exactly(text: str, ext: str) -> None:
    data = text.encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"doc{ext}"
        path.write_bytes(data)
        outcome = _load_or_skip(path, Path(tmp))
    if b"\x00" in data[:8192] and not text.startswith("\ufeff"):
        return  # NULs early on: treated like a binary file (or UTF-16); _load_or_skip checked it is clean
    kind = {".txt": "text", ".md": "markdown", ".rst": "rst", ".py": "code"}[ext]
    expected = normalize(text.removeprefix("\ufeff"), kind=kind)
    if isinstance(outcome, LoadError):
        assert str(outcome) == "empty file" and not expected.strip()
    else:
        assert outcome.documents[0].text == expected and outcome.warnings == []


@SOME
@given(text=TEXTS)
def test_chinese_text_in_gb18030_is_read_or_warned(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "zh.txt"
        data = text.encode("gb18030")
        path.write_bytes(data)
        outcome = _load_or_skip(path, Path(tmp))
        expected = normalize(text.removeprefix("\ufeff"))
        if isinstance(outcome, LoadError):
            assert str(outcome) == "empty file" and not expected.strip()
        elif sum(c in ZH for c in text) >= 20:
            # Enough Chinese for the detector to be sure: read exactly, no warning.
            assert outcome.documents[0].text == expected


# --- chunker ---------------------------------------------------------------------------------------

MARKUP = st.text(alphabet=st.sampled_from(list(ZH + PUNCT + "abc XYZ\n\n#=-`>0")), max_size=3000)


@SOME
@given(text=MARKUP, kind=st.sampled_from(["text", "markdown", "rst", "html", "code", "pdf"]),
       size=st.integers(4, 120), overlap_share=st.floats(0, 0.9))
def test_chunks_fit_the_limit_and_cover_the_text(text: str, kind: str, size: int, overlap_share: float) -> None:
    overlap = min(size - 1, int(size * overlap_share))
    doc = Document(source="doc", text=text, kind=kind)
    chunks = chunk_document(doc, chunk_tokens=size, chunk_overlap=overlap)
    covered = [False] * len(text)
    for c in chunks:
        assert text[c.start : c.end] == c.text == c.text.strip() != ""
        assert c.tokens == count_tokens(c.text) <= size
        for i in range(c.start, c.end):
            covered[i] = True
    # Nothing dropped: each visible character is in a chunk, unless its section is a bare heading
    # (the heading then lives on in the heading path of the chunks below it).
    sections = list(sections_of(text, kind))
    for i, ch in enumerate(text):
        if not ch.isspace() and not covered[i]:
            section = next(s for s in sections if s[0] <= i < s[1])
            assert _heading_only(text, section), (i, ch, section)


# --- walker ----------------------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "中文", "说明.md", "x.txt", os.fsdecode(b"caf\xe9\xff"), os.fsdecode("旧".encode("gbk")),
                         "new\nline", ".hidden", "back\\slash"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda parts: "/".join(parts))
ENTRIES = st.lists(
    st.tuples(st.sampled_from(["dir", "file", "link", "fifo"]), PATHS, PATHS | st.just("..") | st.just("/")),
    max_size=14,
)


def _build(root: Path, entries: list[tuple[str, str, str]]) -> None:
    """Create the entries, never through a link (a link may point at "/") and never over a name."""
    for kind, rel, target in entries:
        parts = rel.split("/")
        folder = root
        for part in parts[:-1]:
            folder = folder / part
            if os.path.islink(folder) or (os.path.lexists(folder) and not folder.is_dir()):
                break
            folder.mkdir(exist_ok=True)
        else:
            path = folder / parts[-1]
            if os.path.lexists(path):
                continue
            if kind == "dir":
                path.mkdir()
            elif kind == "file":
                with open(path, "x", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(f"text of {rel}\n")
            elif kind == "fifo":
                os.mkfifo(path)
            else:  # a link to anything: inside, outside ("/", ".."), itself, or nothing yet
                os.symlink(target if target in ("..", "/") else root / target, path)


def _real_files(root: Path) -> set[str]:
    """Regular files reachable through real (not linked) folders, without hidden names."""
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(folder) / name
            if not name.startswith(".") and stat.S_ISREG(os.lstat(path).st_mode):
                found.add(path.relative_to(root).as_posix())
    return found


@FEW
@given(entries=ENTRIES)
def test_random_trees_with_links(entries: list[tuple[str, str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        _build(root, entries)
        found = list(discover(root))
        yielded = [p for p in found if isinstance(p, Path)]
        reported = [r for r in found if isinstance(r, (Skip, Notice))]
        assert len(yielded) + len(reported) == len(found)
        rels = [p.relative_to(root).as_posix() for p in yielded]
        assert len(set(rels)) == len(rels)  # nothing twice
        for path in yielded:
            assert path.is_file() and os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)
        for record in reported:
            record.path.encode("utf-8")  # printable, storable
            assert record.reason and "\n" not in record.path + record.reason
        # Nothing silently dropped: every real file is yielded.
        assert _real_files(root) <= set(rels)
        for rel in rels:  # and each one's source name leads back to it
            assert source_path(root, source_name(rel)) == root / rel


@SOME
@given(parts=st.lists(st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\x00" not in b),
                      min_size=1, max_size=4))
def test_source_names_round_trip_for_any_file_name(parts: list[bytes]) -> None:
    rel = os.fsdecode(b"/".join(parts))
    source = source_name(rel)
    source.encode("utf-8")  # valid UTF-8 whatever the bytes were
    # No control characters, no lone surrogates, nothing that breaks or reorders a terminal line.
    assert not [c for c in source if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") or "\u202a" <= c <= "\u202e"]
    assert source_path(Path("/root"), source) == Path("/root") / rel
    out = io.StringIO()
    print(source, file=out)
    assert out.getvalue().count("\n") == 1  # prints on one line
