"""Raw Chroma cost of one HNSW setting, without rag: insert N random 768-d unit vectors in batches of
256 (ms per vector for each block of 10,240), edit 30% of them (delete + re-add under new ids), then
the share of 2,000 vectors not found among their own 10 nearest, the query p50, and the first
``count()`` of a fresh process (which replays the writes Chroma had not persisted yet).
bench/results/hnsw_settings.json holds a run.

    python bench/hnsw_cost.py N M,EF_CONSTRUCTION,EF_SEARCH[,SYNC_THRESHOLD]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chromadb
import numpy as np

DIM, BATCH, BLOCK = 768, 256, 10_240
# Chroma reads its settings from the environment, here and in the reopening child: no telemetry.
os.environ["ANONYMIZED_TELEMETRY"] = "False"

_REOPEN = """
import sys, time, chromadb
t = time.perf_counter()
col = chromadb.PersistentClient(sys.argv[1]).get_collection("hnsw-cost")
col.count()
print(round(time.perf_counter() - t, 2))
"""


def main() -> None:
    n = int(sys.argv[1])
    values = [int(v) for v in sys.argv[2].split(",")]
    hnsw = {"space": "cosine", "max_neighbors": values[0], "ef_construction": values[1], "ef_search": values[2]}
    if len(values) > 3:
        hnsw["sync_threshold"] = values[3]
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    where = Path(tempfile.mkdtemp(prefix="hnsw-cost-"))
    try:
        col = chromadb.PersistentClient(str(where)).create_collection("hnsw-cost", configuration={"hnsw": hnsw})
        text = "some text words here " * 60
        out: dict[str, object] = {"settings": hnsw}
        blocks, started, block_start = [], time.perf_counter(), time.perf_counter()
        for i in range(0, n, BATCH):
            part = vectors[i : i + BATCH]
            col.upsert(ids=[str(j) for j in range(i, i + len(part))], embeddings=part, documents=[text] * len(part))
            if (i + BATCH) % BLOCK == 0:
                now = time.perf_counter()
                blocks.append(round((now - block_start) / BLOCK * 1000, 2))
                block_start = now
        out["ms_per_vector_by_block"] = blocks
        out["insert_s"] = round(time.perf_counter() - started, 1)

        edited = rng.choice(n, n * 3 // 10, replace=False)
        started = time.perf_counter()
        for i in range(0, len(edited), BATCH):
            part = edited[i : i + BATCH]
            col.delete(ids=[str(j) for j in part])
            moved = vectors[part] + 0.05 * rng.standard_normal((len(part), DIM)).astype(np.float32)
            vectors[part] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
            col.upsert(ids=[f"e{j}" for j in part], embeddings=vectors[part], documents=[text] * len(part))
        out["edit_30pct_s"] = round(time.perf_counter() - started, 1)

        renamed = set(edited.tolist())
        missed, latencies = 0, []
        for j in rng.choice(n, 2000, replace=False):
            started = time.perf_counter()
            found = col.query(query_embeddings=vectors[j : j + 1], n_results=10, include=[])["ids"][0]
            latencies.append(time.perf_counter() - started)
            missed += (f"e{j}" if j in renamed else str(j)) not in found
        out["self_miss_pct"] = round(100 * missed / 2000, 2)
        out["query_p50_ms"] = round(1000 * float(np.median(latencies)), 2)
        reopen = subprocess.run([sys.executable, "-c", _REOPEN, str(where)], capture_output=True, text=True, check=True)
        out["fresh_process_first_count_s"] = float(reopen.stdout.strip())
        print(json.dumps(out), flush=True)
    finally:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
