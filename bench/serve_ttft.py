"""Time to first token: `rag serve` (POST /api/ask, SSE) vs the CLI (`rag ask`), against the bundled server.

    .venv/bin/python bench/serve_ttft.py [--engine hash|local] [--runs 10]

Indexes sample_docs into a temporary folder, then for each question measures
- CLI: a fresh `rag ask` process, from its start to the first byte of the answer on stdout (what a
  user at a terminal waits: interpreter start, imports, opening the index, retrieval, the model);
- API: a running `rag serve`, from sending the request to the first `piece` event (what the page waits);
- the same two from inside: `timings.first_token` of the answer (retrieval + the model's first piece).
Each question is asked once, untimed, just before it is timed, so the model's prompt cache treats both
paths alike; the order of the two paths alternates. Prints medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ingest.indexer import index_folder
from rag.config import Settings
from rag.serve import ServeConfig, running
from rag.server import serve

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["What port does Ollama listen on by default?",
             "How long does a model stay loaded in memory after its last request?",
             "检索增强生成和微调有什么区别？"]


def cli_first_byte(question: str, db: str, host: str) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rag", "ask", question, "--db", db, "--host", host],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ})
    assert proc.stdout is not None
    proc.stdout.read(1)
    first = time.perf_counter() - started
    proc.stdout.read()
    proc.wait()
    inner = subprocess.run([sys.executable, "-m", "rag", "ask", question, "--db", db, "--host", host, "--json"],
                           capture_output=True, text=True, check=True)
    return first, json.loads(inner.stdout)["timings"]["first_token"]


def api_first_piece(url: str, question: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    answer = None
    with httpx.stream("POST", url + "api/ask", json={"question": question},
                      headers={"Accept": "text/event-stream"}, timeout=600) as response:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "piece" and first is None:
                first = time.perf_counter() - started
            elif line.startswith("data: ") and event == "answer":
                answer = json.loads(line[6:])
    assert first is not None and answer is not None
    assert answer["citations"], f"no answer from the documents for {question!r}: nothing to time"
    return first, answer["timings"]["first_token"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="hash")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    models: dict[str, str] = {}
    if args.engine == "local":  # the local engine's own models (MiniLM embeddings, a small GGUF chat model)
        from rag.server.local_engine import DEFAULT_CHAT_MODEL, EMBED_MODEL

        models = {"embed_model": EMBED_MODEL, "chat_model": DEFAULT_CHAT_MODEL}
    with serve(args.engine) as ollama, tempfile.TemporaryDirectory() as tmp:
        settings = Settings.resolve(host=ollama.url, db=Path(tmp) / "db", **models)
        index_folder(ROOT / "sample_docs", settings.index)
        cli, cli_inner, api, api_inner = [], [], [], []
        os.environ["RAG_CHAT_MODEL"] = settings.chat_model  # for the CLI processes
        config = ServeConfig(db=str(settings.db), ollama_host=ollama.url, chat_model=settings.chat_model)
        with running(config) as srv:
            for run in range(args.runs):
                for i, question in enumerate(QUESTIONS):
                    # Warm, untimed: the model's prompt cache then holds this prompt for both paths
                    # alike (it keeps the last prompt only: otherwise whichever path goes second gains).
                    api_first_piece(srv.url, question)
                    order = ["api", "cli"] if (run + i) % 2 == 0 else ["cli", "api"]
                    for path in order:
                        if path == "api":
                            first, inner = api_first_piece(srv.url, question)
                            api.append(first)
                            api_inner.append(inner)
                        else:
                            first, inner = cli_first_byte(question, str(settings.db), ollama.url)
                            cli.append(first)
                            cli_inner.append(inner)
    ms = lambda xs: f"{1000 * statistics.median(xs):.0f} ms"  # noqa: E731
    print(f"engine {args.engine}, {len(api)} questions each")
    print(f"time to first token, as the user waits: API (rag serve, SSE) {ms(api)}   CLI (rag ask) {ms(cli)}")
    print(f"inside the answer (timings.first_token): API {ms(api_inner)}   CLI {ms(cli_inner)}")


if __name__ == "__main__":
    main()
