"""The `rag` command: a thin shell over the `rag.RAG` API (parse, call, format)."""

from __future__ import annotations

import warnings
from typing import Any

import click

from ingest.errors import ConfigWarning
from rag.cli import ask, index, models, serve
from rag.cli.output import note


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="folder-rag")
def cli() -> None:
    """Ask questions over a folder of private documents, with a local Ollama server and Chroma."""
    # A RAG_* variable that is not a setting: one "warning: ..." line on stderr, every time.
    global _previous_showwarning
    warnings.filterwarnings("always", category=ConfigWarning)
    if warnings.showwarning is not _show_warning:
        _previous_showwarning, warnings.showwarning = warnings.showwarning, _show_warning


_previous_showwarning = warnings.showwarning


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    if issubclass(category, ConfigWarning):
        note(f"warning: {message}")
    else:
        _previous_showwarning(message, category, *args, **kwargs)


for command in (*index.COMMANDS, *ask.COMMANDS, *models.COMMANDS, *serve.COMMANDS):
    cli.add_command(command)


def main() -> None:
    """Entry point of the `rag` console script."""
    cli(prog_name="rag")
