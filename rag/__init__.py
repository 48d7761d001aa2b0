"""rag: ask questions over a folder of private documents with a local Ollama server and Chroma."""

from ingest.errors import (
    ConfigError,
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
    StreamError,
)
from ingest.records import Chunk, IndexReport, Skip
from rag.api import RAG, IndexStatus
from rag.client import OllamaClient
from rag.types import Answer, Citation, Hit

__all__ = [
    "RAG",
    "Answer",
    "Chunk",
    "Citation",
    "ConfigError",
    "Hit",
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
    "StreamError",
]
