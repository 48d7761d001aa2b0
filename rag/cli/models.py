"""`rag models ...` and `rag doctor`: parse, call `OllamaClient` / `rag.cli.doctor`, format."""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import datetime, timezone

import click

from ingest.walk import human_size
from rag.cli.doctor import Check, run_doctor
from rag.cli.options import host_option, json_option, store_options
from rag.cli.output import EXIT_ERROR, echo, emit_json, handle_errors, safe_text
from rag.cli.progress import PullReporter
from rag.client import OllamaClient
from rag.config import Settings
from rag.models_types import RunningModel, to_json

__all__ = ["COMMANDS", "doctor", "models"]


@click.group("models")
def models() -> None:
    """Manage the models on the Ollama server: list, show, pull, copy, delete, ps.

    \b
    Examples:
      rag models list
      rag models pull nomic-embed-text
      rag models show qwen2.5:7b --json
      rag models delete old-model --yes
    """


@models.command("list")
@host_option
@json_option
@handle_errors
def list_models(host: str | None, as_json: bool) -> None:
    """List the models installed on the server (`/api/tags`)."""
    with OllamaClient(host) as client:
        found = client.models()
    if as_json:
        emit_json({"host": client.host, "models": to_json(found)})
        return
    rows = [
        [m.name, human_size(m.size), m.family, m.parameter_size, m.quantization, _ago(m.modified)] for m in found
    ]
    _table(["NAME", "SIZE", "FAMILY", "PARAMS", "QUANT", "MODIFIED"], rows)
    if not found:
        click.echo(f"no models on {client.host} — run `rag models pull nomic-embed-text`", err=True)


@models.command("show")
@click.argument("model")
@host_option
@json_option
@handle_errors
def show_model(model: str, host: str | None, as_json: bool) -> None:
    """Show a model's capabilities, lengths, parameters, system prompt and template (`/api/show`)."""
    with OllamaClient(host) as client:
        details = client.show(model)
    if as_json:
        emit_json(to_json(details))
        return
    fields = [
        ("name", details.name),
        ("family", details.family),
        ("capabilities", ", ".join(details.capabilities)),
        ("embedding length", str(details.embedding_length or "")),
        ("context length", str(details.context_length or "")),
        ("parameters", details.parameters),
        ("system", details.system),
        ("template", details.template),
    ]
    for key, value in fields:
        if value:
            lines = value.strip("\n").splitlines() or [""]
            click.echo(f"{key:<17} {lines[0]}")
            for line in lines[1:]:
                click.echo(f"{'':<17} {line}")


@models.command("pull")
@click.argument("model")
@host_option
@json_option
@handle_errors
def pull_model(model: str, host: str | None, as_json: bool) -> None:
    """Download a model, with a progress bar (bytes and speed) on stderr."""
    reporter = PullReporter()
    status = ""
    try:
        with OllamaClient(host) as client:
            for part in client.pull(model):
                reporter(part)
                status = part.status
    finally:
        reporter.close()
    if as_json:
        emit_json({"host": client.host, "model": model, "status": status})
    else:
        click.echo(f"pulled {model}")


@models.command("copy")
@click.argument("source")
@click.argument("destination")
@host_option
@json_option
@handle_errors
def copy_model(source: str, destination: str, host: str | None, as_json: bool) -> None:
    """Copy a model under a new name (no download, the layers are shared)."""
    with OllamaClient(host) as client:
        client.copy(source, destination)
    if as_json:
        emit_json({"host": client.host, "source": source, "destination": destination, "status": "success"})
    else:
        click.echo(f"copied {source} to {destination}")


@models.command("delete")
@click.argument("model")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@host_option
@json_option
@handle_errors
def delete_model(model: str, yes: bool, host: str | None, as_json: bool) -> None:
    """Delete a model from the server (asks first unless --yes)."""
    with OllamaClient(host) as client:
        if not yes:
            click.confirm(f"delete {model} from {client.host}?", abort=True, err=True)
        client.delete(model)
    if as_json:
        emit_json({"host": client.host, "model": model, "status": "deleted"})
    else:
        click.echo(f"deleted {model}")


@models.command("ps")
@host_option
@json_option
@handle_errors
def running_models(host: str | None, as_json: bool) -> None:
    """List the loaded models, GPU or CPU, context length and when they unload (`/api/ps`)."""
    with OllamaClient(host) as client:
        loaded = client.running()
    if as_json:
        emit_json({"host": client.host, "models": to_json(loaded)})
        return
    rows = [
        [m.name, human_size(m.size), _processor(m), str(m.context_length or ""), _until(m.expires_at)]
        for m in loaded
    ]
    _table(["NAME", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows)
    if not loaded:
        click.echo("no model is loaded right now", err=True)


@click.command("doctor")
@host_option
@store_options
@click.option(
    "--embed-model", default=None, help="Embedding model (default: RAG_EMBED_MODEL, else nomic-embed-text)."
)
@click.option(
    "--model", "chat_model", default=None, help="Chat model (default: RAG_CHAT_MODEL, else qwen2.5:7b)."
)
@json_option
@handle_errors
def doctor(
    host: str | None,
    db: str | None,
    collection: str | None,
    embed_model: str | None,
    chat_model: str | None,
    as_json: bool,
) -> None:
    """Check the server, the models, the index and the transport; print the fix for each problem.

    \b
    Checks: the server answers (and its version); https or loopback;
    the embedding and chat models are present and able; the index was built
    with the embedding model and its dimension; the chat model's context;
    GPU or CPU for loaded models; the embedding prefixes. With several
    Ollama hosts (--host/OLLAMA_HOST list, RAG_EMBED_HOSTS, RAG_CHAT_HOSTS):
    each host, and the same embeddings from every embedding host. With
    --chroma: the Chroma server answers, and its transport.
    Exits 1 when any check fails (warnings do not fail).
    """
    settings = Settings.resolve(host=host, db=db, collection=collection, embed_model=embed_model, chat_model=chat_model)
    with OllamaClient(settings.host, retries=0) as client:
        checks = run_doctor(settings, client)
    ok = all(c.status != "fail" for c in checks)
    if as_json:
        emit_json({"ok": ok, "host": client.host, "checks": [asdict(c) for c in checks]})
    else:
        _doctor_table(checks)
    if not ok:
        sys.exit(EXIT_ERROR)


def _doctor_table(checks: list[Check]) -> None:
    width = max(len(c.name) for c in checks)
    for c in checks:
        echo(f"{c.status.upper():<5} {c.name:<{width}}  {safe_text(c.detail, one_line=True)}")
        if c.fix and c.status != "pass":
            echo(f"{'':<5} {'':<{width}}  fix: {safe_text(c.fix, one_line=True)}")
    counts = {s: sum(c.status == s for c in checks) for s in ("pass", "warn", "fail")}
    warnings = "warning" if counts["warn"] == 1 else "warnings"
    click.echo(f"{counts['pass']} passed, {counts['warn']} {warnings}, {counts['fail']} failed")


def _table(headers: list[str], rows: list[list[str]]) -> None:
    rows = [[safe_text(str(cell), one_line=True) for cell in row] for row in rows]  # names the server sent
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _processor(m: RunningModel) -> str:
    if not m.size:
        return ""
    gpu = round(100 * m.size_vram / m.size)
    if gpu >= 100:
        return "100% GPU"
    return "100% CPU" if gpu <= 0 else f"{100 - gpu}%/{gpu}% CPU/GPU"


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return ""
    seconds = (datetime.now(timezone.utc) - moment.astimezone(timezone.utc)).total_seconds()
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def _until(moment: datetime | None) -> str:
    if moment is None:
        return ""
    seconds = (moment.astimezone(timezone.utc) - datetime.now(timezone.utc)).total_seconds()
    if seconds > 10 * 365 * 86400:
        return "forever"
    return f"in {round(seconds / 60)} minutes" if seconds >= 90 else "in under 2 minutes"


COMMANDS: list[click.Command] = [models, doctor]
