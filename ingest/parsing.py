"""Files to chunks: hash, load and chunk each file to index, in a process pool when parsing is heavy.

Results come back in the order they finish, not the order they were given, so one long PDF does not
hold back the files behind it; the biggest files start first, and a big PDF is read by every worker
at once, each taking every n-th page, then joined here. Only whole files leave this module.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import multiprocessing.connection
import os
import re
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingest.chunking import chunk_document
from ingest.errors import LoadError
from ingest.lexical import term_counts
from ingest.loaders import LoadLimits, check_pdf_parts, load
from ingest.records import Chunk, Skip
from ingest.state import file_sha256

# Below this many files to load (and POOL_MIN_PDF_BYTES of PDFs), a process pool costs more to start than it saves.
POOL_MIN_FILES = 32
# With ``workers`` left to choose (0), the pool is used only where parsing is heavy: a worker takes about
# half a second to start (imports), and text files parse at about 1 ms each, so on NFCorpus (3,633 files) the
# pool made a first ingest slower (1,000 files: 9.1 s with two workers, 8.0 s in one process). PDFs
# parse at well under 1 MB/s in pypdf, and past this many bytes of them the pool pays for itself.
POOL_MIN_PDF_BYTES = 1 << 20
# ... or this many files of any kind, where the start-up is a small share of the parsing moved off the
# process that writes the index.
POOL_MIN_ANY_FILES = 20_000
# A PDF this big is shared by all the workers, each reading every n-th page: pypdf reads it at roughly
# 0.3-1 MB/s, against a few milliseconds for each worker to open it (a 1.2 MB, 175-page PDF: 4.2 s to
# read, 0.05 s to open).
SPLIT_PDF_BYTES = 256 * 1024
# Files handed to the pool ahead of the one being written, per worker: the workers never wait for the
# writer, and few parsed files wait in memory.
AHEAD_PER_WORKER = 4
_PAGE_RE = re.compile(r"#page=(\d+)$")


@dataclass(frozen=True)
class LoadJob:
    """One file to hash, and if changed, load and chunk (runs in a worker process)."""

    path: str
    root: str
    rel: str
    old_sha: str
    chunk_tokens: int
    chunk_overlap: int
    limits: LoadLimits = field(default_factory=LoadLimits)
    size: int = 0  # bytes, when the file was listed: the biggest files start first
    part: int = 0  # of a PDF read in ``parts`` (pages part+1, part+1+parts, ...)
    parts: int = 1

    @property
    def is_pdf(self) -> bool:
        return self.rel.lower().endswith(".pdf")


@dataclass
class Loaded:
    """What a worker made of one file (or of one part of a PDF, before `_join`)."""

    rel: str
    sha256: str = ""
    size: int = -1
    mtime: float = -1.0
    chunks: list[Chunk] | None = None  # None: same content as recorded (only touched)
    warnings: list[Skip] = field(default_factory=list)
    skipped: str | None = None
    part: int = 0
    parts: int = 1
    page_failures: list[tuple[int, str]] = field(default_factory=list)  # a part's, for `_join`
    chars: int = 0  # a part's characters of text, for `_join`


def pool_size(workers: int, jobs: list[LoadJob]) -> int:
    """The processes to parse ``jobs`` with: the ``workers`` setting, or if 0, one per core when parsing is heavy."""
    if workers:
        return workers
    heavy = _pdf_bytes(jobs) >= POOL_MIN_PDF_BYTES or len(jobs) >= POOL_MIN_ANY_FILES
    return (os.cpu_count() or 1) if heavy else 1


def parse_files(jobs: list[LoadJob], workers: int, notices: list[Skip]) -> Iterator[Loaded]:
    """Each job's file loaded and chunked (or skipped), once, whole, in the order they finish.

    If the pool cannot start, a notice is added to ``notices`` and the rest is parsed in this process.
    """
    done: set[str] = set()
    if workers > 1 and (len(jobs) >= POOL_MIN_FILES or _pdf_bytes(jobs) >= POOL_MIN_PDF_BYTES):
        try:
            for loaded in _pooled(jobs, workers):
                done.add(loaded.rel)
                yield loaded
        except cf.process.BrokenProcessPool:
            # The workers (or their fork server) import the caller's main module: a script without an
            # `if __name__ == "__main__":` guard kills them. Finish in this process instead.
            notices.append(Skip(
                "workers", "the parsing processes could not start (is the calling script missing an "
                "`if __name__ == \"__main__\":` guard?); parsed in one process instead (workers=1 skips the pool)",
            ))
    for job in jobs:
        if job.rel not in done:
            yield load_file(job)


def load_file(job: LoadJob) -> Loaded:
    """Hash, load and chunk one file (or one part of a PDF). Never raises: any failure becomes ``skipped``."""
    out = Loaded(job.rel, part=job.part, parts=job.parts)
    try:
        stat = os.stat(job.path)
        out.size, out.mtime = stat.st_size, stat.st_mtime
        out.sha256 = file_sha256(Path(job.path))
        if job.old_sha and out.sha256 == job.old_sha:
            return out  # touched, not changed
        loaded = load(Path(job.path), Path(job.root), job.limits, part=job.part, parts=job.parts)
        out.warnings = list(loaded.warnings)
        # Counting each chunk's BM25 terms here, in the worker, takes it off the one writer process.
        chunks = [
            replace(c, terms=term_counts(c.text))
            for doc in loaded.documents
            for c in chunk_document(doc, chunk_tokens=job.chunk_tokens, chunk_overlap=job.chunk_overlap)
        ]
        if not chunks and job.parts == 1:
            out.skipped = "no text to index"
        out.chunks = chunks
        out.page_failures, out.chars = list(loaded.page_failures), loaded.chars
    except LoadError as exc:
        out.skipped = str(exc)
    except OSError as exc:
        out.skipped = f"unreadable: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the run
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        out.skipped = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return out


def _pooled(jobs: list[LoadJob], workers: int) -> Iterator[Loaded]:
    tasks = deque(
        replace(job, part=i, parts=n)
        for job in sorted(jobs, key=lambda j: -j.size)
        for n in [workers if job.is_pdf and job.size >= SPLIT_PDF_BYTES else 1]
        for i in range(n)
    )
    job_of = {job.rel: job for job in jobs}
    partial: dict[str, list[Loaded]] = {}
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_exit_with_parent) as pool:
        running: set[cf.Future[Loaded]] = set()
        while tasks or running:
            while tasks and len(running) < workers * AHEAD_PER_WORKER:
                running.add(pool.submit(load_file, tasks.popleft()))
            finished, running = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                loaded = future.result()
                if loaded.parts == 1:
                    yield loaded
                    continue
                got = partial.setdefault(loaded.rel, [])
                got.append(loaded)
                if len(got) == loaded.parts:
                    job = job_of[loaded.rel]
                    # Each part read the file for itself: if it changed in between, read it again, whole.
                    yield _join(partial.pop(loaded.rel), job.limits) or load_file(job)


def _exit_with_parent() -> None:
    """Run in each worker: end it when the process that asked for it dies (kill -9 included). A worker
    holds both ends of the pool's job queue itself, so it would otherwise wait for work forever, and
    the fork server with it."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="rag-parse-parent", daemon=True).start()


def _context() -> multiprocessing.context.BaseContext:
    """Not fork: the calling process has threads (Chroma, the lock heartbeat), which fork does not copy
    safely. A fork server, where there is one, imports the caller's main module and the parsers once and
    forks each worker from itself: spawned workers pay those imports each (~0.7 s of CPU per worker)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__, "ingest.parse_preload"])
    return context


def _join(parts: list[Loaded], limits: LoadLimits) -> Loaded | None:
    """The parts of one PDF as the one `Loaded` that reading it whole would have given; None when the
    parts read different versions of the file."""
    parts.sort(key=lambda p: p.part)
    first = parts[0]
    if len({(p.sha256, p.size, p.mtime) for p in parts}) > 1:
        return None
    out = Loaded(first.rel, first.sha256, first.size, first.mtime)
    skipped = next((p.skipped for p in parts if p.skipped is not None), None)
    if skipped is not None:
        out.skipped = skipped
        return out
    if first.chunks is None:
        return out  # touched, not changed
    # Each page is read by one part, whole, so ordering by page restores the file's order.
    out.chunks = sorted((c for p in parts for c in p.chunks or ()), key=lambda c: c.page or 0)
    try:
        check_pdf_parts(chars=sum(p.chars for p in parts), has_text=bool(out.chunks),
                        page_failures=[f for p in parts for f in p.page_failures],
                        limits=limits, size=first.size)
    except LoadError as exc:
        out.chunks, out.skipped = None, str(exc)
        return out
    out.warnings = sorted((w for p in parts for w in p.warnings), key=_warning_page)
    return out


def _warning_page(warning: Skip) -> int:
    match = _PAGE_RE.search(warning.path)
    return int(match.group(1)) if match else 0


def _pdf_bytes(jobs: list[LoadJob]) -> int:
    return sum(job.size for job in jobs if job.is_pdf)
