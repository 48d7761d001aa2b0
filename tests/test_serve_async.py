"""The async API (`rag.aio.AsyncRAG`) and what it buys `rag serve`: a slow model blocks nobody."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from readpath import indexed_settings, requests_to
from serve_support import ObservedServer, served, wait_until

from ingest.errors import ModelNotFound, OllamaUnreachable, StoreError
from rag import AsyncRAG
from rag.answer import NO_ANSWER_ZH
from rag.server import Generation, HashEngine, OllamaServer
from rag.server.http import BUSY
from rag.server.protocol import error_reply

WARRANTY = "How long is the dishwasher warranty?"


def kb_for(server, tmp_path: Path, **options) -> AsyncRAG:
    settings = indexed_settings(server, tmp_path)
    return AsyncRAG(db=settings.db, host=server.url, **options)


def test_search_and_ask(ollama_server, tmp_path: Path) -> None:
    async def main() -> None:
        async with kb_for(ollama_server, tmp_path) as kb:
            hits = await kb.search("dishwasher warranty", 3)
            assert len(hits) == 3 and (hits[0].source, hits[0].page) == ("manual.pdf", 2)
            answer = await kb.ask(WARRANTY, k=2)
            assert "two years" in answer.answer and answer.citations[0].source == "manual.pdf"
            assert len(answer.contexts) <= 2 and set(answer.timings) == {"retrieval", "first_token", "total"}
            assert await kb.sources() == sorted(await kb.sources()) and "zh/微调.md" in await kb.sources()

    asyncio.run(main())


def test_async_for_streams_pieces_then_the_answer_in_chinese(ollama_server, tmp_path: Path) -> None:
    async def main() -> None:
        async with kb_for(ollama_server, tmp_path) as kb:
            stream = kb.ask("微调需要什么计算资源？", stream=True)
            with pytest.raises(RuntimeError, match="still streaming"):
                stream.answer  # noqa: B018
            pieces = [piece async for piece in stream]
            assert len(pieces) > 2 and "".join(pieces).strip() == stream.answer.answer
            assert stream.answer.citations[0].source == "zh/微调.md"
            assert stream.contexts and stream.contexts[0].source == "zh/微调.md"
            nothing = await kb.ask("法国的首都是哪里？")
            assert nothing.answer == NO_ANSWER_ZH and nothing.citations == []

    asyncio.run(main())


def test_stopping_a_stream_early_closes_it(ollama_server, tmp_path: Path) -> None:
    async def main() -> None:
        async with kb_for(ollama_server, tmp_path) as kb:
            stream = kb.ask(WARRANTY, stream=True)
            first = await stream.__anext__()
            await stream.aclose()
            assert first and not stream.done
            assert "two years" in (await kb.ask(WARRANTY)).answer  # the object is still usable

    asyncio.run(main())


def test_async_chat_rewrites_follow_ups_and_keeps_history(ollama_server, tmp_path: Path) -> None:
    async def main() -> None:
        async with kb_for(ollama_server, tmp_path) as kb:
            chat = kb.chat()
            await chat.ask("什么是检索增强生成？")
            stream = chat.ask("它需要重新训练模型吗？", stream=True)
            text = "".join([piece async for piece in stream])
            assert "不需要重新训练" in text
            assert [m["role"] for m in chat.history] == ["user", "assistant", "user", "assistant"]
            assert "[" not in chat.history[1]["content"]  # citation marks dropped from the history
            assert chat.sources()[0].source == "zh/rag.md"
            chat.reset()
            assert chat.history == [] and chat.sources() == []

    asyncio.run(main())
    rewrite = requests_to(ollama_server, "/api/chat")[-2]
    assert "standalone" in rewrite["messages"][0]["content"]


def test_errors_are_the_same_types_as_the_sync_api(ollama_server, tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncRAG(db=tmp_path / "none", host=ollama_server.url) as kb:
            with pytest.raises(StoreError, match="rag index"):
                await kb.search("anything")
        async with kb_for(ollama_server, tmp_path, chat_model="no-such-model") as kb:
            with pytest.raises(ModelNotFound, match="no-such-model"):
                await kb.ask(WARRANTY)

    asyncio.run(main())


def test_reads_go_on_during_an_index_run_and_see_it_after(ollama_server, tmp_path: Path) -> None:
    async def main() -> None:
        async with kb_for(ollama_server, tmp_path) as kb:
            (tmp_path / "docs" / "bread.md").write_text("# Bread\n\nBake sourdough at 230 degrees.\n",
                                                        encoding="utf-8")
            run = asyncio.create_task(kb.index(tmp_path / "docs", chunk_tokens=60, chunk_overlap=0))
            during = await kb.search("dishwasher warranty")
            report = await run
            after = await kb.search("sourdough bread baking")
            assert during[0].source == "manual.pdf"
            assert report.added == ["bread.md"] and after[0].source == "bread.md"

    asyncio.run(main())


def test_ten_concurrent_asks_all_wait_on_the_model_at_once(tmp_path: Path) -> None:
    """A slow model blocks nobody: all ten questions reach the model before any answer comes back."""
    with ObservedServer() as ollama, served(ollama, tmp_path) as srv:
        ollama.gated_paths = {"/api/chat"}
        ollama.gate.clear()  # the model "thinks" until every question has arrived
        replies: list[httpx.Response] = []
        lock = threading.Lock()

        def ask(i: int) -> None:
            reply = httpx.post(srv.url + "api/ask", json={"question": WARRANTY, "k": 1 + i % 3}, timeout=120)
            with lock:
                replies.append(reply)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(10)]
        for thread in threads:
            thread.start()
        wait_until(lambda: ollama.in_flight.get("/api/chat", 0) == 10, "ten chats in flight at once")
        # Meanwhile the server still answers everything else.
        assert httpx.get(srv.url + "api/status", timeout=30).json()["files"] == 6
        assert httpx.get(srv.url + "api/search", params={"q": "warranty"}, timeout=30).status_code == 200
        ollama.gate.set()
        for thread in threads:
            thread.join(120)
    assert len(replies) == 10 and all(r.status_code == 200 for r in replies)
    assert all("two years" in r.json()["answer"] for r in replies)
    assert ollama.max_in_flight["/api/chat"] == 10


class BusyOnce(OllamaServer):
    """Answers the first /api/chat with Ollama's 503 "server busy"."""

    busy_sent = False

    def dispatch(self, method: str, path: str, raw: bytes, number: int) -> Any:
        if path == "/api/chat" and not self.busy_sent:
            self.busy_sent = True
            return error_reply(503, BUSY, False)
        return super().dispatch(method, path, raw, number)


def test_a_busy_server_is_retried_and_a_dead_one_is_a_clear_error(tmp_path: Path) -> None:
    async def main(kb: AsyncRAG) -> str:
        async with kb:
            return "".join([piece async for piece in kb.ask(WARRANTY, stream=True)])

    with BusyOnce() as busy:
        text = asyncio.run(main(kb_for(busy, tmp_path)))
        chats = requests_to(busy, "/api/chat")
    assert "two years" in text and len(chats) == 2  # the 503, then the retry
    with pytest.raises(OllamaUnreachable, match="not reachable"):
        asyncio.run(main(AsyncRAG(db=tmp_path / "db", host=busy.url)))  # stopped now


class SlowHashEngine(HashEngine):
    """The hash engine, a piece every 0.1 s (a model that takes its time), counting the pieces it made."""

    made = 0

    def chat(self, model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> Generation:
        gen = super().chat(model, messages, options)
        pieces = list(gen.pieces) * 20  # a long answer

        def slowly() -> Iterator[str]:
            for piece in pieces:
                time.sleep(0.1)
                self.made += 1
                yield piece

        gen.pieces = slowly()
        return gen


def test_a_reader_who_leaves_stops_the_model(tmp_path: Path) -> None:
    engine = SlowHashEngine()
    with OllamaServer(engine) as slow, served(slow, tmp_path) as srv:
        with httpx.stream("POST", srv.url + "api/ask", json={"question": WARRANTY},
                          headers={"Accept": "text/event-stream"}, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("event: piece"):
                    break  # the reader closes the tab after the first piece
        wait_until(lambda: made_after(engine) >= 0, "the model stood still")
    assert 1 <= engine.made < 20  # of 20 x the answer's pieces: a few, made before the reader left


def made_after(engine: SlowHashEngine, seconds: float = 0.5) -> int:
    """The engine's count once it has stood still for ``seconds``."""
    before = engine.made
    time.sleep(seconds)
    return before if engine.made == before else -1


def test_answers_come_from_the_chat_host_when_the_roles_are_split(ollama_server, tmp_path: Path) -> None:
    async def main() -> str:
        async with kb_for(ollama_server, tmp_path, chat_hosts=(chat_server.url,)) as kb:
            return (await kb.ask(WARRANTY)).answer

    with OllamaServer() as chat_server:
        assert "two years" in asyncio.run(main())
        assert len(requests_to(chat_server, "/api/chat")) == 1 and requests_to(chat_server, "/api/embed") == []
    assert requests_to(ollama_server, "/api/chat") == []
