"""Wire-level pieces shared by the route modules: errors, reply shapes, Go-style field checks, times."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

GO_TYPES = {str: "string", bool: "bool", int: "int", float: "float64", list: "[]", dict: "map"}
JSON_KINDS = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}
DEFAULT_KEEP_ALIVE = 300.0
FOREVER = timedelta(days=365 * 200)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ApiError(Exception):
    """An error reply: HTTP ``status`` with body ``{"error": message}`` (or a final stream line)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class JsonReply:
    """A JSON body, or an empty body when ``body`` is None."""

    body: Any = None
    status: int = 200


@dataclass(frozen=True)
class TextReply:
    """A plain-text body (`Ollama is running`, `404 page not found`)."""

    text: str
    status: int = 200


@dataclass(frozen=True)
class StreamReply:
    """A streamed body: NDJSON lines, or SSE `data:` events ending in `data: [DONE]` when ``sse``."""

    items: Iterator[Any]
    sse: bool = False
    headers: dict[str, str] = field(default_factory=dict)


Reply = JsonReply | TextReply | StreamReply


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return next((k for t, k in JSON_KINDS.items() if isinstance(value, t)), "value")


def get_field(body: dict[str, Any], name: str, kind: type, struct: str, default: Any = None) -> Any:
    """``body[name]`` checked against ``kind``; a wrong type is the 400 Go's json decoder gives."""
    value = body.get(name)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ApiError(
            400,
            f"json: cannot unmarshal {_kind(value)} into Go struct field {struct}.{name} "
            f"of type {GO_TYPES.get(kind, 'value')}",
        )
    return value


# Go types of the request structs' fields (api/types.go), for the json decoder's 400 messages.
# A tuple is an array of that element; a dict is a nested struct (its Go type name, then its fields).
MESSAGE_FIELDS: dict[str, Any] = {
    "role": str, "content": str, "thinking": str, "tool_name": str, "tool_call_id": str,
    "images": ("[]api.ImageData", str), "tool_calls": ("[]api.ToolCall", dict),
}
MESSAGES = ("[]api.Message", ("api.Message", "Message", MESSAGE_FIELDS))
_COMMON = {"model": str, "options": dict, "stream": bool}
REQUEST_FIELDS: dict[str, dict[str, Any]] = {
    "GenerateRequest": {**_COMMON, "prompt": str, "suffix": str, "system": str, "template": str,
                        "context": ("[]int", int), "raw": bool, "images": ("[]api.ImageData", str),
                        "truncate": bool, "shift": bool, "logprobs": bool, "top_logprobs": int},
    "ChatRequest": {**_COMMON, "messages": MESSAGES, "tools": ("api.Tools", dict), "truncate": bool,
                    "shift": bool, "logprobs": bool, "top_logprobs": int},
    "EmbedRequest": {"model": str, "options": dict, "truncate": bool, "dimensions": int},
    "EmbeddingRequest": {"model": str, "options": dict, "prompt": str},
    "ShowRequest": {"model": str, "name": str, "system": str, "template": str, "verbose": bool, "options": dict},
    "PullRequest": {"model": str, "name": str, "insecure": bool, "stream": bool},
    "PushRequest": {"model": str, "name": str, "insecure": bool, "stream": bool},
    "CreateRequest": {"model": str, "name": str, "from": str, "system": str, "template": str, "stream": bool,
                      "quantize": str, "parameters": dict, "files": dict, "adapters": dict,
                      "messages": MESSAGES},
    "CopyRequest": {"source": str, "destination": str},
    "DeleteRequest": {"model": str, "name": str},
}


def _type_error(value: Any, go_type: str, struct: str, path: str) -> ApiError:
    kind = _kind(value)
    if kind == "number" and go_type == "int" and isinstance(value, float):
        kind = f"number {value:g}"
    return ApiError(400, f"json: cannot unmarshal {kind} into Go struct field {struct}.{path} of type {go_type}")


def _check(value: Any, kind: Any, struct: str, path: str) -> None:
    if value is None:
        return  # null leaves a Go field at its zero value
    if isinstance(kind, tuple) and len(kind) == 3:  # a nested struct
        go_type, inner_struct, fields = kind
        if not isinstance(value, dict):
            raise _type_error(value, go_type, struct, path)
        for name, item in value.items():
            if name in fields:
                _check(item, fields[name], inner_struct, f"{path}.{name}")
        return
    if isinstance(kind, tuple):  # an array
        go_type, element = kind
        if not isinstance(value, list):
            raise _type_error(value, go_type, struct, path)
        for item in value:
            _check(item, element, struct, path)
        return
    ok = isinstance(value, kind) and not (kind in (int, float, str) and isinstance(value, bool))
    if kind is int and isinstance(value, float) and not isinstance(value, bool):
        ok = value.is_integer()
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        go_type = "map[string]interface {}" if kind is dict else GO_TYPES.get(kind, "value")
        raise _type_error(value, go_type, struct, path)


def decode(body: dict[str, Any], struct: str) -> dict[str, Any]:
    """``body`` checked against the Go request struct, field by field in body order, as Go's json
    decoder does before any handler logic runs; returns ``body``."""
    fields = REQUEST_FIELDS[struct]
    for name, value in body.items():
        if name in fields:
            _check(value, fields[name], struct, name)
    return body


# api.Options' typed fields (api.Options.FromMap): anything else is ignored with a warning.
INT_OPTIONS = frozenset({"num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx", "num_batch",
                         "num_gpu", "main_gpu", "num_thread", "draft_num_predict"})
FLOAT_OPTIONS = frozenset({"top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty",
                           "frequency_penalty"})
BOOL_OPTIONS = frozenset({"use_mmap", "numa", "low_vram", "f16_kv", "vocab_only", "use_mlock"})


def check_options(options: dict[str, Any], status: int = 500) -> dict[str, Any]:
    """Options with Go's typing applied (a float for an int option is truncated, like FromMap);
    a wrong type is ``option "NAME" must be of type ...`` (500: it fails at scheduling)."""
    checked = dict(options)
    for key, value in options.items():
        if value is None:
            continue
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in INT_OPTIONS:
            if not is_number:
                raise ApiError(status, f'option "{key}" must be of type integer')
            checked[key] = int(value)
        elif key in FLOAT_OPTIONS:
            if not is_number:
                raise ApiError(status, f'option "{key}" must be of type float32')
        elif key in BOOL_OPTIONS:
            if not isinstance(value, bool):
                raise ApiError(status, f'option "{key}" must be of type boolean')
        elif key == "stop":
            if not isinstance(value, list):
                raise ApiError(status, f'option "{key}" must be of type array')
            elif not all(isinstance(v, str) for v in value):
                raise ApiError(status, f'option "{key}" must be of type array of strings')
    return checked


def model_field(body: dict[str, Any], struct: str) -> str:
    """The request's model name (`model`, or the legacy `name`), stripped."""
    return str(get_field(body, "model", str, struct) or get_field(body, "name", str, struct) or "").strip()


def parse_keep_alive(value: Any) -> timedelta:
    """A keep_alive value as a duration: seconds or a Go duration string; negative means forever."""
    if value is None:
        return timedelta(seconds=DEFAULT_KEEP_ALIVE)
    if isinstance(value, bool):
        raise ApiError(400, "json: cannot unmarshal bool into Go value of type api.Duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        parts = _DURATION_PART.findall(body)
        if body == "0":
            seconds = 0.0
        elif not parts or "".join(n + u for n, u in parts) != body:
            raise ApiError(400, f'time: invalid duration "{text}"')
        else:
            seconds = sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    return FOREVER if seconds < 0 else timedelta(seconds=seconds)


def now_iso() -> str:
    """Now in UTC as RFC 3339 with a `Z`, like Go's `time.Time` JSON."""
    return rfc3339(datetime.now(timezone.utc))


def rfc3339(moment: datetime) -> str:
    """A datetime as RFC 3339 (`2026-08-21T10:00:00.123456Z` for UTC)."""
    text = moment.isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def ns_since(start_ns: int) -> int:
    """Nanoseconds since ``start_ns`` (from `time.perf_counter_ns`), at least 1 so omitempty keeps it."""
    return max(1, time.perf_counter_ns() - start_ns)


def openai_error(status: int, message: str) -> dict[str, Any]:
    """The OpenAI-compatible error body for ``status``."""
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


@dataclass(frozen=True)
class Request:
    """A parsed request as the route functions see it."""

    method: str
    path: str
    body: dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server answered, for test assertions."""

    method: str
    path: str
    json: Any  # the parsed body, or None when empty or not JSON
    headers: dict[str, str]  # lowercased names
    status: int


def error_reply(status: int, message: str, openai: bool) -> JsonReply:
    """An error as a JSON reply, in OpenAI's shape for `/v1` routes."""
    return JsonReply(openai_error(status, message) if openai else {"error": message}, status)
