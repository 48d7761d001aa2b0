"""Prove the index is whole: the store, the file records and the lexical index hold the same chunks,
and dense search can reach every chunk (its own stored vector finds it among the nearest `REACH_K`).

`verify` only reads. `repair` (under the writer lock) deletes orphans, marks files with missing
chunks for re-embedding at the next `rag index`, and re-inserts unreachable chunks so that the HNSW
graph links them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ingest.state import IndexState
from ingest.store import Store

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
    if reachability:
        report.unreachable = unreachable(store, sorted(stored & recorded))
    report.consistent = (
        not report.missing
        and not report.orphans
        and not report.unreachable
        and report.store_chunks == report.manifest_chunks == report.lexical_chunks == len(recorded)
    )
    return report


def unreachable(store: Store, ids: Sequence[str], k: int = REACH_K) -> list[str]:
    """The ids whose own stored embedding does not bring them back among the ``k`` nearest."""
    lost: list[str] = []
    for start in range(0, len(ids), _BATCH):
        part = list(ids[start : start + _BATCH])
        rows = [r for r in store.get(part, with_embeddings=True) if r.embedding is not None]
        if not rows:
            continue
        nearest = store.nearest_ids(np.stack([r.embedding for r in rows]), k)  # type: ignore[misc]
        lost += [r.id for r, found in zip(rows, nearest, strict=True) if r.id not in found]
    return lost


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
    reinserted = reinsert(store, report.unreachable)
    after = verify(store, state)
    after.repaired = {"orphans_deleted": len(report.orphans), "missing_marked": len(report.missing),
                      "reinserted": reinserted}
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
