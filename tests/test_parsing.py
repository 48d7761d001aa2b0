"""Parsing in a process pool: a long PDF shared by the workers reads exactly as if one process read it."""

from __future__ import annotations

from pathlib import Path

import pytest
from readpath import write_pdf

import ingest.parsing as parsing
from ingest.loaders import LoadLimits
from ingest.parsing import Loaded, LoadJob, parse_files


@pytest.fixture
def split_every_pdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pool and split even a small PDF, as the real thresholds do for megabytes of them."""
    monkeypatch.setattr(parsing, "POOL_MIN_PDF_BYTES", 1)
    monkeypatch.setattr(parsing, "SPLIT_PDF_BYTES", 1)


def _jobs(folder: Path, limits: LoadLimits | None = None) -> list[LoadJob]:
    return [LoadJob(str(p), str(folder), p.name, "", 60, 10, limits or LoadLimits(), size=p.stat().st_size)
            for p in sorted(folder.iterdir())]


def _by_file(jobs: list[LoadJob], workers: int) -> dict[str, Loaded]:
    notices: list = []
    out = {loaded.rel: loaded for loaded in parse_files(jobs, workers, notices)}
    assert not notices
    return out


def _pages(count: int, blank: set[int] = frozenset()) -> list[str]:
    return ["" if n in blank else f"Page {n} explains step {n} of the espresso routine. " * 12
            for n in range(1, count + 1)]


def test_a_long_pdf_read_by_two_workers_gives_the_chunks_and_warnings_of_one_process(
    tmp_path: Path, split_every_pdf: None
) -> None:
    write_pdf(tmp_path / "manual.pdf", _pages(9, blank={4}))
    write_pdf(tmp_path / "short.pdf", _pages(2))
    (tmp_path / "notes.txt").write_text("Grind finer when the shot runs fast.\n")
    jobs = _jobs(tmp_path)

    pooled, whole = _by_file(jobs, 2), {j.rel: parsing.load_file(j) for j in jobs}

    assert pooled.keys() == whole.keys() == {"manual.pdf", "short.pdf", "notes.txt"}
    for rel, loaded in pooled.items():
        expected = whole[rel]
        assert [c.id for c in loaded.chunks or ()] == [c.id for c in expected.chunks or ()], rel
        assert loaded.warnings == expected.warnings and loaded.skipped is expected.skipped is None
        assert (loaded.sha256, loaded.size, loaded.mtime) == (expected.sha256, expected.size, expected.mtime)
    manual = pooled["manual.pdf"]
    assert [c.page for c in manual.chunks or ()] == sorted(c.page for c in manual.chunks or ())
    assert {c.page for c in manual.chunks or ()} == {1, 2, 3, 5, 6, 7, 8, 9}
    assert [w.path for w in manual.warnings] == ["manual.pdf#page=4"]


def test_a_pdf_with_no_text_in_any_part_is_skipped_with_the_reason_reading_it_whole_gives(
    tmp_path: Path, split_every_pdf: None
) -> None:
    write_pdf(tmp_path / "scan.pdf", _pages(5, blank={1, 2, 3, 4, 5}))
    job = _jobs(tmp_path)[0]

    pooled = _by_file([job], 2)["scan.pdf"]

    assert pooled.skipped == parsing.load_file(job).skipped == "no extractable text in PDF (scanned images?)"
    assert not pooled.chunks


def test_the_text_budget_counts_every_part_of_a_pdf(tmp_path: Path, split_every_pdf: None) -> None:
    write_pdf(tmp_path / "long.pdf", _pages(6))
    whole_chars = sum(len(p.strip()) for p in _pages(6))
    # Each of two parts reads about half: under the limit alone, over it together.
    limits = LoadLimits(max_text_chars=int(whole_chars * 0.8))
    job = _jobs(tmp_path, limits)[0]

    pooled = _by_file([job], 2)["long.pdf"]

    assert pooled.skipped is not None and "max_text_chars" in pooled.skipped
    assert pooled.skipped == parsing.load_file(job).skipped
    assert not pooled.chunks


def test_parts_that_read_different_versions_of_a_pdf_are_not_joined() -> None:
    # Each worker reads the file for itself; one saved over it in between must not mix two versions.
    old = Loaded("manual.pdf", "a" * 64, 1000, 1.0, chunks=[], part=0, parts=2)
    new = Loaded("manual.pdf", "b" * 64, 1200, 2.0, chunks=[], part=1, parts=2)

    assert parsing._join([old, new], LoadLimits()) is None
    same = parsing._join([old, Loaded("manual.pdf", "a" * 64, 1000, 1.0, chunks=[], part=1, parts=2)], LoadLimits())
    assert same is not None and same.skipped == "no extractable text in PDF (scanned images?)"


def test_chunks_whose_terms_a_worker_counted_rank_as_chunks_the_index_counts_itself(
    tmp_path: Path, split_every_pdf: None
) -> None:
    from dataclasses import replace

    from ingest.lexical import LexicalIndex

    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "manual.pdf", _pages(4))
    (folder / "notes.zh.txt").write_text("检索增强生成把文档切成小块。喝水很重要，咖啡也要适量。\n" * 8, encoding="utf-8")
    (folder / "tips.md").write_text("# Grinding\n\nGrind finer when espresso shots run fast; studies agree.\n")
    chunks = [c for loaded in _by_file(_jobs(folder), 2).values() for c in loaded.chunks or ()]
    assert chunks and all(c.terms for c in chunks)

    counted = LexicalIndex.open(tmp_path / "counted", "docs")
    recounted = LexicalIndex.open(tmp_path / "recounted", "docs")
    counted.add(chunks)
    recounted.add([replace(c, terms=None) for c in chunks])
    for query in ("espresso routine step", "studies grinding", "检索", "水", "咖啡 适量"):
        found = counted.search(query, 5)
        assert found and found == recounted.search(query, 5), query
