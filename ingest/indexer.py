"""Keep a collection in sync with a folder: embed new and changed files, drop deleted ones.

The pipeline has three stages joined by bounded queues, so memory stays flat and the slowest stage
sets the pace: files are hashed, parsed and chunked in a process pool (all cores), groups of chunks
are embedded with up to ``parallel`` requests in flight, and one writer (this thread) stores them.

Each group is committed in the order that survives a crash at any moment (`ingest.state`):
chunks into Chroma, then the file records and postings in one SQLite transaction, then the replaced
chunks out of Chroma. Before every commit the writer checks that it still holds the collection's
lock (`ingest.lock`). At the start of a run, the cheap consistency check (counts) repairs what a
crash or a damaged store left: orphan chunks are deleted, files whose chunks went missing are
re-embedded.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import os
import socket
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ingest.config import IndexSettings
from ingest.embedder import Embedder, EmbedderPool, max_chunk_tokens
from ingest.errors import (
    CollectionNotFound,
    ConfigError,
    IndexLocked,
    IndexMismatch,
    RagError,
    StoreError,
)
from ingest.language import HanShare
from ingest.loaders import LoadLimits
from ingest.lock import WriterLock, lock_name
from ingest.parsing import Loaded, LoadJob, parse_files, pool_size
from ingest.paths import source_name
from ingest.records import Chunk, IndexReport, Notice, Skip
from ingest.state import FileRecord, IndexState, state_path
from ingest.store import Store, destroy_embedded
from ingest.verify import reinsert, unreachable
from ingest.walk import discover

TOKENIZER = "cl100k_base"
# Chunks wait for the embedder in groups of this many batches: big enough to fill batches
# across many small files, small enough that memory stays flat.
BUFFER_BATCHES = 4
# The share of the index replaced or removed since the last reachability check that triggers the next one
# (bench/results/reliability.md: editing 30% of a folder replaced 9% of its chunks and left 0.5-0.7% unreachable).
RELINK_CHURN = 0.05
CHURN_KEY = "deleted_since_reach_check"
# Other clients learn of new commits (the generation) and the lock is re-checked at most this often.
PUBLISH_SECONDS = 2.0
# The state commits after this many chunks or COMMIT_SECONDS, not after every group (see `_commit_groups`);
# readers see new files at most COMMIT_SECONDS late. At 30k chunks a commit every 2 s held ~250 chunks,
# and the postings then cost 2.2 ms per chunk.
STATE_COMMIT_CHUNKS = 2048
COMMIT_SECONDS = 10.0
LEGACY_MANIFEST = ".manifest.json"
LEGACY_LEXICAL = ".lexical.sqlite"


@dataclass(frozen=True)
class Progress:
    """Where an index run is, for a progress bar."""

    files_done: int
    files_total: int
    chunks: int
    current: str
    elapsed: float


ProgressFn = Callable[[Progress], None]


@dataclass
class _Group:
    """Whole files whose chunks are embedded and committed together."""

    files: list[Loaded] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)


def wanted_fingerprint(settings: IndexSettings, embedder: Embedder | EmbedderPool) -> dict[str, Any]:
    """The fingerprint these settings would write (the dimension comes from the server)."""
    return {
        "embed_model": embedder.model,
        "document_prefix": embedder.document_prefix,
        "query_prefix": embedder.query_prefix,
        "normalized": True,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "tokenizer": TOKENIZER,
    }


def embedding_text(chunk: Chunk) -> str:
    """What gets embedded: the heading path gives a chunk the context its text may lack."""
    return f"{chunk.heading}\n\n{chunk.text}" if chunk.heading else chunk.text


def cache_dir(settings: IndexSettings) -> Path:
    """Where the state file lives: beside the embedded store, or a per-server cache folder in ``db``."""
    if not settings.chroma_url:
        return settings.db
    safe = "".join(ch if ch.isalnum() else "_" for ch in settings.chroma_url.split("://", 1)[-1]).strip("_")
    return settings.db / "servers" / safe


def open_store(settings: IndexSettings, *, create: bool = False) -> Store:
    return Store.open(settings.db, settings.collection, create=create, chroma_url=settings.chroma_url,
                      chroma_token=settings.chroma_token)


def reset_index(settings: IndexSettings, store: Store | None = None) -> list[Skip]:
    """Delete the collection and its state (for --rebuild). Works even when Chroma cannot open the store:
    then Chroma's files are removed from ``db`` (embedded mode only). Returns warnings."""
    warnings: list[Skip] = []
    try:
        (store or open_store(settings)).drop()
    except StoreError as exc:
        if settings.chroma_url or isinstance(exc, CollectionNotFound) or not settings.db.exists():
            pass
        else:
            destroy_embedded(settings.db)
            warnings.append(Skip(str(settings.db), "Chroma could not open the store; its files were removed"))
    folder = cache_dir(settings)
    for path in (state_path(folder, settings.collection),
                 folder / f"{settings.collection}{LEGACY_MANIFEST}", folder / f"{settings.collection}{LEGACY_LEXICAL}"):
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    return warnings


def root_label(root: Path) -> str:
    """The indexed folder as stored: "host:/abs/path", so two machines sharing a server can tell."""
    return f"{socket.gethostname()}:{root}"


class Indexer:
    """One sync run of a folder into a collection."""

    def __init__(self, root: Path, settings: IndexSettings, progress: ProgressFn | None = None,
                 *, store: Store | None = None) -> None:
        self.root = root
        self.settings = settings
        self.progress = progress
        self.report = IndexReport()
        self.store = store or open_store(settings, create=True)
        self.state, damaged = open_or_replace_state(cache_dir(settings), settings.collection)
        if damaged:
            self.report.warnings.append(Skip(damaged, "the index state was unreadable; moved aside and rebuilt"))
        self.embedder = EmbedderPool(settings)
        self.lock = WriterLock(self.store, wait=settings.lock_wait)
        self._chunk_limits: tuple[int, int] | None = None
        self._fingerprinted = False
        self._started = time.monotonic()
        self._done = 0
        self._total = 0
        self._chunks_seen = 0
        self._uncommitted: list[_Group] = []  # groups in the open state transaction
        self._stale: list[str] = []  # chunk ids those groups replaced (trashed in the same transaction)
        self._last_commit = time.monotonic()
        self._last_check = 0.0  # monotonic time of the last lock check
        self._last_publish = time.monotonic()
        self._unpublished = False
        self.han = HanShare()  # how Chinese the text read in this run is (the embedding-model warning)

    def run(self) -> IndexReport:
        """Sync the folder; return what changed."""
        try:
            with self.lock:
                self.report.warnings.extend(Skip(self.store.name, w) for w in self.lock.warnings)
                return self._run()
        finally:
            self.embedder.close()
            self.state.close()
            self.store.close()

    # -- the run -------------------------------------------------------------------------------

    def _run(self) -> IndexReport:
        self._check_root()
        self.store.check_fingerprint(wanted_fingerprint(self.settings, self.embedder))
        self._sync_state_with_store()
        self._check_consistency()
        records = self.state.files()
        jobs: list[LoadJob] = []
        touched: list[FileRecord] = []
        seen: set[str] = set()
        for item in discover(
            self.root, include_hidden=self.settings.include_hidden, max_file_bytes=self.settings.max_file_bytes
        ):
            if isinstance(item, Notice):
                self.report.warnings.append(Skip(item.path, item.reason))
                continue
            if isinstance(item, Skip):
                self.report.skipped.append(item)
                seen.add(item.path)  # its old chunks stay: nothing indexed is lost
                continue
            rel = source_name(item.relative_to(self.root).as_posix())
            seen.add(rel)
            old = records.get(rel)
            try:
                st = item.stat()
            except OSError as exc:
                self.report.skipped.append(Skip(rel, f"unreadable: {exc.strerror or exc}"))
                continue
            if old and old.skipped is None and old.size == st.st_size and old.mtime == st.st_mtime:
                self.report.unchanged.append(rel)
                continue
            jobs.append(LoadJob(str(item), str(self.root), rel, old.sha256 if old else "", 0, 0, size=st.st_size))
        self._total = len(self.report.unchanged) + len(jobs)
        self._done = len(self.report.unchanged)
        if jobs:
            size, overlap = self._chunk_sizes()
            limits = LoadLimits.from_settings(self.settings)
            jobs = [replace(j, chunk_tokens=size, chunk_overlap=overlap, limits=limits) for j in jobs]
            self._pipeline(jobs, records, touched)
        self._remove_missing(records, seen)
        self._relink_after_churn()
        self._finish()
        self.report.embed_requests = self.embedder.requests
        self.report.hosts = self.embedder.requests_by_host()
        for host, why in self.embedder.down.items():
            self.report.warnings.append(Skip(host, f"embedding host set aside, its work went to the others: {why}"))
        self.report.seconds = time.monotonic() - self._started
        return self.report

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise ConfigError(f"{self.root} is not a folder — pass the folder of documents to index")
        # This client's last folder (its state file). On a shared Chroma server another machine,
        # with its own state cache, indexes its own copy of the folder; but one client switching
        # folders would silently replace one document set with another.
        previous = self.state.get_meta("root")
        if previous and previous != str(self.root) and self.state.chunk_count() > 0:
            raise IndexMismatch(
                f"collection '{self.settings.collection}' in {self.store.where} indexes {previous}, "
                f"not {self.root} — use another --collection, or --rebuild to replace it"
            )
        self.store.set_root(root_label(self.root))

    def _sync_state_with_store(self) -> None:
        """Bring the state file in line with the store before trusting it.

        - written by an older version (JSON manifest, no passages), or postings under older term rules:
          rebuild it from the store's chunks and metadata (nothing is re-embedded);
        - the store's generation is ahead (another client wrote, or a crash came between a commit
          and recording its generation): rebuild it from the store;
        - the store's generation is behind (the store was damaged, restored or recreated): keep
          the records; the consistency check then re-embeds what the store lost.
        """
        legacy = cache_dir(self.settings) / f"{self.settings.collection}{LEGACY_MANIFEST}"
        store_gen = self.store.generation()
        state_gen = int(self.state.get_meta("generation", "0") or 0)
        if store_gen < state_gen or (store_gen == state_gen and not self.state.lexical.outdated
                                      and self.state.passages_ready and not legacy.exists()):
            if store_gen != state_gen:
                self.state.begin()
                self.state.set_meta("generation", str(store_gen))
                self.state.commit()
            return
        if self.store.count() == 0 and self.state.chunk_count() == 0 and not legacy.exists():
            self.state.begin()
            self.state.lexical.reset()
            self.state.set_meta("generation", str(store_gen))
            self.state.commit()
            return
        n = rebuild_state(self.state, self.store, store_gen)
        if legacy.exists():
            _apply_legacy_manifest(self.state, legacy)
            legacy.unlink(missing_ok=True)
            (cache_dir(self.settings) / f"{self.settings.collection}{LEGACY_LEXICAL}").unlink(missing_ok=True)
        self.report.warnings.append(Skip(self.state.path.name if self.state.path else "state",
                                         f"rebuilt the index state from {n} stored chunks"))

    def _check_consistency(self) -> None:
        """The cheap check of every run: replay the trash, then compare counts; repair on a mismatch."""
        trash = self.state.trash()
        if trash:
            self.store.delete(trash)
            self.state.begin()
            self.state.clear_trash(trash)
            self.state.commit()
        if self.store.count() == self.state.chunk_count() == self.state.recorded_chunks() == self.state.lexical.count():
            return
        self.state.begin()
        self.state.recount()
        self.state.commit()
        stored = set(self.store.iter_ids())
        owned: dict[str, str] = dict(self.state.iter_docs())
        orphans = sorted(stored - owned.keys())
        missing = sorted(owned.keys() - stored)
        if orphans:  # chunks of a batch that never committed
            self.store.delete(orphans)
        counts: dict[str, int] = defaultdict(int)
        for source in owned.values():
            counts[source] += 1
        records = self.state.files()
        broken = {owned[i] for i in missing}
        broken |= {s for s, r in records.items() if r.chunks != counts.get(s, 0) and r.skipped is None}
        if broken:
            self.state.begin()
            self.state.drop_chunks(missing)
            self.state.forget_version(sorted(broken))
            self.state.commit()
            self.report.warnings.append(Skip(
                self.store.name,
                f"{len(missing)} chunks of {len(broken)} files were missing from the store "
                f"({self.store.where}); re-embedding those files",
            ))

    def _chunk_sizes(self) -> tuple[int, int]:
        """Chunk size clamped to the embedding model's window (asked once, only when there is work)."""
        if self._chunk_limits is None:
            size = self.settings.chunk_tokens
            limit = max_chunk_tokens(self.embedder.model, self.embedder.context_length())
            if limit:
                size = min(size, limit)
            self._chunk_limits = (size, min(self.settings.chunk_overlap, size // 3))
        return self._chunk_limits

    # -- the pipeline --------------------------------------------------------------------------

    def _pipeline(self, jobs: list[LoadJob], records: dict[str, FileRecord], touched: list[FileRecord]) -> None:
        try:
            self._stream(jobs, records, touched)
        except IndexLocked:
            self._rollback_groups()  # another writer holds the collection now: write nothing more
            raise
        except BaseException:
            # A failed embedding, a full disk in the store, Ctrl-C: the groups already written whole
            # are kept, so the next run resumes after them.
            with contextlib.suppress(Exception):
                self._commit_groups(records)
            raise
        if touched:
            self.state.begin()
            for record in touched:
                self.state.touch_file(record)
            self.state.commit()

    def _stream(self, jobs: list[LoadJob], records: dict[str, FileRecord], touched: list[FileRecord]) -> None:
        limit = self.settings.batch_size * BUFFER_BATCHES
        parallel = max(1, self.settings.parallel) * len(self.embedder.embedders)
        group = _Group()
        inflight: deque[tuple[_Group, cf.Future[np.ndarray]]] = deque()
        with cf.ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="rag-embed") as embedders:

            def submit(g: _Group) -> None:
                texts = [embedding_text(c) for c in g.chunks]
                inflight.append((g, embedders.submit(self.embedder.embed_documents, texts)))
                while len(inflight) > parallel:
                    self._write(*self._next(inflight), records)

            for loaded in parse_files(jobs, pool_size(self.settings.workers, jobs), self.report.warnings):
                self._done += 1
                self.report.warnings.extend(loaded.warnings)
                old = records.get(loaded.rel)
                if loaded.skipped is not None:
                    self.report.skipped.append(Skip(loaded.rel, loaded.skipped))
                    self._tick(loaded.rel)
                    if loaded.skipped != "no text to index" or old is not None:
                        self._commit_groups(records)  # a skip commits on its own
                        self.state.begin()
                        self.state.mark_skipped(loaded.rel, loaded.skipped)
                        self.state.commit()
                    continue
                if loaded.chunks is None:  # same bytes, new mtime
                    assert old is not None
                    touched.append(FileRecord(loaded.rel, loaded.sha256, loaded.size, loaded.mtime, old.chunks))
                    self.report.unchanged.append(loaded.rel)
                    self._tick(loaded.rel)
                    continue
                group.files.append(loaded)
                group.chunks.extend(loaded.chunks)
                for chunk in loaded.chunks[:4]:  # a sample per file is enough for a share
                    self.han.add(chunk.text)
                self._chunks_seen += len(loaded.chunks)
                self._tick(loaded.rel)
                if len(group.chunks) >= limit:
                    submit(group)
                    group = _Group()
            if group.files:
                submit(group)
            while inflight:
                self._write(*self._next(inflight), records)
            self._commit_groups(records)

    @staticmethod
    def _next(inflight: deque[tuple[_Group, cf.Future[np.ndarray]]]) -> tuple[_Group, np.ndarray]:
        g, future = inflight.popleft()
        try:
            return g, future.result()
        except BaseException:
            for _, other in inflight:
                other.cancel()
            raise

    def _write(self, group: _Group, vectors: np.ndarray, records: dict[str, FileRecord]) -> None:
        """Write one group: its chunks into the store, then its records and postings into the open state
        transaction, which `_commit_groups` commits once enough groups are in it."""
        self._check_lock()
        self._fingerprint_once(int(vectors.shape[1]))
        file_meta = {
            f.rel: {"file_sha256": f.sha256, "file_size": f.size, "file_mtime": f.mtime} for f in group.files
        }
        self.store.add(group.chunks, vectors, file_meta)
        _crash_point("after_store_add")
        self.state.begin()
        try:
            self._stale += self.state.put_files(
                [(FileRecord(f.rel, f.sha256, f.size, f.mtime, len(f.chunks or ())), f.chunks or ()) for f in group.files],
                {c.id: v for c, v in zip(group.chunks, vectors, strict=True)},
            )
        except BaseException:
            self._rollback_groups()
            raise
        self._uncommitted.append(group)
        pending = sum(len(g.chunks) for g in self._uncommitted)
        if pending >= STATE_COMMIT_CHUNKS or time.monotonic() - self._last_commit >= COMMIT_SECONDS:
            self._commit_groups(records)

    def _commit_groups(self, records: dict[str, FileRecord]) -> None:
        """Commit the groups written since the last commit (records + postings, one transaction), then
        delete the chunks they replaced. Postings are term-major: a batch touches a page per term, so
        at 60k chunks a commit per 128-chunk group cost 3 ms per chunk, and one per 2,000 half that."""
        if not self._uncommitted:
            return
        try:
            self.state.commit()
        except BaseException:
            self._rollback_groups()
            raise
        self._last_commit = time.monotonic()
        _crash_point("after_state_commit")
        for group in self._uncommitted:
            for f in group.files:
                old = records.get(f.rel)
                (self.report.updated if old is not None and old.chunks > 0 else self.report.added).append(f.rel)
            self.report.chunks += len(group.chunks)
        stale, self._stale = self._stale, []
        self._uncommitted = []
        self._drop(stale)
        self._unpublished = True
        if time.monotonic() - self._last_publish >= PUBLISH_SECONDS:
            self._publish()

    def _rollback_groups(self) -> None:
        """The groups not committed are lost to the state; their chunks are orphans the next run removes."""
        self.state.rollback()
        self._uncommitted, self._stale = [], []

    def _drop(self, ids: list[str]) -> None:
        """Delete replaced chunks from the store, then from the trash (a crash between is replayed)."""
        if not ids:
            return
        self.store.delete(ids)
        self.state.begin()
        self.state.clear_trash(ids)
        churn = int(self.state.get_meta(CHURN_KEY, "0") or 0) + len(ids)
        self.state.set_meta(CHURN_KEY, str(churn))
        self.state.commit()

    def _relink_after_churn(self) -> None:
        """Deletes weaken Chroma's HNSW graph: after enough of the index was replaced (`RELINK_CHURN`)
        check every chunk's reachability and re-insert the ones dense search lost. The full check
        costs one query per chunk, so it runs once per that much churn: O(changed), amortised."""
        churn = int(self.state.get_meta(CHURN_KEY, "0") or 0)
        total = self.state.chunk_count()
        if not total or churn < RELINK_CHURN * total:
            return
        lost = unreachable(self.store, self.state.chunk_ids())
        if lost:
            reinsert(self.store, lost)
            self.report.warnings.append(Skip(self.store.name, f"re-linked {len(lost)} chunks that dense search "
                                                              "could no longer reach after many updates"))
        self.state.begin()
        self.state.set_meta(CHURN_KEY, "0")
        self.state.commit()

    def _check_lock(self) -> None:
        """Fencing: stop if the lock was taken over. Checked at most every PUBLISH_SECONDS (a takeover
        needs a minute of silence from this writer, whose heartbeat runs every few seconds)."""
        if time.monotonic() - self._last_check >= PUBLISH_SECONDS:
            self.lock.check()
            self._last_check = time.monotonic()

    def _publish(self) -> None:
        """Tell other clients of the store that committed state changed (bump the generation)."""
        self._unpublished = False
        self._last_publish = time.monotonic()
        generation = self.store.bump_generation()
        self.state.begin()
        self.state.set_meta("generation", str(generation))
        self.state.commit()

    def _fingerprint_once(self, dimension: int) -> None:
        """Check and record the full fingerprint at the first write (the dimension is known now)."""
        if self._fingerprinted:
            return
        self._fingerprinted = True
        wanted = wanted_fingerprint(self.settings, self.embedder)
        wanted.update(dimension=dimension, endpoint=self.embedder.endpoint)
        self.store.check_fingerprint(wanted)
        if self.store.fingerprint() != wanted:
            self.store.set_fingerprint(wanted)

    def _remove_missing(self, records: dict[str, FileRecord], seen: set[str]) -> None:
        gone = sorted(set(records) - seen)
        if not gone:
            return
        self._check_lock()
        stale: list[str] = []
        self.state.begin()
        for rel in gone:
            stale += self.state.remove_file(rel)
            if records[rel].chunks > 0:
                self.report.removed.append(rel)
        self.state.commit()
        self._drop(stale)
        self._unpublished = True

    def _finish(self) -> None:
        """Publish the last commits, warn about a Chinese-heavy folder, record this run's skips for `rag status`."""
        if self._unpublished:
            self._publish()
        self.store.make_private()
        advice = self.han.warning(self.embedder.model, str(self.root))
        if advice:
            self.report.warnings.append(Skip(str(self.root), advice))
        self.state.begin()
        self.state.set_meta("root", str(self.root))
        self.state.set_meta("last_run", json.dumps({"skipped": [[s.path, s.reason] for s in self.report.skipped]},
                                                   ensure_ascii=False))
        self.state.commit()

    def _tick(self, current: str) -> None:
        if self.progress:
            self.progress(Progress(self._done, self._total, self._chunks_seen, current,
                                   time.monotonic() - self._started))


def open_or_replace_state(folder: Path, collection: str) -> tuple[IndexState, str]:
    """The writer's state; a file SQLite cannot read is moved aside (kept for inspection) and replaced
    by an empty one, which the run rebuilds from the store. Returns (state, name of the damaged file or "")."""
    try:
        return IndexState.open(folder, collection), ""
    except StoreError:
        path = state_path(folder, collection)
        aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return IndexState.open(folder, collection), aside.name


def rebuild_state(state: IndexState, store: Store, generation: int, batch: int = 1000) -> int:
    """Rebuild the file records, postings and passages from the store alone (chunks and their metadata).

    Each chunk's metadata names its file's version (sha256, size, mtime). Where a crash left chunks
    of two versions of one file, the newest version is kept and the others are left unowned, for the
    consistency check to delete. Returns the number of chunks adopted.
    """
    newest: dict[str, tuple[float, str]] = {}
    for _, meta in store.iter_metadata():
        source = str(meta.get("source", ""))
        version = (float(meta.get("file_mtime", -1.0)), str(meta.get("file_sha256", "")))
        if source not in newest or version > newest[source]:
            newest[source] = version
    files: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = defaultdict(int)
    n = 0
    state.begin()
    try:
        state.reset()
        for rows in store.iter_chunks(batch, with_embeddings=True):
            keep = [(row, meta) for row, meta in rows
                    if newest.get(row.source, (0.0, ""))[1] == str(meta.get("file_sha256", ""))]
            state.add_stored([row for row, _ in keep])
            n += len(keep)
            for row, meta in keep:
                counts[row.source] += 1
                files.setdefault(row.source, meta)
        for source, meta in files.items():
            state.touch_file(FileRecord(
                source, str(meta.get("file_sha256", "")), int(meta.get("file_size", -1)),
                float(meta.get("file_mtime", -1.0)), counts[source],
            ))
        state.set_meta("generation", str(generation))
        state.commit()
    except BaseException:
        state.rollback()
        raise
    return n


def _apply_legacy_manifest(state: IndexState, path: Path) -> None:
    """Carry sha256/size/mtime over from a v0.1 JSON manifest, so an upgrade re-embeds nothing.
    A manifest of the wrong shape is ignored: the files are then re-hashed once."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entries = raw["files"]
        if not isinstance(entries, dict):
            return
    except (OSError, ValueError, KeyError, TypeError):
        return
    records = state.files()
    state.begin()
    for source, e in entries.items():
        r = records.get(source)
        if r is None or not isinstance(e, dict):
            continue
        try:
            state.touch_file(FileRecord(source, str(e["sha256"]), int(e["size"]), float(e["mtime"]), r.chunks))
        except (KeyError, TypeError, ValueError):
            continue
    state.commit()


def _crash_point(name: str) -> None:
    """Tests kill the process here (RAG_TEST_CRASH_AT=name) to prove each commit step is recoverable."""
    if os.environ.get("RAG_TEST_CRASH_AT") == name:
        os._exit(137)


def index_folder(
    root: str | Path, settings: IndexSettings, *, rebuild: bool = False, progress: ProgressFn | None = None
) -> IndexReport:
    """Sync ``root`` into the collection named by ``settings``; ``rebuild`` starts from empty."""
    root = Path(root).expanduser().resolve()
    warnings: list[Skip] = []
    if rebuild:
        warnings = _rebuild(settings)
    report = Indexer(root, settings, progress).run()
    report.warnings[:0] = warnings
    return report


def _rebuild(settings: IndexSettings) -> list[Skip]:
    """--rebuild under the writer lock (so it cannot pull the collection from under a running writer)."""
    try:
        store = open_store(settings)
    except RagError as exc:
        if settings.chroma_url and not isinstance(exc, StoreError):
            raise
        return reset_index(settings)
    with WriterLock(store, wait=settings.lock_wait):
        return reset_index(settings, store)


def sync_cache(settings: IndexSettings, store: Store) -> IndexState:
    """A reader's state for a Chroma server: this machine's cache, rebuilt from the server's chunks when
    another client has committed since (the store's generation moved). While a writer holds the lock
    a non-empty cache is used as is: a consistent, slightly older view beats rebuilding mid-run."""
    state = IndexState.open(cache_dir(settings), settings.collection)
    generation = store.generation()
    if int(state.get_meta("generation", "0") or 0) != generation or state.lexical.outdated or not state.passages_ready:
        writing = store.read_marker(lock_name(store.name)) is not None
        if not writing or state.chunk_count() == 0:
            rebuild_state(state, store, generation)
    return state
