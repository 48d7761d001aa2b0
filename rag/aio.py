"""The async Python API: `AsyncRAG`, the awaitable counterpart of `rag.RAG`, for async apps and `rag serve`.

    from rag.aio import AsyncRAG

    async with AsyncRAG(db=".rag", collection="docs") as kb:
        hits = await kb.search("what is num_ctx?")
        answer = await kb.ask("what is num_ctx?")            # Answer, with citations
        stream = kb.ask("what is num_ctx?", stream=True)
        async for piece in stream:                            # text pieces as they arrive
            print(piece, end="")
        print(stream.answer.citations)
        chat = kb.chat()
        await chat.ask("what is RAG?")
        await chat.ask("how is it different from fine-tuning?")  # a follow-up, rewritten for retrieval

The chat model is called through the `ollama` SDK's `AsyncClient`, so a slow model holds no thread.
Chroma has no async client: retrieval (the query embedding, Chroma and the BM25 index) runs in a
worker thread. An index run also runs in a thread, on its own handles; reads go on during it, and
the next read after it opens the index afresh.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import os
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import ollama

from ingest.errors import OllamaError, OllamaUnreachable, RagError, ServerBusy
from ingest.indexer import ProgressFn, index_folder
from ingest.ollama_calls import (
    DEFAULT_RETRIES,
    RETRY_BASE_DELAY,
    aclose_client,
    make_async_client,
    ollama_errors,
)
from ingest.records import IndexReport
from rag.answer import AnswerPlan, answer_timings, finish_answer, no_answer_text, plan_answer, search_fused
from rag.api import RAG, IndexStatus
from rag.chat import choose_query, fallback_query, record_turn, rewrite_request
from rag.config import Settings
from rag.retrieve import Mode, Retriever
from rag.types import Answer, Citation, Hit

T = TypeVar("T")

__all__ = ["AsyncAnswerStream", "AsyncChat", "AsyncRAG"]

# Worker threads for retrieval and index runs: enough that many concurrent questions each get one.
WORKER_THREADS = 32

# chromadb keeps one shared "system" per store path and process, stopped when its last client closes;
# a client opened on another thread meanwhile fails (KeyError on the path). So clients are opened and
# closed under this lock, and an opened index is kept while the object lives, which keeps the system up
# while status calls and index runs open and close their own clients.
_CHROMA_LOCK = threading.RLock()


class _Generation:
    """One opened `RAG` (index handles), closed once it is replaced and no call uses it any more."""

    def __init__(self, kb: RAG) -> None:
        self.kb = kb
        self.users = 0
        self.retired = False


class AsyncRAG:
    """An index of one folder, asked asynchronously. Same arguments as `rag.RAG`."""

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        collection: str | None = None,
        host: str | None = None,
        *,
        embed_model: str | None = None,
        chat_model: str | None = None,
        executor: concurrent.futures.Executor | None = None,
        **options: Any,
    ) -> None:
        self._args: dict[str, Any] = dict(
            db=db, collection=collection, host=host, embed_model=embed_model, chat_model=chat_model, **options
        )
        self._lock = threading.Lock()  # guards the current generation and its users
        self._current = _Generation(RAG(**self._args))
        self._own_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(WORKER_THREADS, "rag-aio")
        self._clients: dict[asyncio.AbstractEventLoop, ollama.AsyncClient] = {}

    # -- the synchronous object underneath ------------------------------------------------------

    @property
    def sync(self) -> RAG:
        """The `RAG` this object reads with now (for the synchronous calls not wrapped here)."""
        return self._current.kb

    @property
    def host(self) -> str:
        return self.sync.host

    @property
    def chat_host(self) -> str:
        """Where answers come from: the first of RAG_CHAT_HOSTS, else the host. (Unlike `RAG`, no
        fail-over to the next chat host yet.)"""
        settings = self.sync.index_settings
        return (settings.chat_hosts or (settings.host,))[0]

    @property
    def db(self) -> Path:
        return self.sync.db

    @property
    def collection(self) -> str:
        return self.sync.collection

    def read_settings(self) -> Settings:
        """Retrieval and answer settings, as `RAG.read_settings`."""
        return self.sync.read_settings()

    async def _in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def _with_kb(self, fn: Callable[[RAG], T]) -> T:
        """Run ``fn(kb)`` in a worker thread on the current generation, which stays open meanwhile."""
        with self._lock:
            gen = self._current
            gen.users += 1
        try:
            return await self._in_thread(self._locked_call, gen, fn)
        finally:
            with self._lock:
                gen.users -= 1
                close = gen.retired and gen.users == 0
            if close:
                await self._in_thread(self._release, gen)

    def _locked_call(self, gen: _Generation, fn: Callable[[RAG], T]) -> T:
        with _CHROMA_LOCK:
            gen.kb.retriever()
        return fn(gen.kb)

    def _replace_generation(self) -> None:
        """Reads after an index run open the index afresh (a rebuild replaces the collection); the new
        handles are opened before the old ones close. Runs in a worker thread."""
        fresh = RAG(**self._args)
        with _CHROMA_LOCK:
            try:
                fresh.retriever()
            except RagError:  # no index any more: the next read says why
                pass
            with self._lock:
                old = self._current
                old.retired = True
                self._current = _Generation(fresh)
                close = old.users == 0
            if close:
                old.kb.close()

    def _hold_open(self) -> None:
        """Open the index for reading (if there is one), so a client stays open (see _CHROMA_LOCK)."""
        with _CHROMA_LOCK:
            try:
                self.sync.retriever()
            except RagError:  # no index yet: status() or the next read says so
                pass

    def _release(self, gen: _Generation) -> None:
        with _CHROMA_LOCK:
            gen.kb.close()

    def _client(self) -> ollama.AsyncClient:
        # An httpx.AsyncClient belongs to the event loop it was first used on.
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            settings = self.sync.index_settings
            client = make_async_client(self.chat_host, settings.timeouts)  # with OLLAMA_HOST's credentials
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the index handles, the HTTP clients and the worker threads."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await aclose_client(client)
        self._clients.clear()  # clients of loops that are gone cannot be closed from here
        self._release(self._current)
        if self._own_executor:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncRAG:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the index ------------------------------------------------------------------------------

    async def status(self) -> IndexStatus:
        """Files, chunks, fingerprint (as `RAG.status`)."""
        def status() -> IndexStatus:
            with _CHROMA_LOCK:
                self._hold_open()
                return self.sync.status()

        return await self._in_thread(status)

    async def index(
        self, folder: str | os.PathLike[str], *, rebuild: bool = False, progress: ProgressFn | None = None,
        **overrides: Any,
    ) -> IndexReport:
        """Sync ``folder`` into the index in a worker thread; ``progress`` is called from that thread.
        ``overrides`` replace `IndexSettings` fields for this run (e.g. ``chunk_tokens``)."""
        settings = dataclasses.replace(self.sync.index_settings, **overrides)
        await self._in_thread(self._hold_open)  # the indexer opens and closes clients outside _CHROMA_LOCK
        try:
            return await self._in_thread(index_folder, Path(folder), settings, rebuild=rebuild, progress=progress)
        finally:
            await self._in_thread(self._replace_generation)

    # -- the read path --------------------------------------------------------------------------

    async def search(
        self,
        query: str,
        k: int | None = None,
        *,
        path: str | None = None,
        kinds: Collection[str] | None = None,
        mode: Mode | None = None,
    ) -> list[Hit]:
        """The best passages for ``query`` (as `RAG.search`)."""
        return await self._with_kb(lambda kb: kb.search(query, k, path=path, kinds=kinds, mode=mode))

    async def sources(self) -> list[str]:
        """The indexed files, as citations name them (paths relative to the indexed folder)."""
        return await self._with_kb(lambda kb: kb.retriever().state.indexed_sources())

    async def _retrieve(self, question: str, search_query: str, k: int | None, path: str | None,
                        kinds: Collection[str] | None) -> tuple[list[Hit], Settings]:
        """The passages for a question (and its rewrite, fused as `rag.answer.search_fused` does)."""
        def run(kb: RAG) -> tuple[list[Hit], Settings]:
            retriever: Retriever = kb.retriever()
            queries = [question, search_query]
            return search_fused(retriever, queries, k=k, where_glob=path, kinds=kinds), retriever.settings

        return await self._with_kb(run)

    @overload
    def ask(
        self, question: str, *, stream: Literal[False] = False, k: int | None = None, path: str | None = None,
        kinds: Collection[str] | None = None, history: Sequence[Mapping[str, str]] = (),
    ) -> Coroutine[Any, Any, Answer]: ...

    @overload
    def ask(
        self, question: str, *, stream: Literal[True], k: int | None = None, path: str | None = None,
        kinds: Collection[str] | None = None, history: Sequence[Mapping[str, str]] = (),
    ) -> AsyncAnswerStream: ...

    def ask(
        self,
        question: str,
        *,
        stream: bool = False,
        k: int | None = None,
        path: str | None = None,
        kinds: Collection[str] | None = None,
        history: Sequence[Mapping[str, str]] = (),
    ) -> Coroutine[Any, Any, Answer] | AsyncAnswerStream:
        """Answer from the documents: ``await kb.ask(q)`` gives the `Answer`; with ``stream=True``,
        ``async for piece in kb.ask(q, stream=True)``, then ``.answer``.

        ``history`` (earlier ``{"role", "content"}`` turns) makes it a follow-up: the question is
        rewritten into a standalone search query first, and the answer sees the history.
        """
        result = AsyncAnswerStream(self, question, k=k, path=path, kinds=kinds, history=history)
        return result if stream else result.final()

    def chat(self, *, k: int | None = None, path: str | None = None,
             kinds: Collection[str] | None = None) -> AsyncChat:
        """A multi-turn conversation: ``await chat.ask(q)``, ``chat.history``, ``chat.reset()``."""
        return AsyncChat(self, k=k, path=path, kinds=kinds)

    async def rewrite(self, history: Sequence[Mapping[str, str]], follow_up: str) -> str:
        """A standalone search query for a follow-up (as `rag.chat.rewrite_question`, without blocking)."""
        if not history:
            return follow_up
        settings = self.read_settings()
        messages, options = rewrite_request(history, follow_up, settings)
        try:
            reply = await _acall(self._client().chat, settings.chat_model, messages, host=self.chat_host, stream=False,
                                 think=False, options=options)
        except OllamaError:
            return fallback_query(history, follow_up)
        return choose_query((reply.message.content or "") if reply.message else "", history, follow_up)

    def chat_stream(self, settings: Settings, plan: AnswerPlan) -> AsyncGenerator[ollama.ChatResponse, None]:
        """The streamed `/api/chat` call of an answer, through the async SDK client."""
        client = self._client()
        return _astream(
            lambda: client.chat(settings.chat_model, plan.messages, stream=True, think=False,
                                options=plan.options),
            host=self.chat_host, model=settings.chat_model,
        )


class AsyncAnswerStream:
    """An answer's text pieces as they arrive (``async for``); `.answer` once the stream has ended.

    Retrieval happens in ``await stream.start()`` or on the first ``__anext__``; `.contexts` holds the
    numbered passages from then on, before the first piece (the page shows sources while the answer streams).
    """

    def __init__(
        self,
        kb: AsyncRAG,
        question: str,
        *,
        k: int | None = None,
        path: str | None = None,
        kinds: Collection[str] | None = None,
        history: Sequence[Mapping[str, str]] = (),
    ) -> None:
        self.question = question
        self.history = [{"role": m["role"], "content": m["content"]} for m in history]
        self.search_query: str | None = None
        self.contexts: list[Hit] | None = None
        self._kb, self._k, self._path, self._kinds = kb, k, path, kinds
        self._answer: Answer | None = None
        self._started = 0.0
        self._retrieved: tuple[AnswerPlan | None, Settings, float] | None = None  # plan, settings, seconds
        self._run = self._generate()

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        return await self._run.__anext__()

    @property
    def done(self) -> bool:
        return self._answer is not None

    @property
    def answer(self) -> Answer:
        """The final `Answer` (iterate to the end first, or ``await stream.final()``)."""
        if self._answer is None:
            raise RuntimeError("the answer is still streaming — iterate to the end, or use `await stream.final()`")
        return self._answer

    async def final(self) -> Answer:
        """Consume the rest of the stream and return the `Answer`."""
        async for _ in self:
            pass
        return self.answer

    async def aclose(self) -> None:
        """Stop early (closes the HTTP stream)."""
        await self._run.aclose()

    async def start(self) -> None:
        """Rewrite a follow-up, retrieve and pack the passages (else done by the first ``__anext__``).

        The errors of this step (no index, the embedding model missing) are raised here; afterwards
        `.contexts` holds the numbered passages the model will see."""
        if self._retrieved is not None:
            return
        self._started = time.perf_counter()
        self.search_query = await self._kb.rewrite(self.history, self.question)
        hits, settings = await self._kb._retrieve(self.question, self.search_query, self._k, self._path,
                                                  self._kinds)
        plan = plan_answer(self.question, hits, settings, self.history) if hits else None
        self.contexts = list(plan.passages) if plan else []
        self._retrieved = (plan, settings, time.perf_counter() - self._started)

    async def _generate(self) -> AsyncGenerator[str, None]:
        await self.start()
        assert self._retrieved is not None
        plan, settings, retrieval = self._retrieved
        started = self._started
        if plan is None:
            # Below the relevance floor: the model is not asked, it would only invent an answer.
            text = no_answer_text(self.question)
            shown = time.perf_counter() - started
            yield text
            self._answer = Answer(text, [], [], settings.chat_model, answer_timings(started, retrieval, shown))
            return
        parts: list[str] = []
        first: float | None = None
        final: Any = None
        stream = self._kb.chat_stream(settings, plan)
        try:
            async for chunk in stream:
                piece = (chunk.message.content or "") if chunk.message else ""
                if piece:
                    if first is None:
                        first = time.perf_counter() - started
                    parts.append(piece)
                    yield piece
                if chunk.done:
                    final = chunk
        finally:
            await stream.aclose()
        timings = answer_timings(started, retrieval, first)
        self._answer = finish_answer(plan, settings, "".join(parts).strip(), final, timings)


class AsyncChat:
    """A conversation over one index, asked asynchronously (as `rag.chat.Chat`)."""

    def __init__(self, kb: AsyncRAG, *, k: int | None = None, path: str | None = None,
                 kinds: Collection[str] | None = None) -> None:
        self.kb = kb
        self.k, self.path, self.kinds = k, path, kinds
        self.history: list[dict[str, str]] = []
        self.last: Answer | None = None
        self.last_query: str | None = None

    @overload
    def ask(self, question: str, *, stream: Literal[False] = False) -> Coroutine[Any, Any, Answer]: ...

    @overload
    def ask(self, question: str, *, stream: Literal[True]) -> AsyncAnswerStream: ...

    def ask(self, question: str, *, stream: bool = False) -> Coroutine[Any, Any, Answer] | AsyncAnswerStream:
        """A (follow-up) question; with ``stream=True`` an `AsyncAnswerStream` (history updates at its end)."""
        result = _ChatTurn(self, question)
        return result if stream else result.final()

    def reset(self) -> None:
        """Forget the conversation."""
        self.history.clear()
        self.last = None
        self.last_query = None

    def sources(self) -> list[Citation]:
        """The citations of the last answer."""
        return list(self.last.citations) if self.last else []

    def _record(self, question: str, answer: Answer, query: str | None) -> None:
        settings = self.kb.read_settings()
        self.history = record_turn(self.history, question, answer, settings.history_tokens)
        self.last = answer
        self.last_query = query


class _ChatTurn(AsyncAnswerStream):
    """One turn of an `AsyncChat`: records itself in the chat's history when it ends."""

    def __init__(self, chat: AsyncChat, question: str) -> None:
        super().__init__(chat.kb, question, k=chat.k, path=chat.path, kinds=chat.kinds, history=chat.history)
        self._chat = chat

    async def __anext__(self) -> str:
        try:
            return await super().__anext__()
        except StopAsyncIteration:
            if self._answer is not None and self._chat.last is not self._answer:
                self._chat._record(self.question, self._answer, self.search_query)
            raise


# -- the async side of the Ollama seam (ingest.ollama_calls.ollama_errors maps the errors) ----------

# Retried, a few times with backoff: nothing reached the model yet (a refused connection, a full queue).
_RETRIED = (OllamaUnreachable, ServerBusy)


async def _acall(fn: Callable[..., Awaitable[T]], *args: Any, host: str, **kwargs: Any) -> T:
    """One async SDK call, its errors mapped; a refused connection or a 503 is retried with backoff."""
    model = next((a for a in args if isinstance(a, str)), "")
    attempt = 0
    while True:
        try:
            with ollama_errors(host, model):
                return await fn(*args, **kwargs)
        except _RETRIED:
            if attempt >= DEFAULT_RETRIES:
                raise
        await asyncio.sleep(RETRY_BASE_DELAY * 2**attempt)
        attempt += 1


async def _astream(
    open_stream: Callable[[], Awaitable[AsyncIterator[T]]], *, host: str, model: str = ""
) -> AsyncGenerator[T, None]:
    """An async streamed SDK call, its errors mapped; retried only before the first item arrives."""
    attempt = 0
    while True:
        started = False
        inner: AsyncIterator[T] | None = None
        try:
            with ollama_errors(host, model):
                inner = await open_stream()
                async for item in inner:
                    started = True
                    yield item
            return
        except _RETRIED:
            if started or attempt >= DEFAULT_RETRIES:
                raise
        finally:
            # Stopping early must close the SDK's HTTP stream now, not when the generator is collected.
            if inner is not None and hasattr(inner, "aclose"):
                await inner.aclose()
        await asyncio.sleep(RETRY_BASE_DELAY * 2**attempt)
        attempt += 1
