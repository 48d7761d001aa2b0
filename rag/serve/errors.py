"""How `rag` errors travel over HTTP: one status per error type, one body shape."""

from __future__ import annotations

from typing import Any

from ingest.errors import (
    ConfigError,
    IndexLocked,
    IndexMismatch,
    ModelCapabilityError,
    ModelNotFound,
    OllamaError,
    OllamaTimeout,
    OllamaUnreachable,
    RagError,
    StoreError,
)

# HTTP status for each error type, most specific first; anything else is 500.
_STATUS_BY_TYPE: list[tuple[type[RagError], int]] = [
    (ConfigError, 400),
    (IndexLocked, 409),
    (IndexMismatch, 409),
    (StoreError, 409),
    (OllamaTimeout, 504),
    (OllamaUnreachable, 502),
    (ModelNotFound, 502),
    (ModelCapabilityError, 502),
    (OllamaError, 502),
]


def error_status(err: RagError) -> int:
    """The HTTP status for an error."""
    for kind, status in _STATUS_BY_TYPE:
        if isinstance(err, kind):
            return status
    return 500


def error_body(err: BaseException) -> dict[str, Any]:
    """``{"error": one line, "type": the error class}`` for every error reply and error event."""
    return {"error": str(err), "type": type(err).__name__}
