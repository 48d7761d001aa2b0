"""Bytes -> `Document`s: encodings, Markdown, reST, HTML, code and PDF pages, within a per-file budget.

`load` is the one seam between a file and the parsers: whatever a parser raises (pypdf, the HTML
parser, a codec) becomes a `LoadError` whose message is the one-line skip reason.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import stat
import time
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.config import (
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_PARSE_SECONDS,
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MAX_TEXT_RATIO,
)
from ingest.errors import ConfigError, LoadError
from ingest.language import HAN_RANGES
from ingest.paths import source_name
from ingest.pdf_fonts import fonts_parsed_once
from ingest.records import Document, Skip

if TYPE_CHECKING:
    from ingest.config import IndexSettings

MARKDOWN = frozenset({".md", ".markdown", ".mdown", ".mkd"})
RST = frozenset({".rst"})
HTML = frozenset({".html", ".htm", ".xhtml"})
CODE = frozenset(
    ".py .pyi .js .mjs .cjs .jsx .ts .tsx .go .rs .java .kt .scala .c .h .cc .cpp .cxx .hpp .cs .rb"
    " .php .swift .m .sh .bash .zsh .fish .ps1 .sql .r .lua .pl .yaml .yml .toml .json .ini .cfg"
    " .xml .css .scss .proto .graphql .tf .dockerfile .mk .cmake .gradle".split()
)
BINARY = frozenset(
    ".png .jpg .jpeg .gif .bmp .ico .tif .tiff .webp .heic .psd .zip .gz .tgz .bz2 .xz .zst .7z .rar"
    " .tar .jar .war .whl .egg .exe .dll .so .dylib .o .a .lib .class .pyc .pyo .wasm .bin .iso .dmg"
    " .img .mp3 .mp4 .m4a .wav .flac .ogg .avi .mov .mkv .webm .woff .woff2 .ttf .otf .ttc .eot"
    " .sqlite .sqlite3 .db .parquet .npy .npz .pkl .pt .onnx .gguf .safetensors .doc .docx .xls"
    " .xlsx .ppt .pptx .odt .ods .odp .epub .mobi".split()
)
_SNIFF = 8192  # like git: a NUL in the first 8 KiB means binary (unless it is UTF-16/32)
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Text with more undecodable places plus control characters than this share (or than _MIN_BAD in a
# short file) is binary read through a codec: random bytes give 25%, a damaged Chinese file <1%.
_MAX_BAD_SHARE = 0.02
_MIN_BAD = 4
_HTML_BLOCK = 256 * 1024  # the parse-time budget is checked between blocks of this many characters

# CJK scripts and punctuation (Han, kana, bopomofo, fullwidth forms): where words need no spaces.
# Han (ingest.language) plus radicals, CJK punctuation, kana, bopomofo and full-width forms
CJK_CHARS = rf"\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u312f{HAN_RANGES}\uff00-\uffef"
_CJK_RE = re.compile(f"[{CJK_CHARS}]")
_GAP_RE = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")
_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
                            "\ufb05": "st", "\ufb06": "st", "\u00ad": None})
# "two-\ncolumn" is a real compound; everything else hyphenated at a line end is a split word.
_COMPOUND_LEFT = frozenset("one two three four five six seven eight nine ten self non well half".split())
_HYPHEN_RE = re.compile(r"\b([A-Za-z]+)-\n[ \t]*([a-z])")

_clock = time.monotonic  # the parse-time budget's clock (tests replace it)


@dataclass(frozen=True)
class LoadResult:
    """The documents loaded from one file and the parts of it that were skipped (e.g. empty PDF pages)."""

    documents: list[Document]
    warnings: list[Skip]
    page_failures: tuple[tuple[int, str], ...] = ()  # (page, why it failed), of a PDF read in parts (see `load`)
    chars: int = 0  # characters of text read (a PDF read in parts checks their sum against its budget)


@dataclass(frozen=True)
class LoadLimits:
    """What one file may cost. A file over any of these is skipped with a reason naming the setting."""

    max_text_ratio: float = DEFAULT_MAX_TEXT_RATIO  # characters of text per byte of the file
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS  # characters of text per file
    max_pages: int = DEFAULT_MAX_PAGES  # pages per PDF
    max_parse_seconds: float = DEFAULT_MAX_PARSE_SECONDS  # checked between pages and blocks

    def __post_init__(self) -> None:
        for name in ("max_text_ratio", "max_text_chars", "max_pages", "max_parse_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be greater than 0 (got {getattr(self, name)}); pass a positive limit")

    @classmethod
    def from_settings(cls, settings: IndexSettings) -> LoadLimits:
        return cls(settings.max_text_ratio, settings.max_text_chars, settings.max_pages,
                   settings.max_parse_seconds)


@dataclass(frozen=True)
class Decoded:
    """Text decoded from bytes, the codec that read it, and how many undecodable places became U+FFFD."""

    text: str
    encoding: str
    replaced: int = 0


class _Budget:
    """One file's spending against its `LoadLimits`."""

    def __init__(self, limits: LoadLimits, size: int) -> None:
        self.limits = limits
        self.size = size
        self.started = _clock()

    def pages(self, count: int) -> None:
        if count > self.limits.max_pages:
            raise LoadError(f"over budget: {count:,} pages (limit {self.limits.max_pages:,}, setting max_pages)",
                            setting="max_pages")

    def text(self, chars: int) -> None:
        if chars > self.limits.max_text_chars:
            raise LoadError(f"over budget: more than {self.limits.max_text_chars:,} characters of text "
                            f"(setting max_text_chars)", setting="max_text_chars")
        allowed = self.limits.max_text_ratio * self.size
        if chars > allowed:
            raise LoadError(f"over budget: more than {int(allowed):,} characters of text from a {self.size:,}-byte "
                            f"file ({self.limits.max_text_ratio:g} per byte, setting max_text_ratio)",
                            setting="max_text_ratio")

    def time(self) -> None:
        if _clock() - self.started > self.limits.max_parse_seconds:
            raise LoadError(f"over budget: parsing took more than {self.limits.max_parse_seconds:g} s "
                            f"(setting max_parse_seconds)", setting="max_parse_seconds")


def load(path: Path, root: Path, limits: LoadLimits | None = None, *, part: int = 0, parts: int = 1) -> LoadResult:
    """Load one file; raise `LoadError(reason)` when the whole file must be skipped.

    `Document.source` is `ingest.paths.source_name` of the path relative to root.

    With ``parts`` > 1 (PDFs only), only every ``parts``-th page from page ``part + 1`` is read, so that
    several processes can share one long PDF. Such a part does not decide that the file has no text
    (its pages may all be blank while the others are not): it returns its `page_failures` and `chars`,
    and whoever joins the parts calls `check_pdf_parts`.
    """
    source = source_name(_relative(path, root))
    data = _read(path)
    budget = _Budget(limits or LoadLimits(), len(data))
    try:
        if parts > 1:
            return _load_pdf(data, source, budget, part=part, parts=parts)
        return _load(path, data, source, budget)
    except LoadError:
        raise
    except Exception as e:  # noqa: BLE001 - the seam: any parser failure is this one file's skip reason
        raise LoadError(f"cannot read {path.suffix or 'file'}: {one_line(e)}") from e


def one_line(e: BaseException) -> str:
    """An exception as one short line: its message's first line, else its class name."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line[:160]


def _load(path: Path, data: bytes, source: str, budget: _Budget) -> LoadResult:
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix == ".pdf" or data.startswith(b"%PDF-"):
        return _load_pdf(data, source, budget)
    if suffix in BINARY:
        raise LoadError("binary file")
    decoded = decode(data)
    budget.time()
    warned = [Skip(source, f"{decoded.replaced} undecodable byte sequence(s) replaced with U+FFFD "
                           f"(read as {decoded.encoding})")] if decoded.replaced else []
    text = decoded.text
    if suffix in HTML:
        try:
            title, body = html_to_text(text, budget)
        except LoadError:
            raise
        except Exception as e:  # noqa: BLE001 - html.parser's own errors, whatever their class
            raise LoadError(f"cannot parse HTML: {one_line(e)}") from e
        result = _single(source, body, "html", title, budget)
    elif suffix in MARKDOWN:
        result = _single(source, text, "markdown", _markdown_title(text), budget)
    elif suffix in RST or name.endswith(".rst.txt"):
        result = _single(source, text, "rst", _rst_title(text), budget)
    elif suffix in CODE or name in {"dockerfile", "makefile"}:
        result = _single(source, text, "code", "", budget)
    else:
        result = _single(source, text, "text", "", budget)
    return LoadResult(result.documents, warned + result.warnings)


def _relative(path: Path, root: Path) -> str:
    """The path relative to root with forward slashes (tolerates a symlinked or relative root)."""
    try:
        rel = Path(path).absolute().relative_to(Path(root).absolute())
    except ValueError:
        rel = Path(path).resolve().relative_to(Path(root).resolve())
    return rel.as_posix()


def _nonblocking(path: str, flags: int) -> int:
    # A FIFO swapped in after the walk would block a plain open() forever.
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb", opener=_nonblocking) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise LoadError("not a regular file")
            return f.read()
    except PermissionError:
        raise LoadError("permission denied") from None
    except FileNotFoundError:
        raise LoadError("file not found") from None
    except IsADirectoryError:
        raise LoadError("is a folder") from None
    except OSError as e:
        raise LoadError(f"cannot read: {e.strerror or e}") from None


def _single(source: str, text: str, kind: str, title: str, budget: _Budget) -> LoadResult:
    text = normalize(text, kind=kind)
    if not text.strip():
        raise LoadError("empty file")
    budget.text(len(text))
    return LoadResult([Document(source=source, text=text, title=title, kind=kind)], [])


# --- encodings -------------------------------------------------------------------------------------

def decode(data: bytes) -> Decoded:
    """Bytes -> text: a BOM, else strict UTF-8, else charset-normalizer's guess (GB18030, Big5,
    Shift-JIS, UTF-16 without a BOM, Latin-1 ...), else UTF-8/GB18030 with a few bytes replaced.

    Raises `LoadError("binary file")` for NUL bytes outside UTF-16/32 and for bytes no codec reads.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _lenient(data[len(bom):], codec)
    has_nul = b"\x00" in data[:_SNIFF]
    if not has_nul:
        try:
            return Decoded(data.decode("utf-8"), "utf-8")
        except UnicodeDecodeError:
            pass
    guess = _detect(data)
    if guess and (not has_nul or guess.startswith(("utf_16", "utf_32"))):
        decoded = _lenient(data, guess)
        if _plausible(decoded):
            return decoded
    if not has_nul:
        # A Chinese or UTF-8 file with a few damaged bytes: read it, and say how much was replaced.
        for codec in ("utf-8", "gb18030"):
            decoded = _lenient(data, codec)
            if _plausible(decoded):
                return decoded
    raise LoadError("binary file")


def _detect(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    return best.encoding if best is not None else None


def _lenient(data: bytes, codec: str) -> Decoded:
    text = data.decode(codec, errors="replace")
    return Decoded(text, codec, text.count("\ufffd"))


def _plausible(decoded: Decoded) -> bool:
    """Text, not binary read through a codec: few replacements and few control characters."""
    sample = decoded.text[: _SNIFF * 4]
    controls = sum(1 for c in sample if ord(c) < 32 and c not in "\t\n\r\f\v\x1b")
    return controls + sample.count("\ufffd") <= max(_MIN_BAD, _MAX_BAD_SHARE * len(sample)) and \
        decoded.replaced <= max(_MIN_BAD, _MAX_BAD_SHARE * len(decoded.text))


# --- normalisation ---------------------------------------------------------------------------------

def normalize(text: str, *, kind: str = "text") -> str:
    """Newlines to \\n, no NULs, NFC; PDF ligatures/hyphens fixed; groff space runs in Chinese closed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = unicodedata.normalize("NFC", text)
    if kind == "pdf":
        text = text.translate(_LIGATURES)
        text = _HYPHEN_RE.sub(_join_hyphen, text)
    if kind != "code":
        text = _GAP_RE.sub(lambda m: _close_gap(text, m), text)
    return text


def _join_hyphen(m: re.Match[str]) -> str:
    left = m.group(1)
    return f"{left}-{m.group(2)}" if left.lower() in _COMPOUND_LEFT else f"{left}{m.group(2)}"


def _close_gap(text: str, m: re.Match[str]) -> str:
    before, after = text[m.start() - 1], text[m.end()]
    cjk_before, cjk_after = bool(_CJK_RE.match(before)), bool(_CJK_RE.match(after))
    if cjk_before and cjk_after:
        return ""
    return " " if cjk_before or cjk_after else m.group()


# --- titles ----------------------------------------------------------------------------------------

def _markdown_title(text: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines[:200]):
        if line.startswith("# "):
            return line[2:].strip().rstrip("#").strip()
        if line.strip() and i + 1 < len(lines) and re.fullmatch(r"=+\s*", lines[i + 1]):
            return line.strip()
    return ""


def _rst_title(text: str) -> str:
    lines = text.splitlines()
    for i in range(len(lines) - 1):
        title, under = lines[i].strip(), lines[i + 1].rstrip()
        if title and re.fullmatch(r"([=\-~^\"'`#*+:.])\1{2,}", under) and len(under) >= len(title):
            return title
    return ""


# --- HTML ------------------------------------------------------------------------------------------

_DROP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "nav", "aside", "footer",
                        "form", "button", "select", "iframe"})
_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})
_DROP_CLASS = re.compile(r"\b(nav|navbar|nav-panel|sidebar|sphinxsidebar|related|menu|breadcrumbs?|"
                         r"header|footer|headerlink|copiable-anchor|skip-link)\b")
_BLOCK = frozenset({"p", "div", "section", "article", "main", "ul", "ol", "dl", "table", "pre",
                    "blockquote", "figure", "figcaption", "hr", "body", "details", "summary"})
_LINE = frozenset({"li", "tr", "br", "dt", "dd", "caption"})
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed",
                   "param", "source", "track", "wbr"})


class _HtmlText(HTMLParser):
    """Visible text with blocks as paragraphs and h1-h6 as Markdown `#` headings."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.title: list[str] = []
        self.in_title = False
        self.drop: list[str] = []  # tag names of the dropped elements we are inside
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
            return
        if tag in _VOID:
            if not self.drop and tag in {"br", "hr"}:
                self._break(1)
            return
        a = {k: v or "" for k, v in attrs}
        if self.drop or tag in _DROP_TAGS or a.get("role") in _DROP_ROLES or (
            _DROP_CLASS.search(a.get("class", "")) and tag not in {"body", "main", "article"}
        ):
            self.drop.append(tag)
            return
        self._open(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif self.drop:
            if tag in self.drop:  # tolerate unclosed children: pop back to the matching element
                while self.drop and self.drop.pop() != tag:
                    pass
        elif re.fullmatch(r"h[1-6]", tag):
            self._break(2)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self._break(1)
            self.out.append("```")
            self._break(2)
        elif tag in _BLOCK:
            self._break(2)
        elif tag in _LINE:
            self._break(1)
        elif tag in {"td", "th"}:
            self.out.append(" ")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.drop:
            if not self.pre:
                data = re.sub(r"\s+", " ", data)
                if not self.out or self.out[-1][-1:].isspace():
                    data = data.lstrip()
            if data:
                self.out.append(data)

    def _open(self, tag: str) -> None:
        if re.fullmatch(r"h[1-6]", tag):
            self._break(2)
            self.out.append("#" * int(tag[1]) + " ")
        elif tag == "pre":
            # Fenced, so a "# comment" line in code is not taken for a heading by the chunker.
            self.pre += 1
            self._break(2)
            self.out.append("```\n")
        elif tag in _BLOCK:
            self._break(2)
        elif tag in _LINE:
            self._break(1)

    def _break(self, lines: int) -> None:
        """End the current line or paragraph: at least `lines` newlines, never stacking them."""
        tail = "".join(self.out[-4:]).rstrip(" ")
        have = len(tail) - len(tail.rstrip("\n")) if tail else lines
        if have < lines:
            self.out.append("\n" * (lines - have))


def html_to_text(html: str, budget: _Budget | None = None) -> tuple[str, str]:
    """(title, text) of an HTML page, without scripts, styles and navigation."""
    parser = _HtmlText()
    for start in range(0, len(html), _HTML_BLOCK):
        if budget is not None and start:
            budget.time()
        parser.feed(html[start : start + _HTML_BLOCK])
    parser.close()
    title = re.sub(r"\s+", " ", "".join(parser.title)).strip()
    text = "".join(parser.out)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return title, text + "\n" if text else ""


# --- PDF -------------------------------------------------------------------------------------------

def check_pdf_parts(
    *, chars: int, has_text: bool, page_failures: list[tuple[int, str]], limits: LoadLimits, size: int
) -> None:
    """Raise the `LoadError` the whole PDF would have raised, given what its parts read together."""
    _Budget(limits, size).text(chars)
    if not has_text:
        raise LoadError(_empty_pdf_reason([why for _, why in sorted(page_failures)]))


def _empty_pdf_reason(failures: list[str]) -> str:
    if failures:  # the pages broke: that, not "scanned images", is why nothing was read
        others = len(failures) - 1
        more = f" (and {others} more page{'s' if others > 1 else ''})" if others else ""
        return failures[0] + more
    return "no extractable text in PDF (scanned images?)"


def _load_pdf(data: bytes, source: str, budget: _Budget, *, part: int = 0, parts: int = 1) -> LoadResult:
    from pypdf import PdfReader

    # pypdf warns (and logs) about every malformed object it recovers from: noise for our users.
    with warnings.catch_warnings(), _quiet_pypdf(), fonts_parsed_once():
        warnings.simplefilter("ignore")
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                _decrypt(reader)
            count = len(reader.pages)
        except LoadError:
            raise
        except Exception as e:  # noqa: BLE001 - pypdf raises far more than PyPdfError on broken files
            raise LoadError(f"corrupt PDF: {one_line(e)}") from e
        if not count:
            raise LoadError("corrupt PDF: no pages")
        budget.pages(count)
        title = _pdf_title(reader)
        docs, skipped, failed_pages = [], [], []
        chars = 0
        for number in range(1 + part, count + 1, parts):
            if number > 1 + part:
                budget.time()
            try:
                raw = reader.pages[number - 1].extract_text() or ""
            except Exception as e:  # noqa: BLE001 - one bad page must not lose the others
                failed_pages.append((number, _page_failure(e, number)))
                skipped.append(Skip(f"{source}#page={number}", failed_pages[-1][1]))
                continue
            text = _join_cjk_wraps(normalize(raw, kind="pdf")).strip()
            chars += len(text)
            budget.text(chars)
            if not text:
                skipped.append(Skip(f"{source}#page={number}",
                                    f"no extractable text on page {number} (scanned image?)"))
                continue
            docs.append(Document(source=source, text=text + "\n", page=number, title=title, kind="pdf"))
    if not docs and parts == 1:
        raise LoadError(_empty_pdf_reason([why for _, why in failed_pages]))
    return LoadResult(docs, skipped, tuple(failed_pages), chars)


def _page_failure(e: Exception, number: int) -> str:
    from pypdf.errors import LimitReachedError

    if isinstance(e, LimitReachedError):
        return (f"a compressed stream on page {number} expands past pypdf's safety limit "
                f"(a decompression bomb?): {one_line(e)}")
    return f"text extraction failed on page {number}: {one_line(e)}"


def _join_cjk_wraps(text: str) -> str:
    """Undo a PDF's visual line wraps inside Chinese sentences ("硕士学位\n论文" -> "硕士学位论文")."""
    out: list[str] = []
    for line in text.split("\n"):
        prev = out[-1].rstrip() if out else ""
        head = line.lstrip()[:1]
        # A short line is a heading or list item, and one ending a sentence ends the paragraph.
        if len(prev) >= 15 and _CJK_RE.match(prev[-1]) and prev[-1] not in "。！？：；" and head \
                and _CJK_RE.match(head):
            out[-1] = prev + line.lstrip()
        else:
            out.append(line)
    return "\n".join(out)


@contextlib.contextmanager
def _quiet_pypdf() -> Iterator[None]:
    log = logging.getLogger("pypdf")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _decrypt(reader: object) -> None:
    from pypdf import PasswordType
    from pypdf.errors import DependencyError

    try:
        result = reader.decrypt("")  # type: ignore[attr-defined]
    except (DependencyError, NotImplementedError) as e:
        raise LoadError(f"encrypted PDF (unsupported encryption: {one_line(e)})") from None
    if result == PasswordType.NOT_DECRYPTED:
        raise LoadError("encrypted PDF (password required)")


def _pdf_title(reader: object) -> str:
    try:
        meta = reader.metadata  # type: ignore[attr-defined]
        title = str(meta.title or "").strip() if meta else ""
    except Exception:  # noqa: BLE001 - metadata is optional and often broken
        return ""
    # Word and TeX leave placeholders ("untitled", "Microsoft Word - x.docx", "各院、系：").
    if len(title) < 3 or title.lower() in {"untitled", "title", "unknown"}:
        return ""
    if title.endswith((":", "：")) or re.search(r"\.(docx?|pdf|tex|dvi|rtf|odt)$", title, re.I):
        return ""
    return title
