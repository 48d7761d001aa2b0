"""Retrieval: exact cosine, MMR diversity, per-file cap, RRF, filters; then end to end over an index."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.errors import ConfigError
from rag.retrieve import chroma_where, cosine, match_sources, mmr, normalize_kinds, rrf


def test_cosine_is_exact_and_scale_free() -> None:
    m = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    got = cosine(m, np.array([2.0, 0.0]))
    assert got == pytest.approx([1.0, 0.0, 2**-0.5], abs=1e-6)
    assert cosine(np.zeros((0, 2)), np.array([1.0, 0.0])).shape == (0,)


def test_mmr_with_lambda_one_is_plain_ranking() -> None:
    rel = np.array([0.9, 0.8, 0.7])
    emb = np.eye(3)
    assert mmr(rel, emb, 3, 1.0) == [0, 1, 2]


def test_mmr_skips_near_duplicates() -> None:
    # 0 and 1 are the same passage; 2 is different and only slightly less relevant.
    emb = np.array([[1.0, 0.0], [1.0, 0.001], [0.0, 1.0]])
    rel = np.array([0.90, 0.89, 0.80])
    assert mmr(rel, emb, 2, 1.0) == [0, 1]
    assert mmr(rel, emb, 2, 0.7) == [0, 2]


def test_mmr_per_file_cap() -> None:
    rel = np.array([0.9, 0.85, 0.8, 0.75, 0.5])
    emb = np.eye(5)
    groups = ["a.md", "a.md", "a.md", "a.md", "b.md"]
    assert mmr(rel, emb, 4, 1.0, groups=groups, cap=2) == [0, 1, 4]
    assert mmr(rel, emb, 3, 1.0, groups=groups, cap=3) == [0, 1, 2]


def test_mmr_edge_cases() -> None:
    assert mmr(np.array([]), np.zeros((0, 3)), 5, 0.5) == []
    assert mmr(np.array([0.3]), np.ones((1, 3)), 5, 0.5) == [0]


def test_rrf_rewards_agreement() -> None:
    fused = rrf([["a", "b", "c"], ["c", "a", "d"]], k=60)
    order = sorted(fused, key=lambda i: -fused[i])
    assert order[:2] == ["a", "c"]
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)


def test_match_sources_glob_and_folder() -> None:
    sources = ["guide.md", "docs/setup.md", "docs/deep/api.md", "manual.pdf", "zh/微调.md"]
    assert match_sources(sources, "*.pdf") == ["manual.pdf"]
    assert match_sources(sources, "docs/*.md") == ["docs/setup.md", "docs/deep/api.md"]
    assert match_sources(sources, "**/*.md") == ["guide.md", "docs/setup.md", "docs/deep/api.md", "zh/微调.md"]
    assert match_sources(sources, "docs") == ["docs/setup.md", "docs/deep/api.md"]
    assert match_sources(sources, "./zh/") == ["zh/微调.md"]
    assert match_sources(sources, "nothing/*") == []


def test_kinds_accept_extensions_and_reject_unknown() -> None:
    assert normalize_kinds(["PDF", ".md", "markdown"]) == ["markdown", "pdf"]
    assert normalize_kinds(None) is None
    with pytest.raises(ConfigError, match="unknown file type"):
        normalize_kinds(["docx"])


def test_chroma_where() -> None:
    assert chroma_where(None, None) is None
    assert chroma_where(["a.md"], None) == {"source": {"$in": ["a.md"]}}
    assert chroma_where(["a.md"], ["pdf"]) == {
        "$and": [{"source": {"$in": ["a.md"]}}, {"kind": {"$in": ["pdf"]}}]
    }
