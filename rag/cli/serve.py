"""`rag serve`: the web page, its HTTP API and the collections as Ollama / OpenAI models."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import click

from ingest.errors import ConfigError, RagError
from rag.cli.options import store_options
from rag.cli.output import handle_errors, note

if TYPE_CHECKING:
    from rag.serve.state import ServeConfig

DEFAULT_PORT = 8765


@click.command("serve")
@store_options
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--host", "bind_host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --token.")
@click.option("--token", default=None,
              help="Require `Authorization: Bearer TOKEN` on every API call (default: RAG_SERVE_TOKEN).")
@click.option("--ollama-host", default=None, help="Ollama host (default: OLLAMA_HOST, else http://127.0.0.1:11434).")
@click.option("--model", default=None, help="Chat model (default: qwen2.5:7b, or RAG_CHAT_MODEL).")
@handle_errors
def serve_command(
    db: str | None,
    collection: str | None,
    port: int,
    bind_host: str,
    token: str | None,
    ollama_host: str | None,
    model: str | None,
) -> None:
    """Serve the web page and HTTP API for asking the indexed documents; prints its URL."""
    from rag.serve.run import bind, url_for, uvicorn_server
    from rag.serve.security import TOKEN_ENV, is_loopback
    from rag.serve.state import ServeConfig, check_bind

    token = token or os.environ.get(TOKEN_ENV) or None
    check_bind(bind_host, token)
    config = ServeConfig(db=db, collection=collection, ollama_host=ollama_host, chat_model=model, token=token,
                         loopback_only=is_loopback(bind_host))
    try:
        sock = bind(bind_host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {bind_host}:{port}: {exc.strerror or exc} — pick another --port") from None
    server = uvicorn_server(config)
    click.echo(url_for(bind_host, sock.getsockname()[1]))
    if token:
        note("every API call needs `Authorization: Bearer <token>`; the page asks for the token once")
    note("Ctrl-C stops the server")
    threading.Thread(target=check_models, args=(config,), name="rag-serve-check", daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down, then re-raises Ctrl-C: for a server that is a normal stop
        note("stopped")
    finally:
        sock.close()


def check_models(config: ServeConfig) -> None:
    """Say at once, on stderr, when Ollama or a model is missing (the server starts anyway: the page
    shows the same error when asked, and it may be fixed meanwhile)."""
    from rag.api import RAG

    try:
        with RAG(db=config.db, collection=config.collection, host=config.ollama_host,
                 chat_model=config.chat_model) as kb:
            kb.ensure_models()
    except RagError as err:
        note(f"warning: {err}")


COMMANDS: list[click.Command] = [serve_command]
