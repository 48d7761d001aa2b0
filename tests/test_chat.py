"""Multi-turn chat: follow-ups rewritten from history, fallback, history budget, reset."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from readpath import indexed_settings, requests_to

from ingest.errors import OllamaResponseError
from rag.answer import estimate_tokens
from rag.chat import (
    REWRITE_SYSTEM,
    Chat,
    choose_query,
    clean_rewrite,
    fallback_query,
    rewrite_prompt,
    usable_rewrite,
)
from rag.client import OllamaClient
from rag.retrieve import Retriever
from rag.server import HashEngine


@pytest.fixture
def retriever(ollama_server, tmp_path) -> Iterator[Retriever]:
    with Retriever.open(indexed_settings(ollama_server, tmp_path)) as opened:
        yield opened


@pytest.fixture
def chat(retriever: Retriever) -> Iterator[Chat]:
    with Chat(retriever) as session:
        yield session


def rewrite_requests(server: Any) -> list[dict[str, Any]]:
    return [b for b in requests_to(server, "/api/chat") if "standalone" in b["messages"][0]["content"]]


def test_rewrite_prompt_format() -> None:
    history = [{"role": "user", "content": "What is RAG?"}, {"role": "assistant", "content": "Retrieval\n first."}]
    assert rewrite_prompt(history, "and the second one?") == (
        "Conversation:\nuser: What is RAG?\nassistant: Retrieval first.\n\nFollow-up question: and the second one?"
    )
    assert fallback_query(history, "and the second one?") == "What is RAG? and the second one?"
    assert clean_rewrite('Standalone query: "How long is the warranty?"\nextra') == "How long is the warranty?"


def test_first_question_is_not_rewritten(ollama_server, chat: Chat) -> None:
    chat.ask("How long is the dishwasher warranty?")
    assert rewrite_requests(ollama_server) == []
    assert chat.last_query == "How long is the dishwasher warranty?"
    assert [m["role"] for m in chat.history] == ["user", "assistant"]


def test_follow_up_is_rewritten_from_history_and_drives_retrieval(ollama_server, chat: Chat) -> None:
    first = chat.ask("How long is the dishwasher warranty?")
    answer = chat.ask("and how often should its filter be cleaned?")
    [rewrite] = rewrite_requests(ollama_server)
    prompt = rewrite["messages"][-1]["content"]
    assert prompt.startswith("Conversation:\nuser: How long is the dishwasher warranty?\nassistant: ")
    assert prompt.endswith("Follow-up question: and how often should its filter be cleaned?")
    # The hash engine's rewrite: the previous question's content words + the follow-up.
    assert chat.last_query == "long dishwasher warranty and how often should its filter be cleaned?"
    # Retrieval searches the follow-up's own words and the rewrite.
    embeds = requests_to(ollama_server, "/api/embed")
    assert [e["input"] for e in embeds[-2:]] == [["search_query: and how often should its filter be cleaned?"],
                                                 ["search_query: " + chat.last_query]]
    # The answer call sees the history and the original follow-up.
    answer_call = requests_to(ollama_server, "/api/chat")[-1]
    assert [m["role"] for m in answer_call["messages"]] == ["system", "user", "assistant", "user"]
    assert answer_call["messages"][1]["content"] == "How long is the dishwasher warranty?"
    assert answer_call["messages"][-1]["content"].endswith("Question: and how often should its filter be cleaned?")
    assert "[1]" not in answer_call["messages"][2]["content"]  # old citation marks are dropped
    assert first.citations[0].page == 2
    assert any(c.page == 3 for c in answer.citations)


def test_rewrite_call_sets_num_ctx_like_the_answer_calls(ollama_server, chat: Chat) -> None:
    chat.ask("检索增强生成是什么？")
    chat.ask("它和微调有什么区别？")
    bodies = requests_to(ollama_server, "/api/chat")
    assert len(bodies) == 3 and len(rewrite_requests(ollama_server)) == 1
    for body in bodies:
        assert body["think"] is False
        assert body["options"]["num_ctx"] >= estimate_tokens(body["messages"]) + body["options"]["num_predict"]
    assert len({b["options"]["num_ctx"] for b in bodies}) == 1
    assert "检索增强生成" in (chat.last_query or "") and "微调" in (chat.last_query or "")


class RewriteFails(OllamaClient):
    """A client whose non-streamed chat (the rewrite) fails like a server error."""

    def chat(self, model, messages, *, stream=False, **kwargs):  # type: ignore[override]
        if not stream:
            raise OllamaResponseError("boom", host=self.host, status=500)
        return super().chat(model, messages, stream=True, **kwargs)


def test_failed_rewrite_falls_back_to_previous_plus_follow_up(ollama_server, retriever: Retriever) -> None:
    with RewriteFails(ollama_server.url, retries=0) as client:
        chat = Chat(retriever, client=client)
        chat.ask("How long is the dishwasher warranty?")
        answer = chat.ask("what about the filter?")
    assert chat.last_query == "How long is the dishwasher warranty? what about the filter?"
    assert answer.answer and answer.contexts


def test_history_is_trimmed_to_its_budget(ollama_server, retriever: Retriever) -> None:
    tight = dataclasses.replace(retriever, settings=retriever.settings.with_(history_tokens=100))
    with Chat(tight) as chat:
        for q in ["How long is the dishwasher warranty?", "When should I prune roses?",
                  "How often should I turn the compost?", "How should tomatoes be watered?"]:
            chat.ask(q)
    answer_call = [b for b in requests_to(ollama_server, "/api/chat") if b not in rewrite_requests(ollama_server)][-1]
    history = answer_call["messages"][1:-1]
    assert history and history[0]["role"] == "user"
    assert history[0]["content"] != "How long is the dishwasher warranty?"  # the oldest went first
    assert 2 <= len(history) <= 4


def test_reset_clears_history(ollama_server, chat: Chat) -> None:
    chat.ask("How long is the dishwasher warranty?")
    assert chat.sources()
    chat.reset()
    assert chat.history == [] and chat.sources() == [] and chat.last is None
    chat.ask("When should I prune roses?")
    assert rewrite_requests(ollama_server) == []


def test_streamed_answer_updates_history_at_the_end(chat: Chat) -> None:
    stream = chat.ask("When should I prune roses?", stream=True)
    assert chat.history == []
    text = "".join(stream)
    assert chat.history[-1]["role"] == "assistant" and "late winter" in text
    assert chat.last is stream.answer


# -- a bad rewrite -----------------------------------------------------------------------------

ZH_HISTORY = [{"role": "user", "content": "检索增强生成是什么？"},
              {"role": "assistant", "content": "检索增强生成先从文档库中检索相关段落，再让大语言模型回答。"}]


def test_usable_rewrites_share_a_term_with_the_conversation_and_do_not_echo_the_instructions() -> None:
    assert usable_rewrite("检索增强生成和微调有什么区别", ZH_HISTORY, "它和微调有什么区别？")
    assert usable_rewrite("dishwasher warranty length", ZH_HISTORY, "How long is the dishwasher warranty?")
    assert not usable_rewrite("Bananas are rich in potassium.", ZH_HISTORY, "它和微调有什么区别？")
    assert not usable_rewrite(REWRITE_SYSTEM.split(":")[0], ZH_HISTORY, "它和微调有什么区别？")
    # an echo that happens to share a word with the follow-up is still an echo
    echo = "Rewrite the follow-up question as a standalone search query about the filter"
    assert not usable_rewrite(echo, [], "what about the filter question?")
    assert not usable_rewrite("user: 检索增强生成是什么？", ZH_HISTORY, "它和微调有什么区别？")
    assert choose_query("Bananas.", ZH_HISTORY, "它和微调有什么区别？") == "检索增强生成是什么？ 它和微调有什么区别？"
    assert choose_query("Query: 检索增强生成和微调的区别", ZH_HISTORY, "它和微调有什么区别？") == "检索增强生成和微调的区别"


def _chat_with_rewrite_reply(factory: Any, tmp_path: Any, reply: str) -> tuple[Any, Retriever]:
    server = factory(HashEngine(rewrite_reply=reply))
    return server, Retriever.open(indexed_settings(server, tmp_path))


@pytest.mark.parametrize("reply", ["Bananas are an excellent source of potassium.", "检索增强生成是什么"])
def test_a_topic_switch_survives_a_bad_rewrite(ollama_server_factory, tmp_path, reply: str) -> None:
    # An unrelated rewrite is dropped; one stuck on the old topic is kept, but only adds candidates.
    server, retriever = _chat_with_rewrite_reply(ollama_server_factory, tmp_path, reply)
    with retriever, Chat(retriever) as chat:
        chat.ask("检索增强生成是什么？")
        answer = chat.ask("How long is the dishwasher warranty?")
    assert [b["messages"][-1]["content"] for b in rewrite_requests(server)][0].startswith("Conversation:")
    assert answer.contexts[0].source == "manual.pdf" and answer.contexts[0].page == 2
    assert "two years" in answer.answer and [(c.source, c.page) for c in answer.citations] == [("manual.pdf", 2)]
    if reply.startswith("Bananas"):
        assert chat.last_query == "检索增强生成是什么？ How long is the dishwasher warranty?"
    else:
        assert chat.last_query == reply


@pytest.mark.parametrize("reply", ["Bananas are an excellent source of potassium.", "检索增强生成是什么"])
def test_a_true_follow_up_survives_a_bad_rewrite(ollama_server_factory, tmp_path, reply: str) -> None:
    server, retriever = _chat_with_rewrite_reply(ollama_server_factory, tmp_path, reply)
    with retriever, Chat(retriever) as chat:
        chat.ask("检索增强生成是什么？")
        answer = chat.ask("它和微调有什么区别？")
    assert "zh/微调.md" in [h.source for h in answer.contexts]
    assert any(c.source == "zh/微调.md" for c in answer.citations), answer


def test_the_rewrite_fault_leaves_answers_alone(ollama_server_factory, tmp_path) -> None:
    server, retriever = _chat_with_rewrite_reply(ollama_server_factory, tmp_path, "Bananas.")
    with retriever, Chat(retriever) as chat:
        answer = chat.ask("How long is the dishwasher warranty?")
    assert "two years" in answer.answer and "Bananas" not in answer.answer
