"""BM25's read and lookup budgets against exact BM25, on an index that is already built.

    python bench/bm25_budget.py --db D --collection C --queries FILE [--grid 10000,10000 30000,2000] [--rounds 3]

`LexicalIndex.search` alone, for every question in FILE, with each (`MAX_POSTINGS`, `MAX_LOOKUPS`)
pair of ``--grid`` and with both unbounded (exact). Records p50/p95/max latency (the median over
``--rounds`` rounds, the pairs interleaved so that the machine's load drifts alike for all of them) and
how much of the exact top 30 each pair keeps. Results go to bench/results/bm25_budget.json, under the
index's chunk count, and bench/results/bm25_budget.md is rewritten from it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

import ingest.lexical  # noqa: E402
from ingest.lexical import LexicalIndex  # noqa: E402

RESULTS = BENCH / "results"
POOL = 30  # rag's candidate pool: what BM25 hands to the fusion
UNBOUNDED = 10**12


def timed(lexical: LexicalIndex, queries: list[str], reads: int, lookups: int) -> tuple[list[list[str]], list[float]]:
    ingest.lexical.MAX_POSTINGS, ingest.lexical.MAX_LOOKUPS = reads, lookups
    for question in queries[:20]:  # warm SQLite's page cache alike for every pair
        lexical.search(question, POOL)
    ranked, latencies = [], []
    for question in queries:
        start = time.perf_counter()
        hits = lexical.search(question, POOL)
        latencies.append(1000 * (time.perf_counter() - start))
        ranked.append([cid for cid, _ in hits])
    return ranked, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def shared(got: list[list[str]], exact: list[list[str]], top: int) -> float:
    pairs = [(g[:top], e[:top]) for g, e in zip(got, exact, strict=True) if e]
    return round(statistics.mean(len(set(g) & set(e)) / len(e) for g, e in pairs), 3)


def measure(lexical: LexicalIndex, queries: list[str], grid: list[tuple[int, int]], rounds: int) -> list[dict[str, Any]]:
    runs: dict[tuple[int, int], list[list[float]]] = {}
    ranked: dict[tuple[int, int], list[list[str]]] = {}
    for _ in range(rounds):
        for pair in [*grid, (UNBOUNDED, UNBOUNDED)]:
            ranked[pair], latencies = timed(lexical, queries, *pair)
            runs.setdefault(pair, []).append(latencies)
    exact = ranked[(UNBOUNDED, UNBOUNDED)]
    rows = []
    for pair, latency_runs in runs.items():
        rows.append({
            "max_postings": None if pair[0] == UNBOUNDED else pair[0],
            "max_lookups": None if pair[1] == UNBOUNDED else pair[1],
            "p50_ms": round(statistics.median(statistics.median(r) for r in latency_runs), 2),
            "p95_ms": round(statistics.median(percentile(r, 0.95) for r in latency_runs), 2),
            "max_ms": round(statistics.median(max(r) for r in latency_runs), 2),
            "shared_top30": shared(ranked[pair], exact, 30),
            "shared_top10": shared(ranked[pair], exact, 10),
            "same_top1": round(statistics.mean(g[:1] == e[:1] for g, e in zip(ranked[pair], exact, strict=True) if e), 3),
        })
    return rows


def write_markdown(results: dict[str, Any]) -> None:
    lines = [
        "# BM25 budgets against exact BM25 (`bench/bm25_budget.py`)",
        "",
        "`LexicalIndex.search` alone, top 30, every question of the run; latencies are the median of the",
        "rounds' p50/p95/max. \"Shared\" is the mean share of the exact top 30 (top 10) that the budgeted",
        "search returns too. The machine is shared and noisy: compare rows of one run, not seconds across runs.",
    ]
    for label, run in results.items():
        lines += ["", f"## {label}: {run['chunks']:,} chunks, {run['queries']} questions, {run['rounds']} rounds", "",
                  "| MAX_POSTINGS | MAX_LOOKUPS | p50 ms | p95 ms | max ms | shared top 30 | shared top 10 | same top 1 |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in run["rows"]:
            reads = "exact" if row["max_postings"] is None else f"{row['max_postings']:,}"
            lookups = "exact" if row["max_lookups"] is None else f"{row['max_lookups']:,}"
            lines.append(f"| {reads} | {lookups} | {row['p50_ms']} | {row['p95_ms']} | {row['max_ms']} | "
                         f"{row['shared_top30']:.1%} | {row['shared_top10']:.1%} | {row['same_top1']:.1%} |")
    (RESULTS / "bm25_budget.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--collection", default="docs")
    parser.add_argument("--queries", required=True, help="one question per line")
    parser.add_argument("--grid", nargs="+", default=["10000,10000", "20000,2000", "30000,2000", "40000,1000"],
                        help="MAX_POSTINGS,MAX_LOOKUPS pairs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", default="run")
    args = parser.parse_args()
    grid = [(int(a), int(b)) for a, b in (pair.split(",") for pair in args.grid)]
    queries = Path(args.queries).read_text(encoding="utf-8").splitlines()
    lexical = LexicalIndex.open(Path(args.db), args.collection, create=False)
    try:
        rows = measure(lexical, queries, grid, args.rounds)
        chunks = lexical.count()
    finally:
        lexical.close()
    path = RESULTS / "bm25_budget.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    results[args.label] = {"chunks": chunks, "queries": len(queries), "rounds": args.rounds, "rows": rows}
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_markdown(results)
    print((RESULTS / "bm25_budget.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
