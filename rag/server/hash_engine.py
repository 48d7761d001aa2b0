"""The default engine of the bundled server: deterministic and instant, no model files.

Embeddings are signed feature hashing of words and Han-character bigrams (plus Han unigrams at a
lower weight), so texts that share words, in English or Chinese, get close vectors. Chat replies are
extractive: for the prompt format in docs/ARCHITECTURE.md (or plain numbered passages) they quote the
best-matching passage sentences with their `[n]` citations; a question-rewrite request gets the
follow-up with the previous question's content words; any other prompt gets the sentence of the
message most relevant to its question line (see `rag.server.hash_text`).

Fault: ``HashEngine(rewrite_reply="...")`` answers every question-rewrite request with that text, as a
small model might, to test that an app survives a bad rewrite::

    srv = ollama_server_factory(HashEngine(rewrite_reply="Bananas are rich in potassium."))
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from rag.server import hash_text
from rag.server.catalog import DEFAULT_CATALOG, DEFAULT_LIBRARY, find_spec
from rag.server.engine import DEFAULT_NUM_CTX, ContextExceeded, Generation, ModelSpec

UNIGRAM_WEIGHT = 0.5  # single Han characters are ambiguous; bigrams carry most of the meaning
COARSE_DIMS = 64  # nomic's smallest Matryoshka size
COARSE_WEIGHT = 0.5
EMPTY_FEATURE = "\x00empty"  # keeps an all-punctuation text from becoming a zero vector


class HashEngine:
    """Deterministic embeddings and extractive chat over a customisable model catalog."""

    def __init__(
        self,
        catalog: Iterable[ModelSpec] = DEFAULT_CATALOG,
        library: Iterable[ModelSpec] = DEFAULT_LIBRARY,
        *,
        rewrite_reply: str | None = None,
    ) -> None:
        self.catalog: tuple[ModelSpec, ...] = tuple(catalog)
        # Pullable models: the server installs them on `/api/pull`, and this engine can serve them.
        self.library: tuple[ModelSpec, ...] = tuple(library)
        # The off-topic-rewrite fault: when set, every question-rewrite request gets this text back, the
        # way small models answer the rewrite with something unrelated. May be changed at any time.
        self.rewrite_reply = rewrite_reply

    def models(self) -> list[ModelSpec]:
        """The installed models."""
        return list(self.catalog)

    def spec(self, model: str) -> ModelSpec:
        """The catalog or library entry for ``model``; KeyError when unknown."""
        found = find_spec(self.catalog + self.library, model)
        if found is None:
            raise KeyError(model)
        return found

    def embed(self, model: str, texts: list[str], *, truncate: bool = True) -> tuple[list[list[float]], int]:
        """Raw hashed vectors (length grows with the token count) and the total token count."""
        spec = self.spec(model)
        dims = spec.embedding_length or 768
        vectors: list[list[float]] = []
        total = 0
        for text in texts:
            text = hash_text.strip_task_prefix(text)
            tokens = hash_text.count_tokens(text)
            if tokens > spec.context_length:
                if not truncate:
                    raise ContextExceeded(f"input of {tokens} tokens exceeds context {spec.context_length}")
                text = hash_text.keep_first_tokens(text, spec.context_length)
                tokens = spec.context_length
            total += tokens
            vectors.append(raw_vector(text, dims, tokens))
        return vectors, total

    def chat(self, model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> Generation:
        """Reply to a conversation after cutting it to ``num_ctx`` like Ollama does."""
        spec = self.spec(model)
        num_ctx = min(int(options.get("num_ctx") or DEFAULT_NUM_CTX), spec.context_length)
        kept, prompt_tokens = hash_text.fit_context(messages, num_ctx)
        if self.rewrite_reply is not None and hash_text.is_rewrite_request(kept):
            text = self.rewrite_reply
        else:
            text = hash_text.reply(kept)
        return _generation(text, prompt_tokens, options)

    def generate(self, model: str, prompt: str, system: str, options: dict[str, Any]) -> Generation:
        """Complete a prompt: the same reply rules as chat, on a system + user conversation."""
        messages = [{"role": "system", "content": system}] if system else []
        return self.chat(model, [*messages, {"role": "user", "content": prompt}], options)


def _generation(text: str, prompt_tokens: int, options: dict[str, Any]) -> Generation:
    parts = hash_text.pieces(text)
    limit = int(options.get("num_predict", -1) if options.get("num_predict") is not None else -1)
    done_reason = "stop"
    if limit >= 0 and len(parts) > limit:
        parts, done_reason = parts[:limit], "length"
    completion = max(hash_text.count_tokens("".join(parts)), 1 if parts else 0)
    return Generation(iter(parts), prompt_tokens, completion, done_reason)


def features(text: str) -> Counter[str]:
    """Weighted features: lowercase words, Han bigrams, and Han unigrams at a lower weight."""
    counts: Counter[str] = Counter()
    prev_end, prev_han = -1, ""
    for match in hash_text.TOKEN_RE.finditer(text.lower()):
        token = match.group()
        if hash_text.HAS_HAN_RE.fullmatch(token):
            counts["u:" + token] += 1
            if prev_han and match.start() == prev_end:
                counts["b:" + prev_han + token] += 1
            prev_han = token
        else:
            counts["w:" + token] += 1
            prev_han = ""
        prev_end = match.end()
    return counts or Counter({EMPTY_FEATURE: 1})


def raw_vector(text: str, dims: int, tokens: int) -> list[float]:
    """The un-normalised hashed vector: sublinear tf, signed buckets, scaled by 2 + token count."""
    vector = [0.0] * dims
    for feature, tf in features(text).items():
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dims
        sign = 1.0 if digest[4] & 1 else -1.0
        weight = UNIGRAM_WEIGHT if feature.startswith("u:") else 1.0
        vector[bucket] += sign * weight * (1.0 + math.log(tf))
        # A second, coarse bucket in the first dimensions keeps `dimensions`-cut vectors meaningful,
        # the way Matryoshka models front-load information.
        coarse = int.from_bytes(digest[5:8], "little") % min(dims, COARSE_DIMS)
        vector[coarse] += sign * weight * COARSE_WEIGHT * (1.0 + math.log(tf))
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    # A real model's raw pooled vector is not unit length; /api/embed must be seen to normalise it.
    scale = (2.0 + tokens) / norm
    return [v * scale for v in vector]
