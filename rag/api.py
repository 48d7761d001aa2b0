"""The public Python API: one `RAG` object per index.

    from rag import RAG
    kb = RAG(db=".rag", collection="docs", host="http://127.0.0.1:11434")
    report = kb.index("docs/")           # IndexReport: added/updated/unchanged/removed/skipped ...
    hits = kb.search("what is num_ctx?")  # list[Hit]
    answer = kb.ask("what is num_ctx?")   # Answer, with citations
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from ingest.config import IndexSettings
from ingest.errors import StoreError
from ingest.indexer import ProgressFn, index_folder
from ingest.manifest import Manifest
from ingest.records import IndexReport
from ingest.store import Store
from rag.answer import AnswerStream, ask_stream
from rag.chat import Chat
from rag.client import OllamaClient
from rag.config import Settings
from rag.models_types import ModelsReady, PullProgress
from rag.retrieve import Mode, Retriever
from rag.types import Answer, Hit


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
        self._retriever: Retriever | None = None
        self._client: OllamaClient | None = None

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
        self._close_read_path()  # a rebuild replaces the collection a cached read handle points at
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

    # -- the read path: rag.retrieve / rag.answer / rag.chat ------------------------------------

    def read_settings(self) -> Settings:
        """Retrieval and answer settings: constructor options > RAG_* environment > defaults."""
        return Settings.resolve(index=self.index_settings, chat_model=self.chat_model, **self.options)

    def retriever(self) -> Retriever:
        """The opened index for searching (opened once, on first use)."""
        if self._retriever is None:
            self._retriever = Retriever.open(self.read_settings())
        return self._retriever

    def ensure_models(
        self, *, chat: bool = True, pull: bool = False, progress: Callable[[PullProgress], None] | None = None
    ) -> ModelsReady:
        """Check that the server has the index's embedding model and the chat model, with the right
        capabilities; with ``pull`` fetch what is missing. Raises ModelNotFound / ModelCapabilityError."""
        try:  # the index's own embedder (opened once and reused by search/ask)
            embed_model = self.retriever().embedder.model
        except StoreError:  # no index yet: the configured embedding model is the one that will be used
            embed_model = self.index_settings.embed_model
        chat_model = self.read_settings().chat_model if chat else None
        return self.chat_client().ensure_models(embed_model, chat_model, pull=pull, progress=progress)

    def chat_client(self) -> OllamaClient:
        """The HTTP client for `/api/chat` (made once, closed by `close()`)."""
        if self._client is None:
            self._client = OllamaClient(self.host, timeouts=self.index_settings.timeouts)
        return self._client

    def close(self) -> None:
        """Close the open index and HTTP connections (the object can still be used afterwards)."""
        self._close_read_path()

    def __enter__(self) -> RAG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close_read_path(self) -> None:
        if self._retriever is not None:
            self._retriever.close()
            self._retriever = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        path: str | None = None,
        kinds: Collection[str] | None = None,
        mode: Mode | None = None,
    ) -> list[Hit]:
        """The best passages for ``query``, with scores. ``path`` is a glob or folder; ``kinds`` file types."""
        return self.retriever().search(query, k=k, where_glob=path, kinds=kinds, mode=mode)

    @overload
    def ask(
        self, question: str, *, stream: Literal[False] = False, k: int | None = None, path: str | None = None,
        kinds: Collection[str] | None = None,
    ) -> Answer: ...

    @overload
    def ask(
        self, question: str, *, stream: Literal[True], k: int | None = None, path: str | None = None,
        kinds: Collection[str] | None = None,
    ) -> AnswerStream: ...

    @overload
    def ask(
        self, question: str, *, stream: bool, k: int | None = None, path: str | None = None,
        kinds: Collection[str] | None = None,
    ) -> Answer | AnswerStream: ...

    def ask(
        self,
        question: str,
        *,
        stream: bool = False,
        k: int | None = None,
        path: str | None = None,
        kinds: Collection[str] | None = None,
    ) -> Answer | AnswerStream:
        """Answer from the documents, with citations.

        With ``stream=True`` the result is an `AnswerStream`: iterate it for text pieces as they
        arrive; afterwards ``.answer`` holds the final `Answer`.
        """
        result = ask_stream(self.retriever(), question, client=self.chat_client(), k=k, where_glob=path, kinds=kinds)
        return result if stream else result.answer

    def chat(self, *, k: int | None = None, path: str | None = None, kinds: Collection[str] | None = None) -> Chat:
        """A multi-turn conversation: ``chat.ask(q)``, ``chat.history``, ``chat.reset()``."""
        return Chat(self.retriever(), client=self.chat_client(), k=k, where_glob=path, kinds=kinds)
