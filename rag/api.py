"""The public Python API: one `RAG` object per index.

    from rag import RAG
    kb = RAG(db=".rag", collection="docs", host="http://127.0.0.1:11434")
    report = kb.index("docs/")           # IndexReport: added/updated/unchanged/removed/skipped ...
    hits = kb.search("what is num_ctx?")  # list[Hit]
    answer = kb.ask("what is num_ctx?")   # Answer, with citations
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.config import IndexSettings
from ingest.indexer import ProgressFn, index_folder
from ingest.lexical import LexicalIndex
from ingest.manifest import Manifest
from ingest.records import IndexReport
from ingest.store import Store


@dataclass(frozen=True)
class IndexStatus:
    """What `rag status` reports."""

    db: str
    collection: str
    root: str
    files: int
    chunks: int
    fingerprint: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "collection": self.collection,
            "root": self.root,
            "files": self.files,
            "chunks": self.chunks,
            "fingerprint": self.fingerprint,
        }


class RAG:
    """An index of one folder in one Chroma collection, and the questions asked of it."""

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        collection: str | None = None,
        host: str | None = None,
        *,
        embed_model: str | None = None,
        chat_model: str | None = None,
        **options: Any,
    ) -> None:
        index_options = {k: v for k, v in options.items() if k in IndexSettings.__dataclass_fields__}
        self.index_settings = IndexSettings.resolve(
            host=host, db=db, collection=collection, embed_model=embed_model, **index_options
        )
        self.chat_model = chat_model
        self.options = {k: v for k, v in options.items() if k not in index_options}

    @property
    def host(self) -> str:
        return self.index_settings.host

    @property
    def db(self) -> Path:
        return self.index_settings.db

    @property
    def collection(self) -> str:
        return self.index_settings.collection

    def index(
        self, folder: str | os.PathLike[str], *, rebuild: bool = False, progress: ProgressFn | None = None
    ) -> IndexReport:
        """Sync ``folder`` into the index: embed new and changed files, remove deleted ones."""
        return index_folder(Path(folder), self.index_settings, rebuild=rebuild, progress=progress)

    def status(self) -> IndexStatus:
        """Files, chunks and fingerprint of the index (raises StoreError when there is none)."""
        store = Store.open(self.db, self.collection)
        manifest = Manifest.load(self.db, self.collection)
        return IndexStatus(
            db=str(self.db.resolve()),
            collection=self.collection,
            root=manifest.root,
            files=len(manifest.files),
            chunks=store.count(),
            fingerprint=store.fingerprint(),
        )

    # The read path (filled in by rag.retrieve / rag.answer / rag.chat).
    def _open_read_path(self) -> tuple[Store, LexicalIndex]:
        store = Store.open(self.db, self.collection)
        return store, LexicalIndex.open(self.db, self.collection, create=False)
