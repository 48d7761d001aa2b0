"""Multi-turn chat: follow-ups are rewritten into standalone search queries; history is trimmed to its budget.

"它和微调有什么区别？" or "what about the second one?" retrieve nothing useful on their own, so each
follow-up first goes through one short `/api/chat` call that rewrites it using the history.

The rewrite is not trusted blindly: small models (1-3B) answer it with off-topic text or an echo of
the instructions. A rewrite that shares no term with the conversation, or that is mostly the
instructions' own words, is dropped; then, as when the call fails, the previous question plus the
follow-up is the search query. And retrieval always searches the user's own words too, fusing the two
rankings (`rag.answer.search_fused`), so a bad rewrite can add candidates but never remove the ones
the follow-up finds by itself (a topic switch). The answer call sees the original follow-up after the
(trimmed) history.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal, overload

from ingest.errors import OllamaError
from ingest.lexical import terms
from rag.answer import (
    AnswerStream,
    ask_stream,
    chat_options,
    context_window,
    estimate_tokens,
    trim_history,
)
from rag.client import OllamaClient
from rag.config import Settings
from rag.retrieve import Retriever
from rag.types import Answer, Citation, Hit

log = logging.getLogger(__name__)

REWRITE_SYSTEM = (
    "Rewrite the follow-up question as a standalone search query that can be understood without the "
    "conversation: replace pronouns and references with what they refer to. Keep the language of the "
    "follow-up question. Reply with the query only."
)
REWRITE_TOKENS = 96  # a query, not an essay
TURN_CHARS = 400  # each earlier message is shortened to this in the rewrite prompt
_CITATION_MARK = re.compile(r"\s?[\[【［]\s*\d{1,3}(?:\s*[,，、\-–~]\s*\d{1,3})*\s*[\]】］]")
_LABEL = re.compile(r"^(standalone (search )?(query|question)|query|search query|问题|查询)\s*[:：]\s*", re.I)
# Lines of the rewrite prompt itself: a reply holding them repeats the prompt instead of rewriting.
_PROMPT_LINES = ("conversation:", "follow-up question:", "user:", "assistant:")
_INSTRUCTION_TERMS = frozenset(terms(REWRITE_SYSTEM))


def rewrite_prompt(history: Sequence[Mapping[str, str]], follow_up: str) -> str:
    """The rewrite request's user message (the format the hash engine parses: docs/ARCHITECTURE.md)."""
    lines = ["Conversation:"]
    for m in history:
        text = " ".join(m["content"].split())
        lines.append(f"{m['role']}: {text[:TURN_CHARS]}")
    return "\n".join([*lines, "", f"Follow-up question: {follow_up.strip()}"])


def fallback_query(history: Sequence[Mapping[str, str]], follow_up: str) -> str:
    """The previous user question plus the follow-up (used when the rewrite call fails)."""
    previous = next((m["content"] for m in reversed(history) if m["role"] == "user"), "")
    return f"{previous.strip()} {follow_up.strip()}".strip()


def clean_rewrite(text: str) -> str:
    """The first non-empty line of a rewrite reply, without labels or quotes."""
    for line in text.strip().splitlines():
        line = _LABEL.sub("", line.strip()).strip().strip("\"'“”「」")
        if line:
            return line
    return ""


def usable_rewrite(rewrite: str, history: Sequence[Mapping[str, str]], follow_up: str) -> bool:
    """Whether a rewrite may drive retrieval: it shares a term with the history or the follow-up, and it
    is not an echo of the rewrite prompt (its lines, or mostly the instructions' own words)."""
    said = set(terms(rewrite))
    conversation = set(terms(follow_up)).union(*(terms(m.get("content", "")) for m in history))
    shared = said & conversation
    if not shared:
        return False
    if any(line in rewrite.lower() for line in _PROMPT_LINES):
        return False
    echoed = (said & _INSTRUCTION_TERMS) - conversation
    return 2 * len(echoed) < len(said)


def choose_query(reply: str, history: Sequence[Mapping[str, str]], follow_up: str) -> str:
    """The search query from a rewrite reply: the cleaned rewrite when usable, else the previous
    question plus the follow-up (`fallback_query`)."""
    query = clean_rewrite(reply)
    if query and not usable_rewrite(query, history, follow_up):
        log.warning("question rewrite %r ignored (off-topic, or an echo of the instructions); searching with "
                    "the previous question plus the follow-up", query)
        query = ""
    return query or fallback_query(history, follow_up)


def rewrite_request(
    history: Sequence[Mapping[str, str]], follow_up: str, settings: Settings
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The messages and options of the rewrite call (shared with the async `rag.aio`)."""
    messages = [
        {"role": "system", "content": REWRITE_SYSTEM},
        {"role": "user", "content": rewrite_prompt(trim_history(history, settings.history_tokens), follow_up)},
    ]
    # The same num_ctx as the answer calls, so the model is not reloaded between the two.
    num_ctx = context_window(settings, estimate_tokens(messages))
    return messages, chat_options(settings, num_ctx, REWRITE_TOKENS)


def record_turn(
    history: Sequence[Mapping[str, str]], question: str, answer: Answer, history_tokens: int
) -> list[dict[str, str]]:
    """The history after one more turn, bounded (the prompt trims it again to the exact budget)."""
    # Old [n] marks would point at passages the next prompt numbers differently: drop them.
    reply = _CITATION_MARK.sub("", answer.answer).strip()
    turn = [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    return trim_history([*history, *turn], 2 * history_tokens)


def rewrite_question(
    client: OllamaClient, history: Sequence[Mapping[str, str]], follow_up: str, *, settings: Settings
) -> str:
    """A standalone search query for ``follow_up`` given ``history`` (unchanged when there is no history)."""
    if not history:
        return follow_up
    messages, options = rewrite_request(history, follow_up, settings)
    try:
        reply = client.chat(settings.chat_model, messages, stream=False, think=False, options=options)
    except OllamaError as err:
        log.warning("question rewrite failed (%s); searching with the previous question plus the follow-up", err)
        return fallback_query(history, follow_up)
    return choose_query((reply.message.content or "") if reply.message else "", history, follow_up)


class Chat:
    """A conversation over one index: `ask` follow-ups, read `history`, `reset()` to start over."""

    def __init__(
        self,
        retriever: Retriever,
        *,
        client: OllamaClient | None = None,
        k: int | None = None,
        where_glob: str | None = None,
        kinds: Collection[str] | None = None,
    ) -> None:
        settings = retriever.settings
        self.retriever = retriever
        self._own_client = client is None
        self.client = client or OllamaClient(settings.host, timeouts=settings.index.timeouts)
        self.k, self.where_glob, self.kinds = k, where_glob, kinds
        self.history: list[dict[str, str]] = []  # {"role": "user"|"assistant", "content": ...}
        self.last: Answer | None = None
        # the rewritten search query of the last question (searched together with the question itself)
        self.last_query: str | None = None

    @overload
    def ask(self, question: str, *, stream: Literal[False] = False) -> Answer: ...

    @overload
    def ask(self, question: str, *, stream: Literal[True]) -> AnswerStream: ...

    def ask(self, question: str, *, stream: bool = False) -> Answer | AnswerStream:
        """Answer a (follow-up) question; with ``stream=True`` an `AnswerStream` (history updates at its end)."""
        settings = self.retriever.settings
        query = rewrite_question(self.client, self.history, question, settings=settings)
        self.last_query = query
        history = list(self.history)
        result = ask_stream(
            self.retriever,
            question,
            client=self.client,
            k=self.k,
            where_glob=self.where_glob,
            kinds=self.kinds,
            history=history,
            search_query=query,
            on_done=lambda answer: self._record(question, answer),
        )
        return result if stream else result.answer

    def close(self) -> None:
        """Close the HTTP client this chat made (a client passed in stays open)."""
        if self._own_client:
            self.client.close()

    def __enter__(self) -> Chat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Forget the conversation."""
        self.history.clear()
        self.last = None
        self.last_query = None

    def sources(self) -> list[Citation]:
        """The citations of the last answer."""
        return list(self.last.citations) if self.last else []

    def contexts(self) -> list[Hit]:
        """The passages the last answer was given."""
        return list(self.last.contexts) if self.last else []

    def _record(self, question: str, answer: Answer) -> None:
        self.history = record_turn(self.history, question, answer, self.retriever.settings.history_tokens)
        self.last = answer
