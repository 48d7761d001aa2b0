"""bench/results/bench.md and bench.json: the side-by-side tables, ratios, and issue 9's targets.

Ingest times are each process's wall time (start-up included, the same for every tool); the
"per 1,000 files" re-run target and the latency phase use rag's own reported `seconds`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

WORDS = ("ollama embed chunk vector index query answer model server context token batch chroma cosine "
         "manifest folder document page heading citation retrieval ranking").split()
TOOLS = ("rag", "floor", "llamaindex", "langchain")
NAMES = {"rag": "rag", "floor": "floor", "llamaindex": "LlamaIndex", "langchain": "LangChain"}
FLAT_RSS_RATIO = 1.25
PER_THOUSAND_MIN_FILES = 1000  # below this, a re-run's fixed cost (opening the index) is all it measures
ENGINE_NOTES = {
    "instant": "`rag.server` with bench/measure.py's `InstantEngine`: vectors from a digest of each text, "
               "because the hash engine's pure-Python word hashing costs about 2-10 ms per 400-token chunk, "
               "the same for every tool, which would dominate at 300k chunks and push every ratio towards 1",
    "hash": "hash engine",
}  # "flat from 1k to 100k files": at most 25% more at the large end


def _get(row: dict[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(row, dict):
            return None
        row = row.get(key)
    return row


def _ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return text + unit


def _ok_seconds(phase: dict[str, Any] | None) -> float | None:
    return phase["seconds"] if isinstance(phase, dict) and phase.get("ok") else None


def corpus_table(name: str, entry: dict[str, Any]) -> list[str]:
    tools = [t for t in TOOLS if t in entry["tools"]]
    anchors = [t for t in tools if t in ("llamaindex", "langchain")]
    head = "| phase | " + " | ".join(NAMES[t] for t in tools) + " | rag / floor | " + \
        " | ".join(f"rag / {NAMES[t]}" for t in anchors) + " |"
    lines = [f"### {name}: {entry['note']}", "", head, "|---" + "|---:" * (len(tools) + 1 + len(anchors)) + "|"]

    def row(label: str, value_of: Any, ratio_of: Any = None) -> None:
        cells = [value_of(entry["tools"][t]) for t in tools]
        values = {t: (ratio_of or (lambda p: None))(entry["tools"][t]) for t in tools}
        ratios = [_ratio(values["rag"], values.get(other)) for other in ("floor", *anchors)]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " +
                     " | ".join(f"**{_fmt(r)}×**" if r is not None else "–" for r in ratios) + " |")

    def seconds(phase: str) -> Any:
        return lambda p: _ok_seconds(p.get(phase))

    def cell(phase: str) -> Any:
        def show(p: dict[str, Any]) -> str:
            ph = p.get(phase)
            if not ph:
                return "–"
            if ph.get("skipped"):
                return "skipped (time budget)"
            if not ph.get("ok"):
                return f"failed: {ph.get('error', '')[:80]}"
            own = ph.get("tool_seconds")
            own_text = f"own {_fmt(own)} s; " if isinstance(own, (int, float)) else ""
            runs = ph.get("runs_seconds") or []
            runs_text = (f"; median of {len(runs)} runs: " + ", ".join(f"{_fmt(x)}" for x in sorted(runs)) + " s"
                         if len(runs) > 1 else "")
            return (f"{_fmt(ph['seconds'])} s ({own_text}{ph['embed_inputs']:,} embedded / "
                    f"{ph['embed_requests']:,} req{runs_text})")
        return show

    row("first ingest", cell("first_ingest"), seconds("first_ingest"))
    row("chunks written (first ingest)", lambda p: _fmt(_get(p, "first_ingest", "chunks")))
    row("unchanged re-run", cell("unchanged_rerun"), seconds("unchanged_rerun"))
    if any("edited_rerun" in entry["tools"][t] for t in tools):
        row("1%-edited re-run", cell("edited_rerun"), seconds("edited_rerun"))

    def query_cell(p: dict[str, Any], key: str) -> str:
        q = p.get(key) or p.get("query")
        if not q:
            return "–"
        if q.get("skipped"):
            return "skipped (time budget)"
        return f"{_fmt(q['p50_ms'])} / {_fmt(q['p95_ms'])} ms" if q.get("ok") else f"failed: {q.get('error', '')[:80]}"

    def p50(key: str) -> Any:
        return lambda p: _get(p.get(key) or p.get("query"), "p50_ms")

    row("query p50 / p95, rag dense (others: default)", lambda p: query_cell(p, "query_dense"), p50("query_dense"))
    row("query p50 / p95, rag hybrid (others: default)", lambda p: query_cell(p, "query_hybrid"), p50("query_hybrid"))
    for phase, label in (("first_ingest", "first ingest"), ("unchanged_rerun", "re-run"), ("edited_rerun", "edited re-run"),
                         ("query_hybrid", "queries")):
        if any(phase in entry["tools"][t] or (phase == "query_hybrid" and "query" in entry["tools"][t]) for t in tools):
            def rss(p: dict[str, Any], phase: str = phase) -> str:
                ph = p.get(phase) or (p.get("query") if phase == "query_hybrid" else None)
                return f"{_fmt(ph['peak_tree_rss_mb'])} ({_fmt(ph['peak_rss_mb'])})" if ph and "peak_rss_mb" in ph else "–"
            row(f"peak RSS MB, {label}: process tree (largest process)", rss,
                lambda p, phase=phase: _get(p.get(phase) or p.get("query"), "peak_tree_rss_mb"))
    for phase, label in (("first_ingest", "first ingest"), ("query_hybrid", "queries")):
        if any("peak_tree_pss_mb" in (entry["tools"][t].get(phase) or entry["tools"][t].get("query") or {})
               for t in tools):
            def pss(p: dict[str, Any], phase: str = phase) -> str:
                return _fmt(_get(p.get(phase) or p.get("query"), "peak_tree_pss_mb"))
            row(f"peak PSS MB, {label}: process tree (shared pages split)", pss,
                lambda p, phase=phase: _get(p.get(phase) or p.get("query"), "peak_tree_pss_mb"))
    alone = _get(entry, "tools", "rag", "query_chroma_alone")
    if alone and alone.get("ok"):
        lines += ["", f"Chroma alone on rag's index (bench/floor.py's query: embed, then `collection.query`, 5 results, "
                      f"against rag's collection): p50 {_fmt(alone['p50_ms'])} / p95 {_fmt(alone['p95_ms'])} ms, "
                      f"peak RSS {_fmt(alone['peak_tree_rss_mb'])} MB."]
    if (entry.get("ingest_rounds") or 1) > 1:
        lines += ["", f"First ingest: each tool's median of {entry['ingest_rounds']} runs, the tools in a rotated "
                      "order each round; the other phases ran once, on the index of the last round."]
    if entry.get("scaled"):
        lines += ["", f"**Size: {entry['scaled']}.**"]
    if entry.get("others_skipped"):
        lines += ["", f"Note: {entry['others_skipped']}."]
    return lines + [""]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 9's targets (and issue 10's multi-host one): each with its measured value and pass/miss."""
    corpora = results.get("corpora", {})
    rows: list[dict[str, Any]] = []

    def add(target: str, measured: Any, passed: bool | None, note: str = "") -> None:
        rows.append({"target": target, "measured": measured,
                     "result": "not measured" if passed is None else ("pass" if passed else "miss"), "note": note})

    def tool(corpus: str, name: str, phase: str) -> dict[str, Any] | None:
        return _get(corpora, corpus, "tools", name, phase)

    def ratio_target(label: str, corpus: str, phase: str, other: str, limit: float, key: str = "seconds") -> None:
        a, b = tool(corpus, "rag", phase), tool(corpus, other, phase)
        ok = bool(a and b and a.get("ok") and b.get("ok"))
        r = _ratio(a[key], b[key]) if ok and a and b else None
        add(f"{label} ≤ {limit}× {NAMES[other]}", None if r is None else f"{r}×", None if r is None else r <= limit)

    for other, limit in (("floor", 1.0), ("llamaindex", 0.7), ("langchain", 0.7)):
        ratio_target("First ingest, text (NFCorpus)", "nfcorpus", "first_ingest", other, limit)
    for other, limit in (("floor", 0.6), ("llamaindex", 0.5), ("langchain", 0.5)):
        ratio_target("First ingest, PDFs", "pdfs", "first_ingest", other, limit)
    for corpus, entry in corpora.items():
        rerun = tool(corpus, "rag", "unchanged_rerun")
        if not rerun or not rerun.get("ok"):
            add(f"Unchanged re-run ({corpus}): 0 embedding requests", None, None)
            continue
        add(f"Unchanged re-run ({corpus}): 0 embedding requests", rerun["embed_requests"], rerun["embed_requests"] == 0)
        own = rerun.get("tool_seconds")
        if entry["files"] >= PER_THOUSAND_MIN_FILES and isinstance(own, (int, float)):
            per_k = round(1000 * own / entry["files"], 3)
            add(f"Unchanged re-run ({corpus}): ≤ 0.2 s per 1,000 files (rag's own timing)", f"{per_k} s",
                per_k <= 0.2)
        ratio_target(f"Unchanged re-run ({corpus})", corpus, "unchanged_rerun", "floor", 1.5)
    edited, first = tool("synthetic", "rag", "edited_rerun"), tool("synthetic", "rag", "first_ingest")
    if edited and first and edited.get("ok") and first.get("ok") and first.get("chunks"):
        files = corpora["synthetic"]["files"]
        expected = first["chunks"] * edited["edited_files"] / files
        add("1%-edited re-run: embeds only the edited files' chunks (≤ 1.1× their share of the first ingest)",
            f"{edited['embed_inputs']:,} embedded, {expected:,.0f} expected",
            edited["embed_inputs"] <= 1.1 * expected)
        # Not `_ratio`: its two decimals would print 2.2% as 2.0%.
        share = edited["seconds"] / first["seconds"] if first.get("seconds") else None
        add("1%-edited re-run: time ≤ 5% of the first ingest", f"{share * 100:.1f}%" if share is not None else None,
            None if share is None else share <= 0.05)
    else:
        add("1%-edited re-run of the synthetic corpus", None, None)
    peaks: list[float] = [ph["peak_tree_rss_mb"] for entry in corpora.values()
             for name, ph in (_get(entry, "tools", "rag") or {}).items()
             if isinstance(ph, dict) and ph.get("ok") and name != "query_chroma_alone"]
    alone = tool("synthetic", "rag", "query_chroma_alone")
    alone = alone if alone and alone.get("ok") else None
    if peaks:
        add("Peak RSS ≤ 300 MB (rag, every phase, process tree)", f"{max(peaks):,.0f} MB", max(peaks) <= 300,
            f"a process that only queries rag's synthetic index through Chroma: {alone['peak_tree_rss_mb']:,.0f} MB"
            if alone else "")
    small, large = results.get("small_synthetic"), tool("synthetic", "rag", "first_ingest")
    if small and large and small.get("ok") and large.get("ok"):
        r = _ratio(large["peak_tree_rss_mb"], small["peak_tree_rss_mb"])
        add(f"Peak RSS flat from {small['files']:,} to {corpora['synthetic']['files']:,} files "
            f"(≤ {FLAT_RSS_RATIO}×)", f"{small['peak_tree_rss_mb']:,.0f} → {large['peak_tree_rss_mb']:,.0f} MB ({r}×)",
            r is not None and r <= FLAT_RSS_RATIO)
    hybrid, dense = tool("nfcorpus", "rag", "query_hybrid"), tool("nfcorpus", "rag", "query_dense")
    floor_q = tool("nfcorpus", "floor", "query")
    add("Query p50, hybrid + MMR ≤ 2× the floor's dense (NFCorpus)",
        f"{_ratio(_get(hybrid, 'p50_ms'), _get(floor_q, 'p50_ms'))}×" if hybrid and floor_q else None,
        None if not (hybrid and floor_q) else (_ratio(hybrid["p50_ms"], floor_q["p50_ms"]) or 99) <= 2)
    add("Query p50, dense ≤ 1.3× the floor's (NFCorpus)",
        f"{_ratio(_get(dense, 'p50_ms'), _get(floor_q, 'p50_ms'))}×" if dense and floor_q else None,
        None if not (dense and floor_q) else (_ratio(dense["p50_ms"], floor_q["p50_ms"]) or 99) <= 1.3)
    big = tool("synthetic", "rag", "query_hybrid")
    chunks = _get(tool("synthetic", "rag", "first_ingest"), "chunks")
    if big and big.get("ok"):
        add(f"Query p50, hybrid ≤ 20 ms at 250k chunks (synthetic: {_fmt(chunks)} chunks)", f"{big['p50_ms']} ms",
            big["p50_ms"] <= 20 and (chunks or 0) >= 250_000,
            ("" if (chunks or 0) >= 250_000 else "fewer than 250k chunks in this run: not the target's size; ")
            + (f"Chroma alone on the same index: {alone['p50_ms']} ms" if alone else ""))
    for corpus in corpora:
        q = tool(corpus, "rag", "query_hybrid")
        if q and q.get("ok"):
            r = _ratio(q["p95_ms"], q["p50_ms"])
            add(f"Query p95 ≤ 2× p50, hybrid ({corpus})", f"{r}×", r is not None and r <= 2,
                f"Chroma alone: {_ratio(alone['p95_ms'], alone['p50_ms'])}×" if alone and corpus == "synthetic" else "")
    lat = results.get("latency") or {}
    if lat.get("status") == "measured":
        r = _ratio(lat.get("ingest_seconds"), lat.get("pure_embed_seconds"))
        add("Simulated embedding latency: ingest ≤ 1.1× pure embedding time", f"{r}×", r is not None and r <= 1.1)
    else:
        add("Simulated embedding latency: ingest ≤ 1.1× pure embedding time", lat.get("status"), None,
            "missing: " + ", ".join(lat.get("missing", [])))
    multi = results.get("multihost") or {}
    if multi.get("status") == "measured":
        r = multi.get("throughput_ratio")
        add("Two Ollama hosts: embedding throughput ≥ 1.8× one (issue 10)", f"{r}×", r is not None and r >= 1.8)
    else:
        add("Two Ollama hosts: embedding throughput ≥ 1.8× one (issue 10)", multi.get("status"), None,
            "missing: " + ", ".join(multi.get("missing", [])))
    return rows


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# `make bench` ({results['when']}{', --quick sizes' if results.get('quick') else ''})", "",
             f"{results['machine']}; rag at commit {results.get('rag_commit', '?')}; whole run "
             f"{_fmt(results.get('seconds'))} s.", "",
             "Every tool ran as its own process against one bundled Ollama-protocol server ("
             + ENGINE_NOTES.get(results.get("engine", "hash"), "") + "), so the times are each tool's own cost. Claims are ratios within this run; absolute "
             "seconds on these shared machines are noisy. Ingest times are process wall times, start-up included. "
             "All tools cut 400-token chunks with 60 tokens of overlap (the floor and LangChain by tiktoken "
             "windows, LlamaIndex by sentences, rag by headings and paragraphs), so chunk counts differ a little. "
             "Queries: k = 5, the first of 200 warms up; rag is timed through `RAG.search` in one process "
             "(`rag search` would time Python's start-up).", ""]
    lines += ["## Tools", "", "| tool | what | versions |", "|---|---|---|",
              "| rag | `rag index DIR --db D --collection C --json`; `RAG.search(q, mode=...)` | this checkout |",
              "| floor | bench/floor.py: pypdf, tiktoken windows, `ollama.Client.embed` × 64, `collection.add` | "
              + ", ".join(f"{k} {v}" for k, v in results.get("rag_venv", {}).items()) + " (rag's venv) |"]
    for name, what in (("llamaindex", "SimpleDirectoryReader → IngestionPipeline(SentenceSplitter, OllamaEmbedding, "
                        "ChromaVectorStore, docstore); retriever `as_retriever()`"),
                       ("langchain", "DirectoryLoader(TextLoader / PyPDFLoader) → RecursiveCharacterTextSplitter → "
                        "indexing API (SQLRecordManager) → Chroma + OllamaEmbeddings; retriever `as_retriever()`")):
        info = results.get("anchors", {}).get(name, {})
        versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items()) or \
            f"**could not run: {info.get('error', 'not checked')}**"
        lines.append(f"| {NAMES[name]} | {what} | {versions} |")
    lines += ["", "## Results", ""]
    for name, entry in results.get("corpora", {}).items():
        lines += corpus_table(name, entry)
    small = results.get("small_synthetic")
    if small and "files" in small:
        lines += [f"rag, first ingest of {small['files']:,} synthetic files: {_fmt(small.get('seconds'))} s, "
                  f"peak RSS {_fmt(small.get('peak_tree_rss_mb'))} MB (tree) / {_fmt(small.get('peak_rss_mb'))} MB.", ""]
    lines += ["## Targets (issue 9; multi-host from issue 10)", "", "| target | measured | result | note |",
              "|---|---:|---|---|"]
    for row in targets(results):
        lines.append(f"| {row['target']} | {_fmt(row['measured'])} | {row['result']} | {row['note']} |")
    lines += ["", "## Simulated embedding latency, several hosts, Chroma server", ""]
    for key, title in (("latency", "Simulated embedding latency (rag `--parallel`)"),
                       ("multihost", "Two Ollama hosts against one (OLLAMA_HOST=a,b)"),
                       ("chroma_server", "Hybrid search against `chroma run` vs embedded (issue 10)")):
        value = results.get(key) or {}
        if value.get("status") != "measured":
            lines.append(f"- {title}: {value.get('status', 'not run')}"
                         f"{' (rag lacks: ' + ', '.join(value['missing']) + ')' if value.get('missing') else ''}.")
            continue
        if key == "latency":
            lines.append(f"- {title}: {value['corpus']}, {value['ms_per_input']} ms per input + "
                         f"{value['ms_per_request']} ms per request, {value['parallel']} in flight, batches of "
                         f"{value['batch']}: ingest {_fmt(value['ingest_seconds'])} s vs pure embedding "
                         f"{_fmt(value['pure_embed_seconds'])} s "
                         f"(**{_fmt(_ratio(value['ingest_seconds'], value['pure_embed_seconds']))}×**).")
        elif key == "multihost":
            lines.append(f"- {title}: {value['corpus']}, {value['ms_per_input']} ms per input per host: "
                         f"{_fmt(value['one_host']['inputs_per_second'])} vs "
                         f"{_fmt(value['two_hosts']['inputs_per_second'])} inputs/s "
                         f"(**{_fmt(value['throughput_ratio'])}×**).")
        else:
            lines.append(f"- {title}: p50 {_fmt(value['server']['p50_ms'])} ms vs {_fmt(value['embedded']['p50_ms'])} ms "
                         f"embedded (**{_fmt(value['p50_ratio'])}×**).")
    minilm = results.get("minilm")
    if minilm:
        lines += ["", f"MiniLM (local engine): {json.dumps(minilm)}"]
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], out: Path) -> None:
    """Write both files (called after every tool, so an interrupted run still leaves its numbers)."""
    out.mkdir(parents=True, exist_ok=True)
    results = {**results, "targets": targets(results)}
    (out / "bench.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "bench.md").write_text(markdown(results), encoding="utf-8")
