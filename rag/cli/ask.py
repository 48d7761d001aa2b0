"""`rag ask`, `rag search` and `rag chat`: parse, call the `RAG` API, format."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from rag.answer import AnswerStream
from rag.api import RAG
from rag.chat import Chat
from rag.cli.options import host_option, json_option, question_argument, store_options
from rag.cli.output import echo, emit_json, handle_errors, note, safe_text
from rag.cli.progress import PullReporter
from rag.types import Answer, Citation, Hit, location

F = Callable[..., Any]


def retrieval_options(fn: F) -> F:
    fn = click.option("--type", "kinds", multiple=True,
                      help="Only these file types: pdf, md, html, txt, rst, code (repeatable).")(fn)
    fn = click.option("--path", "path_glob", default=None,
                      help="Only files matching this glob or folder, e.g. 'docs/*.md' or 'zh/'.")(fn)
    fn = click.option("--k", type=click.IntRange(1, 100), default=None, help="Passages to retrieve (default 5).")(fn)
    return fn


def model_option(fn: F) -> F:
    return click.option("--model", default=None, help="Chat model (default: qwen2.5:7b, or RAG_CHAT_MODEL).")(fn)


def pull_option(fn: F) -> F:
    return click.option("--pull", is_flag=True, help="Pull the chat or embedding model first if the server lacks it.")(fn)


def ready_kb(kb: RAG, pull: bool) -> RAG:
    """Fail fast, before retrieval, when a model is missing or lacks its capability."""
    reporter = PullReporter(sys.stderr)
    try:
        kb.ensure_models(pull=pull, progress=reporter)
    finally:
        reporter.close()
    return kb


def open_kb(db: str | None, collection: str | None, host: str | None, model: str | None, k: int | None) -> RAG:
    """The `RAG` object for the command's options."""
    return RAG(db=db, collection=collection, host=host, chat_model=model, k=k)


def shown_location(source: str, page: int | None, heading: str) -> str:
    """`rag.types.location` on one line, whatever the file name or heading holds."""
    return location(safe_text(source, one_line=True), page, safe_text(heading, one_line=True) if heading else "")


def format_sources(citations: Iterable[Citation]) -> str:
    """The cited sources, one per line."""
    lines = [f"  [{c.n}] {shown_location(c.source, c.page, c.heading)}" for c in citations]
    return "Sources:\n" + "\n".join(lines) if lines else ""


def format_hits(hits: Iterable[Hit], width: int = 160) -> str:
    """Ranked hits with their scores and the start of their text."""
    out = []
    for i, h in enumerate(hits, start=1):
        text = " ".join(safe_text(h.text).split())
        text = text if len(text) <= width else text[: width - 1] + "…"
        out.append(f"{i}. {h.score:.3f}  {shown_location(h.source, h.page, h.heading)}\n   {text}")
    return "\n".join(out)


def print_answer(result: Answer | AnswerStream, *, show_context: bool) -> Answer:
    """Print an answer (as it streams, when it does), then its sources and warnings."""
    if isinstance(result, AnswerStream):
        for piece in result:
            echo(piece, nl=False)  # a sequence split across pieces loses its ESC, so it stays inert
        answer = result.answer
        echo()
    else:
        answer = result
        echo(answer.answer)
    if answer.citations:
        echo("\n" + format_sources(answer.citations))
    if show_context and answer.contexts:
        echo("\nContext:\n" + format_hits(answer.contexts))
    for warning in answer.warnings:
        note(f"warning: {warning}")
    return answer


@click.command("ask")
@question_argument("question")
@store_options
@host_option
@model_option
@retrieval_options
@pull_option
@click.option("--no-stream", is_flag=True, help="Print the answer only when it is complete.")
@click.option("--show-context", is_flag=True, help="Also print the passages given to the model, with scores.")
@json_option
@handle_errors
def ask_command(
    question: str,
    db: str | None,
    collection: str | None,
    host: str | None,
    model: str | None,
    k: int | None,
    path_glob: str | None,
    kinds: tuple[str, ...],
    pull: bool,
    no_stream: bool,
    show_context: bool,
    as_json: bool,
) -> None:
    """Answer QUESTION from the indexed documents, citing its sources."""
    stream = not (no_stream or as_json)
    with open_kb(db, collection, host, model, k) as kb:
        ready_kb(kb, pull)
        result = kb.ask(question, stream=stream, path=path_glob, kinds=kinds or None)
        if as_json:
            emit_json(result.answer.to_dict() if isinstance(result, AnswerStream) else result.to_dict())
        else:
            print_answer(result, show_context=show_context)


@click.command("search")
@question_argument("query")
@store_options
@host_option
@retrieval_options
@click.option("--mode", type=click.Choice(["hybrid", "dense", "bm25"]), default=None,
              help="Retrieval mode (default: hybrid, or dense when RAG_HYBRID=0).")
@json_option
@handle_errors
def search_command(
    query: str,
    db: str | None,
    collection: str | None,
    host: str | None,
    k: int | None,
    path_glob: str | None,
    kinds: tuple[str, ...],
    mode: str | None,
    as_json: bool,
) -> None:
    """Retrieve the passages that best match QUERY, with scores (no chat model involved)."""
    with open_kb(db, collection, host, None, k) as kb:
        hits = kb.search(query, k=k, path=path_glob, kinds=kinds or None, mode=mode)  # type: ignore[arg-type]
    if as_json:
        emit_json({"query": query, "hits": [h.to_dict() for h in hits]})
    elif hits:
        echo(format_hits(hits))
    else:
        note("no passages matched — check the filters, or run `rag status` to see what is indexed")


CHAT_HELP = "Ask a question; /sources shows the last answer's sources, /reset clears history, Ctrl-D leaves."


@click.command("chat")
@store_options
@host_option
@model_option
@retrieval_options
@pull_option
@click.option("--show-context", is_flag=True, help="Also print the passages given to the model.")
@handle_errors
def chat_command(
    db: str | None,
    collection: str | None,
    host: str | None,
    model: str | None,
    k: int | None,
    path_glob: str | None,
    kinds: tuple[str, ...],
    pull: bool,
    show_context: bool,
) -> None:
    """Chat with the documents: follow-up questions use the conversation so far."""
    with open_kb(db, collection, host, model, k) as kb:
        ready_kb(kb, pull)
        session = kb.chat(path=path_glob, kinds=kinds or None)
        note(CHAT_HELP)
        chat_loop(session, interactive=sys.stdin.isatty(), show_context=show_context)


def chat_loop(session: Chat, *, interactive: bool, show_context: bool) -> None:
    """Read questions and commands from stdin until EOF or /exit."""
    while True:
        if interactive:
            click.echo("> ", nl=False, err=True)
        line = sys.stdin.readline()
        if not line:  # EOF (Ctrl-D)
            if interactive:
                click.echo(err=True)
            return
        question = line.strip()
        if not question:
            continue
        if question in ("/exit", "/quit"):
            return
        if question == "/reset":
            session.reset()
            note("history cleared")
        elif question == "/sources":
            sources = session.sources()
            echo(format_sources(sources) if sources else "(no sources yet)")
        elif question.startswith("/"):
            note(f"unknown command {question} — {CHAT_HELP}")
        else:
            print_answer(session.ask(question, stream=True), show_context=show_context)
            echo()


COMMANDS: list[click.Command] = [ask_command, search_command, chat_command]
