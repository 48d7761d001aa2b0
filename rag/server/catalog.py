"""The models the bundled server knows: the default installed catalog, the pullable library, and
Ollama's model-name rules (tag defaults to `latest`, matching ignores case)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from rag.server.engine import ModelSpec

CHATML_TEMPLATE = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n"
)
LLAMA3_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
    "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
EMBED_TEMPLATE = "{{ .Prompt }}"
CHATML_PARAMETERS = 'stop                           "<|im_start|>"\nstop                           "<|im_end|>"'
LLAMA3_PARAMETERS = 'stop                           "<|start_header_id|>"\nstop                           "<|eot_id|>"'

DEFAULT_CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec("nomic-embed-text:latest", "nomic-bert", ("embedding",), 2048, 768, "137M", "F16",
              274_302_450, EMBED_TEMPLATE, "num_ctx                        8192"),
    # 256 is what sentence-transformers actually uses for all-MiniLM-L6-v2, not the 512 positions.
    ModelSpec("all-minilm:latest", "bert", ("embedding",), 256, 384, "23M", "F16", 45_960_996, EMBED_TEMPLATE),
    ModelSpec("mxbai-embed-large:latest", "bert", ("embedding",), 512, 1024, "334M", "F16",
              669_615_493, EMBED_TEMPLATE),
    ModelSpec("qwen2.5:7b", "qwen2", ("completion", "tools"), 32768, 3584, "7.6B", "Q4_K_M",
              4_683_087_332, CHATML_TEMPLATE, CHATML_PARAMETERS),
    ModelSpec("llama3.2:1b", "llama", ("completion",), 131072, 2048, "1.2B", "Q8_0",
              1_321_098_329, LLAMA3_TEMPLATE, LLAMA3_PARAMETERS),
    # A thinking model: replies carry `thinking` unless the request sends `think: false`.
    ModelSpec("qwen3:0.6b", "qwen3", ("completion", "tools", "thinking"), 40960, 1024, "751.63M", "Q4_K_M",
              522_653_767, CHATML_TEMPLATE, CHATML_PARAMETERS),
)

DEFAULT_LIBRARY: tuple[ModelSpec, ...] = (
    ModelSpec("qwen2.5:0.5b", "qwen2", ("completion", "tools"), 32768, 896, "494.03M", "Q4_K_M",
              397_821_319, CHATML_TEMPLATE, CHATML_PARAMETERS),
    # Multilingual (Chinese included); pullable so that `--pull` and `rag models pull bge-m3` work.
    ModelSpec("bge-m3:latest", "bert", ("embedding",), 8192, 1024, "566.70M", "F16",
              1_157_672_605, EMBED_TEMPLATE),
    ModelSpec("gemma3:270m", "gemma3", ("completion",), 32768, 640, "268.10M", "Q8_0",
              291_554_930, "{{ .Prompt }}"),
)

_REGISTRY_PREFIXES = ("registry.ollama.ai/library/", "registry.ollama.ai/", "library/")
_VALID_NAME = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/){0,2}[A-Za-z0-9][\w.-]*(?::[A-Za-z0-9_][\w.-]{0,127})?$")


def full_name(name: str) -> str:
    """The name with its tag, without the default registry prefix.

    >>> full_name("Nomic-Embed-Text")
    'Nomic-Embed-Text:latest'
    >>> full_name("registry.ollama.ai/library/qwen2.5:7b")
    'qwen2.5:7b'
    """
    name = name.strip()
    for prefix in _REGISTRY_PREFIXES:
        if name.lower().startswith(prefix):
            name = name[len(prefix):]
            break
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def name_key(name: str) -> str:
    """The case-insensitive key two names match on (`All-MiniLM` == `all-minilm:latest`)."""
    return full_name(name).lower()


def is_valid_name(name: str) -> bool:
    """Whether Ollama would accept ``name`` as a model name."""
    return bool(_VALID_NAME.match(name.strip()))


def digest_of(name: str) -> str:
    """A stable fake manifest digest (64 hex chars) for a model name."""
    return hashlib.sha256(name_key(name).encode()).hexdigest()


def find_spec(specs: tuple[ModelSpec, ...] | list[ModelSpec], name: str) -> ModelSpec | None:
    """The spec whose name matches ``name`` ignoring case and a missing `:latest`."""
    key = name_key(name)
    return next((s for s in specs if name_key(s.name) == key), None)


def parse_parameters(text: str) -> dict[str, Any]:
    """Modelfile PARAMETER lines (`num_ctx 8192`, `stop "<|im_end|>"`) as options; `stop` repeats into a list.

    >>> parse_parameters('num_ctx    8192\\nstop "<|im_start|>"\\nstop "<|im_end|>"')
    {'num_ctx': 8192, 'stop': ['<|im_start|>', '<|im_end|>']}
    """
    options: dict[str, Any] = {}
    for line in text.splitlines():
        key, _, raw = line.strip().partition(" ")
        if not key:
            continue
        try:
            value: Any = json.loads(raw.strip())
        except json.JSONDecodeError:
            value = raw.strip()
        if key == "stop":
            options.setdefault("stop", []).append(str(value))
        else:
            options[key] = value
    return options


def render_parameters(options: dict[str, Any]) -> str:
    """Options as `/api/show`'s `parameters` text: the name padded to 30 columns, strings quoted."""
    lines = []
    for key, value in options.items():
        for item in value if isinstance(value, list) else [value]:
            shown = json.dumps(item, ensure_ascii=False) if not isinstance(item, (int, float)) or isinstance(
                item, bool) else str(item)
            lines.append(f"{key:<30} {shown}")
    return "\n".join(lines)
