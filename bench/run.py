"""`make bench`: speed and memory of the pipeline, written to bench/results/bench.md (and .json).

Measured against the bundled server's hash engine (so the numbers are rag's own overhead:
loading, chunking, HTTP, Chroma, manifest), plus the real MiniLM engine on a small sample.
Each indexing run happens in a fresh subprocess so its peak RSS is its own.
"""

from __future__ import annotations

import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORDS = ("ollama embed chunk vector index query answer model server context token batch chroma cosine "
         "manifest folder document page heading citation retrieval ranking").split()
HAN = "检索增强生成向量数据库模型上下文文档段落问题答案索引嵌入服务器批量"


def make_corpus(folder: Path, files: int, seed: int = 7) -> int:
    """`files` Markdown files of ~600 words (English) or ~900 characters (Chinese); returns bytes written."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(files):
        if i % 4 == 3:
            paras = ["".join(rng.choice(HAN) for _ in range(150)) + "。" for _ in range(6)]
        else:
            paras = [" ".join(rng.choice(WORDS) for _ in range(100)) + "." for _ in range(6)]
        text = f"# Document {i}\n\n## Part one\n\n" + "\n\n".join(paras[:3]) + "\n\n## Part two\n\n" + "\n\n".join(paras[3:])
        (folder / f"doc{i:05}.md").write_text(text, encoding="utf-8")
        total += len(text.encode())
    return total


CHILD = r"""
import json, resource, sys, time
from ingest.config import IndexSettings
from ingest.indexer import index_folder
settings = IndexSettings.resolve(host=sys.argv[1], db=sys.argv[2], embed_model=sys.argv[4])
t = time.perf_counter()
report = index_folder(sys.argv[3], settings)
print(json.dumps({"seconds": time.perf_counter() - t, "chunks": report.chunks,
                  "requests": report.embed_requests, "files": len(report.added) + len(report.updated),
                  "unchanged": len(report.unchanged),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def index_in_child(url: str, db: Path, folder: Path, model: str = "nomic-embed-text") -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, url, str(db), str(folder), model],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_indexing(url: str, work: Path) -> list[dict]:
    rows = []
    for files in (100, 400, 1600):
        folder = work / f"corpus{files}"
        size = make_corpus(folder, files)
        first = index_in_child(url, work / f"db{files}", folder)
        second = index_in_child(url, work / f"db{files}", folder)
        rows.append({"files": files, "mb": round(size / 1e6, 2), **{k: round(v, 2) for k, v in first.items()},
                     "files_per_s": round(files / first["seconds"], 1),
                     "chunks_per_s": round(first["chunks"] / first["seconds"], 1),
                     "noop_seconds": round(second["seconds"], 2), "noop_requests": second["requests"]})
        print(rows[-1], flush=True)
    return rows


def bench_queries(url: str, work: Path) -> dict:
    from rag import RAG

    kb = RAG(db=work / "db400", host=url)
    questions = ["how does the server batch embeddings?", "检索增强生成的上下文", "chroma cosine manifest",
                 "what is the context token limit?"] * 10
    kb.search(questions[0])  # warm up (opens Chroma, loads the HNSW index)
    timings = []
    for q in questions:
        t = time.perf_counter()
        kb.search(q, k=5)
        timings.append(time.perf_counter() - t)
    timings.sort()
    return {"queries": len(timings), "p50_ms": round(1000 * timings[len(timings) // 2], 1),
            "p95_ms": round(1000 * timings[int(len(timings) * 0.95)], 1)}


def bench_minilm() -> dict:
    try:
        from rag.server.local_engine import LocalEngine
    except Exception as exc:  # the local extra is optional
        return {"skipped": str(exc)}
    engine = LocalEngine()
    texts = [" ".join(random.Random(i).choice(WORDS) for _ in range(100)) for i in range(96)]
    engine.embed("all-minilm", texts[:4])  # load
    t = time.perf_counter()
    engine.embed("all-minilm", texts)
    seconds = time.perf_counter() - t
    return {"passages": len(texts), "seconds": round(seconds, 2), "passages_per_s": round(len(texts) / seconds, 1)}


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(results, indent=2))
    lines = [f"# Benchmarks ({results['when']}, {results['machine']})", "",
             "Indexing against the bundled server's hash engine (rag's own overhead), each run a fresh process.", "",
             "| files | MB | chunks | embed requests | seconds | files/s | chunks/s | peak RSS MB | no-op re-run s | no-op requests |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["indexing"]:
        lines.append(f"| {r['files']} | {r['mb']} | {r['chunks']} | {r['requests']} | {r['seconds']} | {r['files_per_s']} | "
                     f"{r['chunks_per_s']} | {r['peak_rss_mb']} | {r['noop_seconds']} | {r['noop_requests']} |")
    q = results["queries"]
    lines += ["", f"Search (dense + BM25 hybrid, 400-file index): p50 {q['p50_ms']} ms, p95 {q['p95_ms']} ms over {q['queries']} queries.", ""]
    m = results["minilm"]
    lines.append(f"MiniLM (local engine, onnxruntime int8, 2 threads): {m}")
    (RESULTS / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    from rag.server import serve

    with tempfile.TemporaryDirectory() as tmp, serve() as server:
        work = Path(tmp)
        results = {
            "when": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores, Python {platform.python_version()}",
            "indexing": bench_indexing(server.url, work),
            "queries": bench_queries(server.url, work),
            "minilm": bench_minilm(),
        }
    write(results)


if __name__ == "__main__":
    main()
