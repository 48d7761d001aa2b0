"""BM25 over chunk text, kept in the index state file beside the Chroma store (`ingest.state`).

Terms are lowercase words reduced to their English Snowball stem ("studies" -> "studi", "statins"
-> "statin"), and Han text as overlapping character bigrams, plus each character for one-character
queries (`index_terms`, `query_terms`); Traditional characters are folded to Simplified first.
Bigrams are what CJK search engines use without a segmenter:
"检索增强生成" becomes 检索 索增 增强 强生 生成, so the query "增强生成" matches it, while one
token per run of Han characters would only ever match the whole run. Stemming lets "vitamin"
match "vitamins"; on NFCorpus it raised BM25 nDCG@10 (bench/results/eval.md).

The term rules are versioned (`TERMS_VERSION`, kept in the file's ``PRAGMA user_version``): postings
written under other rules would not match today's query terms, so `IndexState.open` marks
the postings as `outdated` and the indexer rebuilds them from the chunk texts stored in Chroma.

The tables hold postings (term, chunk number, term frequency), per-chunk ids, lengths, source and kind, and
the corpus totals N and the summed length, so a search reads only the postings of its query terms.
The postings live in the same transaction as the file records, so the two never disagree.
"""

from __future__ import annotations

import functools
import math
import re
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import opencc
import snowballstemmer

from ingest.errors import StoreError
from ingest.language import HAN_RANGES, has_han

# BM25 parameters: the usual Robertson/Lucene defaults, which also did best on our eval (rag.dev.evaluate).
K1 = 1.2
B = 0.75
# The rules of `terms`: 1 = words + Han bigrams; 2 = the same with English Snowball stems;
# 3 = Han unigrams indexed too, Traditional folded to Simplified.
TERMS_VERSION = 3
# Query weight of a Han character taken from a longer query run (words, bigrams and lone characters
# weigh 1). Chunks are indexed under every Han character too (Lucene's CJK bigram filter with
# outputUnigrams), so a one-character query or word matches inside longer text. On the Chinese eval
# questions any positive weight here moved a right answer down and none up (bench/results/eval.md):
# in multi-character queries the bigrams alone decide.
UNIGRAM_WEIGHT = 0.0
# Postings one search reads in full, summed over its terms. Rare terms are read whole, and common ones
# only looked up for the candidates that could still rank (`LexicalIndex.search`), so a search is
# exact BM25 whenever the terms it must read fit. Past that (every query term in tens of thousands of
# chunks) it ranks the candidates found so far: at most this many postings of the rarest term, in
# chunk-number order, which is the order chunks were written, plus the rarer terms read whole. That
# keeps a query at a few milliseconds at 250k chunks instead of growing with the corpus.
MAX_POSTINGS = 30_000
# (term, chunk) lookups one search makes to complete its candidates' scores with the terms it did not
# read. A lookup is a B-tree seek, about four times the cost of a posting read in a run (1.65 against
# 0.37 us at 317k chunks), so the budget goes to reading: at 317,059 chunks, 30,000 reads and 2,000
# lookups share 96.5% of the exact top 30 at a p95 of 26 ms, against 93.3% and 39 ms before (postings
# read a row at a time, 10,000 of each; bench/results/bm25_budget.md).
MAX_LOOKUPS = 2_000
# A posting read in bulk is packed into one integer, (chunk number << _TF_BITS) | tf, with a tf past
# _TF_MAX cut there: BM25's score of a term stopped growing with its tf long before.
_TF_BITS = 20
_TF_MAX = (1 << _TF_BITS) - 1
# Candidates per postings lookup (SQLite allows 999 parameters in old builds).
_LOOKUP_BATCH = 256
# The ``stats`` key saying ``term_df`` holds every term's document frequency (files written before the
# table existed are counted once, on open: `ingest.state.IndexState`).
DF_READY = "term_df_counted"

# A Han run, or a run of other letters/digits (underscore splits words: snake_case -> snake, case).
_TOKEN = re.compile(rf"([{HAN_RANGES}]+)|([^\W_{HAN_RANGES}]+)")
# Very common English function words: they carry no retrieval signal and bloat the postings.
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were will with"
    " what which who how when where why do does did can".split()
)


class ChunkLike(Protocol):
    """What `add` needs from a chunk (`ingest.records.Chunk` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def kind(self) -> str: ...


_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The English Snowball stem of a lowercase word ("tuning" -> "tune"); digits and codes pass through."""
    return _STEMMER.stemWord(word) if word.isalpha() else word


@functools.lru_cache(maxsize=1)
def _to_simplified() -> opencc.OpenCC:
    # OpenCC's own Traditional -> Simplified tables (phrases, then characters); loads in ~15 ms, offline.
    return opencc.OpenCC("t2s")


def fold(text: str) -> str:
    """``text`` as BM25 compares it: NFKC, lowercase, Traditional Chinese as Simplified (stored text is untouched).

    >>> fold("ＲＡＧ 檢索增強")
    'rag 检索增强'
    """
    # NFKC folds full-width Latin and digits (ＲＡＧ１) into ASCII, common in Chinese text.
    text = unicodedata.normalize("NFKC", text).lower()
    return _to_simplified().convert(text) if has_han(text) else text


def _split(text: str) -> tuple[list[str], list[str]]:
    """(`terms` of ``text``, the single characters of its Han runs longer than one character)."""
    found: list[str] = []
    unigrams: list[str] = []
    for han, word in _TOKEN.findall(fold(text)):
        if han:
            if len(han) == 1:
                found.append(han)
            else:
                found.extend(han[i : i + 2] for i in range(len(han) - 1))
                unigrams.extend(han)
        elif word not in _STOP:
            found.append(stem(word))
    return found, unigrams


def terms(text: str) -> list[str]:
    """Stemmed lowercase words, Han runs as character bigrams (a lone character as itself), Traditional folded.

    >>> terms("RAG 检索增强生成, fine-tuning!")
    ['rag', '检索', '索增', '增强', '强生', '生成', 'fine', 'tune']
    >>> terms("Statins and vitamins: studies")
    ['statin', 'vitamin', 'studi']
    >>> terms("它和微调有什么区别")
    ['它和', '和微', '微调', '调有', '有什', '什么', '么区', '区别']
    >>> terms("第3章 檢索")
    ['第', '3', '章', '检索']
    """
    return _split(text)[0]


def index_terms(text: str) -> list[str]:
    """What a chunk is indexed under: `terms` plus each character of its longer Han runs, so that a
    one-character query ("水") finds "喝水很重要".

    >>> index_terms("喝水 RAG")
    ['喝水', 'rag', '喝', '水']
    """
    found, unigrams = _split(text)
    return found + unigrams


def term_counts(text: str) -> dict[str, int]:
    """Each of `index_terms` with the number of times it occurs: what `LexicalIndex.add` stores per chunk.

    >>> term_counts("喝水 RAG rag")
    {'喝水': 1, 'rag': 2, '喝': 1, '水': 1}
    """
    return dict(Counter(index_terms(text)))


def query_terms(text: str) -> dict[str, float]:
    """A query's terms and their weights: 1 per word, bigram or lone Han character, `UNIGRAM_WEIGHT` per
    character of a longer Han run (a BM25 term's score is multiplied by its weight).

    >>> query_terms("喝水 水")
    {'喝水': 1.0, '水': 1.0}
    """
    found, unigrams = _split(text)
    weights: dict[str, float] = {}
    for term in found:
        weights[term] = weights.get(term, 0.0) + 1.0
    if UNIGRAM_WEIGHT > 0:
        for char in unigrams:
            weights[char] = weights.get(char, 0.0) + UNIGRAM_WEIGHT
    return weights


def lexical_path(db: Path, collection: str) -> Path:
    """The file that holds the postings: the collection's state file."""
    from ingest.state import state_path

    return state_path(db, collection)


class LexicalIndex:
    """BM25 over the ``docs``/``postings``/``stats`` tables of the index state (`ingest.state`).

    It writes inside the state's transaction and never commits itself: the file records and the
    postings of a batch become visible together.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path | None, *, outdated: bool = False) -> None:
        self._conn = conn
        self.path = path
        # Chunk number -> length (in terms), for searches without filters: joining ``docs`` for each
        # posting read was half the cost of a search. Grown with the chunks added since; a number is
        # never reused and a chunk's length never changes, so nothing in it goes stale.
        self._lengths = np.zeros(0, dtype=np.int32)
        # True when the postings were written under other term rules (`TERMS_VERSION`):
        # the indexer rebuilds them from the chunk texts in Chroma before their scores mean anything.
        self.outdated = outdated

    @classmethod
    def open(cls, db: Path, collection: str, *, create: bool = True) -> LexicalIndex:
        """The postings in a collection's state file, on their own (for tools and tests; the indexer
        and the read path go through `ingest.state.IndexState`)."""
        from ingest.state import IndexState

        return IndexState.open(db, collection, create=create).lexical

    def commit(self) -> None:
        """Commit writes made outside an `IndexState` transaction."""
        if self._conn.in_transaction:
            self._conn.commit()

    def close(self) -> None:
        self._conn.close()

    def add(self, chunks: Sequence[ChunkLike], *, replace: bool = True) -> list[int]:
        """Add chunks (an id already present is replaced; ``replace=False`` when the caller knows none is);
        return the chunk numbers given to them, in order."""
        if replace:
            self.delete([c.id for c in chunks])
        if not chunks:
            return []
        with self._errors("write"):
            # Postings carry the chunk's row number in ``docs``, not its 32-character id: a third of the
            # file size and of the B-tree work per posting (bench/results/bench.md).
            # Never a number used before (AUTOINCREMENT keeps the highest in sqlite_sequence): postings a
            # damaged file kept for a deleted chunk must not attach to a new one.
            first = int(self._conn.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'docs'), 0), "
                "COALESCE((SELECT MAX(doc) FROM docs), 0))"
            ).fetchone()[0]) + 1
            docs: list[tuple[int, str, str, str, int]] = []
            postings: list[tuple[str, int, int]] = []
            df: Counter[str] = Counter()
            total = 0
            for doc, c in enumerate(chunks, start=first):
                # a parse worker counted a new chunk's terms; a chunk read back from the store has none
                counts = getattr(c, "terms", None) or term_counts(c.text)
                length = sum(counts.values())
                total += length
                docs.append((doc, c.id, c.source, c.kind, length))
                postings.extend((t, doc, tf) for t, tf in counts.items())
                df.update(counts.keys())
            postings.sort()  # in key order, each B-tree page is visited once per batch
            self._conn.executemany("INSERT INTO docs VALUES (?, ?, ?, ?, ?)", docs)
            self._conn.executemany("INSERT INTO postings VALUES (?, ?, ?)", postings)
            self._conn.executemany(
                "INSERT INTO term_df VALUES (?, ?) ON CONFLICT (term) DO UPDATE SET df = df + excluded.df",
                sorted(df.items()),
            )
            self._bump(len(docs), total)
        return [doc for doc, *_ in docs]

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""
        with self._errors("write"):
            for batch in _batches(list(ids), 500):
                marks = ",".join("?" * len(batch))
                rows = self._conn.execute(f"SELECT doc, length FROM docs WHERE id IN ({marks})", batch).fetchall()
                if not rows:
                    continue
                docs = [doc for doc, _ in rows]
                doc_marks = ",".join("?" * len(docs))
                gone = self._conn.execute(
                    f"SELECT term, COUNT(*) FROM postings WHERE doc IN ({doc_marks}) GROUP BY term", docs
                ).fetchall()
                self._conn.execute(f"DELETE FROM postings WHERE doc IN ({doc_marks})", docs)
                self._conn.executemany("UPDATE term_df SET df = df - ? WHERE term = ?", [(c, t) for t, c in gone])
                self._conn.executemany("DELETE FROM term_df WHERE term = ? AND df <= 0", [(t,) for t, _ in gone])
                self._conn.execute(f"DELETE FROM docs WHERE doc IN ({doc_marks})", docs)
                self._bump(-len(rows), -sum(length for _, length in rows))

    def recount(self) -> None:
        """Recompute the BM25 totals from the docs table (after damage; normally kept incrementally)."""
        with self._errors("write"):
            n, total = self._conn.execute("SELECT COUNT(*), COALESCE(SUM(length), 0) FROM docs").fetchone()
            self._conn.execute("UPDATE stats SET value = ? WHERE key = 'n'", (n,))
            self._conn.execute("UPDATE stats SET value = ? WHERE key = 'total_length'", (total,))
            self._conn.execute("DELETE FROM postings WHERE doc NOT IN (SELECT doc FROM docs)")
            count_document_frequencies(self._conn)

    def reset(self) -> None:
        """Drop every chunk (used when the index is rebuilt); the file then follows today's term rules."""
        with self._errors("reset"):
            self._conn.execute("DELETE FROM postings")
            self._conn.execute("DELETE FROM docs")
            self._conn.execute("DELETE FROM term_df")
            self._conn.execute("UPDATE stats SET value = 0 WHERE key IN ('n', 'total_length')")
            self._conn.execute(f"PRAGMA user_version = {TERMS_VERSION}")
        self.outdated = False

    def count(self) -> int:
        """Number of chunks indexed."""
        return self._stat("n")

    def search(
        self,
        query: str,
        k: int,
        *,
        sources: Collection[str] | None = None,
        kinds: Collection[str] | None = None,
        k1: float = K1,
        b: float = B,
    ) -> list[tuple[str, float]]:
        """The ``k`` best chunks for ``query`` by BM25 (``k1``, ``b``), as (chunk id, score), best first.

        MaxScore: terms are read rarest first, and a commoner term is read only while chunks holding
        nothing but the unread terms could still reach the top ``k`` (a term scores below
        ``weight * idf * (k1 + 1)``); the unread terms are then looked up only for the candidates found
        that could still rank. Exact while the postings read stay within `MAX_POSTINGS` and the lookups
        within `MAX_LOOKUPS`; past that the top ``k`` is taken among the candidates found so far, with
        exact scores (see both).
        """
        qterms = query_terms(query)
        if not qterms or k <= 0:
            return []
        filters, filter_params = _filter_sql(sources, kinds)
        if filters is None:
            return []
        with self._errors("search"):
            stats = dict(self._conn.execute("SELECT key, value FROM stats").fetchall())
            n = int(stats.get("n", 0))
            if n == 0:
                return []
            avgdl = max(int(stats.get("total_length", 0)) / n, 1.0)
            # Document frequencies come from the whole corpus, so filters do not change the idf.
            df = self._document_frequencies(list(qterms), counted=bool(stats.get(DF_READY)))
            unread = sorted((t for t in qterms if df.get(t, 0) > 0), key=lambda t: (df[t], t))
            weight = {t: qterms[t] * math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in unread}
            bound = {t: weight[t] * (k1 + 1) for t in unread}

            def part(term: str, tf: np.ndarray, length: np.ndarray) -> np.ndarray:
                return weight[term] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))

            # Candidates by chunk number (`docs.doc`), with the sum of the scores of the terms read so
            # far: a lower bound of each one's full score. Numbers, not ids, and numpy, not a dict per
            # posting: a search reads up to MAX_POSTINGS postings, and looks up MAX_LOOKUPS more.
            # Lengths from this reader's array, except with filters (the join applies them) or inside a
            # writer's transaction (chunk numbers it uses may be rolled back and used again).
            cached = not filters and not self._conn.in_transaction
            if cached:
                # Before the postings, not after: each read sees its own commit, and a chunk that a
                # writer replaces between the two must still have its length here (it was read first).
                self._refresh_lengths()
            found = _Candidates()
            read = 0
            while unread:
                # A chunk not yet found holds only unread terms, so it scores below their bounds' sum.
                if sum(bound[t] for t in unread) <= found.kth(k):
                    break
                if read + df[unread[0]] > MAX_POSTINGS and found.size:
                    break
                term = unread.pop(0)
                rows = self._postings(term, filters, filter_params, cached=cached)
                read += len(rows)
                found.add(rows[:, 0], part(term, rows[:, 1], rows[:, 2]), rows[:, 2])
                if read >= MAX_POSTINGS:
                    break
            if unread and found.size:
                self._add_unread_terms(found, unread, k, bound, part)
            return self._best(found, k)

    def _postings(self, term: str, filters: str, filter_params: list[str], *, cached: bool) -> np.ndarray:
        """Up to `MAX_POSTINGS` of ``term``'s postings, in chunk-number order, as rows of (chunk number,
        tf, chunk length), the lengths from the reader's array when ``cached``, else joined from ``docs``."""
        if not cached:
            return _packed(self._conn, (
                "SELECT group_concat(doc || ',' || tf || ',' || length) FROM (SELECT p.doc, p.tf, d.length "
                f"FROM postings p JOIN docs d ON d.doc = p.doc WHERE p.term = ?{filters} ORDER BY p.doc LIMIT ?)"
            ), [term, *filter_params, MAX_POSTINGS]).reshape(-1, 3)
        pairs = _unpack(_packed(self._conn, (
            f"SELECT group_concat((doc << {_TF_BITS}) | min(tf, {_TF_MAX})) FROM "
            "(SELECT doc, tf FROM postings WHERE term = ? ORDER BY doc LIMIT ?)"
        ), [term, MAX_POSTINGS]))
        lengths = self._lengths_of(pairs[:, 0])
        known = lengths > 0  # a posting left by a damaged file for a chunk not in ``docs`` is not read
        return np.column_stack([pairs[known], lengths[known]])

    def _refresh_lengths(self) -> None:
        """Add the lengths of the chunks written since the last call (a range read past the last known
        number; packed, so a reader's first search at 317k chunks reads them in 0.12 s, not 1.1 s)."""
        rows = _packed(self._conn, "SELECT group_concat(doc || ',' || length) FROM docs WHERE doc >= ?",
                       [len(self._lengths)]).reshape(-1, 2)
        if len(rows):
            grown = np.zeros(int(rows[:, 0].max()) + 1, dtype=np.int32)
            grown[: len(self._lengths)] = self._lengths
            grown[rows[:, 0]] = rows[:, 1]
            self._lengths = grown

    def _lengths_of(self, docs: np.ndarray) -> np.ndarray:
        """The lengths of chunks ``docs`` (0 for a number not in ``docs``)."""
        if docs.size and int(docs.max()) >= len(self._lengths):
            self._refresh_lengths()
        out = np.zeros(len(docs), dtype=np.int64)
        inside = docs < len(self._lengths)
        out[inside] = self._lengths[docs[inside]]
        return out

    def _add_unread_terms(
        self,
        found: _Candidates,
        unread: list[str],
        k: int,
        bound: dict[str, float],
        part: Callable[[str, np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        """Complete the scores of the candidates that could still reach the top ``k`` with the terms not
        read, looked up for those candidates only, best candidates first. The others keep a partial
        score that stays below the ``k``-th best, so they never rank. Past `MAX_LOOKUPS` lookups the
        candidates not completed yet are dropped, so every score returned is a full one."""
        unread_bound = sum(bound[t] for t in unread)
        order = np.lexsort((found.docs, -found.scores))  # best first, ties by chunk number
        term_marks = ",".join("?" * len(unread))
        looked = 0
        for start in range(0, len(order), _LOOKUP_BATCH):
            kth = found.kth(k)
            batch = order[start : start + _LOOKUP_BATCH]
            batch = batch[found.scores[batch] + unread_bound >= kth]
            if not len(batch):
                return  # sorted: the rest have lower partial scores still
            looked += len(batch) * len(unread)
            if looked > MAX_LOOKUPS and start > 0:
                found.scores[order[start:]] = -math.inf
                return
            doc_marks = ",".join("?" * len(batch))
            rows = self._conn.execute(
                f"SELECT p.term, p.doc, p.tf FROM postings p WHERE p.doc IN ({doc_marks}) AND p.term IN ({term_marks})",
                [*found.docs[batch].tolist(), *unread],
            ).fetchall()
            by_term: dict[str, list[tuple[int, int]]] = {}
            for term, doc, tf in rows:
                by_term.setdefault(term, []).append((doc, tf))
            for term, pairs in by_term.items():
                got = np.array(pairs, dtype=np.int64)
                at = np.searchsorted(found.docs, got[:, 0])
                np.add.at(found.scores, at, part(term, got[:, 1], found.lengths[at]))

    def _best(self, found: _Candidates, k: int) -> list[tuple[str, float]]:
        """The ``k`` best candidates as (chunk id, score), ties broken by id so results are deterministic."""
        if not found.size:
            return []
        kth = found.kth(k)
        keep = np.flatnonzero((found.scores >= kth) & np.isfinite(found.scores))
        score_of = dict(zip(found.docs[keep].tolist(), found.scores[keep].tolist(), strict=True))
        named: list[tuple[str, float]] = []
        for batch in _batches(list(score_of), 500):
            marks = ",".join("?" * len(batch))
            named += [(cid, score_of[doc])
                      for doc, cid in self._conn.execute(f"SELECT doc, id FROM docs WHERE doc IN ({marks})", batch)]
        return sorted(named, key=lambda kv: (-kv[1], kv[0]))[:k]

    def terms_in(self, ids: Sequence[str], terms: Collection[str]) -> set[str]:
        """Which of ``terms`` occur in any of the chunks ``ids`` (as indexed: a Han character counts
        inside a longer run, as in `index_terms`)."""
        if not ids or not terms:
            return set()
        id_marks, term_marks = ",".join("?" * len(ids)), ",".join("?" * len(terms))
        with self._errors("read"):
            return {term for (term,) in self._conn.execute(
                f"SELECT DISTINCT p.term FROM docs d CROSS JOIN postings p ON p.doc = d.doc "
                f"WHERE d.id IN ({id_marks}) AND p.term IN ({term_marks})",
                [*ids, *terms],
            )}

    def owners(self, ids: Sequence[str]) -> dict[str, str]:
        """Chunk id -> source for the ids in the ``docs`` table (the committed ones), in one read."""
        out: dict[str, str] = {}
        with self._errors("read"):
            for batch in _batches(list(ids), 500):
                marks = ",".join("?" * len(batch))
                out.update(self._conn.execute(f"SELECT id, source FROM docs WHERE id IN ({marks})", batch))
        return out

    def _document_frequencies(self, terms: list[str], *, counted: bool) -> dict[str, int]:
        """Each term's document frequency: from ``term_df`` once it is ``counted``, else counted from the postings."""
        marks = ",".join("?" * len(terms))
        if counted:
            sql = f"SELECT term, df FROM term_df WHERE term IN ({marks})"
        else:
            sql = f"SELECT term, COUNT(*) FROM postings WHERE term IN ({marks}) GROUP BY term"
        return {term: int(df) for term, df in self._conn.execute(sql, terms).fetchall()}

    def _stat(self, key: str) -> int:
        with self._errors("read"):
            row = self._conn.execute("SELECT value FROM stats WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, n: int, total: int) -> None:
        self._conn.execute("UPDATE stats SET value = value + ? WHERE key = 'n'", (n,))
        self._conn.execute("UPDATE stats SET value = value + ? WHERE key = 'total_length'", (total,))

    def _errors(self, action: str) -> SqliteErrors:
        return SqliteErrors(action, self.path)


class SqliteErrors:
    """sqlite3 errors -> StoreError naming the index state file and the fix (used by `ingest.state` too:
    the postings live in that file)."""

    def __init__(self, action: str, path: Path | None) -> None:
        self.action, self.path = action, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, sqlite3.Error):
            raise StoreError(
                f"the index state {self.path or '(memory)'} failed to {self.action}: {exc} — "
                "if it persists, run `rag index PATH --rebuild`"
            ) from None


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _packed(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> np.ndarray:
    """The integers of ``sql``'s one ``group_concat`` value. A term's postings come back as one string,
    not a row each: in Python a row costs about 1 us, three times what SQLite takes to read it."""
    text = conn.execute(sql, params).fetchone()[0]
    return np.fromstring(text, dtype=np.int64, sep=",") if text else np.zeros(0, dtype=np.int64)


def _unpack(packed: np.ndarray) -> np.ndarray:
    """Rows of (chunk number, tf) from ``(doc << _TF_BITS) | tf``."""
    return np.column_stack([packed >> _TF_BITS, packed & _TF_MAX])


class _Candidates:
    """The chunks a search has found: their numbers (sorted), partial scores and lengths."""

    def __init__(self) -> None:
        self.docs: np.ndarray = np.zeros(0, dtype=np.int64)
        self.scores: np.ndarray = np.zeros(0)
        self.lengths: np.ndarray = np.zeros(0, dtype=np.int64)

    @property
    def size(self) -> int:
        return len(self.docs)

    def add(self, docs: np.ndarray, scores: np.ndarray, lengths: np.ndarray) -> None:
        """Add one term's postings: new chunks join, chunks already found add to their score."""
        if not len(docs):
            return
        every, inverse = np.unique(np.concatenate([self.docs, docs]), return_inverse=True)
        self.scores = np.bincount(inverse, weights=np.concatenate([self.scores, scores]), minlength=len(every))
        merged = np.zeros(len(every), dtype=np.int64)
        merged[inverse] = np.concatenate([self.lengths, lengths])
        self.docs, self.lengths = every, merged

    def kth(self, k: int) -> float:
        """The ``k``-th best score (minus infinity while fewer than ``k``)."""
        n = len(self.scores)
        return float(np.partition(self.scores, n - k)[n - k]) if n >= k else -math.inf


def _filter_sql(
    sources: Collection[str] | None, kinds: Collection[str] | None
) -> tuple[str | None, list[str]]:
    """The docs filter as SQL after a WHERE (None when a filter allows nothing) and its parameters."""
    sql, params = "", []
    for column, values in (("source", sources), ("kind", kinds)):
        if values is not None:
            values = list(values)
            if not values:
                return None, []
            sql += f" AND d.{column} IN ({','.join('?' * len(values))})"
            params.extend(values)
    return sql, params


def count_document_frequencies(conn: sqlite3.Connection) -> None:
    """Recount ``term_df`` from the postings and mark it counted (after damage, and once for a file
    written before the table existed)."""
    conn.execute("DELETE FROM term_df")
    conn.execute("INSERT INTO term_df SELECT term, COUNT(*) FROM postings GROUP BY term")
    conn.execute(f"INSERT OR REPLACE INTO stats VALUES ('{DF_READY}', 1)")
