"""What both anchor scripts share: the command line (the floor's) and the timed query loop."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

MODEL, CHUNK_TOKENS, CHUNK_OVERLAP, K = "nomic-embed-text", 400, 60, 5


def versions(*packages: str) -> dict[str, str]:
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def timed_queries(retrieve: Callable[[str], Any], questions: list[str]) -> dict:
    """Milliseconds per question; the first question warms up and is not timed."""
    retrieve(questions[0])
    latencies = []
    for question in questions:
        start = time.perf_counter()
        retrieve(question)
        latencies.append(1000 * (time.perf_counter() - start))
    return {"latencies_ms": latencies}


def main(doc: str, index: Callable[[Path, str, str, str], dict], query: Callable[[str, str, str, list[str]], dict],
         packages: tuple[str, ...]) -> None:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("index", "query", "versions"))
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--db", default="")
    parser.add_argument("--collection", default="docs")
    parser.add_argument("--host", default="")
    parser.add_argument("--queries")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.command == "versions":
        result = {"versions": versions(*packages)}
    elif args.command == "index":
        result = index(Path(args.folder), args.db, args.collection, args.host)
    else:
        result = query(args.db, args.collection, args.host, Path(args.queries).read_text().splitlines())
    print(json.dumps({**result, "seconds": round(time.perf_counter() - start, 3)}))
