"""What Chroma's ``ef_search`` costs per query, on one graph: N random 768-d unit vectors inserted once
with rag's HNSW settings (`ingest.store.HNSW`), then 200 queries per ``ef_search`` value, each value in
a fresh process (Chroma applies a changed ``ef_search`` when it loads the collection, not to one it
holds). Random vectors are HNSW's hard case (no clusters), so the times are an upper end; recall is
not measured here, since on random data the 30 nearest are near-ties (bench/reachability.py measures
what rag's setting buys: every chunk found by its own vector).

    python bench/ef_search_cost.py N 400,200,100 [--work DIR]

Prints one JSON line per value and writes bench/results/ef_search.json.
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

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
os.environ["ANONYMIZED_TELEMETRY"] = "False"  # Chroma reads it here and in the child processes
DIM, BATCH, QUERIES, NAME = 768, 1000, 200, "ef-search-cost"


def build(path: Path, n: int) -> float:
    import chromadb
    import numpy as np

    from ingest.store import HNSW

    vectors = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    collection = chromadb.PersistentClient(str(path)).create_collection(NAME, configuration={"hnsw": dict(HNSW)})
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        part = vectors[i:i + BATCH]
        collection.add(ids=[str(i + j) for j in range(len(part))], embeddings=part,
                       metadatas=[{"source": f"f{(i + j) // 3}", "text": "x" * 200} for j in range(len(part))])
    return time.perf_counter() - start


def measure(path: Path, ef_search: int) -> dict[str, float]:
    """Run in a child process: set ``ef_search``, reopen, time 200 queries asking for ids only (as rag
    does) and 200 asking for 5 results with Chroma's default fields (as the floor does)."""
    import chromadb
    import numpy as np

    collection = chromadb.PersistentClient(str(path)).get_collection(NAME)
    collection.modify(configuration={"hnsw": {"ef_search": ef_search}})  # before the first query loads it
    queries = np.random.default_rng(1).standard_normal((QUERIES, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for q in queries[:5]:
        collection.query(query_embeddings=[q], n_results=30, include=[])
    out: dict[str, float] = {"ef_search": ef_search}
    for label, kwargs in (("ids_30", {"n_results": 30, "include": []}), ("default_5", {"n_results": 5})):
        times = []
        for q in queries:
            start = time.perf_counter()
            collection.query(query_embeddings=[q], **kwargs)  # type: ignore[arg-type]
            times.append(1000 * (time.perf_counter() - start))
        times.sort()
        out[f"{label}_p50_ms"] = round(statistics.median(times), 2)
        out[f"{label}_p95_ms"] = round(times[int(0.95 * (len(times) - 1))], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, help="vectors to insert")
    parser.add_argument("values", help="ef_search values, comma-separated")
    parser.add_argument("--work", default=None, help="folder for the collection (default: a temporary one)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(Path(args.work), args.child)))
        return
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        path = Path(tmp)
        seconds = build(path, args.n)
        runs = []
        for value in (int(v) for v in args.values.split(",")):
            done = subprocess.run([sys.executable, __file__, str(args.n), args.values, "--work", str(path),
                                   "--child", str(value)], capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    result = {"vectors": args.n, "dimension": DIM, "build_seconds": round(seconds, 1),
              "when": time.strftime("%Y-%m-%d %H:%M"), "runs": runs}
    (BENCH / "results" / "ef_search.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
