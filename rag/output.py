"""How the CLI talks: results on stdout (text or one JSON object), guidance and errors on stderr."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ingest.errors import (
    ConfigError,
    IndexMismatch,
    ModelCapabilityError,
    ModelNotFound,
    OllamaError,
    OllamaTimeout,
    OllamaUnreachable,
    RagError,
    StoreError,
)

F = TypeVar("F", bound=Callable[..., Any])

# Exit statuses a script can branch on (documented in the README).
EXIT_ERROR = 1  # any other RagError
EXIT_USAGE = 2  # click's own usage errors, and ConfigError
EXIT_UNREACHABLE = 3  # Ollama not reachable / timed out
EXIT_MODEL = 4  # model missing or lacks the capability
EXIT_INDEX = 5  # index mismatch or store failure

_EXIT_BY_TYPE: list[tuple[type[RagError], int]] = [
    (ConfigError, EXIT_USAGE),
    (OllamaUnreachable, EXIT_UNREACHABLE),
    (OllamaTimeout, EXIT_UNREACHABLE),
    (ModelNotFound, EXIT_MODEL),
    (ModelCapabilityError, EXIT_MODEL),
    (IndexMismatch, EXIT_INDEX),
    (StoreError, EXIT_INDEX),
    (OllamaError, EXIT_ERROR),
]


def exit_code(err: RagError) -> int:
    """The exit status for an error type."""
    for kind, code in _EXIT_BY_TYPE:
        if isinstance(err, kind):
            return code
    return EXIT_ERROR


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (UTF-8, Chinese kept readable)."""
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def note(message: str) -> None:
    """Guidance for a human, on stderr."""
    click.echo(message, err=True)


def fail(err: RagError) -> None:
    """Print the one-line error and exit with its status (no traceback)."""
    click.echo(f"error: {err}", err=True)
    sys.exit(exit_code(err))


def handle_errors(fn: F) -> F:
    """Turn a RagError raised by a command into a one-line message and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RagError as err:
            fail(err)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
