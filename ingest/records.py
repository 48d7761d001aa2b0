"""The records that flow through the write path: loaded documents, chunks and the index report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """Text loaded from one file, or from one page of a PDF."""

    source: str  # path relative to the indexed root, with forward slashes
    text: str
    page: int | None = None  # 1-based PDF page; None for files without pages
    title: str = ""  # HTML <title>, Markdown first heading, PDF metadata title
    kind: str = "text"  # "text" | "markdown" | "rst" | "html" | "code" | "pdf"


@dataclass(frozen=True)
class Chunk:
    """A token-sized piece of a document, as stored in Chroma."""

    id: str  # deterministic: sha256 of source, page, start and text (see ingest.chunking.chunk_id)
    text: str
    source: str
    page: int | None
    heading: str  # heading path, "Setup > Install"; "" when the document has no headings
    start: int  # character offsets into Document.text
    end: int
    tokens: int  # cl100k_base token count of text
    kind: str = "text"
    # Its BM25 terms and their counts (`ingest.lexical.term_counts`), counted by the parse worker that
    # made it, so that the one writer process does not; None: the lexical index counts them.
    terms: dict[str, int] | None = field(default=None, compare=False, repr=False)

    def metadata(self) -> dict[str, Any]:
        """Chroma metadata (Chroma accepts no None values, so page 0 means "no page")."""
        return {
            "source": self.source,
            "page": self.page or 0,
            "heading": self.heading,
            "start": self.start,
            "end": self.end,
            "tokens": self.tokens,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Skip:
    """A file (or PDF page) that was not indexed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Notice:
    """A warning about one entry that excludes nothing, e.g. a `.ragignore` line that matches nothing.

    `discover()` yields these beside paths and `Skip`s; they belong in `IndexReport.warnings`.
    """

    path: str
    reason: str


@dataclass
class IndexReport:
    """What one `index` run did. `to_dict()` is the `rag index --json` object."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    warnings: list[Skip] = field(default_factory=list)  # e.g. PDF pages without extractable text
    chunks: int = 0  # chunks written in this run
    embed_requests: int = 0  # HTTP requests made to the embedding endpoint
    hosts: dict[str, int] = field(default_factory=dict)  # embedding requests each Ollama host served
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d
