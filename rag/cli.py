"""The `rag` command: a thin shell over the `rag.RAG` API (parse, call, format)."""

from __future__ import annotations

import click

from rag import cli_ask, cli_index, cli_models, cli_serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rag")
def cli() -> None:
    """Ask questions over a folder of private documents, with a local Ollama server and Chroma."""


for command in (*cli_index.COMMANDS, *cli_ask.COMMANDS, *cli_models.COMMANDS, *cli_serve.COMMANDS):
    cli.add_command(command)


def main() -> None:
    """Entry point of the `rag` console script."""
    cli(prog_name="rag")
