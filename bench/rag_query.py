"""rag's query phase: `RAG.search` (the call `rag search` makes) timed per question, in one process.

`rag search` starts a new process per question, so its wall time is Python start-up and imports,
not search; this child times the same public API call in one process instead.

    python rag_query.py --db D --collection C --host URL --queries FILE --mode hybrid|dense [--chroma URL]

Prints one JSON object: {"latencies_ms": [...]}. The first question warms up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rag import RAG


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--collection", default="docs")
    parser.add_argument("--host", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--mode", choices=("hybrid", "dense", "bm25"), required=True)
    parser.add_argument("--chroma", default=None, help="a Chroma server URL, once rag supports one")
    args = parser.parse_args()
    questions = Path(args.queries).read_text(encoding="utf-8").splitlines()
    options: dict[str, Any] = {"chroma": args.chroma} if args.chroma else {}
    with RAG(db=args.db, collection=args.collection, host=args.host, **options) as kb:
        kb.search(questions[0], mode=args.mode)
        latencies = []
        for question in questions:
            start = time.perf_counter()
            kb.search(question, mode=args.mode)
            latencies.append(1000 * (time.perf_counter() - start))
    print(json.dumps({"latencies_ms": latencies}))


if __name__ == "__main__":
    main()
