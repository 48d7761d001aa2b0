"""The index state: per-file records, chunk ownership and BM25 postings, in one SQLite file.

One file per collection (``<db>/<collection>.state.sqlite``; in server mode a cache folder per server),
written in one transaction per batch, so the file records and the lexical index can never disagree.
Chroma holds the chunks; this file says which of them are *committed*. The commit order of a batch
(see `ingest.indexer`) is:

1. upsert the new chunks into Chroma (ids are content hashes, so a redo is idempotent);
2. one SQLite transaction: the files' records, their chunks' postings, and the replaced chunk ids
   moved to ``trash``;
3. delete the trashed ids from Chroma, then from ``trash``.

A crash after 1 leaves chunks in Chroma that no record owns (orphans, removed by the next run's
count check); after 2 leaves trash that the next run replays. Readers only return chunks this file
lists, so they see a batch either whole or not at all. WAL mode lets readers read while one writer
writes.

Tables: ``files`` (one row per source: sha256, size, mtime, chunk count, and the skip reason when the
last attempt failed), ``docs`` (chunk id -> source, kind, length: the chunk ownership *and* the BM25
document table; ``doc`` numbers the chunks for the postings), ``postings`` (term, doc, tf), ``term_df``
(each term's document frequency, kept with the postings so a search need not count long postings),
``stats`` (BM25 totals), ``passages`` (the read path's copy of each committed chunk: page, heading,
text and vector, by chunk number), ``trash``, ``meta`` (root, generation).

Why a copy of what Chroma holds: a search needs the text and vector of its 30-50 candidates, and reading
them from Chroma was most of its time (a dense query with vectors 2.9 ms against 2.1 without, the texts
of the passages returned 0.7 ms more; from this file both take 0.1 ms), and over the network in server
mode. Chroma stays the source of truth: the copy is written in the same transaction as the chunk's
ownership, and rebuilt from the store with the rest of the state.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.errors import StoreError
from ingest.lexical import (
    DF_READY,
    TERMS_VERSION,
    LexicalIndex,
    SqliteErrors,
    count_document_frequencies,
)
from ingest.records import Chunk
from ingest.store import StoredChunk

STATE_SUFFIX = ".state.sqlite"
# The ``stats`` key saying ``passages`` holds a copy of every committed chunk. A file written before
# the table existed lacks it until the state is rebuilt from the store (the next `rag index`, or a
# server cache's next sync); readers meanwhile read what is missing from Chroma.
PASSAGES_READY = "passages_copied"
# SQLite's page cache per connection (its default is 2 MB; memory is taken only as pages are used).
# A writer keeps the postings pages a commit touches until it ends instead of spilling them (at 60k
# chunks: 6.5 s vs 8.1 s for 3,800 chunks). A reader keeps the upper levels of the postings B-tree
# between searches, where a BM25 lookup is a seek: at 317,059 chunks (a 3.4 GB file), 6 interleaved
# rounds of 400 hybrid searches had p50 and p95 each lower in 5 of 6 (median -1.0 ms of ~15 and ~25).
PAGE_CACHE_MB = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (source TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
                                  mtime REAL NOT NULL, chunks INTEGER NOT NULL, skipped TEXT);
CREATE TABLE IF NOT EXISTS docs (doc INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                                 source TEXT NOT NULL, kind TEXT NOT NULL, length INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS docs_by_source ON docs (source);
CREATE TABLE IF NOT EXISTS postings (term TEXT NOT NULL, doc INTEGER NOT NULL, tf INTEGER NOT NULL,
                                     PRIMARY KEY (term, doc)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_by_doc ON postings (doc);
CREATE TABLE IF NOT EXISTS term_df (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO stats VALUES ('n', 0), ('total_length', 0);
CREATE TABLE IF NOT EXISTS passages (doc INTEGER PRIMARY KEY, page INTEGER NOT NULL, heading TEXT NOT NULL,
                                     text TEXT NOT NULL, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS trash (id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class FileRecord:
    """What the index holds of one file. ``skipped`` is the reason its last load failed, if it did
    (a file that breaks keeps the chunks of its last good version)."""

    source: str
    sha256: str
    size: int
    mtime: float
    chunks: int
    skipped: str | None = None


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks so big files do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_path(db: Path, collection: str) -> Path:
    """Where the state of ``collection`` lives."""
    return Path(db) / f"{collection}{STATE_SUFFIX}"


def _count_document_frequencies(conn: sqlite3.Connection) -> None:
    """Fill ``term_df`` for a file written before it existed (new files start counted, with no terms).
    While a writer holds the file this is left for a later open: searches count per term meanwhile."""
    waited = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 50")  # a reader does not wait out a writer's batch for this
    try:
        conn.execute("BEGIN IMMEDIATE")
        count_document_frequencies(conn)
        conn.execute("COMMIT")
    except sqlite3.OperationalError:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(waited)}")


def _number_the_docs(conn: sqlite3.Connection) -> None:
    """Carry a state file written before postings were keyed by chunk number (``docs.doc``) over to that
    layout, in one transaction: the same chunks, postings and counts, a third of the size."""
    conn.executescript("""
        BEGIN IMMEDIATE;
        DROP INDEX IF EXISTS docs_for_bm25;
        DROP INDEX IF EXISTS postings_by_id;
        ALTER TABLE docs RENAME TO docs_by_id;
        ALTER TABLE postings RENAME TO postings_by_id;
        CREATE TABLE docs (doc INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                           source TEXT NOT NULL, kind TEXT NOT NULL, length INTEGER NOT NULL);
        INSERT INTO docs (id, source, kind, length) SELECT id, source, kind, length FROM docs_by_id ORDER BY id;
        CREATE TABLE postings (term TEXT NOT NULL, doc INTEGER NOT NULL, tf INTEGER NOT NULL,
                               PRIMARY KEY (term, doc)) WITHOUT ROWID;
        INSERT INTO postings SELECT p.term, d.doc, p.tf FROM postings_by_id p JOIN docs d ON d.id = p.id
            ORDER BY p.term, d.doc;
        DROP TABLE postings_by_id;
        DROP INDEX IF EXISTS docs_by_source;
        DROP TABLE docs_by_id;
        COMMIT;
    """)


def _private_file(path: Path) -> None:
    """The state holds the text of private documents (postings): owner-only."""
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            os.chmod(p, 0o600)


class IndexState:
    """The state file of one collection. Writes collect in a transaction until `commit()`."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self.path = path
        self.lexical = LexicalIndex(conn, path)

    @classmethod
    def open(cls, db: Path, collection: str, *, create: bool = True) -> IndexState:
        """Open (or create) the state; with ``create=False`` a missing file reads as an empty state."""
        path = state_path(db, collection)
        try:
            if not create and not path.exists():
                return cls._fresh(sqlite3.connect(":memory:", check_same_thread=False), None)
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_MB * 1024}")
            state = cls._fresh(conn, path)
            _private_file(path)
            return state
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"the index state {path} is unreadable ({exc}) — run `rag index PATH --rebuild`"
            ) from None

    @classmethod
    def _fresh(cls, conn: sqlite3.Connection, path: Path | None) -> IndexState:
        existed = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'docs'").fetchone() is not None
        if existed and "doc" not in {row[1] for row in conn.execute("PRAGMA table_info(docs)")}:
            _number_the_docs(conn)
        conn.executescript(_SCHEMA)
        if not existed:
            conn.execute(f"PRAGMA user_version = {TERMS_VERSION}")
            conn.execute("INSERT OR IGNORE INTO stats VALUES (?, 1)", (PASSAGES_READY,))
        if conn.execute("SELECT 1 FROM stats WHERE key = ?", (DF_READY,)).fetchone() is None:
            _count_document_frequencies(conn)
        state = cls(conn, path)
        state.lexical.outdated = conn.execute("PRAGMA user_version").fetchone()[0] != TERMS_VERSION
        # Every method below runs inside one explicit transaction until commit().
        return state

    def close(self) -> None:
        self._conn.close()

    # -- transactions --------------------------------------------------------------------------

    def begin(self) -> None:
        if not self._conn.in_transaction:
            with self._errors("write"):
                self._conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Make everything written since `begin()` durable, at once."""
        if self._conn.in_transaction:
            with self._errors("commit"):
                self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    # -- reading -------------------------------------------------------------------------------

    def files(self) -> dict[str, FileRecord]:
        """Every file record, by source (one query: the unchanged-run fast path reads this once)."""
        with self._errors("read"):
            rows = self._conn.execute("SELECT source, sha256, size, mtime, chunks, skipped FROM files").fetchall()
        return {r[0]: FileRecord(*r) for r in rows}

    def indexed_sources(self) -> list[str]:
        """Sources that have chunks in the index, sorted."""
        with self._errors("read"):
            rows = self._conn.execute("SELECT source FROM files WHERE chunks > 0 ORDER BY source").fetchall()
        return [r[0] for r in rows]

    def skipped(self) -> list[tuple[str, str]]:
        """(source, reason) of every file whose last load failed."""
        with self._errors("read"):
            return self._conn.execute(
                "SELECT source, skipped FROM files WHERE skipped IS NOT NULL ORDER BY source"
            ).fetchall()

    def chunk_ids(self, source: str | None = None) -> list[str]:
        """Committed chunk ids (of one source, or all)."""
        with self._errors("read"):
            if source is None:
                rows = self._conn.execute("SELECT id FROM docs").fetchall()
            else:
                rows = self._conn.execute("SELECT id FROM docs WHERE source = ?", (source,)).fetchall()
        return [r[0] for r in rows]

    def committed(self, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` that committed records own (readers drop the rest)."""
        out: set[str] = set()
        with self._errors("read"):
            for i in range(0, len(ids), 500):
                part = list(ids[i : i + 500])
                marks = ",".join("?" * len(part))
                out.update(r[0] for r in self._conn.execute(f"SELECT id FROM docs WHERE id IN ({marks})", part))
        return out

    @property
    def passages_ready(self) -> bool:
        """Whether ``passages`` copies every committed chunk (false for a file from before the table)."""
        with self._errors("read"):
            return self._conn.execute("SELECT 1 FROM stats WHERE key = ?", (PASSAGES_READY,)).fetchone() is not None

    def passages(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        """The committed chunks among ``ids`` that have a copy here (text, vector, source, page, heading), by id."""
        out: dict[str, StoredChunk] = {}
        with self._errors("read"):
            for i in range(0, len(ids), 500):
                part = list(ids[i : i + 500])
                marks = ",".join("?" * len(part))
                for cid, source, kind, page, heading, text, vector in self._conn.execute(
                    "SELECT d.id, d.source, d.kind, p.page, p.heading, p.text, p.vector FROM docs d "
                    f"CROSS JOIN passages p ON p.doc = d.doc WHERE d.id IN ({marks})", part
                ):
                    out[cid] = StoredChunk(id=cid, text=text, source=source, page=page or None, heading=heading,
                                           kind=kind, tokens=0, embedding=np.frombuffer(vector, dtype=np.float32))
        return out

    def all_vectors(self, limit: int) -> tuple[list[str], list[str], list[str], np.ndarray] | None:
        """The id, source, kind and vector of every committed chunk, read in one statement (one snapshot),
        or None when there are more than ``limit`` or the copy is incomplete (`passages_ready`)."""
        if not self.passages_ready or self.chunk_count() > limit:
            return None
        ids: list[str] = []
        sources: list[str] = []
        kinds: list[str] = []
        blobs: list[bytes] = []
        with self._errors("read"):
            for cid, source, kind, vector in self._conn.execute(
                "SELECT d.id, d.source, d.kind, p.vector FROM docs d CROSS JOIN passages p ON p.doc = d.doc"
            ):
                ids.append(cid)
                sources.append(source)
                kinds.append(kind)
                blobs.append(vector)
        if len(ids) > limit:  # a writer committed more since the count
            return None
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), -1) if ids else np.zeros((0, 0))
        return ids, sources, kinds, matrix

    def data_version(self) -> int:
        """A number that changes when another connection commits to this file (SQLite's data_version)."""
        with self._errors("read"):
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def chunk_count(self) -> int:
        """Chunks owned by records (the ``docs`` table)."""
        with self._errors("read"):
            return int(self._conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def recorded_chunks(self) -> int:
        """The sum of the files' chunk counts (equals `chunk_count` unless the file was damaged)."""
        with self._errors("read"):
            return int(self._conn.execute("SELECT COALESCE(SUM(chunks), 0) FROM files").fetchone()[0])

    def trash(self) -> list[str]:
        with self._errors("read"):
            return [r[0] for r in self._conn.execute("SELECT id FROM trash").fetchall()]

    def get_meta(self, key: str, default: str = "") -> str:
        with self._errors("read"):
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    # -- writing (inside begin() ... commit()) ------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        with self._errors("write"):
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def put_files(
        self, files: Sequence[tuple[FileRecord, Sequence[Chunk]]], vectors: Mapping[str, np.ndarray]
    ) -> list[str]:
        """Record new versions of files and their chunks (``vectors`` by chunk id), with one write of the
        postings and passages for all of them; return the chunk ids they no longer own (moved to trash)."""
        owned = self._owned_by([record.source for record, _ in files])
        stale: list[str] = []
        new: list[Chunk] = []
        for record, chunks in files:
            old = owned.get(record.source, set())
            stale += sorted(old - {c.id for c in chunks})
            # Chunks of another source with the same id cannot exist: ids hash the source.
            new += [c for c in chunks if c.id not in old]
        self._delete_chunks(stale)
        self._copy(new, self.lexical.add(new, replace=False), [vectors[c.id] for c in new])
        with self._errors("write"):
            self._conn.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                [(r.source, r.sha256, r.size, r.mtime, r.chunks, r.skipped) for r, _ in files],
            )
        self._to_trash(stale)
        return stale

    def add_stored(self, rows: Sequence[StoredChunk]) -> None:
        """Own chunks read back from the store (rebuilding the state): postings and passages."""
        self._copy(rows, self.lexical.add(rows, replace=False), [r.embedding for r in rows])

    def recopy(self, rows: Sequence[StoredChunk]) -> None:
        """Rewrite the copies of committed chunks from the store's rows (`rag status --verify --repair`)."""
        docs: dict[str, int] = {}
        with self._errors("read"):
            for i in range(0, len(rows), 500):
                part = [r.id for r in rows[i : i + 500]]
                marks = ",".join("?" * len(part))
                docs.update(self._conn.execute(f"SELECT id, doc FROM docs WHERE id IN ({marks})", part))
        owned = [r for r in rows if r.id in docs]
        self._copy(owned, [docs[r.id] for r in owned], [r.embedding for r in owned])

    def mark_copied_if_complete(self) -> None:
        """Say the copy is complete (`passages_ready`) once every committed chunk has one (after `recopy`)."""
        with self._errors("write"):
            uncopied = self._conn.execute(
                "SELECT 1 FROM docs WHERE doc NOT IN (SELECT doc FROM passages) LIMIT 1").fetchone()
            if uncopied is None:
                self._conn.execute("INSERT OR IGNORE INTO stats VALUES (?, 1)", (PASSAGES_READY,))

    def _copy(self, chunks: Sequence[Chunk | StoredChunk], docs: Sequence[int],
              vectors: Sequence[np.ndarray | None]) -> None:
        with self._errors("write"):
            self._conn.executemany(
                "INSERT OR REPLACE INTO passages VALUES (?, ?, ?, ?, ?)",
                [(doc, c.page or 0, c.heading, c.text, np.asarray(v, dtype=np.float32).tobytes())
                 for doc, c, v in zip(docs, chunks, vectors, strict=True) if v is not None],
            )

    def _delete_chunks(self, ids: Sequence[str]) -> None:
        """Drop chunks' ownership, postings and passages (unknown ids are ignored)."""
        with self._errors("write"):
            for i in range(0, len(ids), 500):
                part = list(ids[i : i + 500])
                marks = ",".join("?" * len(part))
                self._conn.execute(f"DELETE FROM passages WHERE doc IN (SELECT doc FROM docs WHERE id IN ({marks}))",
                                   part)
        self.lexical.delete(ids)

    def recount(self) -> None:
        """Recompute the BM25 totals and drop postings and passages of chunks no longer owned (after damage)."""
        with self._errors("write"):
            self._conn.execute("DELETE FROM passages WHERE doc NOT IN (SELECT doc FROM docs)")
        self.lexical.recount()

    def _owned_by(self, sources: Sequence[str]) -> dict[str, set[str]]:
        """Source -> the chunk ids it owns, for these sources, in one read per 500."""
        out: dict[str, set[str]] = {}
        with self._errors("read"):
            for i in range(0, len(sources), 500):
                part = list(sources[i : i + 500])
                marks = ",".join("?" * len(part))
                for cid, source in self._conn.execute(
                    f"SELECT id, source FROM docs WHERE source IN ({marks})", part
                ):
                    out.setdefault(source, set()).add(cid)
        return out

    def touch_file(self, record: FileRecord) -> None:
        """Same content, new size/mtime or a cleared skip: update the record only."""
        self._upsert(record)

    def mark_skipped(self, source: str, reason: str) -> None:
        """The file's last load failed: keep its record and chunks, remember why."""
        with self._errors("write"):
            cur = self._conn.execute("UPDATE files SET skipped = ? WHERE source = ?", (reason, source))
            if cur.rowcount == 0:
                self._conn.execute("INSERT INTO files VALUES (?, '', -1, -1, 0, ?)", (source, reason))

    def remove_file(self, source: str) -> list[str]:
        """Forget a file; return its chunk ids (moved to trash)."""
        ids = self.chunk_ids(source)
        self._delete_chunks(ids)
        with self._errors("write"):
            self._conn.execute("DELETE FROM files WHERE source = ?", (source,))
        self._to_trash(ids)
        return ids

    def forget_version(self, sources: Iterable[str]) -> None:
        """Make these files look changed (their chunks went missing from the store): the next visit re-embeds."""
        with self._errors("write"):
            self._conn.executemany("UPDATE files SET sha256 = '', size = -1 WHERE source = ?", [(s,) for s in sources])

    def drop_chunks(self, ids: Sequence[str]) -> None:
        """Remove chunk ownership without trashing (the store no longer has them)."""
        self._delete_chunks(ids)

    def clear_trash(self, ids: Sequence[str]) -> None:
        with self._errors("write"):
            self._conn.executemany("DELETE FROM trash WHERE id = ?", [(i,) for i in ids])

    def reset(self) -> None:
        """Empty every table (for --rebuild and for re-syncing a cache)."""
        with self._errors("reset"):
            for table in ("files", "trash", "meta", "passages"):
                self._conn.execute(f"DELETE FROM {table}")
            self._conn.execute("INSERT OR IGNORE INTO stats VALUES (?, 1)", (PASSAGES_READY,))
        self.lexical.reset()

    def _upsert(self, r: FileRecord) -> None:
        with self._errors("write"):
            self._conn.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                (r.source, r.sha256, r.size, r.mtime, r.chunks, r.skipped),
            )

    def _to_trash(self, ids: Sequence[str]) -> None:
        with self._errors("write"):
            self._conn.executemany("INSERT OR IGNORE INTO trash VALUES (?)", [(i,) for i in ids])

    def iter_docs(self) -> Iterator[tuple[str, str]]:
        """(chunk id, source) of every committed chunk."""
        with self._errors("read"):
            yield from self._conn.execute("SELECT id, source FROM docs")

    def _errors(self, action: str) -> SqliteErrors:
        return SqliteErrors(action, self.path)
