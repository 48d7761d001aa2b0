"""The one settings object of `rag`, resolved once (argument > environment > default) and passed explicitly.

`Settings` holds everything: `Settings.index` (an `IndexSettings`) is the part the write path reads
(host, store, models, chunking, budgets, timeouts), the other fields are the read path's (retrieval and
answering; why their defaults are what they are: `rag.config`). `ingest` reads only `IndexSettings`.

Every setting has one environment variable, ``RAG_`` + its name in capitals (``chunk_tokens`` ->
``RAG_CHUNK_TOKENS``), parsed to the field's type; the Ollama host reads ``OLLAMA_HOST`` (the SDK's
rules) and the timeouts ``RAG_CONNECT_TIMEOUT`` / ``RAG_READ_TIMEOUT`` / ``RAG_RETRY_DEADLINE``.
`environment_variables()` lists them all (the README's table shows each). An argument that is not a
setting is a TypeError naming the closest one; a ``RAG_*`` variable that is not one gets a one-line
`ConfigWarning` naming the closest (a warning, not an error: other tools may share the prefix).
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import os
import re
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

import pydantic

from ingest import HOST_LIST_VARIABLE
from ingest.errors import ConfigError, ConfigWarning
from ingest.ollama_calls import Timeouts, resolve_host

DEFAULT_DB = ".rag"
DEFAULT_COLLECTION = "docs"
DEFAULT_EMBED_MODEL = "nomic-embed-text"
# 400 cl100k tokens: long enough to hold a paragraph or two with its heading (answers need context),
# short enough that a question-sized query still matches it closely, and under every common
# embedder's window (nomic 2048, mxbai 512). Smaller models clamp it (see ingest.embedder).
DEFAULT_CHUNK_TOKENS = 400
DEFAULT_CHUNK_OVERLAP = 60  # 15%: a sentence cut at a boundary is still whole in one neighbour
DEFAULT_BATCH_SIZE = 32  # Ollama notes: batches above ~16-32 drift; 32 keeps HTTP overhead low
DEFAULT_MAX_FILE_BYTES = 50_000_000  # "50 MB" as `human_size` and the README say it
# Per-file budgets (ingest.loaders.LoadLimits). Real PDFs give 0.02-0.8 characters of text per byte
# (measured on the shared corpus) and plain text at most 1, while a "PDF bomb" whose pages share one
# compressed stream gave 2,500: 20x leaves wide headroom. 10 M characters is ~6,000 chunks of 400
# tokens. pypdf reads ~10 pages/s on a dense Chinese PDF, so 5,000 pages fit in the 300 s.
DEFAULT_MAX_TEXT_RATIO = 20.0
DEFAULT_MAX_TEXT_CHARS = 10_000_000
DEFAULT_MAX_PAGES = 5_000
DEFAULT_MAX_PARSE_SECONDS = 300.0
DEFAULT_LOCK_WAIT = 5.0
DEFAULT_PARALLEL = 2  # Ollama serves OLLAMA_NUM_PARALLEL requests at once; 2 keeps it busy while we write

@dataclass(frozen=True)
class IndexSettings:
    """Everything the write path needs. Build with `IndexSettings.resolve(...)`."""

    host: str
    db: Path = Path(DEFAULT_DB)
    collection: str = DEFAULT_COLLECTION
    embed_model: str = DEFAULT_EMBED_MODEL
    document_prefix: str | None = None  # None: the model's known prefix (ingest.embedder.PREFIXES)
    query_prefix: str | None = None
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP
    batch_size: int = DEFAULT_BATCH_SIZE
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_text_ratio: float = DEFAULT_MAX_TEXT_RATIO  # extracted characters per byte of the file
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS  # extracted characters per file
    max_pages: int = DEFAULT_MAX_PAGES  # pages per PDF
    max_parse_seconds: float = DEFAULT_MAX_PARSE_SECONDS  # parsing time per file
    include_hidden: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)
    # A Chroma server (`chroma run`) instead of the embedded store in ``db``; ``db`` is then a local cache.
    chroma_url: str | None = None
    chroma_token: str | None = None  # sent as Chroma's X-Chroma-Token header
    lock_wait: float = DEFAULT_LOCK_WAIT  # seconds a second writer waits for the collection's lock
    parallel: int = DEFAULT_PARALLEL  # embedding requests in flight (per Ollama host)
    workers: int = 0  # processes that parse and chunk files; 0 = one per core when parsing is heavy (PDFs), else 1
    # Several Ollama servers: OLLAMA_HOST / --host may list them ("http://a:11434,http://b:11434");
    # RAG_EMBED_HOSTS / RAG_CHAT_HOSTS split the roles. ``host`` is the first of the list.
    embed_hosts: tuple[str, ...] = ()
    chat_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = collection_name_problem(self.collection)
        if problem:
            raise ConfigError(f"{self.collection!r} is not a collection name Chroma accepts: {problem}", fix="e.g. docs")

    @classmethod
    def resolve(
        cls,
        *,
        host: str | None = None,
        db: str | os.PathLike[str] | None = None,
        collection: str | None = None,
        embed_model: str | None = None,
        **overrides: Any,
    ) -> IndexSettings:
        """Arguments win, then RAG_* / OLLAMA_HOST environment variables, then defaults."""
        check_names(overrides, index_setting_names(), "IndexSettings.resolve()")
        warn_unknown_environment()
        given: dict[str, Any] = {"db": db, "collection": collection, "embed_model": embed_model, **overrides}
        values = _resolve_fields(cls, given, skip=_NOT_FROM_ENVIRONMENT)
        hosts = host_list(host or os.environ.get(HOST_LIST_VARIABLE) or os.environ.get("OLLAMA_HOST"))
        values["host"] = hosts[0]
        values["embed_hosts"] = tuple(overrides.get("embed_hosts") or host_list(os.environ.get("RAG_EMBED_HOSTS"), hosts))
        values["chat_hosts"] = tuple(overrides.get("chat_hosts") or host_list(os.environ.get("RAG_CHAT_HOSTS"), hosts))
        values["timeouts"] = overrides.get("timeouts") or Timeouts.from_env()
        return cls(**values)


def host_list(raw: str | None, default: list[str] | None = None) -> list[str]:
    """A comma-separated list of Ollama hosts, each resolved by the SDK's rules; ``default`` (or the one
    default host) when empty."""
    hosts = [resolve_host(part.strip()) for part in (raw or "").split(",") if part.strip()]
    return hosts or list(default or [resolve_host(None)])


# -- the read path's defaults (measured by `make eval`; the reasons are in rag.config's docstring) --------
DEFAULT_CHAT_MODEL = "qwen2.5:7b"
DEFAULT_K = 5
DEFAULT_POOL = 30  # dense candidates fetched from Chroma before exact re-scoring and MMR
DEFAULT_MMR_LAMBDA = 0.7  # 1.0 = pure relevance; lower trades relevance for diversity
DEFAULT_PER_FILE_CAP = 3  # at most this many chunks from one file in the top k
DEFAULT_HYBRID = True
DEFAULT_RRF_K = 30  # RRF constant: 30 and 60 (Cormack et al.) tie on NFCorpus dev and sample_docs
DEFAULT_DENSE_WEIGHT = 0.5  # hybrid: the dense ranking's share of the fused score (BM25 gets the rest)
DEFAULT_MIN_SCORE = 0.35  # relevance floor: cosine similarity ... (rag.retrieve.passes_floor)
DEFAULT_MIN_OVERLAP = 0.34  # ... or this share of the query's terms found in the passage
DEFAULT_ANSWER_TOKENS = 768  # num_predict: the answer budget
DEFAULT_CONTEXT_TOKENS = 3000  # passages packed into the prompt
DEFAULT_HISTORY_TOKENS = 1000  # chat history kept, newest first
DEFAULT_TEMPERATURE = 0.1  # grounded answers: little creativity wanted


@dataclass(frozen=True)
class Settings:
    """Every setting: ``index`` for the write path (and the host, store and timeouts both paths use),
    the rest for retrieval and answering. Build with `Settings.resolve(...)`."""

    index: IndexSettings
    chat_model: str = DEFAULT_CHAT_MODEL
    k: int = DEFAULT_K
    pool: int = DEFAULT_POOL
    mmr_lambda: float = DEFAULT_MMR_LAMBDA
    per_file_cap: int = DEFAULT_PER_FILE_CAP
    hybrid: bool = DEFAULT_HYBRID
    rrf_k: int = DEFAULT_RRF_K
    dense_weight: float = DEFAULT_DENSE_WEIGHT
    min_score: float = DEFAULT_MIN_SCORE
    min_overlap: float = DEFAULT_MIN_OVERLAP
    num_ctx: int | None = None  # None: sized from the budgets below (rag.answer.context_window)
    answer_tokens: int = DEFAULT_ANSWER_TOKENS
    context_tokens: int = DEFAULT_CONTEXT_TOKENS
    history_tokens: int = DEFAULT_HISTORY_TOKENS
    temperature: float = DEFAULT_TEMPERATURE

    def __post_init__(self) -> None:
        if self.k < 1 or self.pool < 1 or self.per_file_cap < 1:
            raise ConfigError("k, pool and per-file cap must be at least 1 — e.g. --k 5")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(f"dense weight must be between 0 and 1, not {self.dense_weight} — e.g. RAG_DENSE_WEIGHT=0.5")
        if self.rrf_k < 1:
            raise ConfigError(f"RRF k must be at least 1, not {self.rrf_k}")
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ConfigError(f"MMR lambda must be between 0 and 1, not {self.mmr_lambda} — e.g. RAG_MMR_LAMBDA=0.7")
        if self.num_ctx is not None and self.num_ctx < 512:
            raise ConfigError(f"num_ctx {self.num_ctx} is too small — use at least 2048, or leave it unset")

    @property
    def host(self) -> str:
        return self.index.host

    @property
    def db(self) -> Path:
        return self.index.db

    @property
    def collection(self) -> str:
        return self.index.collection

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def resolve(
        cls,
        *,
        host: str | None = None,
        db: str | os.PathLike[str] | None = None,
        collection: str | None = None,
        embed_model: str | None = None,
        chat_model: str | None = None,
        index: IndexSettings | None = None,
        **options: Any,
    ) -> Settings:
        """Arguments win, then RAG_* / OLLAMA_HOST environment variables, then the defaults.

        ``options`` may name any setting, of either part; ``index`` replaces the resolved write-path part
        (arguments for that part are then applied to it)."""
        write_names = index_setting_names()
        check_names(options, write_names | read_setting_names(), "Settings.resolve()")
        write = {k: v for k, v in options.items() if k in write_names}
        read = {k: v for k, v in options.items() if k not in write_names}
        if index is None:
            index = IndexSettings.resolve(host=host, db=db, collection=collection, embed_model=embed_model, **write)
        else:
            changes = {"db": db, "collection": collection, "embed_model": embed_model, **write}
            if host:
                hosts = host_list(host)
                changes.update(host=hosts[0], embed_hosts=tuple(hosts), chat_hosts=tuple(hosts))
            given = _resolve_fields(IndexSettings, changes, skip=_NOT_FROM_ENVIRONMENT, only_given=True)
            index = replace(index, **given, **{k: changes[k] for k in _NOT_FROM_ENVIRONMENT if changes.get(k)})
        values = _resolve_fields(cls, {"chat_model": chat_model, **read}, skip={"index"})
        return cls(index=index, **values)


# -- names, variables and parsing --------------------------------------------------------------------

# RAG_* variables the project reads that are not settings (the bundled server's token, bench, tests).
OTHER_VARIABLES = frozenset({HOST_LIST_VARIABLE, "RAG_SERVE_TOKEN", "RAG_BIN", "RAG_BENCH_HNSW", "RAG_SHARED_DIR", "RAG_TEST_CRASH_AT"})
TIMEOUT_VARIABLES = {"RAG_CONNECT_TIMEOUT": "connect", "RAG_READ_TIMEOUT": "read",
                     "RAG_RETRY_DEADLINE": "retry_deadline"}
_NOT_FROM_ENVIRONMENT = frozenset({"host", "timeouts", "index", "embed_hosts", "chat_hosts"})


def env_name(name: str) -> str:
    """The environment variable of setting ``name``."""
    return "RAG_" + name.upper()


def index_setting_names() -> frozenset[str]:
    """The write-path settings (`IndexSettings` fields)."""
    return frozenset(f.name for f in fields(IndexSettings))


def read_setting_names() -> frozenset[str]:
    """The read-path settings (`Settings` fields other than ``index``)."""
    return frozenset(f.name for f in fields(Settings)) - {"index"}


def environment_variables() -> dict[str, str]:
    """Every environment variable a setting reads -> the setting it sets."""
    names = sorted((index_setting_names() | read_setting_names()) - _NOT_FROM_ENVIRONMENT)
    found = {env_name(name): name for name in names}
    found.update({var: f"timeouts.{part}" for var, part in TIMEOUT_VARIABLES.items()})
    found.update({"RAG_EMBED_HOSTS": "embed_hosts", "RAG_CHAT_HOSTS": "chat_hosts"})
    return {"OLLAMA_HOST": "host", **dict(sorted(found.items()))}


def check_names(given: dict[str, Any], valid: frozenset[str], where: str) -> None:
    """A name that is not a setting is a TypeError naming the closest one."""
    for name in given:
        if name not in valid:
            close = difflib.get_close_matches(name, sorted(valid), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise TypeError(f"{where} got an unexpected option {name!r} — {hint}valid options: {', '.join(sorted(valid))}")


_warned: set[str] = set()  # each unknown variable is reported once per process


def unknown_environment() -> dict[str, str]:
    """``RAG_*`` variables that are not settings -> the closest variable that is ("" when none is close)."""
    known = sorted(set(environment_variables()) | OTHER_VARIABLES)
    return {
        var: next(iter(difflib.get_close_matches(var, known, n=1)), "")
        for var in sorted(os.environ)
        if var.startswith("RAG_") and var not in known
    }


def warn_unknown_environment() -> None:
    """One `ConfigWarning` line per ``RAG_*`` variable that is not a setting (probably a typo)."""
    for var, close in unknown_environment().items():
        if var not in _warned:
            _warned.add(var)
            hint = f"did you mean {close}?" if close else "see the configuration table in the README"
            warnings.warn(f"{var} is not a rag setting and is ignored — {hint}", ConfigWarning, stacklevel=3)


@functools.cache
def _adapter(owner: type, name: str) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(get_type_hints(owner)[name])


def _parse(owner: type, name: str, value: Any, source: str) -> Any:
    try:
        return _adapter(owner, name).validate_python(value)
    except pydantic.ValidationError as exc:
        reason = exc.errors()[0].get("msg", "invalid")
        raise ConfigError(f"{source}={value!r} is not a valid {name} ({reason})", fix="fix or unset it") from None


def _resolve_fields(
    owner: type, given: dict[str, Any], *, skip: Collection[str], only_given: bool = False
) -> dict[str, Any]:
    """argument (not None) > environment variable (not empty) > the field's default, parsed to its type."""
    values: dict[str, Any] = {}
    for f in fields(owner):
        if f.name in skip:
            continue
        value = given.get(f.name)
        if value is not None:
            values[f.name] = _parse(owner, f.name, value, f.name)
        elif not only_given:
            raw = os.environ.get(env_name(f.name))
            if raw:
                values[f.name] = _parse(owner, f.name, raw, env_name(f.name))
    return values


# -- Chroma's rule for collection names ----------------------------------------------------------------

# chromadb 1.x validates names in its Rust core; tests check this against the installed Chroma.
CHROMA_NAME_RULE = (
    "Chroma accepts 3-512 characters from a-z A-Z 0-9 . _ -, starting and ending with a letter or digit, "
    "with no two consecutive periods (..), and not an IP address"
)
_CHROMA_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")


def collection_name_problem(name: str) -> str:
    """Why Chroma would reject ``name`` as a collection name (its rule), or "" when it accepts it."""
    if not _CHROMA_NAME.fullmatch(name) or ".." in name:
        return CHROMA_NAME_RULE
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return ""
    return CHROMA_NAME_RULE
