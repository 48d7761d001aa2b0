"""Han (Chinese) text: the one definition of the Han character range, and Chinese-heavy folder detection.

`HAN_RANGES` is the character-class body every module uses (BM25 terms, the answer stage's language
check, the hash engine, the loaders): the CJK Unified Ideographs, Extension A and the Compatibility
Ideographs. Kana, Hangul and CJK punctuation are not Han.

The default embedding model (`nomic-embed-text`) is English-centred: on Chinese text its vectors carry
little meaning and BM25 alone finds the passages. `HanShare` counts, over everything indexed, how much
of the text is Han, and names a multilingual model when that share is high.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
HAN = re.compile(f"[{HAN_RANGES}]")
# Letters of any script, Han included (no digits, punctuation or spaces): the share's denominator,
# so that markup, numbers and layout do not dilute it.
_LETTERS = re.compile(r"[^\W\d_]+")  # runs, not single letters: one match per word

# Above this share of Han among the letters, a folder counts as Chinese-heavy.
HAN_HEAVY_SHARE = 0.3
# A multilingual embedding model that Ollama serves (the bundled server's catalog knows it too).
MULTILINGUAL_EMBED_MODEL = "bge-m3"
# Embedding models on Ollama's library trained on many languages, Chinese included (name before the tag).
MULTILINGUAL_EMBED_MODELS = frozenset(
    {
        "bge-m3",
        "paraphrase-multilingual",
        "snowflake-arctic-embed2",
        "qwen3-embedding",
        "embeddinggemma",
        "nomic-embed-text-v2-moe",
        "granite-embedding:278m",
    }
)


def has_han(text: str) -> bool:
    """Whether ``text`` contains at least one Han character."""
    return HAN.search(text) is not None


def is_multilingual(embed_model: str) -> bool:
    """Whether ``embed_model`` (any tag, any namespace, any case) is known to embed Chinese well."""
    name = embed_model.strip().lower().rsplit("/", 1)[-1]
    base = name.split(":", 1)[0]
    return base in MULTILINGUAL_EMBED_MODELS or name in MULTILINGUAL_EMBED_MODELS or "multilingual" in base


@dataclass
class HanShare:
    """How much of the text seen so far is Han: feed every text with `add`, read `share` or `warning`."""

    han: int = 0
    letters: int = 0

    def add(self, text: str) -> None:
        """Count the Han characters and the letters of ``text``."""
        self.han += len(HAN.findall(text))
        self.letters += sum(map(len, _LETTERS.findall(text)))

    @property
    def share(self) -> float:
        """Han characters as a fraction of all letters (0.0 before any letter was seen)."""
        return self.han / self.letters if self.letters else 0.0

    def needs_multilingual(self, embed_model: str) -> bool:
        """Whether the text is Chinese-heavy (share above `HAN_HEAVY_SHARE`) and ``embed_model`` is not multilingual."""
        return self.share > HAN_HEAVY_SHARE and not is_multilingual(embed_model)

    def detail(self, embed_model: str) -> str:
        """What is wrong, for a warning line or the doctor's detail column."""
        return (
            f"{self.share:.0%} of the indexed text is Chinese, but {embed_model} is an English-centred "
            "embedding model, so only keyword search finds Chinese passages"
        )

    def warning(self, embed_model: str, path: str = "PATH") -> str | None:
        """One line naming a multilingual model and the rebuild command, when the text is Chinese-heavy
        and ``embed_model`` is not multilingual; else None."""
        if not self.needs_multilingual(embed_model):
            return None
        return f"{self.detail(embed_model)} — rebuild with a multilingual one: {rebuild_fix(path)}"


def rebuild_fix(path: str = "PATH") -> str:
    """The commands that re-embed the folder at ``path`` with `MULTILINGUAL_EMBED_MODEL`."""
    model = MULTILINGUAL_EMBED_MODEL
    return f"`rag models pull {model}`, then `rag index {path} --rebuild --embed-model {model}`"
