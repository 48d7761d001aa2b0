"""Text rules of the hash engine: tokens, the answer / rewrite / echo replies, and num_ctx cutting.

Everything here is deterministic so tests can predict replies exactly. The prompt format it reads is
the one in docs/ARCHITECTURE.md ("Prompt format shared by `rag/answer.py` and the hash engine").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A token is one Han character or a run of other word characters; this is also the token count.
TOKEN_RE = re.compile(rf"[{HAN}]|[^\W{HAN}]+")
PASSAGE_RE = re.compile(r"^\[(\d+)\] ")
SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])|\n+")
PIECE_RE = re.compile(rf"[{HAN}]{{1,3}}|[^{HAN}\s]+\s*|\s+")
HAS_HAN_RE = re.compile(rf"[{HAN}]")
CJK_END_RE = re.compile(rf"[{HAN}\u3000-\u303f\uff00-\uffef]$")  # Han or full-width punctuation
TASK_PREFIXES = (
    "search_document: ",
    "search_query: ",
    "classification: ",
    "clustering: ",
    "Represent this sentence for searching relevant passages: ",
)
MESSAGE_OVERHEAD = 4  # role markers a chat template adds around every message
NO_ANSWER_EN = "The documents do not contain the answer."
NO_ANSWER_ZH = "文档中没有找到答案。"
STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being do does did
    doing have has had having i me my we our you your he she it its they them their this that these those
    what which who whom whose when where why how there here not no nor so than too very can could should
    would will shall may might must about into over under again further then once all any both each few
    more most other some such only own same just also up down out off s t don about tell please give
    question answer""".split()
)
STOP_BIGRAMS = frozenset("什么 怎么 如何 哪些 哪个 为什么 是否 可以 一个 这个 那个 我们 你们 他们 请问 是什".split())


@dataclass(frozen=True)
class Passage:
    """One numbered passage of an answer prompt."""

    number: int
    label: str
    text: str


def strip_task_prefix(text: str) -> str:
    """Drop a known embedding task prefix, which a real model understands rather than matches on."""
    for prefix in TASK_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def count_tokens(text: str) -> int:
    """Tokens as the hash engine counts them: words plus Han characters."""
    return len(TOKEN_RE.findall(text))


def has_han(text: str) -> bool:
    """Whether ``text`` contains a Han character (the reply language rule)."""
    return bool(HAS_HAN_RE.search(text))


def keep_last_tokens(text: str, limit: int) -> str:
    """``text`` cut from the front so that at most ``limit`` tokens remain."""
    matches = list(TOKEN_RE.finditer(text))
    if len(matches) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[matches[len(matches) - limit].start():]


def keep_first_tokens(text: str, limit: int) -> str:
    """``text`` cut at the end so that at most ``limit`` tokens remain."""
    matches = list(TOKEN_RE.finditer(text))
    if len(matches) <= limit:
        return text
    return text[: matches[limit - 1].end()] if limit > 0 else ""


def _stem(word: str) -> str:
    # Plural folding is enough for "passages" to meet "passage"; real stemming is not the point.
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def terms(text: str) -> set[str]:
    """Content terms for overlap scoring: non-stopword words and Han bigrams."""
    found: set[str] = set()
    prev_end, prev_han = -1, ""
    for match in TOKEN_RE.finditer(text.lower()):
        token = match.group()
        if HAS_HAN_RE.fullmatch(token):
            if prev_han and match.start() == prev_end and prev_han + token not in STOP_BIGRAMS:
                found.add(prev_han + token)
            prev_han = token
        else:
            prev_han = ""
            if token not in STOPWORDS and (len(token) > 1 or token.isdigit()):
                found.add(_stem(token))
        prev_end = match.end()
    return found


def pieces(text: str) -> list[str]:
    """Split a reply into word-ish stream pieces that join back to ``text``."""
    return PIECE_RE.findall(text) or [text]


def parse_passages(prompt: str) -> tuple[list[Passage], str | None]:
    """The numbered passages and the `Question:` text of an answer prompt (None when absent)."""
    passages: list[Passage] = []
    number, label = 0, ""
    body: list[str] = []
    question_lines: list[str] | None = None
    for line in prompt.splitlines():
        if question_lines is not None:
            question_lines.append(line)
        elif line.startswith("Question:"):
            question_lines = [line[len("Question:"):]]
        elif match := PASSAGE_RE.match(line):
            if number:
                passages.append(Passage(number, label, "\n".join(body).strip()))
            number, label, body = int(match.group(1)), line[match.end():], []
        elif number:
            body.append(line)
    if number:
        passages.append(Passage(number, label, "\n".join(body).strip()))
    question = "\n".join(question_lines).strip() if question_lines is not None else None
    return passages, question


def answer(passages: list[Passage], question: str) -> str:
    """The 1-2 sentences that best overlap the question, each cited, or a plain "not found"."""
    wanted = terms(question)
    scored: list[tuple[int, int, str, int]] = []  # (-score, order, sentence, passage number)
    for passage in passages:
        for sentence in SENTENCE_SPLIT_RE.split(passage.text):
            sentence = sentence.strip()
            score = len(wanted & terms(sentence)) if sentence else 0
            if score:
                scored.append((-score, len(scored), sentence, passage.number))
    if not scored:
        return NO_ANSWER_ZH if has_han(question) else NO_ANSWER_EN
    scored.sort()
    best = [scored[0]] + [s for s in scored[1:2] if -s[0] * 2 >= -scored[0][0]]
    parts = [f"{sentence}[{n}]" if CJK_END_RE.search(sentence) else f"{sentence} [{n}]" for _, _, sentence, n in best]
    return ("" if has_han(question) else " ").join(parts)


def rewrite(prompt: str) -> str:
    """A standalone question: the follow-up prefixed by the last previous user question's content words."""
    follow_up, previous = "", ""
    in_conversation = False
    for line in prompt.splitlines():
        if line.startswith("Follow-up question:"):
            follow_up = line[len("Follow-up question:"):].strip()
            in_conversation = False
        elif line.startswith("Conversation:"):
            in_conversation = True
        elif in_conversation and line.startswith("user:"):
            previous = line[len("user:"):].strip()
    follow_up = follow_up or prompt.strip()
    context = _content_words(previous)
    return f"{' '.join(context)} {follow_up}".strip() if context else follow_up


def _content_words(text: str) -> list[str]:
    words: list[str] = []
    for match in re.finditer(rf"[{HAN}]+|[^\W{HAN}]+", text):
        word = match.group()
        if (has_han(word) or (word.lower() not in STOPWORDS and len(word) > 1)) and word not in words:
            words.append(word)
    return words


def reply(messages: list[dict[str, Any]]) -> str:
    """The hash engine's reply to a conversation: rewrite, cited answer, or echo."""
    system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    last = users[-1] if users else str(messages[-1].get("content") or "") if messages else ""
    if "standalone" in system.lower():
        return rewrite(last)
    passages, question = parse_passages(last)
    if passages or question is not None:
        return answer(passages, question if question is not None else last)
    text = " ".join(last.split())
    short = keep_first_tokens(text, 40)
    return f"You said: {short}{'…' if short != text else ''}" if text else "Hello! Ask me something."


def message_tokens(message: dict[str, Any]) -> int:
    """Tokens one chat message takes in the rendered prompt."""
    return count_tokens(str(message.get("content") or "")) + MESSAGE_OVERHEAD


def fit_context(messages: list[dict[str, Any]], num_ctx: int) -> tuple[list[dict[str, Any]], int]:
    """Ollama's cut: drop the oldest non-system messages (keeping the last), then cut the last from the
    front. Returns the kept messages and the prompt tokens actually evaluated."""
    kept = list(messages)
    total = sum(message_tokens(m) for m in kept)
    index = 0
    while total > num_ctx and index < len(kept) - 1:
        if kept[index].get("role") == "system":
            index += 1
            continue
        total -= message_tokens(kept.pop(index))
    if total > num_ctx and kept:
        last = dict(kept[-1])
        budget = num_ctx - (total - message_tokens(last)) - MESSAGE_OVERHEAD
        last["content"] = keep_last_tokens(str(last.get("content") or ""), max(budget, 0))
        kept[-1] = last
        total = sum(message_tokens(m) for m in kept)
    return kept, total


def join_texts(texts: Iterable[str]) -> str:
    """Texts joined the way a template would put them in one prompt."""
    return "\n\n".join(t for t in texts if t)
