"""Prove the index is whole: the store, the file records and the lexical index hold the same chunks,
the state's copy of each chunk (what searches read) equals the store's, and dense search can reach
every chunk (its own stored vector finds it among the nearest `REACH_K`).

`verify` only reads. `repair` (under the writer lock) deletes orphans, marks files with missing
chunks for re-embedding at the next `rag index`, rewrites wrong copies from the store, and re-inserts
unreachable chunks so that the HNSW graph links them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ingest.state import IndexState
from ingest.store import Store, StoredChunk

REACH_K = 10
_BATCH = 256


@dataclass
class VerifyReport:
    """The result of `rag status --verify`; `to_dict()` is its `--json` object."""

    consistent: bool
    store_chunks: int
    manifest_chunks: int
    lexical_chunks: int
    missing: list[str] = field(default_factory=list)  # recorded ids absent from the store
    orphans: list[str] = field(default_factory=list)  # stored ids no record owns
    unreachable: list[str] = field(default_factory=list)  # ids dense search cannot return
    wrong_copies: list[str] = field(default_factory=list)  # ids whose copy in the state is missing or differs
    repaired: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(store: Store, state: IndexState, *, reachability: bool = True) -> VerifyReport:
    """Compare the three stores and check dense reachability of every chunk."""
    stored = set(store.iter_ids())
    recorded = set(state.chunk_ids())
    report = VerifyReport(
        consistent=False,
        store_chunks=len(stored),
        manifest_chunks=state.recorded_chunks(),
        lexical_chunks=state.lexical.count(),
        missing=sorted(recorded - stored),
        orphans=sorted(stored - recorded),
    )
    report.wrong_copies, report.unreachable = _check_chunks(store, state, sorted(stored & recorded), reachability)
    report.consistent = (
        not report.missing
        and not report.orphans
        and not report.unreachable
        and not report.wrong_copies
        and report.store_chunks == report.manifest_chunks == report.lexical_chunks == len(recorded)
    )
    return report


def unreachable(store: Store, ids: Sequence[str], k: int = REACH_K) -> list[str]:
    """The ids whose own stored embedding does not bring them back among the ``k`` nearest."""
    lost: list[str] = []
    for start in range(0, len(ids), _BATCH):
        rows = [r for r in store.get(list(ids[start : start + _BATCH]), with_embeddings=True) if r.embedding is not None]
        lost += _unreachable_rows(store, rows, k)
    return lost


def _unreachable_rows(store: Store, rows: Sequence[StoredChunk], k: int = REACH_K) -> list[str]:
    if not rows:
        return []
    nearest = store.nearest_ids(np.stack([r.embedding for r in rows]), k)  # type: ignore[misc]
    return [r.id for r, found in zip(rows, nearest, strict=True) if r.id not in found]


def _check_chunks(store: Store, state: IndexState, ids: Sequence[str], reachability: bool) -> tuple[list[str], list[str]]:
    """(ids whose copy in the state is missing or differs from the store, ids dense search cannot
    reach), reading each chunk from the store once."""
    wrong: list[str] = []
    lost: list[str] = []
    for start in range(0, len(ids), _BATCH):
        part = list(ids[start : start + _BATCH])
        rows = [r for r in store.get(part, with_embeddings=True) if r.embedding is not None]
        copies = state.passages(part)
        wrong += [r.id for r in rows if not _same(copies.get(r.id), r)]
        if reachability:
            lost += _unreachable_rows(store, rows)
    return wrong, lost


def _same(copy: StoredChunk | None, stored: StoredChunk) -> bool:
    # Chroma hands back its cosine space's normalised copy of a unit vector: equal to the last bit or so.
    return (copy is not None
            and (copy.text, copy.page, copy.heading) == (stored.text, stored.page, stored.heading)
            and copy.embedding is not None and stored.embedding is not None
            and copy.embedding.shape == stored.embedding.shape
            and bool(np.allclose(copy.embedding, stored.embedding, rtol=0, atol=1e-5)))


def repair(store: Store, state: IndexState, report: VerifyReport) -> VerifyReport:
    """Fix what `verify` found (call under the writer lock); returns a fresh report."""
    if report.orphans:
        store.delete(report.orphans)
    state.begin()
    state.recount()
    state.commit()
    if report.missing:
        owners = dict(state.iter_docs())
        state.begin()
        state.drop_chunks(report.missing)
        state.forget_version(sorted({owners[i] for i in report.missing if i in owners}))
        state.commit()
    if report.wrong_copies:
        state.begin()
        for start in range(0, len(report.wrong_copies), _BATCH):
            state.recopy(store.get(report.wrong_copies[start : start + _BATCH], with_embeddings=True))
        state.mark_copied_if_complete()
        state.commit()
    reinserted = reinsert(store, report.unreachable)
    after = verify(store, state)
    after.repaired = {"orphans_deleted": len(report.orphans), "missing_marked": len(report.missing),
                      "copies_rewritten": len(report.wrong_copies), "reinserted": reinserted}
    return after


def reinsert(store: Store, ids: Sequence[str]) -> int:
    """Delete and re-add chunks (same id, text, metadata, vector): HNSW links the new nodes afresh."""
    n = 0
    for start in range(0, len(ids), _BATCH):
        part = list(ids[start : start + _BATCH])
        rows = store.raw(part)
        if not rows["ids"]:
            continue
        store.delete(rows["ids"])
        store.put_raw(rows)
        n += len(rows["ids"])
    return n
