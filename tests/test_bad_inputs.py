"""Every bad file or folder entry is one skip or warning, never a failed run (issue 8).

Each test builds its bad input itself: encrypted PDFs, parsers that raise, PDF bombs, symlink loops,
a 2,000-level tree, FIFOs and sockets, non-UTF-8 names, and `.ragignore` lines git drops.
"""

from __future__ import annotations

import io
import os
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DictionaryObject, NameObject, StreamObject

from ingest import loaders
from ingest.errors import ConfigError, LoadError
from ingest.loaders import LoadLimits, load
from ingest.paths import source_name, source_path
from ingest.records import Notice, Skip
from ingest.walk import discover

CHINESE = "检索增强生成先从文档中检索相关段落，再让模型根据这些段落回答问题。"


def _pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def _encrypted(data: bytes, *, user: str, owner: str, algorithm: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user, owner_password=owner, algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _bomb(pages: int, content: bytes, level: int = 9) -> bytes:
    """A small PDF whose pages all draw one big compressed content stream."""
    writer = PdfWriter()
    stream = StreamObject()
    stream._data = zlib.compress(content, level)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    shared = writer._add_object(stream)
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = shared
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _text_ops(lines: int) -> bytes:
    return b"BT /F1 12 Tf 72 720 Td " + b"(Repeated text in a shared stream) Tj T* " * lines + b"ET"


def _skip_reason(path: Path, root: Path, limits: LoadLimits | None = None) -> LoadError:
    with pytest.raises(LoadError) as e:
        load(path, root, limits)
    assert "\n" not in str(e.value)  # one line, always
    return e.value


# --- encrypted PDFs --------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128", "AES-256-R5", "RC4-128"])
def test_pdf_with_a_user_password_is_skipped(tmp_path: Path, algorithm: str) -> None:
    path = tmp_path / "locked.pdf"
    path.write_bytes(_encrypted(_pdf(["top secret plans"]), user="u-secret", owner="o-secret", algorithm=algorithm))
    assert str(_skip_reason(path, tmp_path)) == "encrypted PDF (password required)"


@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128"])
def test_aes_pdf_with_only_an_owner_password_is_indexed(tmp_path: Path, algorithm: str) -> None:
    path = tmp_path / "owner.pdf"
    path.write_bytes(_encrypted(_pdf(["readable by anyone"]), user="", owner="o-secret", algorithm=algorithm))
    assert PdfReader(path).is_encrypted
    result = load(path, tmp_path)
    assert [d.page for d in result.documents] == [1] and "readable by anyone" in result.documents[0].text


# --- whatever a parser raises ----------------------------------------------------------------------

class OddParserError(Exception):
    """Not a pypdf error class, not an OSError: what a buggy parser really raises."""


def test_pdf_reader_raising_a_foreign_exception_is_a_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdf

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("float division by zero in xref stream")

    monkeypatch.setattr(pypdf, "PdfReader", broken)
    path = tmp_path / "odd.pdf"
    path.write_bytes(_pdf(["text"]))
    assert str(_skip_reason(path, tmp_path)) == "corrupt PDF: float division by zero in xref stream"


def test_every_page_failing_names_the_failure_not_scanned_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pypdf import PageObject

    def broken(self: object, *args: object, **kwargs: object) -> str:
        raise OddParserError("unexpected operator 'BDC' inside text object")

    monkeypatch.setattr(PageObject, "extract_text", broken)
    path = tmp_path / "pages.pdf"
    path.write_bytes(_pdf(["one", "two", "three"]))
    reason = str(_skip_reason(path, tmp_path))
    assert reason == ("text extraction failed on page 1: unexpected operator 'BDC' inside text object "
                      "(and 2 more pages)")


def test_one_bad_page_is_a_warning_and_the_others_are_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pypdf import PageObject

    real = PageObject.extract_text
    calls = iter(range(100))

    def second_breaks(self: PageObject, *args: Any, **kwargs: Any) -> str:
        if next(calls) == 1:
            raise OddParserError("bad glyph")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", second_breaks)
    path = tmp_path / "mixed.pdf"
    path.write_bytes(_pdf(["page one", "page two", "page three"]))
    result = load(path, tmp_path)
    assert [d.page for d in result.documents] == [1, 3]
    assert result.warnings == [Skip("mixed.pdf#page=2", "text extraction failed on page 2: bad glyph")]


def test_html_parser_raising_is_a_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, data: str) -> None:
        raise AssertionError("unexpected call to parse_starttag()")

    monkeypatch.setattr(loaders._HtmlText, "feed", broken)
    path = tmp_path / "page.html"
    path.write_text("<html><body><p>正文</p></body></html>", encoding="utf-8")
    assert str(_skip_reason(path, tmp_path)) == "cannot parse HTML: unexpected call to parse_starttag()"


def test_encoding_detector_raising_is_a_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import charset_normalizer

    def broken(data: bytes) -> None:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(charset_normalizer, "from_bytes", broken)
    path = tmp_path / "zh.txt"
    path.write_bytes(CHINESE.encode("gb18030"))  # not UTF-8, so the detector is asked
    assert str(_skip_reason(path, tmp_path)) == "cannot read .txt: detector crashed"


def test_an_exception_without_a_message_names_its_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise OddParserError()

    monkeypatch.setattr(loaders, "_markdown_title", broken)
    path = tmp_path / "a.md"
    path.write_text("# Title\n", encoding="utf-8")
    assert str(_skip_reason(path, tmp_path)) == "cannot read .md: OddParserError"


def test_a_pdf_over_pypdfs_decompression_cap_is_not_called_scanned(tmp_path: Path) -> None:
    # 80 MB of content compresses to ~80 KB; pypdf stops decompressing at 75 MB.
    path = tmp_path / "huge-stream.pdf"
    path.write_bytes(_bomb(1, b"BT /F1 12 Tf 72 720 Td (x) Tj ET" + b" " * 80_000_000, level=1))
    reason = str(_skip_reason(path, tmp_path, LoadLimits(max_text_ratio=1e9)))
    assert reason.startswith("a compressed stream on page 1 expands past pypdf's safety limit")
    assert "scanned" not in reason


# --- per-file budgets ------------------------------------------------------------------------------

def test_pdf_bomb_is_skipped_by_the_text_ratio(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pdf"
    path.write_bytes(_bomb(3, _text_ops(1500)))
    size = path.stat().st_size
    error = _skip_reason(path, tmp_path)
    assert error.setting == "max_text_ratio"
    assert str(error) == (f"over budget: more than {int(20 * size):,} characters of text from a {size:,}-byte "
                          f"file (20 per byte, setting max_text_ratio)")
    # The same file within a raised budget loads every page: the limit, not the file, stopped it.
    result = load(path, tmp_path, LoadLimits(max_text_ratio=10_000))
    assert len(result.documents) == 3 and len(result.documents[0].text) > 20 * size


def test_text_ceiling_applies_to_every_kind(tmp_path: Path) -> None:
    path = tmp_path / "long.md"
    path.write_text(f"# 长文\n\n{CHINESE * 50}\n", encoding="utf-8")
    error = _skip_reason(path, tmp_path, LoadLimits(max_text_chars=1000))
    assert error.setting == "max_text_chars"
    assert str(error) == "over budget: more than 1,000 characters of text (setting max_text_chars)"
    assert load(path, tmp_path, LoadLimits(max_text_chars=5000)).documents[0].title == "长文"


def test_page_limit(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    path.write_bytes(_pdf([f"page {i}" for i in range(6)]))
    error = _skip_reason(path, tmp_path, LoadLimits(max_pages=5))
    assert (error.setting, str(error)) == ("max_pages", "over budget: 6 pages (limit 5, setting max_pages)")
    assert len(load(path, tmp_path, LoadLimits(max_pages=6)).documents) == 6


@pytest.fixture
def slow_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every reading of the loader's clock is 10 s after the previous one."""
    ticks = iter(range(0, 10**6, 10))
    monkeypatch.setattr(loaders, "_clock", lambda: float(next(ticks)))
    yield


def test_parse_time_is_checked_between_pdf_pages(tmp_path: Path, slow_clock: None) -> None:
    path = tmp_path / "slow.pdf"
    path.write_bytes(_pdf(["one", "two", "three", "four"]))
    error = _skip_reason(path, tmp_path, LoadLimits(max_parse_seconds=25))
    assert error.setting == "max_parse_seconds"
    assert str(error) == "over budget: parsing took more than 25 s (setting max_parse_seconds)"
    assert len(load(path, tmp_path, LoadLimits(max_parse_seconds=1000)).documents) == 4


def test_parse_time_is_checked_between_html_blocks(tmp_path: Path, slow_clock: None) -> None:
    path = tmp_path / "big.html"
    path.write_text("<html><body>" + f"<p>{CHINESE}</p>" * 20_000 + "</body></html>", encoding="utf-8")
    assert _skip_reason(path, tmp_path, LoadLimits(max_parse_seconds=15)).setting == "max_parse_seconds"


def test_limits_work_without_settings_and_come_from_settings() -> None:
    from ingest.config import IndexSettings

    settings = IndexSettings(host="http://127.0.0.1:1", max_text_ratio=3.0, max_text_chars=7, max_pages=2,
                             max_parse_seconds=1.5)
    assert LoadLimits.from_settings(settings) == LoadLimits(3.0, 7, 2, 1.5)
    assert LoadLimits() == LoadLimits.from_settings(IndexSettings(host="http://127.0.0.1:1"))
    with pytest.raises(ConfigError, match="max_pages must be greater than 0"):
        LoadLimits(max_pages=0)


# --- the walker: links, depth, special files -------------------------------------------------------

def test_symlink_to_itself_and_a_symlink_cycle_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text("fine", encoding="utf-8")
    (tmp_path / "self.md").symlink_to(tmp_path / "self.md")
    (tmp_path / "a.md").symlink_to(tmp_path / "b.md")
    (tmp_path / "b.md").symlink_to(tmp_path / "a.md")
    loop = "symlink loop (the link points back to itself)"
    assert list(discover(tmp_path)) == [Skip("a.md", loop), Skip("b.md", loop), tmp_path / "ok.md",
                                        Skip("self.md", loop)]


def test_folder_symlink_cycle_is_walked_once(tmp_path: Path) -> None:
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "note.md").write_text("note", encoding="utf-8")
    (tmp_path / "x" / "y" / "up").symlink_to(tmp_path / "x", target_is_directory=True)
    (tmp_path / "x" / "loop").symlink_to(tmp_path / "x" / "loop2", target_is_directory=True)
    (tmp_path / "x" / "loop2").symlink_to(tmp_path / "x" / "loop", target_is_directory=True)
    found = list(discover(tmp_path))
    loop = "symlink loop (the link points back to itself)"
    assert found == [Skip("x/loop", loop), Skip("x/loop2", loop), tmp_path / "x" / "y" / "note.md"]


def _deep_tree(root: Path, depth: int, every: int, name: str) -> list[str]:
    """A chain of `depth` folders called `name`, with a file every `every` levels; returns their
    relative paths. Built through folder descriptors: the deepest paths are too long to open whole.
    """
    placed = []
    fd = os.open(root, os.O_RDONLY)
    try:
        for level in range(1, depth + 1):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
            if level % every == 0:
                os.close(os.open(f"f{level}.md", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
                placed.append(f"{name}/" * level + f"f{level}.md")
    finally:
        os.close(fd)
    return placed


def _remove_deep_tree(root: Path, name: str) -> None:
    """shutil.rmtree recurses once per level: climb down with chdir, then remove on the way up."""
    before = os.getcwd()
    try:
        os.chdir(root)
        depth = 0
        while os.path.isdir(name):
            os.chdir(name)
            depth += 1
        for _ in range(depth):
            for entry in os.listdir("."):
                os.unlink(entry)
            os.chdir("..")
            os.rmdir(name)
    finally:
        os.chdir(before)


@pytest.mark.parametrize(("depth", "name"), [(2000, "d"), (600, "folder-name")])
def test_a_very_deep_tree_is_walked_without_recursion(tmp_path: Path, depth: int, name: str) -> None:
    root = tmp_path / "deep"
    root.mkdir()
    placed = _deep_tree(root, depth, 100, name)
    try:
        found = list(discover(root))
    finally:
        _remove_deep_tree(root, name)
    yielded = {p.relative_to(root).as_posix() for p in found if isinstance(p, Path)}
    skipped = [s for s in found if isinstance(s, Skip)]
    assert all("too long" in s.reason for s in skipped)
    for rel in placed:  # nothing silently dropped: each file is found, or it or a folder above is skipped
        assert rel in yielded or any(rel == s.path or rel.startswith(s.path + "/") for s in skipped), rel
    assert placed[0] in yielded
    limit = os.pathconf("/", "PC_PATH_MAX")
    assert bool(skipped) == (len(str(root / placed[-1])) >= limit)  # skips only where the OS cannot go


def test_fifo_and_socket_are_skipped_without_blocking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.md").write_text("a", encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.md")
    monkeypatch.chdir(tmp_path)  # a socket path must be short: bind it by a relative name
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind("sock.txt")
        assert list(discover(tmp_path)) == [tmp_path / "a.md", Skip("pipe.md", "not a regular file (named pipe)"),
                                            Skip("sock.txt", "not a regular file (socket)")]
    finally:
        server.close()


def test_loader_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "swapped.txt")  # e.g. a file replaced by a FIFO after the walk
    assert str(_skip_reason(tmp_path / "swapped.txt", tmp_path)) == "not a regular file"


# --- file names that are not UTF-8 -----------------------------------------------------------------

@pytest.mark.parametrize(
    "raw", [b"caf\xe9\xff.md", "说明.txt".encode("gbk"), b"two\nlines\x1b[2J.md", b"back\\slash \\xe9.md"],
)
def test_a_name_that_is_not_utf8_is_indexed_under_a_printable_reversible_source(tmp_path: Path, raw: bytes) -> None:
    folder = tmp_path / os.fsdecode(b"sub\xfe")
    folder.mkdir()
    path = folder / os.fsdecode(raw)
    path.write_text(f"{CHINESE}\n", encoding="utf-8")
    found = list(discover(tmp_path))
    assert found == [path]
    doc = load(path, tmp_path).documents[0]
    assert doc.text == f"{CHINESE}\n"
    source = doc.source
    assert source == source_name(path.relative_to(tmp_path).as_posix())
    source.encode("utf-8")  # valid UTF-8: JSON, Chroma and SQLite take it
    assert source.isprintable() and "\n" not in source and "\x1b" not in source
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    print(source, file=out)  # prints on a strict UTF-8 terminal
    assert source_path(tmp_path, source) == path
    assert os.path.samefile(source_path(tmp_path, source), path)


def test_ordinary_names_are_their_own_source_name() -> None:
    for rel in ["notes/todo.txt", "中文/说明.md", "with space/100% done.md", "日本語.txt", "émoji 🚀.md"]:
        assert source_name(rel) == rel
        assert source_path(Path("/r"), rel) == Path("/r") / rel


def test_skips_of_undecodable_names_are_printable(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / os.fsdecode(b"pipe\xff"))
    (tmp_path / os.fsdecode(b"link\xfe")).symlink_to(tmp_path / os.fsdecode(b"link\xfe"))
    found = list(discover(tmp_path))
    assert [s.path for s in found if isinstance(s, Skip)] == ["link\\xfe", "pipe\\xff"]


# --- .ragignore lines git drops --------------------------------------------------------------------

@pytest.mark.parametrize("line", ["[z-a]", "\\", "!", "docs/[z-a].md", "trailing\\"])
def test_a_ragignore_line_git_drops_is_one_warning(tmp_path: Path, line: str) -> None:
    (tmp_path / ".ragignore").write_text(f"*.log\n{line}\n!keep.log\n", encoding="utf-8")
    for name in ["a.md", "z-a", "app.log", "keep.log", "docs/a.md", "trailing"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
    found = list(discover(tmp_path))
    notices = [n for n in found if isinstance(n, Notice)]
    assert [n.path for n in notices] == [".ragignore:2"]
    assert notices[0].reason.startswith(f"line 2 {line!r} is not a valid pattern and matches nothing, as in git (")
    # The other lines still apply, and the bad line excludes nothing: `git status --ignored` (2.39)
    # lists exactly these files as untracked with the same lines in a .gitignore.
    paths = sorted(p.relative_to(tmp_path).as_posix() for p in found if isinstance(p, Path))
    assert paths == ["a.md", "docs/a.md", "keep.log", "trailing", "z-a"]


def test_a_ragignore_that_is_not_a_file_is_a_warning_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / ".ragignore")
    (tmp_path / "a.md").write_text("a", encoding="utf-8")
    assert list(discover(tmp_path)) == [Notice(".ragignore", "not a regular file; its rules were not read"),
                                        tmp_path / "a.md"]


def test_a_ragignore_in_a_legacy_encoding_still_applies(tmp_path: Path) -> None:
    (tmp_path / ".ragignore").write_bytes("草稿/\n".encode("gbk") + b"*.tmp\n")
    (tmp_path / "a.tmp").write_text("x", encoding="utf-8")
    (tmp_path / "b.md").write_text("x", encoding="utf-8")
    assert list(discover(tmp_path)) == [tmp_path / "b.md"]


# --- end to end: one run over a folder full of them ------------------------------------------------

def test_a_folder_of_bad_inputs_is_one_run_with_one_line_per_problem(
    ollama_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.config import IndexSettings
    from ingest.indexer import index_folder

    monkeypatch.setattr("ingest.ollama_calls.RETRY_BASE_DELAY", 0.01)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text(f"# 指南\n\n{CHINESE}\n", encoding="utf-8")
    (docs / "big5.txt").write_bytes("檢索增強生成先從文件中檢索相關段落，再讓模型根據這些段落回答問題。\n".encode("big5"))
    gbk_name = docs / os.fsdecode("说明.txt".encode("gbk"))  # a name from a Chinese Windows zip
    gbk_name.write_text(f"{CHINESE}\n", encoding="utf-8")
    (docs / "locked.pdf").write_bytes(_encrypted(_pdf(["secret"]), user="u", owner="o", algorithm="AES-256"))
    (docs / "bomb.pdf").write_bytes(_bomb(3, _text_ops(1500)))
    (docs / "self.md").symlink_to(docs / "self.md")
    os.mkfifo(docs / "pipe.txt")
    (docs / ".ragignore").write_text("[z-a]\n*.log\n", encoding="utf-8")
    report = index_folder(docs, IndexSettings.resolve(host=ollama_server.url, db=tmp_path / "db"))
    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {"locked.pdf", "bomb.pdf", "self.md", "pipe.txt"}
    assert reasons["locked.pdf"] == "encrypted PDF (password required)"
    assert reasons["bomb.pdf"].startswith("over budget") and "max_text_ratio" in reasons["bomb.pdf"]
    assert reasons["self.md"] == "symlink loop (the link points back to itself)"
    assert reasons["pipe.txt"] == "not a regular file (named pipe)"
    # (the folder's text is mostly Chinese: the embedding-model advice may join the .ragignore warning)
    assert [w.path for w in report.warnings if "bge-m3" not in w.reason] == [".ragignore:1"]
    added = sorted(report.added)
    assert added[:2] == ["big5.txt", "good.md"] and len(added) == 3
    added[2].encode("utf-8")  # the report (and its JSON) can hold it
    assert source_path(docs, added[2]) == gbk_name
