"""What the bundled server needs from a model engine. Two engines implement it:
`rag.server.hash_engine.HashEngine` (deterministic, instant; the default) and
`rag.server.local_engine.LocalEngine` (real MiniLM + a small GGUF chat model; `folder-rag[local]`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

# Ollama's default context length (OLLAMA_CONTEXT_LENGTH unset): what a request without num_ctx gets.
DEFAULT_NUM_CTX = 4096


@dataclass(frozen=True)
class ModelSpec:
    """One model the engine serves, as `/api/tags` and `/api/show` describe it."""

    name: str  # full Ollama name with tag, e.g. "all-minilm:latest"
    family: str  # "bert", "nomic-bert", "qwen2", "llama", "gemma3"
    capabilities: tuple[str, ...]  # ("embedding",) or ("completion",) / ("completion", "tools")
    context_length: int  # trained context, `<arch>.context_length`
    embedding_length: int | None = None  # vector dimension for embedders (also hidden size for LLMs)
    parameter_size: str = ""  # "22.6M", "7.6B"
    quantization: str = ""  # "F16", "Q4_K_M"
    size: int = 0  # bytes on disk
    template: str = ""  # chat template text for /api/show
    parameters: str = ""  # Modelfile PARAMETER lines for /api/show
    system: str = ""

    @property
    def is_embedder(self) -> bool:
        return "embedding" in self.capabilities


class ContextExceeded(Exception):
    """An embedding input is longer than the model context and truncation was refused."""


@dataclass
class Generation:
    """A running completion. Iterate `pieces` for text; after it is exhausted the counts are final."""

    pieces: Iterator[str]
    prompt_tokens: int = 0  # tokens actually evaluated (after any num_ctx truncation)
    completion_tokens: int = 0
    done_reason: str = "stop"  # "stop" | "length"
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    """A model backend for the bundled Ollama-protocol server."""

    def models(self) -> list[ModelSpec]:
        """The models this engine serves."""
        ...

    def embed(self, model: str, texts: list[str], *, truncate: bool = True) -> tuple[list[list[float]], int]:
        """Raw (not normalised) vectors, one per text, and the total input token count.
        Raises ContextExceeded when an input is too long and ``truncate`` is False."""
        ...

    def chat(self, model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> Generation:
        """Answer a conversation. ``options`` are Ollama options (num_ctx, temperature, num_predict, ...).
        Prompts longer than ``options["num_ctx"]`` are cut like Ollama does: oldest non-system
        messages dropped first, and ``prompt_tokens`` reports what was actually evaluated."""
        ...

    def generate(self, model: str, prompt: str, system: str, options: dict[str, Any]) -> Generation:
        """Complete a prompt (``/api/generate`` and ``/v1/completions``)."""
        ...
