"""A PDF's fonts are parsed once per document, not once per page, and its text stays the same."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf.generic._font as pypdf_font
import pytest
from fpdf import FPDF
from pypdf import PdfReader

from ingest.loaders import load
from ingest.pdf_fonts import fonts_parsed_once

SAMPLE_DOCS = Path(__file__).resolve().parent.parent / "sample_docs"


def _two_font_pdf(pages: int) -> bytes:
    pdf = FPDF()
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 8, f"Page {number} in Helvetica.", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("times", size=12)
        pdf.multi_cell(0, 8, f"Page {number} in Times.")
    return bytes(pdf.output())


def _texts(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


@pytest.fixture
def fonts_built(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every font dictionary pypdf reads an encoding (and /ToUnicode CMap) from: one per Font built."""
    built: list[object] = []
    read_encoding = pypdf_font.get_encoding

    def spy(font_dict: object) -> object:
        built.append(font_dict)
        return read_encoding(font_dict)  # type: ignore[arg-type]

    monkeypatch.setattr(pypdf_font, "get_encoding", spy)
    return built


def test_indexing_a_pdf_parses_each_font_once(tmp_path: Path, fonts_built: list[object]) -> None:
    path = tmp_path / "two-fonts.pdf"
    path.write_bytes(_two_font_pdf(6))
    docs = load(path, tmp_path).documents
    assert [d.page for d in docs] == [1, 2, 3, 4, 5, 6]
    assert "Page 6 in Helvetica." in docs[5].text and "Page 6 in Times." in docs[5].text
    assert len(fonts_built) == 2  # not 12: one per font, not one per font per page


def test_the_fonts_are_not_kept_past_the_document(fonts_built: list[object]) -> None:
    data = _two_font_pdf(3)
    with fonts_parsed_once():
        _texts(data)
    assert len(fonts_built) == 2
    _texts(data)
    assert len(fonts_built) == 2 + 3 * 2


@pytest.mark.parametrize("data", [
    pytest.param(lambda: _two_font_pdf(4), id="two-fonts"),
    pytest.param(lambda: (SAMPLE_DOCS / "tidepool-admin-manual.pdf").read_bytes(), id="english"),
    pytest.param(lambda: (SAMPLE_DOCS / "ollama-deployment.zh.pdf").read_bytes(), id="chinese"),
])
def test_every_page_reads_as_pypdf_alone_reads_it(data: object) -> None:
    pdf = data()  # type: ignore[operator]
    alone = _texts(pdf)
    with fonts_parsed_once():
        shared = _texts(pdf)
    assert shared == alone
    assert all(text.strip() for text in alone)
