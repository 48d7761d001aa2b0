"""The public Python API: one `RAG` object per index.

    from rag import RAG
    kb = RAG(db=".rag", collection="docs", host="http://127.0.0.1:11434")
    report = kb.index("docs/")           # IndexReport: added/updated/unchanged/removed/skipped ...
    hits = kb.search("what is num_ctx?")  # list[Hit]
    answer = kb.ask("what is num_ctx?")   # Answer, with citations
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from ingest.errors import OllamaError, StoreError
from ingest.indexer import ProgressFn, index_folder, open_store
from ingest.lock import WriterLock
from ingest.records import IndexReport, Skip
from ingest.verify import VerifyReport
from ingest.verify import repair as repair_index
from ingest.verify import verify as verify_index
from rag.answer import AnswerStream, ask_stream
from rag.chat import Chat
from rag.client import OllamaClient
from rag.config import Settings
from rag.models_types import ModelsReady, PullProgress
from rag.retrieve import Mode, Retriever, open_read_state
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
    skipped: list[Skip] = field(default_factory=list)  # files the last index run skipped, with reasons
    chroma: str | None = None  # the Chroma server, or None for the embedded store in ``db``

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "collection": self.collection,
            "root": self.root,
            "files": self.files,
            "chunks": self.chunks,
            "fingerprint": self.fingerprint,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "chroma": self.chroma,
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
        chroma: str | None = None,
        **options: Any,
    ) -> None:
        if chroma is not None:  # a Chroma server ("http://host:8000"); ``db`` is then a local cache
            options["chroma_url"] = chroma
        # One resolution of every setting (a misspelt option is a TypeError naming the closest one).
        self.settings = Settings.resolve(
            host=host, db=db, collection=collection, embed_model=embed_model, chat_model=chat_model, **options
        )
        self.index_settings = self.settings.index
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
        """Files, chunks, fingerprint and skipped files of the index (raises StoreError when there is none)."""
        store = open_store(self.index_settings)
        state = open_read_state(self.read_settings(), store)
        try:
            root = state.get_meta("root") or store.root().split(":", 1)[-1]
            last = json.loads(state.get_meta("last_run") or "{}")
            return IndexStatus(
                db=str(self.db.resolve()),
                collection=self.collection,
                root=root,
                files=len(state.indexed_sources()),
                chunks=store.count(),
                fingerprint=store.fingerprint(),
                skipped=[Skip(path, reason) for path, reason in last.get("skipped", [])],
                chroma=self.index_settings.chroma_url,
            )
        finally:
            state.close()
            store.close()

    def verify(self, *, reachability: bool = True, repair: bool = False) -> VerifyReport:
        """Prove the index is whole: store, file records and lexical index agree, and dense search
        reaches every chunk. With ``repair``, fix what can be fixed (under the writer lock)."""
        store = open_store(self.index_settings)
        state = open_read_state(self.read_settings(), store)
        try:
            report = verify_index(store, state, reachability=reachability)
            if repair and not report.consistent:
                with WriterLock(store, wait=self.index_settings.lock_wait):
                    report = repair_index(store, state, report)
            return report
        finally:
            state.close()
            store.close()

    # -- the read path: rag.retrieve / rag.answer / rag.chat ------------------------------------

    def read_settings(self) -> Settings:
        """Retrieval and answer settings: constructor options > RAG_* environment > defaults."""
        return self.settings

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
            self._client = self._first_healthy_chat_client()
        return self._client

    def _first_healthy_chat_client(self) -> OllamaClient:
        """Chat goes to the first chat host that answers; the next ones are the fail-over."""
        hosts = list(self.index_settings.chat_hosts or [self.host])
        for host in hosts[:-1]:
            client = OllamaClient(host, timeouts=self.index_settings.timeouts)
            try:
                client.health()
                return client
            except OllamaError:
                client.close()
        return OllamaClient(hosts[-1], timeouts=self.index_settings.timeouts)

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
