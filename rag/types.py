"""The records of the read path. They mirror the `--json` output key for key."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def location(source: str, page: int | None, heading: str) -> str:
    """Where a passage is, as every front end shows it: ``source, page p — heading``.

    >>> location("manual.pdf", 3, "Setup > Install"), location("notes.md", None, "")
    ('manual.pdf, page 3 — Setup > Install', 'notes.md')
    """
    text = source + (f", page {page}" if page else "")
    return text + (f" — {heading}" if heading else "")


@dataclass(frozen=True)
class Hit:
    """One retrieved passage (`rag search`, `kb.search`)."""

    source: str
    page: int | None
    heading: str
    score: float
    text: str
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    """A passage the answer cites as [n]."""

    n: int
    source: str
    page: int | None
    heading: str
    snippet: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """The result of `kb.ask` / `rag ask --json`."""

    answer: str
    citations: list[Citation]
    contexts: list[Hit]
    model: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds: retrieval, first_token, total
    warnings: list[str] = field(default_factory=list)  # e.g. the server evidently cut the prompt

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [c.to_dict() for c in self.citations],
            "contexts": [
                {"source": h.source, "page": h.page, "heading": h.heading, "score": h.score, "text": h.text}
                for h in self.contexts
            ],
            "model": self.model,
            "timings": self.timings,
            "warnings": self.warnings,
        }
