"""Read-path settings (retrieval and answering), resolved once: argument > environment > default.

The defaults for k, the candidate pool, MMR λ, the per-file cap, hybrid, the fusion and the
relevance floor were chosen by `make eval` (`python -m rag.evaluate`; full tables in
bench/results/eval.md):

- hybrid is the default. On NFCorpus with real MiniLM embeddings (one index, fusion tuned on the
  324 dev queries, reported on the 323 test queries; documents ranked at their best chunk) hybrid
  beats both single modes on every metric: test nDCG@10 0.354 vs dense 0.322 and BM25 0.320,
  recall@100 0.322 vs 0.317 / 0.245 (dev: 0.325 vs 0.302 / 0.284). Chroma's HNSW graph differs
  per build, so these move by about ±0.001 between runs (hybrid test 0.352-0.354 in 4 runs).
  On the 43 answerable sample_docs questions hybrid beats dense with both engines (hash MRR 0.935
  vs 0.880, MiniLM 0.895 vs 0.810); BM25 alone scores a little higher on those hand-written,
  keyword-rich questions but cannot match a paraphrase or a question in another language.
- fusion: plain reciprocal-rank fusion (dense_weight 0.5) with rrf_k 30. On NFCorpus dev, weights
  0.4 / 0.6 lose 0.002-0.004 nDCG@10 and rrf_k 30 vs 60 is a tie (0.3253 vs 0.324); sample_docs
  does not move between 30 and 60. What lifted hybrid from 0.334 to 0.354 on test was not the
  fusion constants but BM25 terms with English stems (ingest.lexical; BM25 0.298 -> 0.320,
  matching bm25s' 0.321) and ranking documents at their best chunk over a deeper pool.
  BM25 k1/b: 1.2 / 0.75 kept; k1 0.9-1.5 x b 0.4-0.9 spans < 0.01 nDCG@10 on dev.
- λ 0.7: before stemming it was the best hybrid λ on sample_docs with both engines. With stemmed
  BM25, λ 1.0 / 0.85 / 0.7 / 0.5 are within 0.01 nDCG@10 of each other (one question) with either
  engine, so 0.7 stays for the diversity it buys in the prompt. Pool 30 and cap 3 are on the
  plateau (10 loses recall@10, 60 adds nothing). The
  NFCorpus runs use pool 300, cap 1 and λ 1 to rank 100 whole documents; that is an evaluation
  setting, not a default (answers want 5 passages, not 100 documents).
- k 5: recall@5 is within 0.02-0.03 of recall@10 and keeps the prompt small.
- floor: cosine 0.35 or term overlap 0.34 answered every answerable question and refused all
  6 unanswerable ones with the hash engine (with MiniLM, which does not read Chinese, it
  refuses 3 of the 6 while still answering every answerable question).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ingest.config import IndexSettings
from ingest.errors import ConfigError

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

# Environment variable for each setting that has one.
_ENV = {
    "chat_model": "RAG_CHAT_MODEL",
    "k": "RAG_K",
    "pool": "RAG_POOL",
    "mmr_lambda": "RAG_MMR_LAMBDA",
    "per_file_cap": "RAG_PER_FILE_CAP",
    "hybrid": "RAG_HYBRID",
    "rrf_k": "RAG_RRF_K",
    "dense_weight": "RAG_DENSE_WEIGHT",
    "min_score": "RAG_MIN_SCORE",
    "min_overlap": "RAG_MIN_OVERLAP",
    "num_ctx": "RAG_NUM_CTX",
    "answer_tokens": "RAG_ANSWER_TOKENS",
    "context_tokens": "RAG_CONTEXT_TOKENS",
    "history_tokens": "RAG_HISTORY_TOKENS",
    "temperature": "RAG_TEMPERATURE",
}


@dataclass(frozen=True)
class Settings:
    """Everything the read path needs. Build with `Settings.resolve(...)`; `index` holds host/db/timeouts."""

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
        chat_model: str | None = None,
        index: IndexSettings | None = None,
        **overrides: Any,
    ) -> Settings:
        """Arguments win, then RAG_* environment variables, then the defaults above."""
        index = index or IndexSettings.resolve(host=host, db=db, collection=collection)
        values: dict[str, Any] = {"index": index}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in _ENV.items():
            raw = os.environ.get(var)
            if raw:
                values[name] = _parse(name, str(types[name]), raw, var)
        if chat_model:
            values["chat_model"] = chat_model
        unknown = set(overrides) - set(types)
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)} — see rag.config.Settings")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse(name: str, kind: str, raw: str, var: str) -> Any:
    try:
        if "bool" in kind:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if "int" in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
        return raw
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a valid {name} — fix or unset it") from None
