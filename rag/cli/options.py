"""Click options shared by several commands, so every command spells them the same way."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from ingest.config import CHROMA_NAME_RULE, collection_name_problem

F = Callable[..., Any]

def _check_collection(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and collection_name_problem(value):
        raise click.BadParameter(f"{value!r} is not a collection name Chroma accepts: {CHROMA_NAME_RULE} — e.g. docs")
    return value


def _check_question(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter('the question is empty — ask something, e.g. rag ask "How do I reset it?"')
    return value


def question_argument(name: str) -> Callable[[F], F]:
    """The required QUESTION / QUERY argument; empty or blank is a usage error (exit 2)."""
    return click.argument(name, callback=_check_question)


def host_option(fn: F) -> F:
    return click.option(
        "--host", default=None,
        help="Ollama host, or several as a comma-separated list (embedding is spread over them, chat fails over; "
        "RAG_EMBED_HOSTS / RAG_CHAT_HOSTS split the roles). Default: OLLAMA_HOST, else http://127.0.0.1:11434."
    )(fn)


def _chroma_env(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # The one settings resolution reads RAG_CHROMA_URL; the flag wins over the environment by setting it
    # for the command's run, and the old value comes back when the command ends (an in-process caller,
    # such as a test runner, keeps its environment).
    if not value:
        return
    previous = os.environ.pop("RAG_CHROMA_URL", None)
    os.environ["RAG_CHROMA_URL"] = value

    def restore() -> None:
        if previous is None:
            os.environ.pop("RAG_CHROMA_URL", None)
        else:
            os.environ["RAG_CHROMA_URL"] = previous

    ctx.call_on_close(restore)


def store_options(fn: F) -> F:
    fn = click.option(
        "--chroma", default=None, expose_value=False, callback=_chroma_env, metavar="URL",
        help="A Chroma server (`chroma run`) holding the index, e.g. http://host:8000 (default: RAG_CHROMA_URL; "
        "--db is then only a local cache).",
    )(fn)
    fn = click.option(
        "--collection", default=None, callback=_check_collection,
        help="Collection name (default: docs, or RAG_COLLECTION).",
    )(fn)
    fn = click.option("--db", default=None, help="Index folder (default: ./.rag, or RAG_DB).")(fn)
    return fn


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")(fn)
