"""The evaluation harness: metrics, units, and the labelled questions themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.dev.evaluate import (
    QUESTIONS,
    SAMPLE_DOCS,
    Question,
    import_jsonl,
    load_questions,
    ranked_units,
    score_ranking,
)
from rag.types import Hit


def test_perfect_and_missing_rankings() -> None:
    gains = {("a.md", None): 1.0}
    assert score_ranking([("a.md", None), ("b.md", None)], gains) == {
        "recall@5": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr": 1.0, "ndcg@10": 1.0,
    }
    assert score_ranking([("b.md", None)], gains)["mrr"] == 0.0


def test_graded_ndcg_and_mrr() -> None:
    gains = {("a", None): 2.0, ("b", None): 1.0}
    out = score_ranking([("x", None), ("b", None), ("a", None)], gains)
    assert out["mrr"] == 0.5
    ideal = 2 + 1 / 1.5849625
    assert out["ndcg@10"] == pytest.approx((1 / 1.5849625 + 2 / 2) / ideal)


def test_units_dedupe_chunks_and_respect_pages() -> None:
    q = Question("q", "?", {("m.pdf", 2): 1.0, ("g.md", None): 1.0})
    hits = [Hit("m.pdf", 1, "", 0.9, "t"), Hit("g.md", None, "", 0.8, "t"), Hit("g.md", None, "", 0.7, "t"),
            Hit("m.pdf", 2, "", 0.6, "t")]
    assert ranked_units(hits, q) == [("m.pdf", 1), ("g.md", None), ("m.pdf", 2)]


def test_labelled_questions_point_at_real_files_and_pages() -> None:
    questions = load_questions(QUESTIONS)
    assert len(questions) >= 40
    assert {q.lang for q in questions} == {"en", "zh"}
    assert sum(q.lang == "zh" for q in questions) >= 15
    assert any(not q.answerable for q in questions)
    for q in questions:
        assert q.answerable == bool(q.gains), q.id
        for source, page in q.gains:
            assert (SAMPLE_DOCS / source).is_file(), (q.id, source)
            assert (page is not None) == source.endswith(".pdf"), (q.id, source)


def test_import_jsonl_writes_one_text_file_per_record(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"_id": "D1", "title": "Beans", "text": "Beans are legumes."}, {"_id": "D2", "title": "", "text": "x"}]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert import_jsonl(corpus, tmp_path / "docs") == 2
    assert (tmp_path / "docs" / "D1.txt").read_text(encoding="utf-8") == "Beans\n\nBeans are legumes.\n"


def test_embedding_cache_answers_repeats_without_the_engine(tmp_path: Path) -> None:
    import ollama

    from rag.dev.eval_cache import CachingEngine
    from rag.server.hash_engine import HashEngine
    from rag.server.http import OllamaServer

    class Counting(HashEngine):
        calls = 0

        def embed(self, model: str, texts: list[str], *, truncate: bool = True) -> tuple[list[list[float]], int]:
            Counting.calls += len(texts)
            return super().embed(model, texts, truncate=truncate)

    cached = CachingEngine(Counting(), tmp_path / "cache" / "e.sqlite")
    with OllamaServer(cached) as server:
        client = ollama.Client(host=server.url)
        first = client.embed(model="nomic-embed-text", input=["alpha beta", "gamma"])
        again = client.embed(model="nomic-embed-text", input=["gamma", "alpha beta", "delta"])
        client._client.close()
    assert Counting.calls == 3 and (cached.hits, cached.misses) == (2, 3)
    assert again.embeddings[0] == pytest.approx(first.embeddings[1], abs=1e-6)
    assert again.embeddings[1] == pytest.approx(first.embeddings[0], abs=1e-6)
    assert again.prompt_eval_count is not None and again.prompt_eval_count > 0
    cached.close()
    reopened = CachingEngine(Counting(), tmp_path / "cache" / "e.sqlite")  # persists across runs
    reopened.embed("nomic-embed-text:latest", ["delta"])  # the name the server passes to its engine
    assert Counting.calls == 3 and reopened.hits == 1
    reopened.close()


def test_weighted_fusion_settings_are_validated() -> None:
    from ingest.errors import ConfigError
    from rag.config import Settings
    from rag.retrieve import rrf

    assert Settings.resolve(host="http://127.0.0.1:1", dense_weight=0.7).dense_weight == 0.7
    with pytest.raises(ConfigError, match="dense weight"):
        Settings.resolve(host="http://127.0.0.1:1", dense_weight=1.5)
    fused = rrf([["a", "b"], ["b", "a"]], k=10, weights=[0.75, 0.25])
    assert fused["a"] > fused["b"]
    assert rrf([["a", "b"], ["b", "a"]], k=10)["a"] == pytest.approx(rrf([["a", "b"], ["b", "a"]], k=10)["b"])


def test_beir_run_sweeps_fusion_on_dev_and_reports_both_splits(ollama_server, tmp_path: Path) -> None:
    from rag.dev.evaluate import FUSION_GRID, import_jsonl, markdown, run_beir

    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = [("D1", "Vitamin D", "Vitamin D deficiency and bone health in older adults."),
            ("D2", "Statins", "Statins lower cholesterol and the risk of heart disease."),
            ("D3", "Green tea", "Green tea polyphenols and cancer prevention studies."),
            ("D4", "Fiber", "Dietary fiber from whole grains improves gut health.")]
    (folder / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in docs) + "\n", encoding="utf-8")
    queries = [("Q1", "vitamins for bones"), ("Q2", "statin and heart disease"), ("Q3", "tea and cancer")]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps({"_id": i, "text": t}) for i, t in queries) + "\n",
                                          encoding="utf-8")
    header = "query-id\tcorpus-id\tscore\n"
    (folder / "qrels" / "dev.tsv").write_text(header + "Q1\tD1\t2\nQ2\tD2\t1\n", encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(header + "Q3\tD3\t1\n", encoding="utf-8")
    import_jsonl(folder / "corpus.jsonl", tmp_path / "docs")
    result = run_beir("tiny", folder, tmp_path / "docs", ollama_server.url, "hash")
    assert set(result["splits"]) == {"dev", "test"}
    dev, test = result["splits"]["dev"], result["splits"]["test"]
    assert dev["questions"] == 2 and test["questions"] == 1
    assert len(dev["fusion"]) == len(FUSION_GRID) and "fusion" not in test
    assert test["modes"]["bm25"]["ndcg@10"] == 1.0  # "tea" and "cancer" only occur in D3
    assert {"ndcg@10", "recall@10", "recall@100"} <= set(test["modes"]["hybrid"])
    report = markdown([result])
    assert "### dev (2 queries)" in report and "**Best on dev:**" in report and "### test (1 queries)" in report


def test_main_writes_one_results_file_set(tmp_path: Path) -> None:
    from rag.dev.evaluate import main

    assert main(["--engine", "hash", "--dataset", "sample", "--no-sweep", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))
    assert [r["engine"] for r in data["results"]] == ["hash"]
    assert set(data["results"][0]["modes"]) == {"dense", "bm25", "hybrid"}
    report = (tmp_path / "eval.md").read_text(encoding="utf-8")
    assert "### Defaults (rag.config) and why" in report and "Run time:" in report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json", "eval.md"]
