"""Text rules of the hash engine: tokens, the answer / rewrite / quote replies, and num_ctx cutting.

Everything here is deterministic so tests can predict replies exactly. It reads `rag`'s prompt format
(docs/ARCHITECTURE.md, "Prompt format") but depends on it nowhere alone: plain numbered passages, other
rewrite wordings, and any other prompt get sensible replies too (`reply`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ingest.language import HAN_RANGES
from rag.prompt_format import PASSAGE_CLOSE, QUESTION_LABEL, parse_open

HAN = HAN_RANGES  # the character-class body of the one Han range (ingest.language)
# A token is one Han character or a run of other word characters; this is also the token count.
TOKEN_RE = re.compile(rf"[{HAN}]|[^\W{HAN}]+")
NUMBERED_PASSAGE_RE = re.compile(r"^\[(\d+)\] ")
# "Question: ...", "问题：...", "New question: ..." (not "Follow-up question:", which FOLLOW_UP_RE reads)
LABELLED_QUESTION_RE = re.compile(r"^\s*(?:(?!follow)[\w ]{0,20}\s)?(?:question|query|问题)\s*[:：]\s*(.*)$", re.I)
FOLLOW_UP_RE = re.compile(r"^\s*follow[- ]?up(?: question| query)?\s*[:：]\s*(.*)$", re.I)
TRANSCRIPT_USER_RE = re.compile(r"^\s*(?:user|human|you|q|用户)\s*[:：]\s*(.+)$", re.I)
REWRITE_ASK_RE = re.compile(r"stand-?alone|\b(?:rewrite|rephrase|reformulate)\b[^.\n]{0,60}\b(?:question|query)|改写|重写",
                            re.I)
ZH_QUESTION_RE = re.compile(r"什么|怎么|怎样|如何|为什么|哪|多少|几[个天年月次]|是否|吗[？?。]?$|呢[？?]?$")
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
QUESTION_WORDS = frozenset(
    "what how why when where who whom whose which is are was were do does did can could should would will "
    "may might must shall has have had".split()
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
    """The passages of an answer prompt and its question (None when no question line is found).

    Two layouts are read: `rag`'s delimited one (``<passage n="1" source="...">`` ... ``</passage>``, then
    the question), and plain numbered blocks (a ``[1] label`` line, its text, then ``Question: ...``)
    as many apps write them. The question is looked for only after the last passage: the labelled line,
    else the question-like one.
    """
    passages, after = _delimited(prompt)
    if passages:
        question = labelled_question(after)
        if question is None and (index := question_line(after)) >= 0:
            question = after[index].strip()
        return passages, question
    return _numbered(prompt)


def _delimited(prompt: str) -> tuple[list[Passage], list[str]]:
    """Passages between markers, and the lines after the last one (text outside markers before it is ignored)."""
    passages: list[Passage] = []
    opened: tuple[int, str] | None = None
    body: list[str] = []
    after: list[str] = []
    for line in prompt.splitlines():
        if opened is not None:
            if line.strip() == PASSAGE_CLOSE:
                passages.append(Passage(opened[0], opened[1], "\n".join(body).strip()))
                opened, after = None, []
            else:
                body.append(line)
        elif (found := parse_open(line)) is not None:
            opened, body = found, []
        else:
            after.append(line)
    if opened is not None:  # never closed (the prompt was cut at its end): its text still counts
        passages.append(Passage(opened[0], opened[1], "\n".join(body).strip()))
    return passages, after


def _numbered(prompt: str) -> tuple[list[Passage], str | None]:
    passages: list[Passage] = []
    number, label = 0, ""
    body: list[str] = []
    question_lines: list[str] | None = None
    for line in prompt.splitlines():
        if question_lines is not None:
            question_lines.append(line)
        elif line.startswith(QUESTION_LABEL):
            question_lines = [line[len(QUESTION_LABEL):]]
        elif match := NUMBERED_PASSAGE_RE.match(line):
            if number:
                passages.append(Passage(number, label, "\n".join(body).strip()))
            number, label, body = int(match.group(1)), line[match.end():], []
        elif number:
            body.append(line)
    if number:
        passages.append(Passage(number, label, "\n".join(body).strip()))
    question = "\n".join(question_lines).strip() if question_lines is not None else None
    return passages, question


def labelled_question(lines: list[str]) -> str | None:
    """The text of the last ``Question: ...`` (or ``问题：``, ``New question:`` ...) line, with the lines after it."""
    for index in range(len(lines) - 1, -1, -1):
        if match := LABELLED_QUESTION_RE.match(lines[index]):
            return "\n".join([match.group(1), *lines[index + 1:]]).strip()
    return None


def is_question_like(line: str) -> bool:
    """Whether a line reads as a question: a question mark, a leading question word, or a Chinese question word."""
    text = line.strip()
    if not text:
        return False
    if text.endswith(("?", "？")) or ZH_QUESTION_RE.search(text):
        return True
    first = TOKEN_RE.search(text.lower())
    return bool(first) and first.group() in QUESTION_WORDS  # type: ignore[union-attr]


def question_line(lines: list[str]) -> int:
    """Index of the question among ``lines``: the last labelled one, else the last question-like one, else
    the last non-empty one (-1 when every line is empty)."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    for test in (LABELLED_QUESTION_RE.match, _ends_with_question_mark, is_question_like):
        found = [i for i in filled if test(lines[i])]
        if found:
            return found[-1]
    return filled[-1] if filled else -1


def _ends_with_question_mark(line: str) -> bool:
    return line.rstrip().endswith(("?", "？"))


def _strip_label(line: str) -> str:
    match = LABELLED_QUESTION_RE.match(line) or FOLLOW_UP_RE.match(line)
    return (match.group(1) if match else line).strip()


def best_sentences(sources: list[tuple[int, str]], question: str) -> list[tuple[str, int]]:
    """The 1-2 sentences (with their source number) sharing the most content terms with ``question``."""
    wanted = terms(question)
    scored: list[tuple[int, int, str, int]] = []  # (-score, order, sentence, source number)
    for number, text in sources:
        for sentence in SENTENCE_SPLIT_RE.split(text):
            sentence = sentence.strip()
            score = len(wanted & terms(sentence)) if sentence else 0
            if score:
                scored.append((-score, len(scored), sentence, number))
    if not scored:
        return []
    scored.sort()
    best = [scored[0]] + [s for s in scored[1:2] if -s[0] * 2 >= -scored[0][0]]
    return [(sentence, number) for _, _, sentence, number in best]


def no_answer(question: str) -> str:
    """The plain "not found" reply in the question's language."""
    return NO_ANSWER_ZH if has_han(question) else NO_ANSWER_EN


def answer(passages: list[Passage], question: str) -> str:
    """The 1-2 sentences that best overlap the question, each cited, or a plain "not found"."""
    best = best_sentences([(p.number, p.text) for p in passages], question)
    if not best:
        return no_answer(question)
    parts = [f"{sentence}[{n}]" if CJK_END_RE.search(sentence) else f"{sentence} [{n}]" for sentence, n in best]
    return ("" if has_han(question) else " ").join(parts)


def quote_answer(text: str) -> str:
    """Any other prompt: the sentences of the message most relevant to its question line, quoted.

    The question is the last labelled or question-like line; the rest of the message is the text to
    quote from. A message with nothing to quote is echoed (chit-chat) or, when it asks something, gets
    the plain "not found".
    """
    lines = text.splitlines()
    index = question_line(lines)
    if index < 0:
        return "Hello! Ask me something."
    question = _strip_label(lines[index])
    context = "\n".join(lines[:index] + lines[index + 1:])
    best = best_sentences([(0, context)], question)
    if best:
        return ("" if has_han(question) else " ").join(sentence for sentence, _ in best)
    if context.strip() or is_question_like(lines[index]) or LABELLED_QUESTION_RE.match(lines[index]):
        return no_answer(question)
    flat = " ".join(text.split())
    short = keep_first_tokens(flat, 40)
    return f"You said: {short}{'…' if short != flat else ''}"


def is_rewrite_request(messages: list[dict[str, Any]]) -> bool:
    """Whether a conversation asks for a standalone rewrite of a follow-up question.

    Either the system message asks for one (mentions a standalone question, or rewriting a question /
    query), or the last user message has a ``Follow-up question:`` line and no passages (a line of a
    document inside a passage never turns an answer request into a rewrite).
    """
    system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    if REWRITE_ASK_RE.search(system):
        return True
    last = last_user(messages)
    return any(FOLLOW_UP_RE.match(line) for line in last.splitlines()) and not parse_passages(last)[0]


def last_user(messages: list[dict[str, Any]]) -> str:
    """The content of the last user message (of the last message when no user spoke)."""
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    return users[-1] if users else str(messages[-1].get("content") or "") if messages else ""


def follow_up_and_previous(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """The follow-up question of a rewrite request and the user question before it ("" when none).

    The follow-up is the ``Follow-up question:`` line, else the question line of the last user message.
    The previous question is the last ``user:`` line before it in a transcript, else the user message
    before the last one (history sent as chat messages).
    """
    lines = last_user(messages).splitlines()
    labelled = [i for i, line in enumerate(lines) if FOLLOW_UP_RE.match(line)]
    index = labelled[-1] if labelled else question_line(lines)
    if index < 0:
        return "", ""
    follow_up = _strip_label(lines[index])
    previous = next((m.group(1).strip() for line in reversed(lines[:index]) if (m := TRANSCRIPT_USER_RE.match(line))),
                    "")
    if not previous:
        users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
        previous = " ".join(users[-2].split()) if len(users) > 1 else ""
    return follow_up, previous


def rewrite(messages: list[dict[str, Any]]) -> str:
    """A standalone question: the follow-up prefixed by the previous user question's content words."""
    follow_up, previous = follow_up_and_previous(messages)
    follow_up = follow_up or " ".join(last_user(messages).split())
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
    """The hash engine's reply to a conversation: a rewrite, a cited answer, or a quote / echo."""
    if is_rewrite_request(messages):
        return rewrite(messages)
    last = last_user(messages)
    passages, question = parse_passages(last)
    if passages:
        return answer(passages, question or "")
    return quote_answer(last)


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
