"""Dense reachability of every chunk, with Chroma's default HNSW parameters and with rag's (`ingest.store.HNSW`).

A chunk is reachable when a search with its own stored embedding returns it among the 10 nearest
(`ingest.verify.unreachable`). Measured with the hash engine of the bundled server (instant, and the
hardest case for HNSW: many near-identical vectors) on

- NFCorpus (one file per document, from ../shared/data/nfcorpus), after a fresh build;
- a synthetic folder after a fresh build, after editing 30% of its files, and after a run killed
  with SIGKILL in the middle of an update and a re-run;

plus the query latency of each setting (p50 of 200 dense queries through Chroma). Writes
bench/results/reachability.json; `bench/reliability_report.py` folds it into reliability.md.

``--ef-search 400,200,100`` measures instead what ``ef_search`` alone does: NFCorpus and the synthetic
folder are built once with rag's settings, then every chunk is searched for at each value, on the same
graph (each value in a fresh process: Chroma applies a changed ``ef_search`` when it loads the
collection). Writes bench/results/reachability-ef.json.

    python bench/reachability.py [--quick] [--ef-search 400,200,100]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ingest.store  # noqa: E402
from ingest.config import IndexSettings  # noqa: E402
from ingest.indexer import index_folder, open_store  # noqa: E402
from ingest.state import IndexState  # noqa: E402
from ingest.verify import unreachable  # noqa: E402
from rag.server.http import OllamaServer  # noqa: E402

CHROMA_DEFAULT = {"space": "cosine"}  # Chroma fills in M 16, ef_construction 100, ef_search 100
RAG_HNSW = dict(ingest.store.HNSW)
RESULTS = ROOT / "bench" / "results" / "reachability.json"
NFCORPUS = ROOT.parent / "shared" / "data" / "nfcorpus" / "corpus.jsonl"


def nfcorpus_folder(dest: Path, limit: int | None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with open(NFCORPUS, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            doc = json.loads(line)
            (dest / f"{doc['_id']}.txt").write_text(f"{doc.get('title', '')}\n\n{doc.get('text', '')}\n",
                                                    encoding="utf-8")
    return dest


def synthetic_folder(dest: Path, n: int, version: int = 1, only: set[int] | None = None) -> Path:
    rng = random.Random(7)
    words = ("lake river boat harbour engine cable sensor valve pump filter meter schedule report audit "
             "检索 生成 模型 文档 湖泊 河流 工程 测试").split()
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(rng.choice(words) for _ in range(260))
        if only is not None and i not in only:
            continue
        (dest / f"f{i:05}.md").write_text(f"# Note {i} v{version}\n\n{body}\n\n## Part 2\n\n{body[::-1]}\n",
                                         encoding="utf-8")
    return dest


def reach(settings: IndexSettings) -> dict[str, Any]:
    store = open_store(settings)
    state = IndexState.open(settings.db, settings.collection, create=False)
    ids = state.chunk_ids()
    state.close()
    lost = unreachable(store, ids)
    rows = store.get(ids[:200], with_embeddings=True)
    times = []
    for r in rows:
        t = time.perf_counter()
        store.query(r.embedding, 30)  # type: ignore[arg-type]
        times.append(time.perf_counter() - t)
    return {"chunks": len(ids), "unreachable": len(lost),
            "reachable_pct": round(100.0 * (1 - len(lost) / max(1, len(ids))), 3),
            "query_p50_ms": round(float(np.percentile(times, 50)) * 1000, 2) if times else None}


def build(folder: Path, db: Path, server: OllamaServer, hnsw: dict[str, Any]) -> IndexSettings:
    ingest.store.HNSW.clear()
    ingest.store.HNSW.update(hnsw)
    settings = IndexSettings.resolve(host=server.url, db=db, batch_size=32)
    index_folder(folder, settings)
    return settings


def killed_update(folder: Path, db: Path, server: OllamaServer, hnsw: dict[str, Any], edited: set[int]) -> None:
    """Edit files, start `rag index` in a child, kill it at a random moment, then re-run in-process."""
    synthetic_folder(folder, max(edited) + 1, version=3, only=edited)
    env = {**os.environ, "RAG_BENCH_HNSW": json.dumps(hnsw)}
    child = subprocess.Popen([sys.executable, __file__, "--child", str(folder), str(db), server.url], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.Random(3).uniform(2.0, 5.0))
    child.send_signal(signal.SIGKILL)
    child.wait()
    build(folder, db, server, hnsw)


def reach_at(db: Path, ef_search: int) -> dict[str, Any]:
    """`reach` of the index in ``db`` with ``ef_search``, in a fresh process."""
    done = subprocess.run([sys.executable, __file__, "--reach-at", str(db), str(ef_search)],
                          capture_output=True, text=True, check=True)
    return {"ef_search": ef_search, **json.loads(done.stdout.strip().splitlines()[-1])}


def ef_sweep(values: list[int], quick: bool) -> None:
    results: dict[str, Any] = {"quick": quick, "settings": RAG_HNSW, "ef_search": values}
    work = Path(tempfile.mkdtemp(prefix="rag-reach-ef-"))
    try:
        with OllamaServer("hash") as server:
            folders = {"synthetic_fresh": synthetic_folder(work / "syn", 300 if quick else 1500)}
            if NFCORPUS.exists():
                folders["nfcorpus_fresh"] = nfcorpus_folder(work / "nfcorpus", 500 if quick else None)
            for name, folder in folders.items():
                db = work / f"db-{name}"
                build(folder, db, server, RAG_HNSW)
                results[name] = [reach_at(db, value) for value in values]
                print(name, json.dumps(results[name]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = RESULTS.with_name("reachability-ef.json")
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs=3)
    ap.add_argument("--ef-search", default=None, help="comma-separated ef_search values, one graph")
    ap.add_argument("--reach-at", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reach_at:  # one ef_search value on a built index, in its own process
        db, value = Path(args.reach_at[0]), int(args.reach_at[1])
        settings = IndexSettings.resolve(host="http://127.0.0.1:9", db=db)
        import chromadb  # before rag opens the store: the value applies when the collection is loaded

        chromadb.PersistentClient(str(db)).get_collection(settings.collection).modify(
            configuration={"hnsw": {"ef_search": value}})
        print(json.dumps(reach(settings)))
        return
    if args.ef_search:
        ef_sweep([int(v) for v in args.ef_search.split(",")], args.quick)
        return
    if args.child:  # the run that gets killed
        hnsw = json.loads(os.environ["RAG_BENCH_HNSW"])
        ingest.store.HNSW.clear()
        ingest.store.HNSW.update(hnsw)
        folder, db, url = args.child
        index_folder(Path(folder), IndexSettings.resolve(host=url, db=Path(db), batch_size=8))
        return
    n_syn = 300 if args.quick else 1500
    n_nf = 500 if args.quick else None
    results: dict[str, Any] = {"quick": args.quick, "settings": {"chroma_default": CHROMA_DEFAULT, "rag": RAG_HNSW}}
    work = Path(tempfile.mkdtemp(prefix="rag-reach-"))
    try:
        with OllamaServer("hash") as server:
            nf = nfcorpus_folder(work / "nfcorpus", n_nf) if NFCORPUS.exists() else None
            for label, hnsw in (("chroma_default", CHROMA_DEFAULT), ("rag", RAG_HNSW)):
                row: dict[str, Any] = {}
                if nf is not None:
                    t = time.perf_counter()
                    s = build(nf, work / f"db-nf-{label}", server, hnsw)
                    row["nfcorpus_build_s"] = round(time.perf_counter() - t, 1)
                    row["nfcorpus_fresh"] = reach(s)
                folder = synthetic_folder(work / f"syn-{label}", n_syn)
                db = work / f"db-syn-{label}"
                s = build(folder, db, server, hnsw)
                row["synthetic_fresh"] = reach(s)
                edited = set(random.Random(11).sample(range(n_syn), int(0.3 * n_syn)))
                synthetic_folder(folder, n_syn, version=2, only=edited)
                s = build(folder, db, server, hnsw)
                row["synthetic_after_30pct_edits"] = reach(s)
                killed_update(folder, db, server, hnsw, set(random.Random(12).sample(range(n_syn), int(0.3 * n_syn))))
                row["synthetic_after_kill_and_rerun"] = reach(s)
                results[label] = row
                print(label, json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
