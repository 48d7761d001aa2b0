"""Embedding through Ollama: batched `/api/embed`, model prefixes, retries, legacy fallback.

`/api/embed` returns unit vectors; the legacy `/api/embeddings` (one prompt per request, raw
vectors) is used only when the server has no `/api/embed`, and its vectors are normalised here so
that both give the same cosine geometry.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import ollama

from ingest import ollama_calls
from ingest.config import IndexSettings
from ingest.errors import (
    ModelNotFound,
    OllamaError,
    OllamaResponseError,
    OllamaTimeout,
    OllamaUnreachable,
    ServerBusy,
    StreamError,
)

# (document prefix, query prefix) per model family; Ollama adds none itself, and nomic loses
# recall without them. Others get none unless configured.
PREFIXES: dict[str, tuple[str, str]] = {
    "nomic-embed-text": ("search_document: ", "search_query: "),
    "mxbai-embed-large": ("", "Represent this sentence for searching relevant passages: "),
}
# Usable input window in the model's own tokens, when /api/show cannot tell us.
KNOWN_CONTEXT: dict[str, int] = {"nomic-embed-text": 2048, "mxbai-embed-large": 512, "all-minilm": 256}
# Chunks are counted in cl100k tokens, the model counts its own word pieces (BERT splits Chinese
# into one piece per character, where cl100k often merges two): keep 30% headroom.
CONTEXT_SAFETY = 0.7

ENDPOINT_EMBED = "api/embed"
ENDPOINT_LEGACY = "api/embeddings"


def model_family(model: str) -> str:
    """`nomic-embed-text:latest` and `library/nomic-embed-text:v1.5` both give `nomic-embed-text`."""
    return model.split(":", 1)[0].rsplit("/", 1)[-1].lower()


def default_prefixes(model: str) -> tuple[str, str]:
    """The (document, query) prefixes a model expects; ("", "") when none is known."""
    return PREFIXES.get(model_family(model), ("", ""))


def resolve_prefixes(model: str, document_prefix: str | None, query_prefix: str | None) -> tuple[str, str]:
    """Configured prefixes win over the model's known ones."""
    doc_default, query_default = default_prefixes(model)
    return (
        doc_default if document_prefix is None else document_prefix,
        query_default if query_prefix is None else query_prefix,
    )


def max_chunk_tokens(model: str, context_length: int | None) -> int | None:
    """The largest chunk (cl100k tokens) that fits the model's window, or None when unknown."""
    ctx = context_length or KNOWN_CONTEXT.get(model_family(model))
    return int(ctx * CONTEXT_SAFETY) if ctx else None


class Embedder:
    """Embeds documents and queries with one model; counts its HTTP requests."""

    def __init__(
        self,
        settings: IndexSettings,
        *,
        model: str | None = None,
        document_prefix: str | None = None,
        query_prefix: str | None = None,
        endpoint: str | None = None,
        retries: int = ollama_calls.DEFAULT_RETRIES,
    ) -> None:
        self.settings = settings
        self.model = model or settings.embed_model
        self.document_prefix, self.query_prefix = resolve_prefixes(
            self.model,
            settings.document_prefix if document_prefix is None else document_prefix,
            settings.query_prefix if query_prefix is None else query_prefix,
        )
        self.endpoint = endpoint  # None until the first request tells us which one the server has
        self.retries = retries
        self.requests = 0
        self.dimension: int | None = None
        self._client: ollama.Client = ollama_calls.make_client(settings.host, settings.timeouts)

    @classmethod
    def from_fingerprint(cls, fingerprint: dict[str, Any], settings: IndexSettings) -> Embedder:
        """The embedder that matches an existing index (its model and prefixes), on the first embedding host."""
        return cls(
            replace(settings, host=settings.embed_hosts[0]) if settings.embed_hosts else settings,
            model=str(fingerprint["embed_model"]),
            document_prefix=str(fingerprint.get("document_prefix", "")),
            query_prefix=str(fingerprint.get("query_prefix", "")),
            # Not the recorded endpoint: both give the same unit vectors, and a server upgraded
            # since the index was built may now have /api/embed.
        )

    @property
    def host(self) -> str:
        return self.settings.host

    def close(self) -> None:
        """Close the HTTP connection pool."""
        ollama_calls.close_client(self._client)

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def context_length(self) -> int | None:
        """The model's context from `/api/show`, or None when the server cannot say."""
        try:
            info = ollama_calls.call(self._client.show, self.model, host=self.host)
        except OllamaError:
            return None
        for key, value in (info.modelinfo or {}).items():
            if key.endswith(".context_length") and isinstance(value, int):
                return value
        return None

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Unit float32 vectors for chunk texts, with the document prefix, in batches."""
        return self._embed([self.document_prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        """A unit float32 vector for a query, with the query prefix."""
        return self._embed([self.query_prefix + text])[0]

    def _embed(self, inputs: list[str]) -> np.ndarray:
        if not inputs:
            return np.zeros((0, self.dimension or 0), dtype=np.float32)
        step = max(1, self.settings.batch_size)
        parts = [self._embed_batch(inputs[i : i + step]) for i in range(0, len(inputs), step)]
        vectors = np.vstack(parts)
        self.dimension = int(vectors.shape[1])
        return vectors

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        if self.endpoint != ENDPOINT_LEGACY:
            try:
                self.requests += 1
                response = ollama_calls.call(
                    self._client.embed,
                    host=self.host,
                    retries=self.retries,
                    model=self.model,
                    input=batch,
                    truncate=True,
                )
                self.endpoint = ENDPOINT_EMBED
                return _unit_rows(response.embeddings, self.host, self.model)
            except OllamaResponseError as err:
                # An old server has no /api/embed at all (plain-text 404); anything else is real.
                if err.status != 404 or self.endpoint == ENDPOINT_EMBED:
                    raise
                self.endpoint = ENDPOINT_LEGACY
        rows = []
        for text in batch:  # the legacy endpoint takes one prompt per request
            self.requests += 1
            legacy = ollama_calls.call(
                self._client.embeddings, host=self.host, retries=self.retries, model=self.model, prompt=text
            )
            rows.append(legacy.embedding)
        return _unit_rows(rows, self.host, self.model)


def _unit_rows(rows: Any, host: str, model: str) -> np.ndarray:
    vectors = np.asarray([list(r) for r in rows], dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] == 0:
        raise OllamaError(f"model {model} on {host} returned no embeddings — is it an embedding model?", host=host)
    if not np.isfinite(vectors).all():
        raise OllamaError(f"model {model} on {host} returned NaN/Inf embeddings — check the model", host=host)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


MIN_REQUEST_INPUTS = 4  # below this, a request's own overhead outweighs spreading it over more slots


def _request_size(count: int, batch_size: int, slots: int) -> int:
    """Inputs per request: at most ``batch_size``, and even across the rounds the slots need.

    Cutting 276 inputs into requests of 32 makes 9, which four slots serve in three rounds with the last
    nearly idle, and two slots in five. Requests of 23 fill every slot in each of the three rounds, so
    time per round follows the inputs, and more hosts shorten it in proportion.
    """
    rounds = -(-count // (batch_size * slots))
    return max(1, min(count, MIN_REQUEST_INPUTS), -(-count // (max(1, rounds) * slots)))


# Failures that say "this host, not this request": the group goes to another host.
_HOST_FAILURES = (OllamaUnreachable, OllamaTimeout, ServerBusy, StreamError, ModelNotFound, OllamaResponseError)


class EmbedderPool:
    """Embedding spread over several Ollama hosts (`IndexSettings.embed_hosts`).

    Each call goes to the healthy host with the fewest requests in flight. A host that fails (down,
    timing out, busy past its retries, a 5xx, or missing the model) is set aside for the rest of the
    run and the call is retried on another; only when every host has failed does the error reach the
    caller. With one host this is just that host's `Embedder`.
    """

    def __init__(self, settings: IndexSettings, hosts: Sequence[str] | None = None) -> None:
        hosts = list(hosts or settings.embed_hosts or [settings.host])
        self.embedders = {h: Embedder(replace(settings, host=h)) for h in hosts}
        self.first = self.embedders[hosts[0]]
        self.down: dict[str, str] = {}  # host -> why it was set aside
        self._inflight = dict.fromkeys(hosts, 0)
        self._slots = max(1, settings.parallel)  # requests in flight per host
        self._free = threading.Condition()
        self._tickets = itertools.count()
        self._waiting: deque[int] = deque()  # tickets of requests waiting for a slot, oldest first

    # The first host's embedder answers for the model and its prefixes (all hosts serve the same model).
    @property
    def model(self) -> str:
        return self.first.model

    @property
    def document_prefix(self) -> str:
        return self.first.document_prefix

    @property
    def query_prefix(self) -> str:
        return self.first.query_prefix

    @property
    def endpoint(self) -> str | None:
        return next((e.endpoint for e in self.embedders.values() if e.endpoint), None)

    @property
    def requests(self) -> int:
        return sum(e.requests for e in self.embedders.values())

    def requests_by_host(self) -> dict[str, int]:
        """Embedding requests each host served (the index report's ``hosts``)."""
        return {h: e.requests for h, e in self.embedders.items()}

    def context_length(self) -> int | None:
        for host, embedder in self.embedders.items():
            if host not in self.down:
                return embedder.context_length()
        return None

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for chunk texts. The texts go out in requests of at most ``batch_size``, all at
        once, each to a host with a free slot (at most ``parallel`` requests in flight per host)."""
        step = _request_size(len(texts), max(1, self.first.settings.batch_size), self._slots * self._healthy())
        batches = [list(texts[i : i + step]) for i in range(0, len(texts), step)]
        if len(batches) <= 1:
            return self._embed_batch(batches[0] if batches else [])
        with cf.ThreadPoolExecutor(max_workers=min(len(batches), self._slots * len(self.embedders)),
                                   thread_name_prefix="rag-embed-request") as pool:
            parts = list(pool.map(self._embed_batch, batches))
        return np.vstack(parts)

    def _healthy(self) -> int:
        with self._free:
            return max(1, len(self.embedders) - len(self.down))

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        tried: set[str] = set()
        while True:
            host = self._take_slot(tried)
            try:
                return self.embedders[host].embed_documents(batch)
            except _HOST_FAILURES as err:
                if isinstance(err, OllamaResponseError) and err.status and err.status < 500:
                    raise  # a bad request fails the same way everywhere
                with self._free:
                    self.down[host] = str(err)
                tried.add(host)
                if len(self.embedders) == 1:
                    raise
            finally:
                with self._free:
                    self._inflight[host] -= 1
                    self._free.notify_all()

    def _take_slot(self, tried: set[str]) -> str:
        """The healthy, untried host with the fewest requests in flight, once it has a free slot.

        Slots go to waiting requests first come, first served: the indexer commits groups in order,
        so a request of the oldest group that lost the race for a slot to a younger group's would hold
        up every commit behind it while the hosts idle."""
        with self._free:
            ticket = next(self._tickets)
            self._waiting.append(ticket)
            try:
                while True:
                    candidates = [h for h in self.embedders if h not in self.down and h not in tried]
                    if not candidates:
                        raise self._all_failed(tried)
                    host = min(candidates, key=lambda h: self._inflight[h])
                    if self._waiting[0] == ticket and self._inflight[host] < self._slots:
                        self._inflight[host] += 1
                        return host
                    self._free.wait()
            finally:
                self._waiting.remove(ticket)
                self._free.notify_all()

    def _all_failed(self, tried: set[str]) -> OllamaError:
        reasons = "; ".join(f"{h}: {self.down.get(h, '?')}" for h in sorted(tried or self.embedders))
        return OllamaUnreachable(f"every embedding host failed ({reasons})",
                                 fix="start one of them, or set OLLAMA_HOST / RAG_EMBED_HOSTS to hosts that answer")

    def close(self) -> None:
        for embedder in self.embedders.values():
            embedder.close()
