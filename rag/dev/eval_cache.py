"""An embedding cache for `make eval`: an `Engine` wrapper for the bundled server, not product code.

Embedding NFCorpus with MiniLM takes ~15 minutes on 2 cores; every later run re-embeds the same
chunk texts. `CachingEngine` wraps any engine (the `local` one in practice) and keeps each raw
vector in SQLite under ``sha256(model, truncate, text)``, so a re-run embeds only texts it has
never seen. Everything else still runs for real: the server, the official SDK, the chunker, the
embedder client, Chroma and the lexical index. The cache lives in ``bench/cache/`` (gitignored);
delete the folder to start cold.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

from rag.server.engine import Engine, Generation, ModelSpec


def cache_key(model: str, text: str, truncate: bool) -> str:
    """The content hash a vector is stored under."""
    return hashlib.sha256(f"{model}\0{int(truncate)}\0{text}".encode()).hexdigest()


class CachingEngine:
    """Delegates to ``inner``; `embed` answers from the cache and embeds only the misses."""

    def __init__(self, inner: Engine, path: Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, tokens INTEGER NOT NULL, vec BLOB NOT NULL)"
        )
        self._conn.commit()
        self._lock = threading.Lock()  # the server is threaded; one SQLite connection
        self.hits = 0
        self.misses = 0

    @property
    def library(self) -> tuple[Any, ...]:
        return tuple(getattr(self.inner, "library", ()))

    def models(self) -> list[ModelSpec]:
        return self.inner.models()

    def embed(self, model: str, texts: list[str], *, truncate: bool = True) -> tuple[list[list[float]], int]:
        keys = [cache_key(model, t, truncate) for t in texts]
        with self._lock:
            found: dict[str, tuple[int, bytes]] = {}
            for start in range(0, len(keys), 500):
                batch = keys[start : start + 500]
                rows = self._conn.execute(
                    f"SELECT key, tokens, vec FROM vectors WHERE key IN ({','.join('?' * len(batch))})", batch
                ).fetchall()
                found.update({k: (n, v) for k, n, v in rows})
        missing = [i for i, k in enumerate(keys) if k not in found]
        tokens = 0
        out: list[list[float] | None] = [None] * len(texts)
        if missing:
            # Per-text token counts are not reported by the engine, so each miss is embedded alone;
            # that costs little next to the model itself and keeps the cached counts exact.
            new_rows = []
            for i in missing:
                vectors, n = self.inner.embed(model, [texts[i]], truncate=truncate)
                out[i] = vectors[0]
                tokens += n
                new_rows.append((keys[i], n, np.asarray(vectors[0], dtype=np.float32).tobytes()))
            with self._lock:
                self._conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", new_rows)
                self._conn.commit()
        for i, k in enumerate(keys):
            if out[i] is None:
                n, blob = found[k]
                out[i] = np.frombuffer(blob, dtype=np.float32).tolist()
                tokens += n
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        return out, tokens  # type: ignore[return-value]

    def chat(self, model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> Generation:
        return self.inner.chat(model, messages, options)

    def generate(self, model: str, prompt: str, system: str, options: dict[str, Any]) -> Generation:
        return self.inner.generate(model, prompt, system, options)

    def close(self) -> None:
        """Close the cache and the inner engine."""
        with self._lock:
            self._conn.close()
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
