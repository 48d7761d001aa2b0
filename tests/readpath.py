"""A small English + Chinese corpus (Markdown, text, a 3-page PDF), indexed against the bundled server.

Shared by the read-path tests (test_retrieve, test_answer, test_chat, test_cli_ask).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.indexer import index_folder
from rag.config import Settings

GUIDE = """# Garden guide

## Watering tomatoes

Water tomato plants deeply twice a week. Shallow daily watering makes roots lazy and weak.

## Pruning roses

Prune roses in late winter, just before the buds swell. Cut above an outward-facing bud.

## Composting

A compost pile needs green material, brown material, air and moisture. Turn it every two weeks.
"""

FINE_TUNING = """# 微调

微调是在预训练模型的基础上，用特定领域的数据继续训练模型的参数。

微调需要准备标注数据，并且需要显卡等计算资源。训练完成后，模型的权重会改变。
"""

RAG_ZH = """# 检索增强生成

检索增强生成先从文档库中检索相关段落，再让大语言模型根据这些段落回答问题。

它不需要重新训练模型，文档更新后只要重新建立索引即可。回答可以附上引用，方便核对来源。
"""

NOTES = "Bicycle maintenance: oil the chain every month.\n\nCheck tyre pressure before long rides.\n"

PDF_PAGES = [
    "Dishwasher manual. Model DW-200. Read all safety instructions before first use.",
    "Warranty. The dishwasher warranty lasts two years from the date of purchase. "
    "Keep the receipt as proof of purchase.",
    "Cleaning the filter. Remove the filter at the bottom of the tub every month and rinse it under warm water.",
]

# One file with many similar chunks, to test the per-file cap and MMR.
LONG = "# Espresso log\n\n" + "\n\n".join(
    f"## Shot {i}\n\nEspresso shot {i}: espresso grind size fine, espresso dose eighteen grams, "
    f"espresso yield thirty six grams, espresso time twenty {i} seconds."
    for i in range(1, 9)
)


def write_pdf(path: Path, pages: list[str]) -> None:
    """A PDF with one paragraph per page."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))


def make_corpus(root: Path) -> Path:
    """Write the corpus under ``root/docs``."""
    docs = root / "docs"
    (docs / "zh").mkdir(parents=True)
    (docs / "guide.md").write_text(GUIDE, encoding="utf-8")
    (docs / "zh" / "微调.md").write_text(FINE_TUNING, encoding="utf-8")
    (docs / "zh" / "rag.md").write_text(RAG_ZH, encoding="utf-8")
    (docs / "notes.txt").write_text(NOTES, encoding="utf-8")
    (docs / "espresso.md").write_text(LONG, encoding="utf-8")
    write_pdf(docs / "manual.pdf", PDF_PAGES)
    return docs


def indexed_settings(server: Any, tmp_path: Path, **overrides: Any) -> Settings:
    """Read-path settings for the corpus, indexed against ``server`` with small chunks."""
    settings = Settings.resolve(host=server.url, db=tmp_path / "db", **overrides)
    index = settings.index.__class__(**{**settings.index.__dict__, "chunk_tokens": 60, "chunk_overlap": 0})
    report = index_folder(make_corpus(tmp_path), index)
    assert not report.skipped, report.skipped
    return settings.with_(index=index)


def requests_to(server: Any, path: str) -> list[dict[str, Any]]:
    """JSON bodies the server received on ``path``."""
    return [r.json or {} for r in server.requests if r.path == path]
