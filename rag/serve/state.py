"""What a running `rag serve` holds: its settings, one `AsyncRAG` per collection, and the running sync."""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from pathlib import Path

from ingest.config import IndexSettings
from ingest.errors import ConfigError, StoreError
from ingest.indexer import cache_dir
from ingest.state import STATE_SUFFIX
from rag.aio import WORKER_THREADS, AsyncRAG
from rag.serve.security import TOKEN_ENV, is_loopback

MODEL_PREFIX = "rag/"  # each collection is offered to Ollama / OpenAI clients as the model rag/<collection>


@dataclass(frozen=True)
class ServeConfig:
    """The options of `rag serve`; None means the usual default (environment, then built-in)."""

    db: str | None = None
    collection: str | None = None
    ollama_host: str | None = None
    chat_model: str | None = None
    token: str | None = None
    loopback_only: bool = True


class ServeState:
    """The knowledge bases a server answers from (opened on first use) and its one running sync."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        settings = IndexSettings.resolve(host=config.ollama_host, db=config.db, collection=config.collection)
        self.db: Path = settings.db
        self.state_dir: Path = cache_dir(settings)  # where each collection's state file lives
        self.default_collection = settings.collection
        self.syncing: str | None = None  # the collection being synced, while a sync runs
        self.sync_task: asyncio.Task[None] | None = None  # held here: the loop keeps only weak references
        self._executor = concurrent.futures.ThreadPoolExecutor(WORKER_THREADS, "rag-serve")
        self._kbs: dict[str, AsyncRAG] = {}

    def kb(self, collection: str | None = None) -> AsyncRAG:
        """The knowledge base of ``collection`` (default: the served one); StoreError for an unknown one."""
        name = collection or self.default_collection
        if name != self.default_collection and name not in self.collections():
            # Named in a request: only collections that exist (an object per made-up name would pile up).
            raise StoreError(f"no collection '{name}' in {self.db} — the indexed ones are: "
                             f"{', '.join(self.collections()) or 'none yet (run `rag index PATH`)'}")
        kb = self._kbs.get(name)
        if kb is None:
            kb = AsyncRAG(db=self.db, collection=name, host=self.config.ollama_host,
                          chat_model=self.config.chat_model, executor=self._executor)
            self._kbs[name] = kb
        return kb

    def collections(self) -> list[str]:
        """The collections indexed at least once (those with a state file)."""
        return sorted(p.name[: -len(STATE_SUFFIX)] for p in self.state_files())

    def state_files(self) -> list[Path]:
        return sorted(self.state_dir.glob("*" + STATE_SUFFIX)) if self.state_dir.is_dir() else []

    def state_file(self, collection: str) -> Path:
        return self.state_dir / f"{collection}{STATE_SUFFIX}"

    def collection_of_model(self, model: str) -> str | None:
        """``rag/docs`` (or ``rag/docs:latest``) -> ``docs`` when that collection exists, else None."""
        name = model.strip()
        if name.endswith(":latest"):
            name = name[: -len(":latest")]
        if not name.startswith(MODEL_PREFIX):
            return None
        collection = name[len(MODEL_PREFIX):]
        return collection if collection in self.collections() else None

    async def aclose(self) -> None:
        for kb in self._kbs.values():
            await kb.aclose()
        self._kbs.clear()
        self._executor.shutdown(wait=False)


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token (ConfigError names the fix)."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to listen on {host} without a token — pass --token T (or set {TOKEN_ENV}), "
            "or keep the default --host 127.0.0.1"
        )
