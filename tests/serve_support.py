"""A `rag serve` over the small EN/ZH test corpus (tests/readpath.py), backed by a bundled Ollama server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from readpath import indexed_settings

from rag.serve import RunningServer, ServeConfig, running
from rag.server import OllamaServer


@contextmanager
def served(ollama_server: Any, tmp_path: Path, **config: Any) -> Iterator[RunningServer]:
    """Index the corpus against ``ollama_server``, then run `rag serve` on it (port 0)."""
    settings = indexed_settings(ollama_server, tmp_path)
    base = ServeConfig(db=str(settings.db), ollama_host=ollama_server.url)
    with running(replace(base, **config)) as server:
        yield server


class ObservedServer(OllamaServer):
    """A bundled server that counts requests in flight per path, and can hold requests to some paths
    at a gate until the test opens it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.gated_paths: set[str] = set()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self._count_lock = threading.Lock()

    def dispatch(self, method: str, path: str, raw: bytes, number: int) -> Any:
        with self._count_lock:
            self.in_flight[path] = self.in_flight.get(path, 0) + 1
            self.max_in_flight[path] = max(self.max_in_flight.get(path, 0), self.in_flight[path])
        try:
            if path in self.gated_paths:
                self.gate.wait(60)
            return super().dispatch(method, path, raw, number)
        finally:
            with self._count_lock:
                self.in_flight[path] -= 1


def wait_until(condition: Callable[[], bool], what: str, tries: int = 400) -> None:
    """Poll ``condition`` (every 50 ms, up to 20 s) — for a state change, not a speed."""
    for _ in range(tries):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")
