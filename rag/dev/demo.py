"""`make demo` / `python -m rag.dev.demo`: the main job of rag, end to end, on sample_docs.

1. Use a real Ollama if one answers at OLLAMA_HOST; otherwise start the bundled server with the
   `local` engine (MiniLM embeddings + a small GGUF chat model), and say so.
2. Index sample_docs/ (into ./.rag-demo, so your own ./.rag is untouched).
3. Ask one English and one Chinese question; stream the answers and print their citations.
4. Stop the bundled server, if we started one.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ingest.config import Settings
from ingest.errors import RagError
from ingest.ollama_calls import resolve_host
from rag.api import RAG
from rag.cli.progress import PullReporter
from rag.client import OllamaClient
from rag.types import Answer, location

ROOT = Path(__file__).resolve().parents[2]  # the repository: rag/dev/demo.py -> ../../..
QUESTIONS = (
    "When does the nightly Tidepool backup run?",
    "一个账号可以在几台设备上登录？",
)


def say(message: str) -> None:
    """Progress for the human watching, on stderr."""
    print(f">> {message}", file=sys.stderr, flush=True)


def ollama_answers(host: str) -> bool:
    """Whether something at ``host`` says "Ollama is running" within a second."""
    try:
        return "Ollama is running" in httpx.get(host, timeout=1.0).text
    except httpx.HTTPError:
        return False


# A tiny model on a CPU reads ~100-300 prompt tokens/s and loses the thread in long prompts: give
# it fewer, shorter passages and a short answer budget. Greedy decoding (temperature 0): at the
# default 0.1 it sometimes fell into repeating one phrase until the budget ran out, differently
# from run to run; greedy gives the same answer every time.
LOCAL_ENGINE_OPTIONS: dict[str, Any] = {"k": 3, "context_tokens": 900, "answer_tokens": 160, "temperature": 0}


@contextlib.contextmanager
def ollama_for_demo(host: str | None) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """Yield (url, embed model, chat model, read options): a real Ollama if reachable, else the
    bundled local engine."""
    url = resolve_host(host)
    if ollama_answers(url):
        settings = Settings.resolve(host=url)  # RAG_EMBED_MODEL / RAG_CHAT_MODEL, else the defaults
        embed, chat = settings.index.embed_model, settings.chat_model
        say(f"using the Ollama server at {url} (models {embed} and {chat}; missing ones are pulled)")
        with OllamaClient(url) as client:
            reporter = PullReporter(sys.stderr)
            client.ensure_models(embed, chat, pull=True, progress=reporter)
            reporter.close()
        yield url, embed, chat, {}
        return
    from rag.server import serve
    from rag.server.local_engine import DEFAULT_CHAT_MODEL, EMBED_MODEL

    say(f"no Ollama answers at {url}: starting the bundled Ollama-protocol server with the local engine")
    say("(all-MiniLM-L6-v2 for embeddings, a small GGUF chat model; real models, but tiny: expect rough answers)")
    with serve(engine="local") as server:
        say(f"bundled server listening at {server.url}")
        yield server.url, EMBED_MODEL, DEFAULT_CHAT_MODEL, LOCAL_ENGINE_OPTIONS
    say("bundled server stopped")


def print_answer(kb: RAG, question: str) -> Answer:
    """Stream one answer to stdout, then its sources."""
    print(f"\nQ: {question}\nA: ", end="", flush=True)
    stream = kb.ask(question, stream=True)
    for piece in stream:
        print(piece, end="", flush=True)
    answer = stream.answer
    print()
    if answer.citations:
        print("Sources:")
        for c in answer.citations:
            print(f"  [{c.n}] {location(c.source, c.page, c.heading)}")
    else:
        print("Sources: (the answer cites none; passages in context were:)")
        for hit in answer.contexts[:3]:
            print(f"  {location(hit.source, hit.page, '')}  score {hit.score:.2f}")
    t = answer.timings
    print(f"({answer.model}: retrieval {t.get('retrieval', 0):.2f} s, first token {t.get('first_token', 0):.2f} s, "
          f"total {t.get('total', 0):.2f} s)")
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag.dev.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=None, help="Ollama host to try first (default OLLAMA_HOST)")
    parser.add_argument("--folder", default=str(ROOT / "sample_docs"), help="folder to index")
    parser.add_argument("--db", default=".rag-demo", help="where the demo index goes")
    args = parser.parse_args(argv)
    try:
        with ollama_for_demo(args.host) as (url, embed_model, chat_model, options):
            with RAG(db=args.db, host=url, embed_model=embed_model, chat_model=chat_model, **options) as kb:
                say(f"indexing {args.folder} into {args.db} with {embed_model} ...")
                started = time.monotonic()
                report = kb.index(args.folder, rebuild=_model_changed(kb, embed_model))
                say(f"indexed: {len(report.added)} added, {len(report.updated)} updated, "
                    f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped, {report.chunks} chunks "
                    f"in {time.monotonic() - started:.1f} s")
                for question in QUESTIONS:
                    print_answer(kb, question)
    except (RagError, RuntimeError) as exc:  # RuntimeError: the local engine's missing-extra message
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"\nThe demo index is in {args.db} (`rag status --db {args.db}`). Next, with your own Ollama: "
          "`rag index YOUR_FOLDER`, then `rag ask \"...\"` (see README).")
    return 0


def _model_changed(kb: RAG, embed_model: str) -> bool:
    """Rebuild the demo index when it was made with another embedding model (real Ollama vs local)."""
    try:
        fingerprint = kb.status().fingerprint or {}
    except RagError:  # no index yet
        return False
    return fingerprint.get("embed_model") not in (None, embed_model)


if __name__ == "__main__":
    sys.exit(main())
