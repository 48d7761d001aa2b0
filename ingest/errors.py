"""The one exception tree of `rag` (``rag`` re-exports it).

    RagError                      root; carries ``what`` and ``fix``; ``str(e)`` is the one line "what — fix"
    ├── ConfigError               a bad setting or argument
    ├── OllamaError               anything that went wrong talking to Ollama; carries ``host``
    │   ├── OllamaUnreachable     connection refused / DNS failure (plain *and* streamed calls)
    │   ├── OllamaTimeout         connect or read timeout; carries ``phase`` (connect, read, write, pool)
    │   ├── ModelNotFound         404 for a model; carries ``model``
    │   ├── ModelCapabilityError  e.g. an embedding-only model asked to chat; carries ``model``
    │   ├── ServerBusy            503 after retries ran out
    │   ├── StreamError           an ``{"error": ...}`` line in the middle of a stream
    │   └── OllamaResponseError   any other HTTP error status; carries ``status``
    │       └── OllamaAuthError   401 / 403: credentials missing or refused (a proxy in front of Ollama)
    ├── IndexMismatch             the index was built with other settings (model, dims, prefixes, chunking)
    ├── StoreError                Chroma failed (locked, corrupt, missing)
    │   ├── IndexLocked           another process is writing the collection; carries ``pid``, ``host``, ``since``
    │   ├── CollectionNotFound    no such collection (from Chroma's NotFoundError)
    │   └── StoreUnreachable      the Chroma server does not answer (exit 3, like an unreachable Ollama)
    └── LoadError                 one file cannot be read; the indexer turns it into a skip reason

Every SDK, httpx and Chroma exception is mapped to one of these at exactly one seam
(`ingest.ollama_calls.call` / `ingest.ollama_calls.stream` for Ollama, `ingest.store` for Chroma).
"""

from __future__ import annotations


class RagError(Exception):
    """Root of every error `rag` raises on purpose: ``what`` went wrong and the ``fix`` (the next
    thing to do), read as fields; ``str(e)`` joins them into one line, "what — fix"."""

    def __init__(self, what: str, *, fix: str = "") -> None:
        super().__init__(f"{what} — {fix}" if fix else what)
        self.what = what
        self.fix = fix


class ConfigError(RagError):
    """A setting or argument is invalid."""


class ConfigWarning(UserWarning):
    """A ``RAG_*`` environment variable that is not a setting (a typo, or another tool's): ignored."""


class OllamaError(RagError):
    """Talking to the Ollama server failed."""

    def __init__(self, message: str, *, host: str = "", fix: str = "") -> None:
        super().__init__(message, fix=fix)
        self.host = host


class OllamaUnreachable(OllamaError):
    """Nothing answers at the configured host."""


class OllamaTimeout(OllamaError):
    """The server did not answer in time. ``phase`` says which timeout fired: a read timeout is not
    retried (the server may still be working on the request)."""

    def __init__(self, message: str, *, host: str = "", phase: str = "read", fix: str = "") -> None:
        super().__init__(message, host=host, fix=fix)
        self.phase = phase


class ModelNotFound(OllamaError):
    """The server does not have the model."""

    def __init__(self, message: str, *, host: str = "", model: str = "", fix: str = "") -> None:
        super().__init__(message, host=host, fix=fix)
        self.model = model


class ModelCapabilityError(OllamaError):
    """The model exists but cannot do what was asked (embed vs chat)."""

    def __init__(self, message: str, *, host: str = "", model: str = "", fix: str = "") -> None:
        super().__init__(message, host=host, fix=fix)
        self.model = model


class ServerBusy(OllamaError):
    """503 from the server, still busy after the retries."""


class StreamError(OllamaError):
    """The server reported an error in the middle of a stream."""


class OllamaResponseError(OllamaError):
    """Any other error status from the server."""

    def __init__(self, message: str, *, host: str = "", status: int = 0, fix: str = "") -> None:
        super().__init__(message, host=host, fix=fix)
        self.status = status


class OllamaAuthError(OllamaResponseError):
    """401 or 403: the server (or the proxy in front of it) wants credentials, or refused them."""


class IndexMismatch(RagError):
    """The collection was built with different index settings."""


class StoreError(RagError):
    """The Chroma store failed."""


class LoadError(RagError):
    """A file could not be loaded; the message is the skip reason.

    ``setting`` names the per-file budget the file went over (e.g. ``max_text_chars``), else "".
    """

    def __init__(self, message: str, *, setting: str = "", fix: str = "") -> None:
        super().__init__(message, fix=fix)
        self.setting = setting


class IndexLocked(StoreError):
    """Another process holds the collection's writer lock (exit 5)."""

    def __init__(
        self, message: str, *, collection: str = "", pid: int = 0, host: str = "", since: str = "", fix: str = ""
    ) -> None:
        super().__init__(message, fix=fix)
        self.collection = collection
        self.pid = pid
        self.host = host
        self.since = since


class CollectionNotFound(StoreError):
    """The collection does not exist (yet)."""


class StoreUnreachable(StoreError):
    """The Chroma server does not answer."""
