"""rag: ask questions over a folder of private documents with a local Ollama server and Chroma."""

from typing import TYPE_CHECKING, Any

from ingest.errors import (
    CollectionNotFound,
    ConfigError,
    ConfigWarning,
    IndexLocked,
    IndexMismatch,
    LoadError,
    ModelCapabilityError,
    ModelNotFound,
    OllamaAuthError,
    OllamaError,
    OllamaResponseError,
    OllamaTimeout,
    OllamaUnreachable,
    RagError,
    ServerBusy,
    StoreError,
    StoreUnreachable,
    StreamError,
)
from ingest.records import Chunk, IndexReport, Skip
from rag.types import Answer, Citation, Hit

if TYPE_CHECKING:
    from rag.aio import AsyncRAG
    from rag.api import RAG, IndexStatus
    from rag.client import OllamaClient

# Loaded on first use, so that `import rag.server` (the bundled Ollama double, used in other
# projects' test suites) does not pull in chromadb, numpy and tiktoken.
_LAZY = {"RAG": "rag.api", "IndexStatus": "rag.api", "OllamaClient": "rag.client", "AsyncRAG": "rag.aio"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")

__all__ = [
    "RAG",
    "AsyncRAG",
    "Answer",
    "Chunk",
    "Citation",
    "CollectionNotFound",
    "ConfigError",
    "ConfigWarning",
    "Hit",
    "IndexLocked",
    "IndexMismatch",
    "IndexReport",
    "IndexStatus",
    "LoadError",
    "ModelCapabilityError",
    "ModelNotFound",
    "OllamaAuthError",
    "OllamaClient",
    "OllamaError",
    "OllamaResponseError",
    "OllamaTimeout",
    "OllamaUnreachable",
    "RagError",
    "ServerBusy",
    "Skip",
    "StoreError",
    "StoreUnreachable",
    "StreamError",
]
