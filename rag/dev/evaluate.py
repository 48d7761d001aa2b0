"""`make eval` (``python -m rag.dev.evaluate``): retrieval quality for dense, BM25 and hybrid, and the defaults.

Builds throw-away indexes in temp dirs against the bundled server and the official SDK, asks
labelled questions, and writes ``bench/results/eval.md`` and ``eval.json``. Metrics are over
retrieval units: a file, or a page of a PDF, each counted once at its best rank.

Runs, by default:
- ``sample_docs`` with the ``hash`` engine and with the ``local`` engine (real MiniLM): the
  questions of tests/eval/questions.jsonl (English and Chinese, each labelled with the file and, for
  PDFs, the page; some deliberately unanswerable, to set the floor). Modes, a λ/pool/cap sweep, the floor.
- ``nfcorpus`` (when ../shared/data/nfcorpus exists) with the ``local`` engine: BEIR NFCorpus read in
  place and imported through `import_jsonl` — one text file per record in a temp folder, then the
  normal indexer (walk, loader, chunker, embedder, Chroma, BM25). One index, two query sets: fusion
  settings are swept on the **dev** qrels and the defaults (rag.config) are reported on **test**.
  Documents are ranked at their best chunk (per-file cap 1, λ 1) over a 300-chunk pool, so the
  top 100 holds ~100 distinct documents for Recall@100.

MiniLM vectors are cached by content hash in ``bench/cache/embeddings.sqlite`` (`rag.dev.eval_cache`,
an engine wrapper inside the bundled server; ``--no-cache`` bypasses it), so a re-run costs
minutes, not the ~15 minutes of embedding NFCorpus on 2 cores.

Question JSONL: {"id", "question", "lang", "relevant": [{"source": "a.pdf", "page": 2, "gain": 1}],
"answerable": true}; "page" and "gain" are optional.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest.config import IndexSettings
from ingest.indexer import index_folder
from rag.config import Settings
from rag.retrieve import Mode, Retriever
from rag.types import Hit

ROOT = Path(__file__).resolve().parents[2]  # the repository (rag/dev/evaluate.py)
QUESTIONS = ROOT / "tests" / "eval" / "questions.jsonl"
SAMPLE_DOCS = ROOT / "sample_docs"
NFCORPUS = ROOT.parent / "shared" / "data" / "nfcorpus"
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / "bench" / "cache" / "embeddings.sqlite"
EMBED_MODELS = {"hash": "nomic-embed-text", "local": "all-minilm"}
MODES: tuple[Mode, ...] = ("dense", "bm25", "hybrid")
LAMBDAS = (1.0, 0.85, 0.7, 0.5)
POOLS = (10, 30, 60)
CAPS = (2, 3, 5)
MIN_SCORES = (0.2, 0.3, 0.35, 0.4, 0.5)
MIN_OVERLAPS = (0.25, 0.34, 0.5, 0.67)


@dataclass(frozen=True)
class Question:
    """A labelled question: the units that answer it, with graded gains."""

    id: str
    text: str
    gains: dict[tuple[str, int | None], float] = field(default_factory=dict)  # (source, page|None) -> gain
    answerable: bool = True
    lang: str = "en"


def load_questions(path: Path) -> list[Question]:
    """Questions from a JSONL file (see the module docstring)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        gains = {(r["source"], r.get("page")): float(r.get("gain", 1)) for r in row.get("relevant", [])}
        out.append(Question(row["id"], row["question"], gains, row.get("answerable", True), row.get("lang", "en")))
    return out


# -- metrics -----------------------------------------------------------------------------------


def unit_of(hit: Hit, question: Question) -> tuple[str, int | None]:
    """The unit a hit counts as: a labelled (source, page), a whole labelled file, or its own page."""
    if (hit.source, hit.page) in question.gains:
        return (hit.source, hit.page)
    if (hit.source, None) in question.gains:
        return (hit.source, None)
    return (hit.source, hit.page)


def ranked_units(hits: Sequence[Hit], question: Question) -> list[tuple[str, int | None]]:
    """Units in rank order, each at its best rank."""
    seen: list[tuple[str, int | None]] = []
    for h in hits:
        u = unit_of(h, question)
        if u not in seen:
            seen.append(u)
    return seen


def score_ranking(units: Sequence[tuple[str, int | None]], gains: dict[Any, float]) -> dict[str, float]:
    """recall@5/10/100, MRR and nDCG@10 (linear gain) of one ranking."""
    relevant = {u for u, g in gains.items() if g > 0}
    out: dict[str, float] = {}
    for k in (5, 10, 100):
        out[f"recall@{k}"] = len(relevant & set(units[:k])) / len(relevant) if relevant else 0.0
    first = next((i for i, u in enumerate(units, start=1) if u in relevant), None)
    out["mrr"] = 1.0 / first if first else 0.0
    dcg = sum(gains.get(u, 0.0) / math.log2(i + 1) for i, u in enumerate(units[:10], start=1))
    ideal = sorted(gains.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    out["ndcg@10"] = dcg / idcg if idcg else 0.0
    return out


def mean_metrics(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    """Average each metric over questions."""
    rows = list(rows)
    return {key: round(statistics.fmean(r[key] for r in rows), 4) for key in rows[0]} if rows else {}


# -- running -----------------------------------------------------------------------------------


class CachedEmbedder:
    """Wraps an embedder so a sweep embeds each question once."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self.cache:
            self.cache[text] = self.inner.embed_query(text)
        return self.cache[text]


def evaluate(retriever: Retriever, questions: Sequence[Question], mode: Mode, k: int, **changes: Any) -> dict:
    """Mean metrics of one configuration over the answerable questions (the floor switched off)."""
    settings = retriever.settings.with_(min_score=-1.0, **changes)
    r = Retriever(retriever.store, retriever.state, retriever.embedder, settings)
    started = time.perf_counter()
    rows = [score_ranking(ranked_units(r.search(q.text, k=k, mode=mode), q), q.gains)
            for q in questions if q.answerable]
    result = mean_metrics(rows)
    result["ms_per_query"] = round(1000 * (time.perf_counter() - started) / max(len(rows), 1), 2)
    return result


def floor_table(retriever: Retriever, questions: Sequence[Question]) -> list[dict[str, Any]]:
    """For each (min_score, min_overlap): how often the gate answers answerable questions and refuses the rest."""
    rows = []
    for min_score in MIN_SCORES:
        for min_overlap in MIN_OVERLAPS:
            settings = retriever.settings.with_(min_score=min_score, min_overlap=min_overlap)
            r = Retriever(retriever.store, retriever.state, retriever.embedder, settings)
            answered = {q.id: bool(r.search(q.text)) for q in questions}
            pos = [answered[q.id] for q in questions if q.answerable]
            neg = [not answered[q.id] for q in questions if not q.answerable]
            tpr = statistics.fmean(pos) if pos else 0.0
            tnr = statistics.fmean(neg) if neg else 0.0
            rows.append({"min_score": min_score, "min_overlap": min_overlap, "answered": round(tpr, 3),
                         "refused_unanswerable": round(tnr, 3), "balanced": round((tpr + tnr) / 2, 3)})
    return rows


def sweep(retriever: Retriever, questions: Sequence[Question], k: int) -> dict[str, Any]:
    """Modes x MMR lambda, then pool and per-file cap for the best mode; the winner by nDCG@10 then MRR."""
    table = []
    for mode in MODES:
        for lam in LAMBDAS:
            table.append({"mode": mode, "mmr_lambda": lam, "pool": max(retriever.settings.pool, k),
                          "per_file_cap": retriever.settings.per_file_cap,
                          **evaluate(retriever, questions, mode, k, mmr_lambda=lam)})

    def rank(row: dict[str, Any]) -> tuple[float, float, float]:
        return (row["ndcg@10"], row["mrr"], row["recall@5"])

    best = max(table, key=rank)
    for pool in sorted({max(p, k) for p in POOLS}):  # a pool below k is k
        for cap in CAPS:
            table.append({"mode": best["mode"], "mmr_lambda": best["mmr_lambda"], "pool": pool, "per_file_cap": cap,
                          **evaluate(retriever, questions, best["mode"], k, mmr_lambda=best["mmr_lambda"],
                                     pool=max(pool, k), per_file_cap=cap)})
    return {"table": table, "best": max(table, key=rank)}


def build_index(docs: Path, db: Path, host: str, engine: str) -> tuple[Settings, dict[str, Any]]:
    """Index ``docs`` into ``db`` and return read settings plus the index report."""
    index = IndexSettings.resolve(host=host, db=db, embed_model=EMBED_MODELS[engine])
    started = time.perf_counter()
    report = index_folder(docs, index)
    info = {"files": len(report.added), "chunks": report.chunks, "skipped": len(report.skipped),
            "seconds": round(time.perf_counter() - started, 2)}
    return Settings.resolve(index=index), info


def import_jsonl(corpus: Path, folder: Path, *, id_key: str = "_id") -> int:
    """Write each JSONL record ({"_id", "title", "text"}) as ``<folder>/<id>.txt`` for the normal indexer."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    with corpus.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                text = "\n\n".join(p for p in (row.get("title", ""), row.get("text", "")) if p)
                (folder / f"{row[id_key]}.txt").write_text(text + "\n", encoding="utf-8")
                n += 1
    return n


def load_beir_questions(folder: Path, split: str = "test") -> list[Question]:
    """BEIR queries with graded qrels of ``split``; relevant units are ``<doc id>.txt``."""
    qrels: dict[str, dict[tuple[str, int | None], float]] = {}
    with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[(f"{row['corpus-id']}.txt", None)] = float(row["score"])
    questions = []
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["_id"] in qrels:
            questions.append(Question(row["_id"], row["text"], qrels[row["_id"]]))
    return questions


def run_dataset(
    name: str, docs: Path, questions: list[Question], host: str, engine: str, k: int, *, sweep_params: bool = True
) -> dict:
    """Index, compare modes, sweep the parameters, and (with unanswerable questions) tune the floor."""
    with tempfile.TemporaryDirectory(prefix=f"rag-eval-{name}-") as tmp:
        settings, info = build_index(docs, Path(tmp) / "db", host, engine)
        with Retriever.open(settings) as opened:
            retriever = Retriever(opened.store, opened.state, CachedEmbedder(opened.embedder),  # type: ignore[arg-type]
                                  settings)
            result: dict[str, Any] = {"dataset": name, "engine": engine, "embed_model": EMBED_MODELS[engine],
                                      "questions": len(questions),
                                      "unanswerable": sum(not q.answerable for q in questions), "index": info, "k": k}
            result["modes"] = {m: evaluate(retriever, questions, m, k, mmr_lambda=1.0) for m in MODES}
            if sweep_params:
                result.update(sweep(retriever, questions, k))
            if any(not q.answerable for q in questions):
                table = floor_table(retriever, questions)
                result["floor"] = {"table": table, "best": max(table, key=lambda r: (r["balanced"], r["answered"]))}
    return result


# Document ranking for BEIR sets: each document at its best chunk (cap 1, no MMR), from a pool deep
# enough (~3 chunks per NFCorpus document) that the top 100 holds ~100 distinct documents.
BEIR_READ: dict[str, Any] = {"pool": 300, "per_file_cap": 1, "mmr_lambda": 1.0}
# Hybrid settings swept on the dev split (each row changes these fields of the defaults).
FUSION_GRID: tuple[dict[str, Any], ...] = tuple(
    {"rrf_k": rk, "dense_weight": w} for rk in (30, 60) for w in (0.4, 0.5, 0.6)
)


def is_default(settings: Settings, changes: dict[str, Any]) -> bool:
    """Whether ``changes`` leave ``settings`` as they are."""
    return all(getattr(settings, key) == value for key, value in changes.items())


def run_beir(name: str, folder: Path, docs: Path, host: str, engine: str, *, sweep_params: bool = True) -> dict:
    """One index, the dev and test query sets: modes on both, the fusion sweep on dev only."""
    k = 100
    splits = [s for s in ("dev", "test") if (folder / "qrels" / f"{s}.tsv").exists()]
    with tempfile.TemporaryDirectory(prefix=f"rag-eval-{name}-") as tmp:
        settings, info = build_index(docs, Path(tmp) / "db", host, engine)
        with Retriever.open(settings) as opened:
            retriever = Retriever(opened.store, opened.state, CachedEmbedder(opened.embedder),  # type: ignore[arg-type]
                                  settings.with_(**BEIR_READ))
            result: dict[str, Any] = {"dataset": name, "engine": engine, "embed_model": EMBED_MODELS[engine],
                                      "index": info, "k": k, "read": BEIR_READ, "splits": {}}
            for split in splits:
                questions = load_beir_questions(folder, split)
                row: dict[str, Any] = {"questions": len(questions),
                                       "modes": {m: evaluate(retriever, questions, m, k) for m in MODES}}
                if split == "dev" and sweep_params:
                    row["fusion"] = [
                        {**change, **(row["modes"]["hybrid"] if is_default(retriever.settings, change)  # no rerun
                                      else evaluate(retriever, questions, "hybrid", k, **change))}
                        for change in FUSION_GRID
                    ]
                    row["best"] = max(row["fusion"], key=lambda r: (r["ndcg@10"], r["recall@100"]))
                    best = {key: row["best"][key] for key in FUSION_GRID[0]}
                    if not is_default(retriever.settings, best):
                        result["dev_best"] = best  # differs from the defaults: also reported on test
                elif "dev_best" in result:
                    label = "hybrid (dev-best " + ", ".join(f"{key} {v}" for key, v in result["dev_best"].items()) + ")"
                    row["modes"][label] = evaluate(retriever, questions, "hybrid", k, **result["dev_best"])
                result["splits"][split] = row
    return result


# -- report ------------------------------------------------------------------------------------

METRIC_KEYS = ("recall@5", "recall@10", "recall@100", "mrr", "ndcg@10", "ms_per_query")
BEIR_KEYS = ("ndcg@10", "recall@10", "recall@100", "mrr", "ms_per_query")


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"] + [
        "| " + " | ".join(str(v) for v in row) + " |" for row in rows
    ]


def markdown_beir(r: dict[str, Any]) -> list[str]:
    """The section of one BEIR data set: modes per split, then the dev fusion sweep."""
    out = [f"## {r['dataset']} — engine `{r['engine']}`, embeddings `{r['embed_model']}`", "",
           f"index: {r['index']}; read settings: defaults of rag.config plus {r['read']} "
           "(each document at its best chunk)", ""]
    for split, row in r["splits"].items():
        out += [f"### {split} ({row['questions']} queries)", ""]
        out += _table(("mode", *BEIR_KEYS), ([m, *(v.get(key, "") for key in BEIR_KEYS)] for m, v in row["modes"].items()))
        out.append("")
        if "fusion" in row:
            out += [f"#### Hybrid fusion sweep ({split})", ""]
            fields = [key for key in row["fusion"][0] if key not in METRIC_KEYS]
            out += _table((*fields, *BEIR_KEYS),
                          ([*(f[key] for key in fields), *(f.get(key, "") for key in BEIR_KEYS)] for f in row["fusion"]))
            b = row["best"]
            out += ["", "**Best on dev:** " + ", ".join(f"{key} {b[key]}" for key in fields)
                    + f" (nDCG@10 {b['ndcg@10']}, R@100 {b['recall@100']})", ""]
    return out


def markdown(results: list[dict[str, Any]], notes: Sequence[str] = ()) -> str:
    """The eval.md report."""
    out = ["# Retrieval evaluation", "", "Written by `make eval` (`python -m rag.dev.evaluate`). Units: a file, or a PDF page.",
           "", *notes, ""]
    for r in results:
        if "splits" in r:
            out += markdown_beir(r)
            continue
        out += [f"## {r['dataset']} — engine `{r['engine']}`, embeddings `{r['embed_model']}`", "",
                f"{r['questions']} questions ({r['unanswerable']} unanswerable); index: {r['index']}", "",
                "### Modes (MMR off, λ = 1)", "", "| mode | " + " | ".join(METRIC_KEYS) + " |",
                "|---" * (len(METRIC_KEYS) + 1) + "|"]
        out += [f"| {m} | " + " | ".join(str(v.get(key, "")) for key in METRIC_KEYS) + " |" for m, v in r["modes"].items()]
        if "table" in r:
            out += ["", "### Sweep (mode × λ, then pool × per-file cap)", "",
                    "| mode | λ | pool | cap | " + " | ".join(METRIC_KEYS) + " |", "|---" * (len(METRIC_KEYS) + 4) + "|"]
            out += [f"| {t['mode']} | {t['mmr_lambda']} | {t['pool']} | {t['per_file_cap']} | "
                    + " | ".join(str(t.get(key, "")) for key in METRIC_KEYS) + " |" for t in r["table"]]
            b = r["best"]
            out += ["", f"**Best:** mode {b['mode']}, λ {b['mmr_lambda']}, pool {b['pool']}, cap {b['per_file_cap']} "
                    f"(nDCG@10 {b['ndcg@10']}, MRR {b['mrr']}, recall@5 {b['recall@5']})", ""]
        if "floor" in r:
            out += ["### Relevance floor (answer when best cosine ≥ min_score or term overlap ≥ min_overlap)", "",
                    "| min_score | min_overlap | answered (answerable) | refused (unanswerable) | balanced |",
                    "|---|---|---|---|---|"]
            out += [f"| {f['min_score']} | {f['min_overlap']} | {f['answered']} | {f['refused_unanswerable']} | "
                    f"{f['balanced']} |" for f in r["floor"]["table"]]
            fb = r["floor"]["best"]
            out += ["", f"**Best floor:** min_score {fb['min_score']}, min_overlap {fb['min_overlap']} "
                    f"(balanced {fb['balanced']})", ""]
    return "\n".join(out) + "\n"


def defaults_note(results: Sequence[dict[str, Any]]) -> list[str]:
    """What the defaults in rag.config are, and what this run says about them."""
    from rag import config

    out = ["### Defaults (rag.config) and why", "",
           f"hybrid {config.DEFAULT_HYBRID}, k {config.DEFAULT_K}, pool {config.DEFAULT_POOL}, "
           f"MMR λ {config.DEFAULT_MMR_LAMBDA}, per-file cap {config.DEFAULT_PER_FILE_CAP}, "
           f"rrf_k {config.DEFAULT_RRF_K}, dense_weight {config.DEFAULT_DENSE_WEIGHT}, "
           f"floor cosine {config.DEFAULT_MIN_SCORE} or term overlap {config.DEFAULT_MIN_OVERLAP}; "
           "BM25 over English-stemmed terms (ingest.lexical), k1 1.2, b 0.75. The reasoning is in the "
           "rag.config docstring: hybrid wins NFCorpus on every metric and beats dense on sample_docs; "
           "fusion constants are taken from the NFCorpus dev sweep below (a near tie), never from test."]
    for r in results:
        best = r.get("splits", {}).get("dev", {}).get("best")
        if best:
            same = "dev-best = the defaults" if "dev_best" not in r else f"dev-best differs: {r['dev_best']}"
            out.append(f"This run, {r['dataset']}: {same}.")
    return out


def open_server(engine: str, cache: Path | None) -> Any:
    """The bundled server with ``engine``; the local engine's embeddings go through the ``cache`` file."""
    from rag.server.http import OllamaServer, make_engine

    if engine == "local" and cache is not None:
        from rag.dev.eval_cache import CachingEngine

        return OllamaServer(CachingEngine(make_engine("local"), cache))
    return OllamaServer(engine)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation and write the results files."""
    from rag.server.http import EngineUnavailable

    parser = argparse.ArgumentParser(prog="python -m rag.dev.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=[*sorted(EMBED_MODELS), "all"], default="all",
                        help="all = hash and local (local is skipped, with a note, when folder-rag[local] is missing)")
    parser.add_argument("--dataset", choices=["sample", "nfcorpus", "all"], default="all",
                        help="all = sample, plus nfcorpus (local engine) when ../shared/data/nfcorpus exists")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for eval.md / eval.json")
    parser.add_argument("--no-sweep", action="store_true", help="compare the modes only (faster)")
    parser.add_argument("--no-cache", action="store_true", help="embed everything again (no cache at all)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="the embedding cache file (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    engines = ["hash", "local"] if args.engine == "all" else [args.engine]
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    for engine in engines:
        try:
            server = open_server(engine, None if args.no_cache else args.cache)
        except EngineUnavailable as exc:
            print(f"skipping the {engine} engine: {exc}", flush=True)
            notes.append(f"Skipped the `{engine}` engine: {exc}")
            continue
        with server:
            if args.dataset in ("sample", "all"):
                print(f"sample_docs ({engine}) ...", flush=True)
                results.append(run_dataset("sample_docs", SAMPLE_DOCS, load_questions(QUESTIONS), server.url,
                                           engine, 10, sweep_params=not args.no_sweep))
            beir = args.dataset == "nfcorpus" or (args.dataset == "all" and NFCORPUS.exists() and engine == "local")
            if beir:
                print(f"nfcorpus ({engine}; 3,633 documents, dev + test queries; ~15 min cold, minutes cached) ...",
                      flush=True)
                with tempfile.TemporaryDirectory(prefix="rag-nfcorpus-docs-") as docs:
                    import_jsonl(NFCORPUS / "corpus.jsonl", Path(docs))
                    results.append(run_beir("nfcorpus", NFCORPUS, Path(docs), server.url, engine,
                                            sweep_params=not args.no_sweep))
            cache = getattr(server.engine, "hits", None)
            if cache is not None:
                notes.append(f"Embedding cache ({engine}): {server.engine.hits} hits, {server.engine.misses} misses.")
            close = getattr(server.engine, "close", None)
            if close is not None:
                close()
    notes.append(f"Run time: {time.perf_counter() - started:.0f} s.")
    notes += ["", *defaults_note(results)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval.json").write_text(json.dumps({"notes": notes, "results": results}, ensure_ascii=False, indent=2),
                                        encoding="utf-8")
    (args.out / "eval.md").write_text(markdown(results, notes), encoding="utf-8")
    print(markdown(results, notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
