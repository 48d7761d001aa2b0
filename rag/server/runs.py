"""Shared steps of the generate / chat / embed routes: model checks, options, context limits, and the
reply shaping Ollama does around the model (thinking, `format`, `stop`, `num_predict`), timed for the
metrics. Engines only produce text; everything a client can observe of the protocol is done here, so
that it is the same whatever the engine.

Token counts of this layer (context limits, `num_keep`) use the hash engine's token model, words plus
Han characters (`rag.server.hash_text`), which is what the default engine reports as well.
"""

from __future__ import annotations

import json
import math
import re
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from time import sleep
from typing import TYPE_CHECKING, Any

from rag.server import hash_text
from rag.server.catalog import parse_parameters
from rag.server.engine import Generation
from rag.server.protocol import ApiError, check_options, get_field
from rag.server.registry import Installed

if TYPE_CHECKING:
    from rag.server.http import OllamaServer

STREAM_FAILURE = "an error was encountered while running the model: injected stream failure"
DEFAULT_NUM_KEEP = 4
CONTEXT_OVERFLOW = ("the prompt is longer than the context length currently available to the model; "
                    "shorten the prompt, adjust the context length in settings, or use a model with a longer "
                    "context length")
JSON_ANSWER_KEY = "answer"  # the key `format: "json"` puts the engine's reply under
EMBED_SPECIAL_TOKENS = 2  # BOS and EOS of an embedding model's tokenizer take two places of num_ctx
THINK_LEVELS = ("low", "medium", "high", "max")
_LABEL = re.compile(r"^\w{1,20}[:：]\s*")  # "Question: ...", "问题：..."


def require_generator(srv: OllamaServer, name: str, body: dict[str, Any], action: str) -> Installed:
    """The installed model for a generate/chat request, after Ollama's capability checks."""
    model = srv.registry.find(name)
    if model is None:
        raise ApiError(404, f"model '{name}' not found")
    caps = model.spec.capabilities
    if "completion" not in caps:
        raise ApiError(400, f'"{name}" does not support {action}')
    if body.get("tools") and "tools" not in caps:
        raise ApiError(400, f'"{name}" does not support tools')
    if body.get("think") not in (None, False) and "thinking" not in caps:
        raise ApiError(400, f'"{name}" does not support thinking')
    return model


def check_top_logprobs(body: dict[str, Any]) -> None:
    """`top_logprobs` must be within 0..20 (logprobs themselves are not emulated)."""
    if not 0 <= int(body.get("top_logprobs") or 0) <= 20:
        raise ApiError(400, "top_logprobs must be between 0 and 20")


def thinks(model: Installed, think: Any) -> bool:
    """Whether the reply carries thinking: unset `think` means on for thinking-capable models."""
    if isinstance(think, str) and think not in THINK_LEVELS:
        raise ApiError(400, f'invalid think value: "{think}" (must be "high", "medium", "low", true, or false)')
    if "thinking" not in model.spec.capabilities:
        return False
    return think is None or think is True or isinstance(think, str)


def options_for(srv: OllamaServer, body: dict[str, Any], model: Installed, struct: str) -> dict[str, Any]:
    """The model's Modelfile parameters overlaid with the request's options, typed like Go's
    `Options.FromMap`, with `num_ctx` resolved: the server default, clamped to the model's context."""
    requested = check_options(get_field(body, "options", dict, struct, {}))
    options = {**check_options(parse_parameters(model.spec.parameters)), **requested}
    num_ctx = options.get("num_ctx") or srv.num_ctx
    options["num_ctx"] = min(int(num_ctx), model.spec.context_length)
    return options


def unit_vectors(vectors: list[list[float]], dimensions: int = 0) -> list[list[float]]:
    """L2-normalised float32 vectors, cut to ``dimensions`` and normalised again, as `/api/embed` does."""
    out: list[list[float]] = []
    for vector in vectors:
        values = [float(v) for v in vector]
        if not all(math.isfinite(v) for v in values):
            raise ApiError(400, "embedding contains NaN or Inf values")
        values = _unit(values)
        if 0 < dimensions < len(values):
            values = _unit(values[:dimensions])
        out.append(array("f", values).tolist())  # float32, as Ollama returns
    return out


def _unit(values: list[float]) -> list[float]:
    norm = max(math.sqrt(math.fsum(v * v for v in values)), 1e-12)
    return [v / norm for v in values]


def embed_delay(srv: OllamaServer, inputs: int) -> None:
    """The embedding-latency faults: `embed_ms_per_request` plus `embed_ms_per_input` per input."""
    delay_ms = srv.embed_ms_per_request + srv.embed_ms_per_input * inputs
    if delay_ms > 0:
        sleep(delay_ms / 1000)


def truncate_inputs(texts: list[str], limit: int, truncate: bool) -> list[str]:
    """Embed inputs cut to ``limit`` tokens (min of num_ctx and the model context), as `/api/embed`
    does before running the model; with ``truncate`` off an over-long input is Ollama's 400."""
    kept = []
    for text in texts:
        if limit <= EMBED_SPECIAL_TOKENS and text:  # nothing is left once BOS and EOS are counted
            raise ApiError(400, "input after truncation exceeds maximum context length")
        if hash_text.count_tokens(text) > limit:
            if not truncate:
                raise ApiError(400, "the input length exceeds the context length")
            text = hash_text.keep_first_tokens(text, limit)
        kept.append(text)
    return kept


def fit_prompt(prompt: str, system: str, num_ctx: int, num_keep: int) -> str:
    """A generate prompt cut like the runner cuts an over-long one: the first ``num_keep`` tokens of the
    rendered prompt (template and system first) stay, then as much of the tail as fits ``num_ctx``."""
    overhead = hash_text.MESSAGE_OVERHEAD  # the template's tokens around each message
    before = (hash_text.count_tokens(system) + overhead if system else 0) + overhead
    room = num_ctx - before
    if hash_text.count_tokens(prompt) <= room:
        return prompt
    if room <= 0:
        return ""
    head = min(max(num_keep - before, 0), room - 1)
    tail = hash_text.keep_last_tokens(prompt, room - head)
    return f"{hash_text.keep_first_tokens(prompt, head)} {tail}" if head else tail


def refuse_overflow(messages: list[dict[str, Any]], num_ctx: int, drop_old: bool) -> None:
    """With `shift: false`, a prompt still over ``num_ctx`` is Ollama's 400 instead of a silent cut.
    With ``drop_old`` (chat's `truncate`, on by default) old non-system messages may go first."""
    kept = [m for m in messages[:-1] if m.get("role") == "system"] + messages[-1:] if drop_old else messages
    if sum(hash_text.message_tokens(m) for m in kept) > num_ctx:
        raise ApiError(400, CONTEXT_OVERFLOW)


def thinking_text(message: str) -> str:
    """What a thinking model thinks before answering ``message``, in its language. The question is
    taken as the message's last line (prompts put it after the context), without a `Question:` label."""
    lines = [line.strip() for line in message.splitlines() if line.strip()] or [""]
    question = _LABEL.sub("", lines[-1])
    short = hash_text.keep_first_tokens(question, 30)
    if hash_text.has_han(question):
        return f"用户的问题是：{short}。我先找出能回答它的段落，再引用它作答。"
    return f"The user asks: {short} I look for the passage that answers it, then answer and cite it."


def json_document(text: str, fmt: Any) -> str:
    """The reply as JSON for `format`: `"json"` wraps it in an object; a JSON schema gets every required
    key (and every listed property) with a value of its type, strings holding the reply."""
    if fmt == "json":
        return json.dumps({JSON_ANSWER_KEY: text}, ensure_ascii=False)
    return json.dumps(_schema_value(fmt, fmt, text, 0), ensure_ascii=False)


def _schema_value(schema: Any, root: dict[str, Any], text: str, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > 20:
        return text
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _schema_value(target, root, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combined in ("anyOf", "oneOf", "allOf"):
        options = [s for s in schema.get(combined) or [] if not (isinstance(s, dict) and s.get("type") == "null")]
        if options:
            return _schema_value(options[0], root, text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        keys = list(dict.fromkeys([*(schema.get("required") or []), *properties]))
        return {key: _schema_value(properties.get(key, {}), root, text, depth + 1) for key in keys}
    if kind == "array":
        count = max(1, int(schema.get("minItems") or 0))
        return [_schema_value(schema.get("items", {}), root, text, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        low: float = float(schema.get("minimum", schema.get("exclusiveMinimum")) or 0)
        value = low + 1 if "exclusiveMinimum" in schema else low
        return math.ceil(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def check_format(fmt: Any) -> Any:
    """The request's `format`: None, `"json"` or a schema object; anything else fails like the runner."""
    if fmt in (None, ""):
        return None
    if fmt == "json" or isinstance(fmt, dict):
        return fmt
    raw = json.dumps(fmt)
    raise ApiError(500, f'invalid format: {json.dumps(raw)}; expected "json" or a valid JSON Schema object')


@dataclass(frozen=True)
class Shape:
    """What the protocol layer does to an engine's reply: thinking first, then the content in `format`,
    cut at a `stop` string, everything cut at `num_predict` tokens (a piece is a token)."""

    thinking: str = ""
    format: Any = None
    stop: tuple[str, ...] = ()
    num_predict: int = -1

    @classmethod
    def of(cls, options: dict[str, Any], thinking: str = "", fmt: Any = None) -> Shape:
        num_predict = options.get("num_predict")
        stops = tuple(s for s in options.get("stop") or () if s)
        return cls(thinking, fmt, stops, -1 if num_predict is None else int(num_predict))


def _until_stop(pieces: Iterator[str], stops: tuple[str, ...], hit: list[bool]) -> Iterator[str]:
    """``pieces`` up to (not including) the first stop string; text that may begin a stop is held back."""
    pending = ""
    for piece in pieces:
        pending += piece
        found = [i for i in (pending.find(s) for s in stops) if i >= 0]
        if found:
            if min(found):
                yield pending[: min(found)]
            hit.append(True)
            return
        held = max((n for s in stops for n in range(1, len(s)) if pending.endswith(s[:n])), default=0)
        if len(pending) > held:
            yield pending[: len(pending) - held]
            pending = pending[len(pending) - held:]
    if pending:
        yield pending


class Run:
    """One engine generation, reshaped and timed for Ollama's metrics, subject to the stream fault."""

    def __init__(self, gen: Generation, start_ns: int, load_ns: int, engine_ns: int, error_after: int | None,
                 shape: Shape | None = None):
        self.gen = gen
        self.shape = shape or Shape()
        self.start_ns, self.load_ns, self.engine_ns = start_ns, load_ns, engine_ns
        self.error_after = error_after
        self.first_ns = self.end_ns = 0
        self.emitted = 0
        self.reshaped = False  # True when this layer changed the engine's text, so its counts stand
        self.done_reason = gen.done_reason

    def _shaped(self) -> Iterator[tuple[str, str]]:
        shape = self.shape
        for piece in hash_text.pieces(shape.thinking) if shape.thinking else []:
            yield "thinking", piece
        content: Iterator[str] = self.gen.pieces
        if shape.format is not None:
            content = iter(hash_text.pieces(json_document("".join(content), shape.format)))
        stopped: list[bool] = []
        if shape.stop:
            content = _until_stop(content, shape.stop, stopped)
        for piece in content:
            yield "content", piece
        if stopped:
            self.done_reason = "stop"
        self.reshaped = bool(shape.thinking or shape.format is not None or stopped)

    def parts(self) -> Iterator[tuple[str, str]]:
        """`("thinking" | "content", text)` pieces; raises ApiError where the injected stream failure is due."""
        limit = self.shape.num_predict
        for index, (kind, piece) in enumerate(self._shaped()):
            if 0 <= limit <= index:
                self.done_reason, self.reshaped = "length", True
                break
            if self.error_after is not None and index >= self.error_after:
                raise ApiError(500, STREAM_FAILURE)
            self.first_ns = self.first_ns or time.perf_counter_ns()
            self.emitted += 1
            yield kind, piece
        if self.error_after is not None:
            raise ApiError(500, STREAM_FAILURE)
        if self.gen.done_reason == "length":
            self.done_reason = "length"
        self.end_ns = time.perf_counter_ns()
        self.first_ns = self.first_ns or self.end_ns

    def pieces(self) -> Iterator[str]:
        """The content pieces only (for routes that do not report thinking)."""
        return (piece for kind, piece in self.parts() if kind == "content")

    def joined(self) -> tuple[str, str]:
        """The whole reply at once: (thinking, content)."""
        texts: dict[str, list[str]] = {"thinking": [], "content": []}
        for kind, piece in self.parts():
            texts[kind].append(piece)
        return "".join(texts["thinking"]), "".join(texts["content"])

    @property
    def eval_count(self) -> int:
        """Generated tokens: exactly `num_predict` when it stopped the reply (as the runner counts), the
        pieces sent when this layer reshaped the reply, else the engine's count."""
        if self.done_reason == "length" and self.shape.num_predict >= 0:
            return self.shape.num_predict
        if self.reshaped:
            return self.emitted
        return self.gen.completion_tokens

    def metrics(self) -> dict[str, int]:
        """Ollama's metric fields in ns; zero values are left out (omitempty)."""
        end = self.end_ns or time.perf_counter_ns()
        values = {
            "total_duration": max(1, time.perf_counter_ns() - self.start_ns),
            "load_duration": self.load_ns,
            "prompt_eval_count": self.gen.prompt_tokens,
            "prompt_eval_duration": max(1, self.first_ns - self.engine_ns),
            "eval_count": self.eval_count,
            "eval_duration": max(1, end - self.first_ns),
        }
        return {k: v for k, v in values.items() if v}
