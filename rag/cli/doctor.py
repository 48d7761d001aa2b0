"""`rag doctor`: health checks as plain functions, each returning a `Check` that names its fix."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import numpy as np

from ingest.embedder import Embedder, default_prefixes
from ingest.errors import CollectionNotFound, RagError, StoreError, StoreUnreachable
from rag.client import OllamaClient, check_capability
from rag.config import Settings
from rag.models_types import Health, ModelDetails, RunningModel

__all__ = [
    "MIN_CONTEXT",
    "Check",
    "Status",
    "check_chroma",
    "check_chroma_security",
    "check_chroma_server",
    "check_context",
    "check_embedding_agreement",
    "check_gpu",
    "check_host_security",
    "check_index_dimension",
    "check_index_model",
    "check_language",
    "check_model",
    "check_ollama_host",
    "check_ollama_hosts",
    "check_prefixes",
    "check_server",
    "several_hosts",
    "read_fingerprint",
    "run_doctor",
]

Status = Literal["pass", "warn", "fail"]
T = TypeVar("T")
# Below this the numbered passages plus the question rarely fit: answers lose their sources.
MIN_CONTEXT = 4096
# What every embedding host embeds, so their vectors can be compared (Chinese too: it is a first-class case).
PROBE_TEXT = "rag doctor: does every host embed this the same way? 每台主机的向量都一样吗？"
# The same model on two machines gives the same vector up to float noise (cosine > 0.999 across CPU and
# GPU builds); another model, or another version behind the same name, lands far below this.
SAME_VECTOR_COSINE = 0.99


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
    chroma_url, chroma_token = settings.index.chroma_url, settings.index.chroma_token
    chroma_ok = True
    if chroma_url:
        chroma_checks = check_chroma(chroma_url, chroma_token, settings.collection)
        chroma_ok = chroma_checks[0].status != "fail"
        checks += chroma_checks
    several = several_hosts(settings)
    if several:
        checks += check_ollama_hosts(settings)
    index_check: Check | None = None  # none when the Chroma server is down: its own line says so
    fingerprint: dict[str, Any] | None = None
    if chroma_ok:
        where = _display_url(chroma_url) if chroma_url else settings.db
        try:
            fingerprint = read_fingerprint(settings.db, settings.collection, chroma_url=chroma_url,
                                           chroma_token=chroma_token)
            index_check = check_index_model(fingerprint, settings.index.embed_model, where, settings.collection)
        except StoreError as err:
            index_check = Check("index", "fail", *_split(err))
    index_checks = [] if index_check is None else [index_check]
    if health is None:
        return [*checks, *index_checks]
    # With the roles split (RAG_EMBED_HOSTS / RAG_CHAT_HOSTS), each model is checked on its role's first
    # host; `check_ollama_hosts` has checked every host already. One host: the given client.
    embed_hosts, chat_hosts = (settings.index.embed_hosts, settings.index.chat_hosts) if several else ((), ())
    embed_check, embed = _on_host(client, embed_hosts,
                                  lambda c: check_model(c, settings.index.embed_model, "embedding"))
    chat_check, chat = _on_host(client, chat_hosts, lambda c: check_model(c, settings.chat_model, "completion"))
    checks += [embed_check, chat_check, *index_checks]
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
    language = check_language(settings.db, settings.collection, fingerprint, settings.index.embed_model,
                              chroma_url=chroma_url, chroma_token=chroma_token)
    return checks if language is None else [*checks, language]


def _on_host(
    client: OllamaClient, role_hosts: tuple[str, ...], check: Callable[[OllamaClient], tuple[Check, T]]
) -> tuple[Check, T]:
    """Run ``check`` on the first host of a role: ``client`` when that is its host, else a client of its own."""
    if not role_hosts or role_hosts[0] == client.host:
        return check(client)
    with OllamaClient(role_hosts[0], retries=0) as other:
        return check(other)


def check_server(client: OllamaClient) -> tuple[Check, Health | None]:
    """The server answers `GET /` and `/api/version`."""
    try:
        health = client.health()
    except RagError as err:
        return Check("server", "fail", *_split(err)), None
    detail = f"Ollama {health.version or '(unknown version)'} at {health.host} ({health.latency_ms:.0f} ms)"
    return Check("server", "pass", detail), health


def check_host_security(host: str, name: str = "transport") -> Check:
    """Warn when documents and questions would cross the network in clear to an unauthenticated server."""
    return _transport(
        name, host, "Ollama has no authentication, and documents and questions travel in clear",
        "put Ollama behind an https reverse proxy with authentication, or use an SSH tunnel "
        "(`ssh -L 11434:localhost:11434 HOST`, then --host localhost:11434)",
    )


def check_chroma_security(url: str, token: str | None) -> Check:
    """The same warning for a Chroma server: the index (the documents' text) and the token cross in clear."""
    exposure = ("the token (RAG_CHROMA_TOKEN) and the documents' text travel in clear" if token else
                "the server is reached without a token, and the documents' text travels in clear")
    return _transport(
        "chroma transport", _display_url(url), exposure,
        "put the Chroma server behind an https reverse proxy and give it a token (RAG_CHROMA_TOKEN), or use an "
        "SSH tunnel (`ssh -L 8000:localhost:8000 HOST`, then --chroma http://localhost:8000)",
    )


def _transport(name: str, url: str, exposure: str, fix: str) -> Check:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return Check(name, "pass", f"{url} uses https")
    if _is_loopback(parts.hostname or ""):
        return Check(name, "pass", f"{url} is this machine (loopback)")
    return Check(name, "warn", f"{url} is neither loopback nor https: {exposure}", fix)


# -- a Chroma server (--chroma / RAG_CHROMA_URL) -------------------------------------------------------


def check_chroma(url: str, token: str | None, collection: str) -> list[Check]:
    """The Chroma server answers, and how it is reached."""
    return [check_chroma_server(url, token, collection), check_chroma_security(url, token)]


def check_chroma_server(url: str, token: str | None, collection: str) -> Check:
    """The Chroma server answers (opening the collection through the store: a connection, the tenant and
    database checks, a collection read). A server without the collection yet still passes."""
    from ingest.store import Store  # imports chromadb: only when a doctor actually looks

    shown = _display_url(url)
    started = time.monotonic()
    try:
        Store.open(Path("."), collection, chroma_url=url, chroma_token=token).close()
        found = f"collection {collection}"
    except CollectionNotFound:
        found = f"no collection {collection} yet"
    except StoreUnreachable as err:
        return Check("chroma", "fail", *_split(err))
    except StoreError as err:  # it answered, but refused (a wrong token, another tenant) or failed
        return Check("chroma", "fail", *_split(err))
    ms = (time.monotonic() - started) * 1000
    return Check("chroma", "pass", f"Chroma server at {shown} answers ({ms:.0f} ms); {found}")


# -- several Ollama hosts (OLLAMA_HOST / --host lists, RAG_EMBED_HOSTS, RAG_CHAT_HOSTS) -----------------


def several_hosts(settings: Settings) -> bool:
    """More than the one Ollama host: a list in OLLAMA_HOST / --host, or the roles split over hosts."""
    hosts = {*settings.index.embed_hosts, *settings.index.chat_hosts}
    return bool(hosts) and hosts != {settings.host}


def check_ollama_hosts(settings: Settings) -> list[Check]:
    """Each host (`check_ollama_host`, numbered in order: embedding hosts first), the transport of every
    host after the first, and whether all embedding hosts give the same vectors."""
    index = settings.index
    hosts = list(dict.fromkeys([*index.embed_hosts, *index.chat_hosts]))
    checks: list[Check] = []
    vectors: dict[str, np.ndarray] = {}
    for n, host in enumerate(hosts, 1):
        check, vector = check_ollama_host(
            f"host {n}", host, settings,
            embed=host in index.embed_hosts, chat=host in index.chat_hosts,
        )
        checks.append(check)
        if vector is not None:
            vectors[host] = vector
        if host != settings.host:  # the first host's transport is the "transport" line
            checks.append(check_host_security(host, f"transport {n}"))
    if len(index.embed_hosts) > 1:
        checks.append(check_embedding_agreement(vectors, index.embed_model, len(index.embed_hosts)))
    return checks


def check_ollama_host(
    name: str, host: str, settings: Settings, *, embed: bool, chat: bool
) -> tuple[Check, np.ndarray | None]:
    """One host answers and has the models of its roles; an embedding host embeds `PROBE_TEXT`.
    Returns the check and the probe's unit vector (None when the host could not embed it)."""
    roles = " and ".join(r for r, on in (("embedding", embed), ("chat", chat)) if on)
    vector: np.ndarray | None = None
    try:
        with OllamaClient(host, retries=0) as client:
            health = client.health()
            facts = [f"Ollama {health.version or '(unknown version)'} ({health.latency_ms:.0f} ms)"]
            if embed:
                details = client.show(settings.index.embed_model)
                check_capability(details, "embedding", host)
            if chat:
                details = client.show(settings.chat_model)
                check_capability(details, "completion", host)
                facts.append(f"{settings.chat_model} can chat")
        if embed:
            # The indexer's own embedder (same endpoint fallback), so the vector is the one indexing would get.
            with Embedder(replace(settings.index, host=host), retries=0) as embedder:
                vector = embedder.embed_documents([PROBE_TEXT])[0]
            facts.insert(1, f"{settings.index.embed_model} embeds ({len(vector)} dimensions)")
    except RagError as err:
        what = err.what if host in err.what else f"{host}: {err.what}"
        return Check(name, "fail", f"{what} ({roles} host)", err.fix), None
    return Check(name, "pass", f"{host} ({roles}): {'; '.join(facts)}"), vector


def check_embedding_agreement(vectors: dict[str, np.ndarray], model: str, hosts: int) -> Check:
    """Every embedding host gives the same vector for `PROBE_TEXT`: same dimension, same direction.
    The reference is what most hosts agree on (the earliest host on a tie); every other host is named."""
    name = "same embeddings"
    if len(vectors) < 2:
        return Check(name, "warn", f"cannot compare: {len(vectors)} of {hosts} embedding hosts embedded the test text",
                     "fix the failing hosts above, then run `rag doctor` again")

    def agree(a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and float(np.dot(a, b)) >= SAME_VECTOR_COSINE

    order = list(vectors)
    reference = max(order, key=lambda h: (sum(agree(vectors[h], vectors[o]) for o in order), -order.index(h)))
    ref = vectors[reference]
    odd = [h for h in order if not agree(vectors[h], ref)]
    if not odd:
        return Check(name, "pass", f"all {len(vectors)} embedding hosts give the same {len(ref)}-dimensional "
                                   f"vectors with {model}")
    reasons = [
        f"{h} gives {len(vectors[h])}-dimensional vectors, {reference} gives {len(ref)}"
        if vectors[h].shape != ref.shape else
        f"{h} gives other vectors than {reference} for the same text (cosine {float(np.dot(vectors[h], ref)):.2f}):"
        f" another model or version behind the name {model}"
        for h in odd
    ]
    named = ", ".join(odd)
    return Check(
        name, "fail", "; ".join(reasons),
        f"serve the same model on every embedding host (`ollama pull {model}` on {named}), or leave "
        f"{named} out of OLLAMA_HOST / RAG_EMBED_HOSTS",
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


def read_fingerprint(
    db: Path, collection: str, *, chroma_url: str | None = None, chroma_token: str | None = None
) -> dict[str, Any] | None:
    """The index fingerprint (``rag_*`` collection metadata), or None when there is no index yet
    (in ``db``, or on the Chroma server at ``chroma_url``)."""
    from ingest.store import Store  # imports chromadb: only when a doctor actually looks

    if not chroma_url and not Path(db).exists():
        return None
    try:
        store = Store.open(Path(db), collection, chroma_url=chroma_url, chroma_token=chroma_token)
    except CollectionNotFound:
        return None
    try:
        return store.fingerprint()
    finally:
        store.close()


def check_index_model(
    fingerprint: dict[str, Any] | None, embed_model: str, db: Path | str, collection: str
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
    sample: int = LANGUAGE_SAMPLE_CHUNKS, *, chroma_url: str | None = None, chroma_token: str | None = None,
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
        store = Store.open(Path(db), collection, chroma_url=chroma_url, chroma_token=chroma_token)
    except StoreError:
        return None  # the index check reports why the store cannot be read
    try:
        seen = 0
        for page in store.iter_chunks(batch=500):
            for chunk, _ in page:
                counter.add(chunk.text)
            seen += len(page)
            if seen >= sample:
                break
        root = store.root()
    except StoreError:
        return None
    finally:
        store.close()
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


def _display_url(url: str) -> str:
    """A URL without any user:password part (credentials never appear in output)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


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
