"""`rag index` and `rag status`."""

from __future__ import annotations

import sys
from typing import Any

import click

from ingest.errors import RagError
from ingest.indexer import Progress
from ingest.records import IndexReport
from rag.api import RAG
from rag.cli.options import host_option, json_option, store_options
from rag.cli.output import EXIT_INDEX, echo, emit_json, handle_errors, note, safe_text
from rag.cli.progress import PullReporter
from rag.client import OllamaClient


@click.command("index")
@click.argument("path", type=click.Path(file_okay=False, path_type=str))
@store_options
@host_option
@click.option("--embed-model", default=None, help="Embedding model (default: nomic-embed-text, or RAG_EMBED_MODEL).")
@click.option("--chunk-tokens", type=click.IntRange(32, 8192), default=None, help="Chunk size in tokens (default 400).")
@click.option("--chunk-overlap", type=click.IntRange(0, 4096), default=None, help="Overlap in tokens (default 60).")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=None, help="Texts per embedding request (default 32).")
@click.option("--include-hidden", is_flag=True, default=None, help="Also index hidden files and folders.")
@click.option("--rebuild", is_flag=True, help="Delete the collection and re-embed everything.")
@click.option("--wait", "lock_wait", type=click.FloatRange(0), default=None, metavar="SECONDS",
              help="Wait this long for another run indexing the same collection to finish (default 5).")
@click.option("--parallel", type=click.IntRange(1, 64), default=None,
              help="Embedding requests in flight (default 2; Ollama serves OLLAMA_NUM_PARALLEL at once).")
@click.option("--pull", is_flag=True, help="Pull the embedding model first if the server lacks it.")
@json_option
@handle_errors
def index_command(
    path: str,
    db: str | None,
    collection: str | None,
    host: str | None,
    embed_model: str | None,
    chunk_tokens: int | None,
    chunk_overlap: int | None,
    batch_size: int | None,
    include_hidden: bool | None,
    rebuild: bool,
    lock_wait: float | None,
    parallel: int | None,
    pull: bool,
    as_json: bool,
) -> None:
    """Index the documents in PATH, keeping the index in sync with the folder.

    Unchanged files cost nothing; changed files are re-embedded; deleted files leave the index.
    """
    kb = RAG(
        db=db,
        collection=collection,
        host=host,
        embed_model=embed_model,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        batch_size=batch_size,
        include_hidden=include_hidden,
        lock_wait=lock_wait,
        parallel=parallel,
    )
    _ensure_embed_model(kb, pull)
    show_bar = sys.stderr.isatty() and not as_json
    with _ProgressBar(show_bar) as bar:
        report = kb.index(path, rebuild=rebuild, progress=bar.update if show_bar else None)
    if as_json:
        emit_json(report.to_dict())
    else:
        echo(format_report(report, kb))


def _ensure_embed_model(kb: RAG, pull: bool) -> None:
    """Fail fast, before reading any file, when the embedding model is missing or cannot embed."""
    reporter = PullReporter(sys.stderr)
    errors: list[RagError] = []
    hosts = kb.index_settings.embed_hosts or (kb.host,)
    try:
        for host in hosts:  # with several hosts, one that is down is set aside during the run
            try:
                with OllamaClient(host, timeouts=kb.index_settings.timeouts) as client:
                    client.ensure_models(kb.index_settings.embed_model, None, pull=pull, progress=reporter)
            except RagError as err:
                errors.append(err)
    finally:
        reporter.close()
    if len(errors) == len(hosts):
        raise errors[0]


class _ProgressBar:
    """A tqdm bar on stderr with files, chunks and time left; does nothing when not on a TTY."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None  # a tqdm, created on the first update (it needs the file total)

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, p: Progress) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=p.files_total, unit="file", file=sys.stderr, dynamic_ncols=True)
        self._bar.set_postfix_str(f"{p.chunks} chunks", refresh=False)
        self._bar.update(p.files_done - self._bar.n)


def format_report(report: IndexReport, kb: RAG) -> str:
    """The human-readable end-of-run report."""
    lines = [
        f"indexed into {kb.db} (collection {kb.collection})",
        f"  added {len(report.added)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}, "
        f"removed {len(report.removed)}, skipped {len(report.skipped)}",
        f"  {report.chunks} chunks written with {report.embed_requests} embedding requests "
        f"in {report.seconds:.1f} s",
    ]
    for title, items in (("skipped", report.skipped), ("warnings", report.warnings)):
        if items:
            lines.append(f"{title}:")
            lines.extend(f"  {_one_line(item.path)}: {_one_line(item.reason)}" for item in items)
    return "\n".join(lines)


@click.command("status")
@store_options
@click.option("--verify", is_flag=True,
              help="Prove the index is whole: store, file records and lexical index agree, and dense search "
              "reaches every chunk. Exit 5 when not.")
@click.option("--repair", is_flag=True, help="With --verify: fix what it finds (takes the writer lock).")
@json_option
@handle_errors
def status_command(db: str | None, collection: str | None, verify: bool, repair: bool, as_json: bool) -> None:
    """Show what the index holds: files, chunks, fingerprint, skipped files and where it lives."""
    kb = RAG(db=db, collection=collection)
    if verify or repair:
        _verify(kb, repair, as_json)
        return
    status = kb.status()
    if as_json:
        emit_json(status.to_dict())
        return
    echo(f"index      {status.chroma or status.db} (collection {status.collection})")
    echo(f"folder     {_one_line(status.root or '?')}")
    echo(f"files      {status.files}")
    echo(f"chunks     {status.chunks}")
    for key, value in (status.fingerprint or {}).items():
        echo(f"{key:<10} {value!r}")
    if status.skipped:
        echo(f"skipped    {len(status.skipped)} files in the last run:")
        for item in status.skipped:
            echo(f"  {_one_line(item.path)}: {_one_line(item.reason)}")


def _verify(kb: RAG, repair: bool, as_json: bool) -> None:
    report = kb.verify(repair=repair)
    if as_json:
        emit_json(report.to_dict())
    else:
        echo(f"store chunks     {report.store_chunks}")
        echo(f"recorded chunks  {report.manifest_chunks}")
        echo(f"lexical chunks   {report.lexical_chunks}")
        for label, ids in (("missing", report.missing), ("orphans", report.orphans),
                           ("unreachable", report.unreachable), ("wrong copies", report.wrong_copies)):
            echo(f"{label:<16} {len(ids)}" + (f"  e.g. {', '.join(ids[:3])}" if ids else ""))
        for key, n in report.repaired.items():
            echo(f"repaired: {key} {n}")
        echo("consistent" if report.consistent else "NOT consistent")
    if not report.consistent:
        note("error: the index is not consistent — run `rag status --verify --repair`, then `rag index PATH`"
             " (or `rag index PATH --rebuild`)")
        sys.exit(EXIT_INDEX)


COMMANDS: list[click.Command] = [index_command, status_command]


def _one_line(text: str) -> str:
    return safe_text(text, one_line=True)
