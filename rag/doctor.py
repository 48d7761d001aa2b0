"""`rag doctor`: health checks as plain functions, each returning a `Check` that names its fix."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from ingest.embedder import default_prefixes
from ingest.errors import CollectionNotFound, RagError, StoreError
from rag.client import OllamaClient, check_capability
from rag.config import Settings
from rag.models_types import Health, ModelDetails, RunningModel

__all__ = [
    "MIN_CONTEXT",
    "Check",
    "Status",
    "check_context",
    "check_gpu",
    "check_host_security",
    "check_index_dimension",
    "check_index_model",
    "check_language",
    "check_model",
    "check_prefixes",
    "check_server",
    "read_fingerprint",
    "run_doctor",
]

Status = Literal["pass", "warn", "fail"]
# Below this the numbered passages plus the question rarely fit: answers lose their sources.
MIN_CONTEXT = 4096


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table: what was checked, how it went, and what to do about it."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def run_doctor(settings: Settings, client: OllamaClient | None = None) -> list[Check]:
    """Run every check in table order; model checks are left out when the server does not answer."""
    # No retries: a doctor should report a dead server at once, not after seconds of backoff.
    client = client or OllamaClient(settings.host, retries=0)
    server, health = check_server(client)
    checks = [server, check_host_security(client.host)]
    try:
        fingerprint = read_fingerprint(settings.db, settings.collection)
        index_check = check_index_model(fingerprint, settings.index.embed_model, settings.db, settings.collection)
    except StoreError as err:
        fingerprint, index_check = None, Check("index", "fail", *_split(err))
    if health is None:
        return [*checks, index_check]
    embed_check, embed = check_model(client, settings.index.embed_model, "embedding")
    chat_check, chat = check_model(client, settings.chat_model, "completion")
    checks += [embed_check, chat_check, index_check]
    if fingerprint is not None and embed is not None:
        checks.append(check_index_dimension(fingerprint, embed))
    try:
        running = client.running()
    except RagError as err:
        running, gpu = [], Check("gpu", "fail", *_split(err))
    else:
        gpu = check_gpu(running)
    if chat is not None:
        checks.append(check_context(chat, running))
    checks += [gpu, check_prefixes(settings.index.embed_model, fingerprint)]
    language = check_language(settings.db, settings.collection, fingerprint, settings.index.embed_model)
    return checks if language is None else [*checks, language]


def check_server(client: OllamaClient) -> tuple[Check, Health | None]:
    """The server answers `GET /` and `/api/version`."""
    try:
        health = client.health()
    except RagError as err:
        return Check("server", "fail", *_split(err)), None
    detail = f"Ollama {health.version or '(unknown version)'} at {health.host} ({health.latency_ms:.0f} ms)"
    return Check("server", "pass", detail), health


def check_host_security(host: str) -> Check:
    """Warn when documents and questions would cross the network in clear to an unauthenticated server."""
    parts = urlsplit(host)
    if parts.scheme == "https":
        return Check("transport", "pass", f"{host} uses https")
    if _is_loopback(parts.hostname or ""):
        return Check("transport", "pass", f"{host} is this machine (loopback)")
    return Check(
        "transport",
        "warn",
        f"{host} is neither loopback nor https: Ollama has no authentication, and documents and "
        "questions travel in clear",
        "put Ollama behind an https reverse proxy with authentication, or use an SSH tunnel "
        "(`ssh -L 11434:localhost:11434 HOST`, then --host localhost:11434)",
    )


def check_model(client: OllamaClient, model: str, capability: str) -> tuple[Check, ModelDetails | None]:
    """The model is on the server and can do ``capability`` ("embedding" or "completion")."""
    name = "embedding model" if capability == "embedding" else "chat model"
    try:
        details = client.show(model)
        check_capability(details, capability, client.host)
    except RagError as err:
        return Check(name, "fail", *_split(err)), None
    facts = [", ".join(details.capabilities) or "capabilities not reported"]
    if capability == "embedding" and details.embedding_length:
        facts.append(f"{details.embedding_length} dimensions")
    if details.context_length:
        facts.append(f"context {details.context_length}")
    return Check(name, "pass", f"{model}: {'; '.join(facts)}"), details


def read_fingerprint(db: Path, collection: str) -> dict[str, Any] | None:
    """The index fingerprint (``rag_*`` collection metadata), or None when there is no index yet."""
    from ingest.store import Store  # imports chromadb: only when a doctor actually looks

    if not Path(db).exists():
        return None
    try:
        return Store.open(Path(db), collection).fingerprint()
    except CollectionNotFound:
        return None


def check_index_model(
    fingerprint: dict[str, Any] | None, embed_model: str, db: Path, collection: str
) -> Check:
    """The index was built with the embedding model that will embed the questions."""
    if fingerprint is None:
        return Check(
            "index", "warn", f"no index yet in {db} (collection {collection})", "run `rag index PATH`"
        )
    built_with = str(fingerprint.get("embed_model") or "")
    if not built_with:
        return Check(
            "index",
            "warn",
            "the index does not record its embedding model",
            "rebuild it: `rag index PATH --rebuild`",
        )
    if _same_model(built_with, embed_model):
        return Check("index", "pass", f"{db} ({collection}) was built with {built_with}")
    return Check(
        "index",
        "fail",
        f"{db} ({collection}) was built with {built_with}, but the embedding model is {embed_model}",
        f"pass --embed-model {built_with} (or set RAG_EMBED_MODEL), or rebuild: `rag index PATH --rebuild`",
    )


def check_index_dimension(fingerprint: dict[str, Any], embed: ModelDetails) -> Check:
    """The index's vector dimension equals the model's embedding length."""
    stored, made = fingerprint.get("dimension"), embed.embedding_length
    if not stored or not made:
        return Check("dimension", "warn", "cannot compare: the index or the server does not report it")
    if int(stored) == int(made):
        return Check("dimension", "pass", f"{made} in the index and from {embed.name}")
    return Check(
        "dimension",
        "fail",
        f"the index holds {stored}-dimensional vectors, {embed.name} makes {made}",
        "rebuild the index with this model: `rag index PATH --rebuild`",
    )


def check_context(chat: ModelDetails, running: list[RunningModel]) -> Check:
    """The chat model's context (trained, and as loaded) leaves room for the passages."""
    loaded = next((r.context_length for r in running if _same_model(r.name, chat.name)), None)
    detail = f"{chat.name}: trained context {chat.context_length or 'unknown'}"
    if loaded:
        detail += f", loaded with {loaded}"
    usable = loaded or chat.context_length
    if usable and usable < MIN_CONTEXT:
        return Check(
            "context",
            "warn",
            f"{detail} — fewer than {MIN_CONTEXT} tokens for passages and question",
            f"set OLLAMA_CONTEXT_LENGTH={2 * MIN_CONTEXT} on the server, or use a model with a longer context",
        )
    return Check("context", "pass", detail)


def check_gpu(running: list[RunningModel]) -> Check:
    """Loaded models run on the GPU (`/api/ps` ``size_vram``), else generation is slow."""
    if not running:
        return Check(
            "gpu", "pass", "no model is loaded now; run `rag doctor` after a question to see where it runs"
        )
    on_cpu = [r for r in running if r.size and r.size_vram == 0]
    split = [r for r in running if r.size and 0 < r.size_vram < r.size]
    if on_cpu:
        names = ", ".join(r.name for r in on_cpu)
        return Check(
            "gpu",
            "warn",
            f"{names} runs on the CPU (0 bytes in GPU memory): generation will be slow",
            "install or update the GPU driver (NVIDIA: driver + CUDA; AMD: ROCm), then restart `ollama serve`",
        )
    if split:
        parts = ", ".join(f"{r.name} {100 * r.size_vram // r.size}% on the GPU" for r in split)
        return Check(
            "gpu",
            "warn",
            f"partly on the CPU: {parts}",
            "use a smaller model or quantization, or a shorter context, so it fits in GPU memory",
        )
    return Check("gpu", "pass", f"{len(running)} loaded model(s), all in GPU memory")


def check_prefixes(embed_model: str, fingerprint: dict[str, Any] | None) -> Check:
    """The task prefixes the embedding model expects are configured (Ollama never adds them)."""
    known = default_prefixes(embed_model)
    if fingerprint is not None and "document_prefix" in fingerprint:
        used = (str(fingerprint.get("document_prefix") or ""), str(fingerprint.get("query_prefix") or ""))
        if any(known) and used != known:
            return Check(
                "prefixes",
                "warn",
                f"the index uses document/query prefixes {used[0]!r}/{used[1]!r}, "
                f"{embed_model} expects {known[0]!r}/{known[1]!r}",
                "unless that is deliberate, rebuild with the model's prefixes: `rag index PATH --rebuild`",
            )
        if any(used):
            return Check("prefixes", "pass", f"document {used[0]!r}, query {used[1]!r}")
    elif any(known):
        return Check("prefixes", "pass", f"{embed_model}: document {known[0]!r}, query {known[1]!r}")
    return Check(
        "prefixes",
        "warn",
        f"no known prefixes for {embed_model}",
        "if its model card asks for task prefixes, set document_prefix / query_prefix in the index settings",
    )


# How many stored chunks `check_language` reads: enough for a stable share, quick on a large index.
LANGUAGE_SAMPLE_CHUNKS = 2000


def check_language(
    db: Path, collection: str, fingerprint: dict[str, Any] | None, embed_model: str,
    sample: int = LANGUAGE_SAMPLE_CHUNKS,
) -> Check | None:
    """A Chinese-heavy index whose vectors come from an English-centred model (`ingest.language.HanShare`);
    None when there is no indexed text to judge."""
    from ingest.language import HanShare, is_multilingual, rebuild_fix
    from ingest.store import Store  # imports chromadb: only when a doctor actually looks

    if fingerprint is None:
        return None
    model = str(fingerprint.get("embed_model") or embed_model)  # the model that made the stored vectors
    counter = HanShare()
    try:
        store = Store.open(Path(db), collection)
        seen = 0
        for page in store.iter_chunks(batch=500):
            for chunk, _ in page:
                counter.add(chunk.text)
            seen += len(page)
            if seen >= sample:
                break
        root = store.root()
    except StoreError:
        return None  # the index check reports why the store cannot be read
    if not counter.letters:
        return None
    if counter.needs_multilingual(model):
        path = root.split(":", 1)[1] if ":" in root else "PATH"
        return Check("language", "warn", counter.detail(model), rebuild_fix(path))
    kind = "a multilingual model" if is_multilingual(model) else "fine for text that is mostly not Chinese"
    return Check("language", "pass", f"{counter.share:.0%} of the indexed text is Chinese; {model}: {kind}")


def _split(err: RagError) -> tuple[str, str]:
    # The table shows what went wrong and what to do in their own columns.
    return err.what, err.fix


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _same_model(a: str, b: str) -> bool:
    def key(name: str) -> str:
        name = name.strip().lower()
        return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

    return key(a) == key(b)
