"""A `rag serve` over the small EN/ZH test corpus (tests/readpath.py), backed by a bundled Ollama server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from readpath import indexed_settings

from rag.serve import RunningServer, ServeConfig, running


@contextmanager
def served(ollama_server: Any, tmp_path: Path, **config: Any) -> Iterator[RunningServer]:
    """Index the corpus against ``ollama_server``, then run `rag serve` on it (port 0)."""
    settings = indexed_settings(ollama_server, tmp_path)
    base = ServeConfig(db=str(settings.db), ollama_host=ollama_server.url)
    with running(replace(base, **config)) as server:
        yield server
