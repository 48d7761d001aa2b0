"""Index settings, resolved once (argument > environment > default) and passed explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ingest.ollama_calls import Timeouts, resolve_host

DEFAULT_DB = ".rag"
DEFAULT_COLLECTION = "docs"
DEFAULT_EMBED_MODEL = "nomic-embed-text"
# 400 cl100k tokens: long enough to hold a paragraph or two with its heading (answers need context),
# short enough that a question-sized query still matches it closely, and under every common
# embedder's window (nomic 2048, mxbai 512). Smaller models clamp it (see ingest.embedder).
DEFAULT_CHUNK_TOKENS = 400
DEFAULT_CHUNK_OVERLAP = 60  # 15%: a sentence cut at a boundary is still whole in one neighbour
DEFAULT_BATCH_SIZE = 32  # Ollama notes: batches above ~16-32 drift; 32 keeps HTTP overhead low
DEFAULT_MAX_FILE_BYTES = 50_000_000  # "50 MB" as `human_size` and the README say it
# Per-file budgets (ingest.loaders.LoadLimits). Real PDFs give 0.02-0.8 characters of text per byte
# (measured on the shared corpus) and plain text at most 1, while a "PDF bomb" whose pages share one
# compressed stream gave 2,500: 20x leaves wide headroom. 10 M characters is ~6,000 chunks of 400
# tokens. pypdf reads ~10 pages/s on a dense Chinese PDF, so 5,000 pages fit in the 300 s.
DEFAULT_MAX_TEXT_RATIO = 20.0
DEFAULT_MAX_TEXT_CHARS = 10_000_000
DEFAULT_MAX_PAGES = 5_000
DEFAULT_MAX_PARSE_SECONDS = 300.0
DEFAULT_LOCK_WAIT = 5.0
DEFAULT_PARALLEL = 2  # Ollama serves OLLAMA_NUM_PARALLEL requests at once; 2 keeps it busy while we write

@dataclass(frozen=True)
class IndexSettings:
    """Everything the write path needs. Build with `IndexSettings.resolve(...)`."""

    host: str
    db: Path = Path(DEFAULT_DB)
    collection: str = DEFAULT_COLLECTION
    embed_model: str = DEFAULT_EMBED_MODEL
    document_prefix: str | None = None  # None: the model's known prefix (ingest.embedder.PREFIXES)
    query_prefix: str | None = None
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP
    batch_size: int = DEFAULT_BATCH_SIZE
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_text_ratio: float = DEFAULT_MAX_TEXT_RATIO  # extracted characters per byte of the file
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS  # extracted characters per file
    max_pages: int = DEFAULT_MAX_PAGES  # pages per PDF
    max_parse_seconds: float = DEFAULT_MAX_PARSE_SECONDS  # parsing time per file
    include_hidden: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)
    # A Chroma server (`chroma run`) instead of the embedded store in ``db``; ``db`` is then a local cache.
    chroma_url: str | None = None
    chroma_token: str | None = None  # sent as Chroma's X-Chroma-Token header
    lock_wait: float = DEFAULT_LOCK_WAIT  # seconds a second writer waits for the collection's lock
    parallel: int = DEFAULT_PARALLEL  # embedding requests in flight (per Ollama host)
    workers: int = 0  # processes that parse and chunk files; 0 = one per core

    @classmethod
    def resolve(
        cls,
        *,
        host: str | None = None,
        db: str | os.PathLike[str] | None = None,
        collection: str | None = None,
        embed_model: str | None = None,
        **overrides: object,
    ) -> IndexSettings:
        """Arguments win, then RAG_* / OLLAMA_HOST environment variables, then defaults."""
        env = os.environ
        values: dict[str, object] = {
            "host": resolve_host(host),
            "db": Path(db or env.get("RAG_DB") or DEFAULT_DB),
            "collection": collection or env.get("RAG_COLLECTION") or DEFAULT_COLLECTION,
            "embed_model": embed_model or env.get("RAG_EMBED_MODEL") or DEFAULT_EMBED_MODEL,
            "timeouts": Timeouts.from_env(),
            "chroma_url": env.get("RAG_CHROMA_URL") or None,
            "chroma_token": env.get("RAG_CHROMA_TOKEN") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
