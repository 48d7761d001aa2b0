"""Plain typed results of `rag.client.OllamaClient` (frozen dataclasses, no SDK types leak out)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = ["Health", "ModelDetails", "ModelInfo", "ModelsReady", "PullProgress", "RunningModel", "to_json"]


@dataclass(frozen=True)
class Health:
    """The server answered: where, which version, and how fast (`GET /` round trip)."""

    host: str
    version: str
    latency_ms: float


@dataclass(frozen=True)
class ModelInfo:
    """One local model, as `/api/tags` lists it."""

    name: str
    size: int
    modified: datetime | None
    family: str
    parameter_size: str
    quantization: str


@dataclass(frozen=True)
class ModelDetails:
    """What `/api/show` says about a model."""

    name: str
    template: str
    parameters: str
    system: str
    capabilities: tuple[str, ...]
    embedding_length: int | None
    context_length: int | None
    family: str

    @property
    def is_embedder(self) -> bool:
        """True when the model produces embeddings."""
        return "embedding" in self.capabilities

    @property
    def can_chat(self) -> bool:
        """True when the model can complete text (chat / generate)."""
        return "completion" in self.capabilities


@dataclass(frozen=True)
class RunningModel:
    """One loaded model, as `/api/ps` lists it; ``size_vram`` 0 means it runs on the CPU."""

    name: str
    size: int
    size_vram: int
    expires_at: datetime | None
    context_length: int | None


@dataclass(frozen=True)
class PullProgress:
    """One progress line of a pull; ``digest`` is empty for phase lines such as "pulling manifest"."""

    status: str
    digest: str = ""
    completed: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class ModelsReady:
    """What `OllamaClient.ensure_models` checked (None for a model that was not asked for)."""

    embed: ModelDetails | None
    chat: ModelDetails | None


def to_json(obj: Any) -> Any:
    """A dataclass (or list of them) as JSON-ready dicts, datetimes in ISO 8601."""
    if isinstance(obj, list):
        return [to_json(item) for item in obj]
    data = asdict(obj)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
        elif isinstance(value, tuple):
            data[key] = list(value)
    return data
