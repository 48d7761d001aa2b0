"""The Starlette app of `rag serve`: the page, its JSON/SSE API, and the Ollama/OpenAI model routes.

The API contract (paths, bodies, events) is rag/serve/API.md; the OpenAPI schema is served at
`/openapi.json` (rag/serve/openapi.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ingest.errors import RagError, StoreError
from ingest.indexer import Progress
from rag.aio import AsyncAnswerStream
from rag.serve import files, models, openapi
from rag.serve.errors import error_body, error_status
from rag.serve.security import Guard
from rag.serve.state import ServeConfig, ServeState

STATIC = Path(__file__).parent / "static"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# A source file is shown inside the page; as its own document it runs in a sandbox, so an HTML
# file among the user's documents cannot script this origin (and through it, the API).
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
SANDBOX = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
MAX_K = 100
LOCK_GRACE = 1.0  # seconds past the writer lock's wait before a sync's stream starts without a report
ROLES = ("user", "assistant")

class BadRequest(Exception):
    """A request body or query that cannot be used; the message names the field and the fix."""


def error_response(err: RagError | BadRequest) -> JSONResponse:
    status = 400 if isinstance(err, BadRequest) else error_status(err)
    return JSONResponse(error_body(err), status_code=status)


def sse(event: str, data: Any) -> str:
    """One server-sent event; the data is one line of JSON (Chinese kept as is)."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def wants_events(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def state_of(request: Request) -> ServeState:
    state: ServeState = request.app.state.rag
    return state


# -- request parsing -----------------------------------------------------------------------------


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def text_field(body: Mapping[str, Any], name: str) -> str | None:
    """An optional string field; empty counts as absent."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string")
    return value if value.strip() else None


def required_text(body: Mapping[str, Any], name: str) -> str:
    value = text_field(body, name)
    if value is None:
        raise BadRequest(f"'{name}' is required: a non-empty string")
    return value


def k_field(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"'k' must be a whole number from 1 to {MAX_K}, not {value!r}") from None
    if isinstance(value, bool) or not 1 <= k <= MAX_K or (isinstance(value, float) and value != k):
        raise BadRequest(f"'k' must be a whole number from 1 to {MAX_K}, not {value!r}")
    return k


def kinds_field(value: Any) -> list[str] | None:
    """``"pdf"``, ``"pdf,md"`` or ``["pdf", "md"]``."""
    if value is None or value == "" or value == []:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise BadRequest("'type' must be a file type such as \"pdf\", or a list of them")
    return [x.strip() for x in items if x.strip()] or None


def history_field(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    ok = isinstance(value, list) and all(
        isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in value
    )
    if not ok:
        raise BadRequest('\'history\' must be a list of {"role": "user"|"assistant", "content": "..."}')
    return [{"role": m["role"], "content": m["content"]} for m in value]


# -- the page's API ------------------------------------------------------------------------------


async def ask(request: Request) -> Response:
    """POST /api/ask: JSON answer, or SSE `contexts`, `piece`..., `answer` (or `error`)."""
    try:
        body = await json_body(request)
        question = required_text(body, "question")
        stream = state_of(request).kb(text_field(body, "collection")).ask(
            question, stream=True, k=k_field(body.get("k")), path=text_field(body, "path"),
            kinds=kinds_field(body.get("type")), history=history_field(body.get("history")),
        )
        # Retrieval now, so a missing index or embedding model is an HTTP error, not an event.
        await stream.start()
        if not wants_events(request):
            return JSONResponse((await stream.final()).to_dict())
    except (RagError, BadRequest) as err:
        return error_response(err)
    return StreamingResponse(answer_events(stream), media_type="text/event-stream", headers=SSE_HEADERS)


def context_dicts(stream: AsyncAnswerStream) -> list[dict[str, Any]]:
    return [{"n": n, "source": h.source, "page": h.page, "heading": h.heading, "score": h.score, "text": h.text}
            for n, h in enumerate(stream.contexts or [], start=1)]


async def answer_events(stream: AsyncAnswerStream) -> AsyncIterator[str]:
    try:
        yield sse("contexts", {"contexts": context_dicts(stream), "search_query": stream.search_query})
        async for piece in stream:
            yield sse("piece", {"text": piece})
        yield sse("answer", stream.answer.to_dict())
    except RagError as err:
        yield sse("error", {**error_body(err), "status": error_status(err)})
    finally:
        await stream.aclose()


async def search(request: Request) -> Response:
    """GET /api/search?q=...&k=&path=&type=&mode=: the same object as `rag search --json`."""
    params = request.query_params
    try:
        query = required_text(params, "q")
        mode = params.get("mode") or None
        if mode not in (None, "hybrid", "dense", "bm25"):
            raise BadRequest(f"'mode' must be hybrid, dense or bm25, not {mode!r}")
        kinds = kinds_field(params.getlist("type") if len(params.getlist("type")) > 1 else params.get("type"))
        hits = await state_of(request).kb(params.get("collection")).search(
            query, k_field(params.get("k")), path=params.get("path") or None, kinds=kinds,
            mode=mode,  # type: ignore[arg-type]
        )
    except (RagError, BadRequest) as err:
        return error_response(err)
    return JSONResponse({"query": query, "hits": [h.to_dict() for h in hits]})


async def status(request: Request) -> Response:
    """GET /api/status: the index (as `rag status --json`), the chat model, collections, the running sync."""
    state = state_of(request)
    try:
        kb = state.kb(request.query_params.get("collection"))
    except RagError as err:
        return error_response(err)
    out: dict[str, Any] = {
        "collection": kb.collection,
        "collections": state.collections(),
        "model": kb.read_settings().chat_model,
        "syncing": state.syncing is not None,
    }
    try:
        out.update((await kb.status()).to_dict(), indexed=True)
    except RagError as err:
        # Not indexed yet (or unreadable): the page shows why instead of failing.
        out.update(db=str(state.db), root="", files=0, chunks=0, fingerprint=None, skipped=[], indexed=False,
                   error=str(err))

    return JSONResponse(out)


async def index(request: Request) -> Response:
    """POST /api/index {"rebuild": false}: sync the indexed folder; SSE `progress`..., `done` (or `error`)."""
    state = state_of(request)
    try:
        body = await json_body(request)
        rebuild = body.get("rebuild", False)
        if not isinstance(rebuild, bool):
            raise BadRequest("'rebuild' must be true or false")
        kb = state.kb(text_field(body, "collection"))
        try:
            indexed = await kb.status()
        except StoreError:
            indexed = None
        root = indexed.root if indexed else ""
        if not indexed or not root:
            raise StoreError(f"collection '{kb.collection}' has not been indexed yet — run `rag index PATH` "
                              "once; the page can then keep it in sync")
    except (RagError, BadRequest) as err:
        return error_response(err)
    if state.syncing is not None:
        return JSONResponse({"error": "a sync is already running — wait for it to finish", "type": "SyncRunning"},
                            status_code=409)
    state.syncing = kb.collection
    run = SyncRun(kb.collection)
    same = settings_of(indexed.fingerprint)
    state.sync_task = asyncio.create_task(run.follow(kb.index(root, rebuild=rebuild, progress=run.report, **same)))
    state.sync_task.add_done_callback(lambda _: setattr(state, "syncing", None))
    # The writer lock is taken (or refused, after lock_wait) before the first progress report: waiting
    # that long for it lets a lock held elsewhere be a 409 rather than an event in a 200 stream.
    try:
        first = await asyncio.wait_for(run.next_event(), kb.sync.index_settings.lock_wait + LOCK_GRACE)
    except asyncio.TimeoutError:
        first = None
    if first is not None and first[0] == "error":
        return JSONResponse(first[1], status_code=first[1]["status"])
    if not wants_events(request):
        event = first or await run.next_event()
        while event[0] == "progress":
            event = await run.next_event()
        return JSONResponse(event[1], status_code=200 if event[0] == "done" else event[1]["status"])
    return StreamingResponse(run.events(first), media_type="text/event-stream", headers=SSE_HEADERS)


# Fingerprint keys that are index settings: "sync now" keeps the index as it was built
# (`rag index --chunk-tokens 300` once, then the page syncs with 300 too).
SYNC_KEEPS = ("embed_model", "document_prefix", "query_prefix", "chunk_tokens", "chunk_overlap")


def settings_of(fingerprint: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: fingerprint[k] for k in SYNC_KEEPS if fingerprint and fingerprint.get(k) is not None}


class SyncRun:
    """The events of one index run: progress reports from its worker thread, then `done` or `error`."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._last_sent = 0.0
        self._lock = threading.Lock()

    def report(self, progress: Progress) -> None:
        """The indexer's progress callback (called from the worker thread); at most ~10 events a second."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_sent < 0.1 and progress.files_done < progress.files_total:
                return
            self._last_sent = now
        self._loop.call_soon_threadsafe(self._queue.put_nowait, ("progress", progress_dict(progress)))

    async def follow(self, run: Any) -> None:
        try:
            report = await run
        except RagError as err:
            await self._queue.put(("error", {**error_body(err), "status": error_status(err)}))
        else:
            await self._queue.put(("done", report.to_dict()))

    async def next_event(self) -> tuple[str, dict[str, Any]]:
        return await self._queue.get()

    async def events(self, first: tuple[str, dict[str, Any]] | None) -> AsyncIterator[str]:
        if first is None:
            yield ": syncing\n\n"  # a comment: the stream is open, the first report is still to come
        event = first or await self.next_event()
        while True:
            yield sse(*event)
            if event[0] != "progress":
                return
            event = await self.next_event()


def progress_dict(p: Progress) -> dict[str, Any]:
    """A progress event: files, chunks, the file being read, percent and ETA (seconds, None until known)."""
    share = p.files_done / p.files_total if p.files_total else 1.0
    eta = round(p.elapsed * (1 - share) / share, 1) if 0 < share < 1 else (0.0 if share >= 1 else None)
    return {"files_done": p.files_done, "files_total": p.files_total, "chunks": p.chunks, "current": p.current,
            "elapsed": round(p.elapsed, 2), "percent": round(100 * share, 1), "eta": eta}


async def source_file(request: Request) -> Response:
    """GET /api/files/{path}: a cited source from the indexed folder; anything else is 404."""
    not_found = JSONResponse({"error": "no such source file"}, status_code=404)
    if not files.raw_path_is_clean(request.scope.get("raw_path", b"")):
        return not_found
    source: str = request.path_params["path"]
    try:
        kb = state_of(request).kb(request.query_params.get("collection"))
        root = (await kb.status()).root
        sources = set(await kb.sources())
    except RagError:
        return not_found
    path = files.resolve_source(root, source, sources)
    if path is None:
        return not_found
    kind = files.media_type(path)
    headers = dict(FILE_HEADERS)
    if not kind.startswith("application/pdf"):  # Chromium will not show a PDF under a sandbox policy
        headers["Content-Security-Policy"] = SANDBOX
    return FileResponse(path, media_type=kind, headers=headers)


async def docs_page(request: Request) -> Response:
    return HTMLResponse(openapi.docs_html())


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi.SCHEMA)


# -- the app ---------------------------------------------------------------------------------------


def create_app(config: ServeConfig | None = None) -> Starlette:
    """The `rag serve` ASGI app (run it with uvicorn, or `rag.serve.running`)."""
    config = config or ServeConfig()
    state = ServeState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await state.aclose()

    routes = [
        Route("/api/ask", ask, methods=["POST"]),
        Route("/api/search", search, methods=["GET"]),
        Route("/api/status", status, methods=["GET"]),
        Route("/api/index", index, methods=["POST"]),
        Route("/api/files/{path:path}", source_file, methods=["GET"]),
        *models.ROUTES,
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Mount("/", app=StaticFiles(directory=STATIC, html=True, check_dir=False), name="static"),
    ]
    middleware = [Middleware(Guard, token=config.token, loopback_only=config.loopback_only)]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.rag = state
    return app

