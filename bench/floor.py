"""The floor: the least a Chroma + Ollama indexer must do, written by hand, with no framework.

Read each file (pypdf for PDFs, one text per page), cut tiktoken windows of rag's size (400 tokens,
60 overlap), embed them with `ollama.Client.embed` in batches of 64 and `collection.add` them.
A re-run skips files whose size and mtime are unchanged (a JSON file beside the index) and replaces
the chunks of changed ones.

    python floor.py index DIR --db D --collection C --host URL
    python floor.py query --db D --collection C --host URL --queries FILE   (one query per line)

Each prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import chromadb
import ollama
import tiktoken
from pypdf import PdfReader

MODEL, WINDOW, OVERLAP, BATCH, K = "nomic-embed-text", 400, 60, 64, 5


def read_texts(path: Path) -> list[str]:
    if path.suffix.lower() == ".pdf":
        try:
            return [page.extract_text() or "" for page in PdfReader(path).pages]
        except Exception:  # an encrypted or broken PDF is skipped, as every tool here does
            return []
    return [path.read_text(encoding="utf-8", errors="replace")]


def windows(enc: tiktoken.Encoding, text: str) -> list[str]:
    tokens = enc.encode(text, disallowed_special=())
    step = WINDOW - OVERLAP
    return [enc.decode(tokens[i:i + WINDOW]) for i in range(0, max(len(tokens) - OVERLAP, 1), step)]


def open_collection(db: str, name: str) -> chromadb.Collection:
    client = chromadb.PersistentClient(path=db)
    return client.get_or_create_collection(name, metadata={"hnsw:space": "cosine"})


def index(root: Path, db: str, name: str, host: str) -> dict:
    enc, client, collection = tiktoken.get_encoding("cl100k_base"), ollama.Client(host=host), open_collection(db, name)
    state_path = Path(db) / "floor-state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    seen, chunks, requests, changed = set(), 0, 0, 0
    pending: list[tuple[str, str, dict]] = []

    def flush() -> None:
        nonlocal requests
        vectors = client.embed(model=MODEL, input=[text for _, text, _ in pending]).embeddings
        requests += 1
        collection.add(ids=[i for i, _, _ in pending], embeddings=vectors,  # type: ignore[arg-type]
                       documents=[t for _, t, _ in pending], metadatas=[m for _, _, m in pending])
        pending.clear()

    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        seen.add(rel)
        stat = path.stat()
        if state.get(rel) == [stat.st_size, stat.st_mtime_ns]:
            continue
        if rel in state:
            collection.delete(where={"source": rel})
        changed += 1
        for page, text in enumerate(read_texts(path), start=1):
            for n, piece in enumerate(windows(enc, text)):
                if not piece.strip():
                    continue
                pending.append((f"{rel}#{page}#{n}", piece, {"source": rel, "page": page}))
                chunks += 1
                if len(pending) == BATCH:
                    flush()
        state[rel] = [stat.st_size, stat.st_mtime_ns]
    if pending:
        flush()
    for rel in set(state) - seen:
        collection.delete(where={"source": rel})
        del state[rel]
    state_path.write_text(json.dumps(state))
    return {"files": len(seen), "changed": changed, "chunks": chunks, "embed_requests": requests}


def query(db: str, name: str, host: str, questions: list[str]) -> dict:
    client, collection = ollama.Client(host=host), open_collection(db, name)
    latencies = []
    for i, question in enumerate([questions[0], *questions]):  # the first one warms up and is not timed
        start = time.perf_counter()
        vector = client.embed(model=MODEL, input=question).embeddings[0]
        collection.query(query_embeddings=[vector], n_results=K)
        if i:
            latencies.append(1000 * (time.perf_counter() - start))
    return {"latencies_ms": latencies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("index", "query"))
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--db", required=True)
    parser.add_argument("--collection", default="docs")
    parser.add_argument("--host", required=True)
    parser.add_argument("--queries")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.command == "index":
        result = index(Path(args.folder), args.db, args.collection, args.host)
    else:
        result = query(args.db, args.collection, args.host, Path(args.queries).read_text().splitlines())
    print(json.dumps({**result, "seconds": round(time.perf_counter() - start, 3)}))


if __name__ == "__main__":
    main()
