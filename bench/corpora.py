"""The benchmark's corpora, generated once into bench/cache/ (gitignored) and reused while unchanged.

- `nfcorpus`: NFCorpus (BEIR) as one text file per document, title + text.
- `pdfs`: the PDFs of /work/shared/corpus plus generated PDFs (NFCorpus sentences) up to a page target.
- `synthetic`: many small Markdown files of about 3 chunks each at rag's chunk size (400 tokens,
  60 overlap), three English (NFCorpus sentences) to one Chinese (sentences of the Chinese man pages).
  `edit_synthetic` changes 1% of them in place and `restore_synthetic` puts them back, so the 1%-edited
  re-run needs no second copy of the folder.

Every corpus comes with the 200 queries the query phase asks (`queries_for`).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / "cache"
SHARED = Path("/work/shared")
NFCORPUS = SHARED / "data" / "nfcorpus"
SHARED_PDFS = SHARED / "corpus" / "pdf"
CHINESE_TEXTS = SHARED / "corpus" / "zh"
QUERIES = 200
FILE_TOKENS = 880  # three 400-token windows with 60 tokens of overlap (and about three rag chunks)
EDIT_EVERY = 100  # 1% of the synthetic files are edited
GENERATED_PAGE_WORDS = 380


@dataclass(frozen=True)
class Corpus:
    name: str
    folder: Path
    files: int
    note: str  # what it holds, for the results


def _done_marker(folder: Path, spec: dict) -> Path:
    return folder.parent / (folder.name + ".json")


def _is_current(folder: Path, spec: dict) -> bool:
    marker = _done_marker(folder, spec)
    return folder.is_dir() and marker.exists() and json.loads(marker.read_text()).get("spec") == spec


def _mark(folder: Path, spec: dict, files: int) -> None:
    _done_marker(folder, spec).write_text(json.dumps({"spec": spec, "files": files}))


def _fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def nfcorpus(limit: int | None = None) -> Corpus:
    """One `.txt` file per NFCorpus document (`title\\n\\ntext`), named by its id."""
    folder = CACHE / ("nfcorpus" if limit is None else f"nfcorpus-{limit}")
    spec = {"v": 1, "limit": limit}
    docs = [json.loads(line) for line in (NFCORPUS / "corpus.jsonl").open(encoding="utf-8")][:limit]
    if not _is_current(folder, spec):
        _fresh(folder)
        for doc in docs:
            (folder / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}\n", encoding="utf-8")
        _mark(folder, spec, len(docs))
    return Corpus("nfcorpus", folder, len(docs), f"NFCorpus, {len(docs):,} documents, one .txt file each")


def _english_sentences() -> list[str]:
    sentences: list[str] = []
    for line in (NFCORPUS / "corpus.jsonl").open(encoding="utf-8"):
        text = json.loads(line)["text"]
        sentences.extend(s for s in re.split(r"(?<=[.!?])\s+", text) if 40 <= len(s) <= 400)
    return sentences


def _chinese_sentences() -> list[str]:
    """Sentences with Han characters from the shared Chinese man pages (not the HTML)."""
    sentences = []
    for path in sorted(CHINESE_TEXTS.glob("*.txt")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            for piece in re.split(r"(?<=[。！？；])", line.strip()):
                if len(re.findall(r"[\u4e00-\u9fff]", piece)) >= 8:
                    sentences.append(re.sub(r"\s+", " ", piece).strip())
    return sentences


def pdfs(page_target: int, include_shared: bool = True) -> Corpus:
    """The shared PDFs (when `include_shared`) plus generated 50-page PDFs until `page_target` pages."""
    from fpdf import FPDF
    from pypdf import PdfReader

    folder = CACHE / f"pdfs-{page_target}{'' if include_shared else '-generated'}"
    spec = {"v": 1, "pages": page_target, "shared": include_shared}
    if _is_current(folder, spec):
        meta = json.loads(_done_marker(folder, spec).read_text())
        return Corpus("pdfs", folder, meta["files"], meta["note"])
    _fresh(folder)
    pages = 0
    shared = sorted(SHARED_PDFS.glob("*.pdf")) if include_shared else []
    for path in shared:
        shutil.copy(path, folder / path.name)
        try:
            pages += len(PdfReader(path).pages)
        except Exception:  # the encrypted sample cannot be opened without its password: no pages count
            pass
    rng = random.Random(11)
    sentences = _english_sentences()
    generated = 0
    while pages < page_target:
        doc = FPDF()
        doc.set_font("Helvetica", size=10)
        doc.set_auto_page_break(False)
        n = min(50, page_target - pages)
        for page in range(n):
            doc.add_page()
            words: list[str] = []
            while len(words) < GENERATED_PAGE_WORDS:
                words.extend(rng.choice(sentences).split())
            text = " ".join(words).encode("latin-1", "replace").decode("latin-1")
            doc.multi_cell(0, 4.2, f"Report {generated}, section {page + 1}. {text}")
        doc.output(str(folder / f"generated-{generated:03}.pdf"))
        pages += n
        generated += 1
    files = len(shared) + generated
    note = (f"{len(shared)} shared PDFs + {generated} generated, {pages:,} readable pages"
            if include_shared else f"{generated} generated PDFs, {pages:,} pages")
    (folder.parent / (folder.name + ".json")).write_text(json.dumps({"spec": spec, "files": files, "note": note}))
    return Corpus("pdfs", folder, files, note)


class _SyntheticText:
    """File i's text, the same on every call (so 1% edits can be undone without a second copy)."""

    def __init__(self) -> None:
        import tiktoken
        from offline import tiktoken_cache

        tiktoken_cache()
        enc = tiktoken.get_encoding("cl100k_base")
        english = _english_sentences()[:30000]
        chinese = _chinese_sentences()
        self.english = [(s, len(enc.encode(s))) for s in english]
        self.chinese = [(s, len(enc.encode(s))) for s in chinese]

    def text(self, i: int, edited: bool = False) -> str:
        rng = random.Random(i * 7919 + 3)
        pool = self.chinese if i % 4 == 3 else self.english
        joiner = "" if pool is self.chinese else " "
        paragraphs, paragraph, tokens, para_tokens = [], [], 0, 0
        while tokens < FILE_TOKENS:
            sentence, n = rng.choice(pool)
            paragraph.append(sentence)
            tokens, para_tokens = tokens + n, para_tokens + n
            if para_tokens > 110:
                paragraphs.append(joiner.join(paragraph))
                paragraph, para_tokens = [], 0
        if paragraph:
            paragraphs.append(joiner.join(paragraph))
        if edited:  # a changed middle paragraph: the file's chunks all move, as after a real edit
            paragraphs[len(paragraphs) // 2] = f"Edited note {i}: " + joiner.join(
                rng.choice(pool)[0] for _ in range(3))
        title = f"# 笔记 {i}" if pool is self.chinese else f"# Note {i}"
        return title + "\n\n" + "\n\n".join(paragraphs) + "\n"


def _synthetic_path(folder: Path, i: int) -> Path:
    return folder / f"d{i // 1000:03}" / f"note{i:06}.md"


def synthetic(files: int) -> Corpus:
    """`files` Markdown notes in folders of 1,000."""
    folder = CACHE / f"synthetic-{files}"
    spec = {"v": 2, "files": files, "tokens": FILE_TOKENS}
    if not _is_current(folder, spec):
        _fresh(folder)
        gen = _SyntheticText()
        for i in range(files):
            path = _synthetic_path(folder, i)
            path.parent.mkdir(exist_ok=True)
            path.write_text(gen.text(i), encoding="utf-8")
        _mark(folder, spec, files)
    else:
        restore_synthetic(folder, files)
    return Corpus("synthetic", folder, files, f"{files:,} generated notes (3 English : 1 Chinese), ~{FILE_TOKENS} tokens each")


def _edited_ids(files: int) -> range:
    return range(0, files, EDIT_EVERY)


def edit_synthetic(corpus: Corpus) -> int:
    """Edit 1% of the notes in place; returns how many."""
    gen = _SyntheticText()
    ids = _edited_ids(corpus.files)
    for i in ids:
        _synthetic_path(corpus.folder, i).write_text(gen.text(i, edited=True), encoding="utf-8")
    (corpus.folder.parent / (corpus.folder.name + ".edited")).touch()
    return len(ids)


def restore_synthetic(folder: Path, files: int) -> None:
    """Undo `edit_synthetic` (only when it ran: restoring rewrites the files and their mtimes)."""
    flag = folder.parent / (folder.name + ".edited")
    if not flag.exists():
        return
    gen = _SyntheticText()
    for i in _edited_ids(files):
        _synthetic_path(folder, i).write_text(gen.text(i), encoding="utf-8")
    flag.unlink()


def queries_for(corpus: Corpus) -> list[str]:
    """200 questions: NFCorpus test queries for NFCorpus; a 3:1 English/Chinese mix for the others."""
    rows = [json.loads(line) for line in (NFCORPUS / "queries.jsonl").open(encoding="utf-8")]
    test_ids = {line.split("\t")[0] for line in (NFCORPUS / "qrels" / "test.tsv").read_text().splitlines()[1:]}
    english = [r["text"] for r in rows if r["_id"] in test_ids]
    if corpus.name == "nfcorpus":
        return (english * 2)[:QUERIES]
    rng = random.Random(5)
    chinese = [s[:24] for s in rng.sample(_chinese_sentences(), QUERIES // 4)]
    return [chinese[i // 4] if i % 4 == 3 else english[i] for i in range(QUERIES)]
