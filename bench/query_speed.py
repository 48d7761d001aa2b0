"""Query speed at a large corpus: rag's dense, bm25 and hybrid search against a raw Chroma query.

    python bench/query_speed.py --files 85000 --label after [--profile]

Builds once (cached under bench/cache/query-speed/, gitignored) a folder of ``--files`` synthetic notes of
about 3 chunks each (3 English : 1 Chinese, `corpora.synthetic`'s text) and indexes it with
`ingest.indexer.index_folder` against the bundled server's hash engine. Then asks 200 questions
(`corpora.queries_for`) in every mode, the modes interleaved per question so that the machine's
load drifts alike for all of them, and records p50/p95 per mode:

- ``floor``: what a hand-written tool does per query: ``ollama.Client.embed`` then
  ``collection.query(query_embeddings=..., n_results=5)``;
- ``dense``, ``bm25``, ``hybrid``: `RAG.search` (the public call `rag search` makes) in that mode.

Results go to bench/results/query_speed.json under ``--label`` (runs with other labels are kept, so a
"before" and an "after" sit side by side) and bench/results/query_speed.md is rewritten from it.
``--profile`` adds a cProfile of 50 hybrid queries (the top functions by cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import corpora  # noqa: E402
from offline import tiktoken_cache  # noqa: E402

CACHE = BENCH / "cache" / "query-speed"
RESULTS = BENCH / "results"
MODES = ("floor", "dense", "bm25", "hybrid")
FLOOR_K = 5
COLLECTION = "docs"


def folder_for(files: int) -> Path:
    """``files`` synthetic notes: hard links into the 100k synthetic folder when it is there, else written."""
    folder = CACHE / f"notes-{files}"
    marker = CACHE / f"notes-{files}.done"
    if marker.exists():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    big = corpora.CACHE / "synthetic-100000"
    gen = None
    for i in range(files):
        target = corpora._synthetic_path(folder, i)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = corpora._synthetic_path(big, i)
        if source.exists():
            os.link(source, target)
        else:
            gen = gen or corpora._SyntheticText()
            target.write_text(gen.text(i), encoding="utf-8")
    marker.touch()
    return folder


def build(files: int, host: str) -> dict[str, Any]:
    """Index the folder once; later runs reuse the index (its build record says how long it took)."""
    from ingest.config import IndexSettings
    from ingest.indexer import index_folder

    db = CACHE / f"db-{files}"
    record = CACHE / f"db-{files}.json"
    if record.exists():
        return dict(json.loads(record.read_text()))
    folder = folder_for(files)
    if db.exists():
        shutil.rmtree(db)
    start = time.perf_counter()
    report = index_folder(folder, IndexSettings.resolve(host=host, db=db, collection=COLLECTION))
    seconds = time.perf_counter() - start
    info = {"files": files, "chunks": report_chunks(db), "build_seconds": round(seconds, 1),
            "report": {k: v for k, v in vars(report).items() if isinstance(v, (int, float, str))}}
    record.write_text(json.dumps(info, indent=2))
    return info


def report_chunks(db: Path) -> int:
    from ingest.state import IndexState

    state = IndexState.open(db, COLLECTION, create=False)
    try:
        return state.chunk_count()
    finally:
        state.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(files: int, host: str, queries: list[str], profile: bool) -> dict[str, Any]:
    import chromadb
    import ollama
    from chromadb.config import Settings as ChromaSettings

    from rag import RAG
    from rag.retrieve import Mode

    db = CACHE / f"db-{files}"
    client = ollama.Client(host=host)
    with RAG(db=str(db), collection=COLLECTION, host=host) as kb:
        model = kb.retriever().embedder.model
        collection = chromadb.PersistentClient(
            path=str(db), settings=ChromaSettings(anonymized_telemetry=False)
        ).get_collection(COLLECTION)

        def floor(question: str) -> None:
            vector = client.embed(model=model, input=question).embeddings[0]
            collection.query(query_embeddings=[vector], n_results=FLOOR_K)

        def rag_mode(mode: Mode) -> Any:
            return lambda question: kb.search(question, mode=mode)

        modes: tuple[Mode, ...] = ("dense", "bm25", "hybrid")
        runners: dict[str, Any] = {"floor": floor, **{m: rag_mode(m) for m in modes}}
        for run in runners.values():  # warm up: caches, connections, the first Chroma segment load
            for question in queries[:5]:
                run(question)
        latencies: dict[str, list[float]] = {m: [] for m in MODES}
        for question in queries:
            for mode in MODES:
                start = time.perf_counter()
                runners[mode](question)
                latencies[mode].append(1000 * (time.perf_counter() - start))
        profile_text = ""
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for question in queries[:50]:
                kb.search(question, mode="hybrid")
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
            profile_text = out.getvalue()
        agreement = bm25_agreement(kb.retriever().state.lexical, queries)
    summary = {
        m: {"p50_ms": round(statistics.median(v), 2), "p95_ms": round(percentile(v, 0.95), 2)}
        for m, v in latencies.items()
    }
    floor_p50 = summary["floor"]["p50_ms"]
    for m in MODES:
        summary[m]["p50_vs_floor"] = round(summary[m]["p50_ms"] / floor_p50, 2)
        summary[m]["p95_vs_p50"] = round(summary[m]["p95_ms"] / summary[m]["p50_ms"], 2)
    return {"modes": summary, "queries": len(queries), "profile": profile_text, "bm25_agreement": agreement}


def bm25_agreement(lexical: Any, queries: list[str], pool: int = 30) -> dict[str, Any]:
    """How the bounded BM25 search compares with reading every posting (`MAX_POSTINGS` and `MAX_LOOKUPS`
    unbounded): the share of queries with the same top ``pool`` in the same order, and the mean share of
    ids shared."""
    import ingest.lexical

    if not hasattr(ingest.lexical, "MAX_POSTINGS"):
        return {}
    bounded = [lexical.search(q, pool) for q in queries]
    budget = ingest.lexical.MAX_POSTINGS
    lookups = getattr(ingest.lexical, "MAX_LOOKUPS", None)
    ingest.lexical.MAX_POSTINGS = ingest.lexical.MAX_LOOKUPS = 10**12
    try:
        exact = [lexical.search(q, pool) for q in queries]
    finally:
        ingest.lexical.MAX_POSTINGS = budget
        if lookups is None:
            del ingest.lexical.MAX_LOOKUPS
        else:
            ingest.lexical.MAX_LOOKUPS = lookups
    same_order = sum(1 for a, b in zip(bounded, exact, strict=True) if [i for i, _ in a] == [i for i, _ in b])
    shared = [len({i for i, _ in a} & {i for i, _ in b}) / len(b) for a, b in zip(bounded, exact, strict=True) if b]
    return {"max_postings": budget, "identical_top": round(same_order / len(queries), 3),
            "mean_shared_ids": round(statistics.mean(shared), 3)}


def write_markdown(results: dict[str, Any]) -> None:
    lines = [
        "# Query speed at a large corpus (`bench/query_speed.py`)",
        "",
        "Each row is one run: 200 questions (3 English : 1 Chinese), every mode asked each question in turn.",
        "`floor` = `ollama.Client.embed` + raw `collection.query(n_results=5)`; the others are `RAG.search`.",
        "Latencies include the embedding round trip to the bundled server (hash engine). The machine is",
        "shared and noisy: compare ratios within a row, not seconds across rows.",
        "",
        "Targets (issue 9): hybrid p50 ≤ 2× floor and ≤ 20 ms at 250k chunks; p95 ≤ 2× p50; dense p50 ≤ 1.3× floor.",
        "",
        "| run | chunks | mode | p50 ms | p95 ms | p50 / floor | p95 / p50 |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for label, run in results["runs"].items():
        for mode in MODES:
            s = run["modes"][mode]
            lines.append(f"| {label} | {run['chunks']:,} | {mode} | {s['p50_ms']} | {s['p95_ms']} | "
                         f"{s['p50_vs_floor']}× | {s['p95_vs_p50']}× |")
    lines += ["", "## Index builds", "", "| files | chunks | build s |", "|---:|---:|---:|"]
    for build_info in results.get("builds", {}).values():
        lines.append(f"| {build_info['files']:,} | {build_info['chunks']:,} | {build_info['build_seconds']} |")
    lines += ["", "## Bounded BM25 against reading every posting", "",
              "| run | MAX_POSTINGS | queries with the identical top 30 | ids shared with the exact top 30 |",
              "|---|---:|---:|---:|"]
    for label, run in results["runs"].items():
        agreement = run.get("bm25_agreement") or {}
        if agreement:
            lines.append(f"| {label} | {agreement['max_postings']:,} | {agreement['identical_top']:.1%} | "
                         f"{agreement['mean_shared_ids']:.1%} |")
    notes = results.get("notes", "")
    if notes:
        lines += ["", "## Notes", "", notes]
    for label, run in results["runs"].items():
        if run.get("profile"):
            lines += ["", f"## Profile: {label} (50 hybrid queries, cProfile, cumulative)", "", "```",
                      run["profile"].strip(), "```"]
    (RESULTS / "query_speed.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=85_000, help="synthetic notes (about 3 chunks each)")
    parser.add_argument("--label", default="run", help="the name of this run in the results")
    parser.add_argument("--profile", action="store_true", help="also profile 50 hybrid queries")
    parser.add_argument("--build-only", action="store_true", help="build (or reuse) the index and stop")
    args = parser.parse_args()

    tiktoken_cache()
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from rag.server.http import OllamaServer

    CACHE.mkdir(parents=True, exist_ok=True)
    with OllamaServer("hash") as server:
        info = build(args.files, server.url)
        print(json.dumps({k: v for k, v in info.items() if k != "report"}), flush=True)
        if args.build_only:
            return
        queries = corpora.queries_for(corpora.Corpus("synthetic", CACHE, args.files, ""))
        run = measure(args.files, server.url, queries, args.profile)
    path = RESULTS / "query_speed.json"
    results = json.loads(path.read_text()) if path.exists() else {"runs": {}, "builds": {}}
    run.update(chunks=info["chunks"], files=args.files, when=time.strftime("%Y-%m-%d %H:%M"),
               machine=f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    results["runs"][args.label] = run
    results["builds"][str(args.files)] = {k: info[k] for k in ("files", "chunks", "build_seconds")}
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_markdown(results)
    for mode, s in run["modes"].items():
        print(f"{mode:7} p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f} ms  {s['p50_vs_floor']}x floor")


if __name__ == "__main__":
    main()
