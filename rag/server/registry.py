"""The server's model state: what is installed (`/api/tags`), pullable, and loaded (`/api/ps`)."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from rag.server.catalog import digest_of, find_spec, full_name, name_key
from rag.server.engine import ModelSpec


@dataclass(frozen=True)
class Installed:
    """An installed model: its spec under the installed name, and the name the engine knows it by."""

    spec: ModelSpec
    engine_name: str
    modified_at: datetime

    @property
    def digest(self) -> str:
        # Copies share their source's manifest, so they share its digest, as in Ollama.
        return digest_of(self.engine_name)


@dataclass(frozen=True)
class Loaded:
    """A model in memory until ``expires_at``, with the context it was loaded with."""

    model: Installed
    expires_at: datetime
    context_length: int


class Registry:
    """Thread-safe installed and loaded models."""

    def __init__(self, models: list[ModelSpec], library: tuple[ModelSpec, ...] = ()) -> None:
        self._lock = threading.Lock()
        self.library = library
        now = datetime.now(timezone.utc).astimezone()
        self._installed = {name_key(s.name): Installed(s, s.name, now) for s in models}
        self._loaded: dict[str, Loaded] = {}
        self._blobs: set[str] = set()  # digests uploaded to /api/blobs

    def installed(self) -> list[Installed]:
        """Installed models, newest first (as `/api/tags` lists them)."""
        with self._lock:
            return sorted(self._installed.values(), key=lambda m: m.modified_at, reverse=True)

    def find(self, name: str) -> Installed | None:
        """The installed model ``name`` refers to, ignoring case and a missing `:latest`."""
        with self._lock:
            return self._installed.get(name_key(name)) if name else None

    def pullable(self, name: str) -> tuple[ModelSpec, str] | None:
        """The spec to install for ``name`` and the engine's name for it, or None if nothing matches."""
        existing = self.find(name)
        if existing:
            return existing.spec, existing.engine_name
        spec = find_spec(self.library, name)
        return (spec, spec.name) if spec else None

    def install(self, spec: ModelSpec, engine_name: str, name: str = "") -> Installed:
        """Add (or refresh) an installed model, under ``name`` when given."""
        display = full_name(name or spec.name)
        model = Installed(dataclasses.replace(spec, name=display), engine_name, datetime.now(timezone.utc).astimezone())
        with self._lock:
            self._installed[name_key(display)] = model
        return model

    def delete(self, name: str) -> bool:
        """Remove an installed model (and unload it); False when it was not installed."""
        key = name_key(name)
        with self._lock:
            self._loaded.pop(key, None)
            return self._installed.pop(key, None) is not None

    def load(self, model: Installed, num_ctx: int, keep_alive: timedelta) -> int:
        """Mark ``model`` loaded until now + ``keep_alive``; returns the load time in ns."""
        start = time.perf_counter_ns()
        key = name_key(model.spec.name)
        expires = datetime.now(timezone.utc).astimezone() + keep_alive
        with self._lock:
            if keep_alive <= timedelta(0):
                self._loaded.pop(key, None)
            else:
                self._loaded[key] = Loaded(model, expires, num_ctx)
        return max(1, time.perf_counter_ns() - start)

    def unload(self, name: str) -> None:
        """Drop ``name`` from memory (`keep_alive: 0`)."""
        with self._lock:
            self._loaded.pop(name_key(name), None)

    def add_blob(self, digest: str) -> None:
        """Remember an uploaded blob (`sha256:<hex>`)."""
        with self._lock:
            self._blobs.add(digest)

    def has_blob(self, digest: str) -> bool:
        """Whether a blob was uploaded."""
        with self._lock:
            return digest in self._blobs

    def running(self) -> list[Loaded]:
        """Models whose keep-alive has not expired, longest remaining first."""
        now = datetime.now(timezone.utc)
        with self._lock:
            for key in [k for k, m in self._loaded.items() if m.expires_at <= now]:
                del self._loaded[key]
            return sorted(self._loaded.values(), key=lambda m: m.expires_at, reverse=True)


def details(spec: ModelSpec) -> dict[str, Any]:
    """The `details` object of `/api/tags`, `/api/ps` and `/api/show`."""
    found: dict[str, Any] = {
        "parent_model": "",
        "format": "gguf",
        "family": spec.family,
        "families": [spec.family],
        "parameter_size": spec.parameter_size,
        "quantization_level": spec.quantization,
        "context_length": spec.context_length,
    }
    if spec.embedding_length:
        found["embedding_length"] = spec.embedding_length
    return found
