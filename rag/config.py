"""The read path's settings (retrieval and answering) and why their defaults are what they are.

The settings themselves are part of the one settings object, `ingest.config.Settings` (re-exported
here with the defaults), resolved once: argument > RAG_* environment > default.

The defaults for k, the candidate pool, MMR λ, the per-file cap, hybrid, the fusion and the
relevance floor were chosen by `make eval` (`python -m rag.dev.evaluate`; full tables in
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

from ingest.config import (
    DEFAULT_ANSWER_TOKENS,
    DEFAULT_CHAT_MODEL,
    DEFAULT_CONTEXT_TOKENS,
    DEFAULT_DENSE_WEIGHT,
    DEFAULT_HISTORY_TOKENS,
    DEFAULT_HYBRID,
    DEFAULT_K,
    DEFAULT_MIN_OVERLAP,
    DEFAULT_MIN_SCORE,
    DEFAULT_MMR_LAMBDA,
    DEFAULT_PER_FILE_CAP,
    DEFAULT_POOL,
    DEFAULT_RRF_K,
    DEFAULT_TEMPERATURE,
    IndexSettings,
    Settings,
)

__all__ = [
    "DEFAULT_ANSWER_TOKENS",
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_CONTEXT_TOKENS",
    "DEFAULT_DENSE_WEIGHT",
    "DEFAULT_HISTORY_TOKENS",
    "DEFAULT_HYBRID",
    "DEFAULT_K",
    "DEFAULT_MIN_OVERLAP",
    "DEFAULT_MIN_SCORE",
    "DEFAULT_MMR_LAMBDA",
    "DEFAULT_PER_FILE_CAP",
    "DEFAULT_POOL",
    "DEFAULT_RRF_K",
    "DEFAULT_TEMPERATURE",
    "IndexSettings",
    "Settings",
]
