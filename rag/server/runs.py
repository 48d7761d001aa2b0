"""Shared steps of the generate / chat / embed routes: model checks, options, timed generations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.server.engine import Generation
from rag.server.protocol import ApiError, get_field
from rag.server.registry import Installed

if TYPE_CHECKING:
    from rag.server.http import OllamaServer

STREAM_FAILURE = "an error was encountered while running the model: injected stream failure"


def require_generator(srv: OllamaServer, name: str, body: dict[str, Any], action: str) -> Installed:
    """The installed model for a generate/chat request, after Ollama's capability checks."""
    model = srv.registry.find(name)
    if model is None:
        raise ApiError(404, f"model '{name}' not found")
    caps = model.spec.capabilities
    if "completion" not in caps:
        raise ApiError(400, f'"{name}" does not support {action}')
    if body.get("tools") and "tools" not in caps:
        raise ApiError(400, f'"{name}" does not support tools')
    if body.get("think") not in (None, False) and "thinking" not in caps:
        raise ApiError(400, f'"{name}" does not support thinking')
    return model


def options_for(srv: OllamaServer, body: dict[str, Any], model: Installed, struct: str) -> dict[str, Any]:
    """The request's options with `num_ctx` resolved: the server default, clamped to the model context."""
    options = dict(get_field(body, "options", dict, struct, {}))
    requested = options.get("num_ctx") or srv.num_ctx
    if not isinstance(requested, int) or isinstance(requested, bool):
        raise ApiError(500, "option \"num_ctx\" must be of type integer")
    options["num_ctx"] = min(requested, model.spec.context_length)
    return options


def unit_vectors(vectors: list[list[float]], dimensions: int = 0) -> list[list[float]]:
    """L2-normalised float32 vectors, cut to ``dimensions`` and normalised again, as `/api/embed` does."""
    out: list[list[float]] = []
    for vector in vectors:
        array = np.asarray(vector, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise ApiError(400, "embedding contains NaN or Inf values")
        array = array / max(float(np.linalg.norm(array)), 1e-12)
        if 0 < dimensions < len(array):
            array = array[:dimensions]
            array = array / max(float(np.linalg.norm(array)), 1e-12)
        out.append(array.astype(np.float32).tolist())
    return out


class Run:
    """One engine generation, timed for Ollama's metrics and subject to the stream fault."""

    def __init__(self, gen: Generation, start_ns: int, load_ns: int, engine_ns: int, error_after: int | None):
        self.gen = gen
        self.start_ns, self.load_ns, self.engine_ns = start_ns, load_ns, engine_ns
        self.error_after = error_after
        self.first_ns = self.end_ns = 0

    def pieces(self) -> Iterator[str]:
        """The reply pieces; raises ApiError where the injected stream failure is due."""
        for index, piece in enumerate(self.gen.pieces):
            if self.error_after is not None and index >= self.error_after:
                raise ApiError(500, STREAM_FAILURE)
            self.first_ns = self.first_ns or time.perf_counter_ns()
            yield piece
        if self.error_after is not None:
            raise ApiError(500, STREAM_FAILURE)
        self.end_ns = time.perf_counter_ns()
        self.first_ns = self.first_ns or self.end_ns

    def metrics(self) -> dict[str, int]:
        """Ollama's metric fields in ns; zero values are left out (omitempty)."""
        end = self.end_ns or time.perf_counter_ns()
        values = {
            "total_duration": max(1, time.perf_counter_ns() - self.start_ns),
            "load_duration": self.load_ns,
            "prompt_eval_count": self.gen.prompt_tokens,
            "prompt_eval_duration": max(1, self.first_ns - self.engine_ns),
            "eval_count": self.gen.completion_tokens,
            "eval_duration": max(1, end - self.first_ns),
        }
        return {k: v for k, v in values.items() if v}
